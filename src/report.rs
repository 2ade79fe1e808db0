//! How an error is written for a person (a log line, an operator's message): with its causes.
//! A leaf module, so that any layer — the store included — can use it without reaching for the
//! HTTP error module.

/// An error and its causes on one line: `outer: middle: root`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
