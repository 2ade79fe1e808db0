//! The files a policy is read from, and the policy test files too: finding the `*.toml` files of
//! a directory, reading each as UTF-8, and parsing it into a spanned tree whose problems are
//! reported in the order they are written. The policy loader and the test-case reader both
//! read their files here, so a test file is refused with the same `file:line:column` messages
//! as a policy file.

use std::path::Path;

use super::errors::{PolicyError, PolicyErrors};
use super::read::Cx;
use super::tree::{self, Lines, Node};

/// One file's text, with the names it goes by.
pub(crate) struct Source {
    /// `default.toml`.
    pub name: String,
    /// As the operator would open it: `policies/default.toml` or `/etc/herald/policies/x.toml`.
    pub display: String,
    pub text: String,
}

/// Every `*.toml` file directly inside `dir`, in file-name order, each read as UTF-8 text.
/// `what` names the directory in a refusal ("policy", "policy tests"). Every file that cannot
/// be read is reported, not only the first.
pub(crate) fn toml_files(dir: &Path, what: &str) -> Result<Vec<Source>, PolicyErrors> {
    let dir_label = dir.display().to_string();
    let read = std::fs::read_dir(dir).map_err(|e| {
        PolicyErrors::one(&dir_label, format!("cannot read the {what} directory: {e}"))
    })?;
    let mut paths = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| {
            PolicyErrors::one(&dir_label, format!("cannot list the {what} directory: {e}"))
        })?;
        let path = entry.path();
        if path.is_file() && path.extension().is_some_and(|x| x == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut errors = Vec::new();
    let mut sources = Vec::new();
    for path in paths {
        match read_source(&path) {
            Ok(source) => sources.push(source),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(PolicyErrors::new(errors))
    }
}

fn read_source(path: &Path) -> Result<Source, PolicyError> {
    let display = path.display().to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| display.clone());
    let refused = |line, message: String| PolicyError {
        file: display.clone(),
        line,
        column: None,
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| refused(None, format!("cannot be read: {e}")))?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Source {
            name,
            display,
            text,
        }),
        Err(e) => {
            // The line of the first byte that is not UTF-8, so the editor finds it.
            let valid = e.as_bytes().get(..e.utf8_error().valid_up_to());
            let line = valid.map(|v| v.iter().filter(|b| **b == b'\n').count() + 1);
            Err(refused(line, "is not UTF-8 text".to_owned()))
        }
    }
}

/// Parses `text` and hands its tree to `read` with a [`Cx`] that reports to `errors`; a syntax
/// error is reported where the parser places it. The file's problems are sorted by line and
/// column, so they read in the order the file is written whatever order `read` found them in.
pub(crate) fn read_tree<T>(
    display: &str,
    id_file: &str,
    text: &str,
    errors: &mut Vec<PolicyError>,
    read: impl FnOnce(&mut Cx<'_>, &Node) -> T,
) -> Option<T> {
    let before = errors.len();
    let mut cx = Cx {
        display,
        id_file,
        lines: Lines::new(text),
        errors,
    };
    let read = match tree::parse(text) {
        Ok(root) => Some(read(&mut cx, &root)),
        Err((message, span)) => {
            cx.err(span, message.trim_end().replace('\n', " "));
            None
        }
    };
    errors[before..].sort_by_key(|e| (e.line, e.column));
    read
}
