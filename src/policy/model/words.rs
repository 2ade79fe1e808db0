//! How rules read in words: durations and moments as the files write them, dated labels, and
//! what a route or a region rule says. The loader, the engine's traces and the summary share
//! them.

use chrono::{DateTime, Duration, NaiveTime, Utc};

use super::{Regions, Route};

/// `24h`, `7d`, `90m`: how durations read in the files, traces and summary.
pub(crate) fn fmt_duration(d: Duration) -> String {
    let secs = d.num_seconds();
    // Days only from three days up: "24h" and "48h" read better than "1d" and "2d".
    if secs >= 3 * 86_400 && secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs != 0 && secs % 3_600 == 0 {
        format!("{}h", secs / 3_600)
    } else if secs != 0 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// A moment as the files write it: a bare date at midnight UTC, else RFC 3339.
pub(crate) fn fmt_moment(t: DateTime<Utc>) -> String {
    if t.time() == NaiveTime::MIN {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }
}

/// "until 2026-04-27: …", "from 2026-04-27: …", "from A until B: …" or just "…".
pub(crate) fn dated_label(
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    says: &str,
) -> String {
    match (from, until) {
        (None, None) => says.to_owned(),
        (Some(f), None) => format!("from {}: {says}", fmt_moment(f)),
        (None, Some(u)) => format!("before {}: {says}", fmt_moment(u)),
        (Some(f), Some(u)) => format!("from {} until {}: {says}", fmt_moment(f), fmt_moment(u)),
    }
}

impl Route {
    /// What the route says, in words.
    pub fn describe(&self) -> String {
        match self {
            Route::Deny => "not sent outside the window".to_owned(),
            Route::Tag(tag) => format!("MESSAGE_TAG with tag {}", tag.as_str()),
            Route::Utility(Some(t)) => format!(
                "UTILITY with template {} ({}), parameters [{}]",
                t.name,
                t.language,
                t.parameters.join(", ")
            ),
            Route::Utility(None) => {
                "UTILITY with the utility template the client names in the request".to_owned()
            }
            Route::MarketingToken => {
                "only through the recipient's Marketing Messages token (no messaging_type)"
                    .to_owned()
            }
        }
    }
}

impl Regions {
    pub fn describe(&self) -> String {
        match self {
            Regions::All => "tokens may be used in every region".to_owned(),
            Regions::Only(list) => format!("tokens may be used only in {}", list.join(", ")),
        }
    }

    pub fn allows(&self, region: Option<&str>) -> bool {
        match (self, region) {
            (Regions::All, _) => true,
            (Regions::Only(list), Some(r)) => list.iter().any(|x| x.eq_ignore_ascii_case(r.trim())),
            (Regions::Only(_), None) => false,
        }
    }
}
