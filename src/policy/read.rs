//! Reading values out of a spanned TOML tree: each reader reports what is wrong, with the line,
//! and yields `None`, so that callers carry on and every problem of a file is found in one pass.

use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use super::errors::PolicyError;
use super::model::{fmt_duration, CategorySet, Meta};
use super::tree::{Entry, Lines, Node, Value};
use crate::domain::decision::{MessagingType, Tag};
use crate::domain::Category;

// The ranges a policy file's dates and durations must lie in. A value outside them is refused
// when the file is read, with its line, rather than accepted and later overflowing the date
// arithmetic of every decision it takes part in.

/// The years a date in a policy or policy-test file may fall in: Messenger is younger than
/// 2000, and four-digit years are what TOML and RFC 3339 write. Anything else is a typo.
pub(crate) const POLICY_YEARS: RangeInclusive<i32> = 2000..=9999;

/// The longest messaging window (`[window] standard`, `user_ref`, `human_agent`). Messenger's
/// are 24 hours and 7 days; a window of a month or more describes no rule of Messenger's.
pub(crate) const WINDOW_MAX: Duration = Duration::days(30);

/// The longest frequency period (`[<section>.frequency] per`): a cap per year. Every decision
/// reads the recipient's sends back over the longest period, so it is bounded too.
pub(crate) const FREQUENCY_PER_MAX: Duration = Duration::days(366);

/// The longest cooldown between two sends on one Marketing Messages token: Messenger's is
/// 48 hours; more than a year between two messages is no cooldown but a ban (write a deny).
pub(crate) const TOKEN_COOLDOWN_MAX: Duration = Duration::days(366);

/// How far from a test case's `now` its relative times (`"-3d"`) and the spacing of its
/// `recent_sends` may reach: facts about a recipient a few years back are all a case needs.
pub(crate) const TEST_OFFSET_MAX: Duration = Duration::days(5 * 366);

/// Where a problem is, and how the file's rules are named.
pub(crate) struct Cx<'a> {
    pub display: &'a str,
    pub id_file: &'a str,
    pub lines: Lines<'a>,
    pub errors: &'a mut Vec<PolicyError>,
}

impl Cx<'_> {
    pub fn line(&self, span: &Option<Range<usize>>) -> Option<usize> {
        span.as_ref().map(|s| self.lines.line(s.start))
    }

    pub fn err(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let line = self.line(&span);
        let column = span.as_ref().map(|s| self.lines.column(s.start));
        self.errors.push(PolicyError {
            file: self.display.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    /// `file:line` for "already defined at" messages.
    pub fn here(&self, span: &Option<Range<usize>>) -> String {
        match self.line(span) {
            Some(l) => format!("{}:{l}", self.display),
            None => self.display.to_owned(),
        }
    }

    pub fn meta(&self, path: &str, span: &Option<Range<usize>>) -> Meta {
        Meta {
            id: format!("{}#{path}", self.id_file),
            at: match self.line(span) {
                Some(l) => format!("{}:{l}", self.id_file),
                None => self.id_file.to_owned(),
            },
        }
    }
}

/// The entries of a table, after reporting each key not in `allowed`.
pub(crate) fn table<'n>(
    cx: &mut Cx<'_>,
    node: &'n Node,
    what: &str,
    allowed: &[&str],
) -> Option<&'n [Entry]> {
    let Some(entries) = node.as_table() else {
        cx.err(
            node.best_span(),
            format!("{what} must be a table, not {}", node.value.type_name()),
        );
        return None;
    };
    for e in entries {
        if !allowed.contains(&e.key.as_str()) {
            cx.err(
                e.span(),
                format!(
                    "unknown key `{}` in {what}; expected one of: {}",
                    e.key,
                    allowed.join(", ")
                ),
            );
        }
    }
    Some(entries)
}

pub(crate) fn get<'n>(entries: &'n [Entry], key: &str) -> Option<&'n Node> {
    entries.iter().find(|e| e.key == key).map(|e| &e.node)
}

/// A key the table must have; a missing one is reported at the table.
pub(crate) fn required<'n>(
    cx: &mut Cx<'_>,
    entries: &'n [Entry],
    span: &Option<Range<usize>>,
    key: &str,
    what: &str,
) -> Option<&'n Node> {
    let found = get(entries, key);
    if found.is_none() {
        let at = span
            .clone()
            .or_else(|| entries.first().and_then(Entry::span));
        cx.err(at, format!("{what} needs `{key}`"));
    }
    found
}

/// An optional key: `Some(None)` when it is absent, `Some(Some(v))` when `read` reads it, and
/// `None` when `read` refused it (and reported why).
pub(crate) fn optional<'n, T>(
    node: Option<&'n Node>,
    read: impl FnOnce(&'n Node) -> Option<T>,
) -> Option<Option<T>> {
    node.map_or(Some(None), |n| read(n).map(Some))
}

pub(crate) fn string<'n>(cx: &mut Cx<'_>, node: &'n Node, what: &str) -> Option<&'n str> {
    match &node.value {
        Value::String(s) => Some(s),
        other => {
            cx.err(
                node.best_span(),
                format!("{what} must be a string, not {}", other.type_name()),
            );
            None
        }
    }
}

pub(crate) fn boolean(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<bool> {
    match &node.value {
        Value::Boolean(b) => Some(*b),
        other => {
            cx.err(
                node.best_span(),
                format!("{what} must be true or false, not {}", other.type_name()),
            );
            None
        }
    }
}

pub(crate) fn integer(cx: &mut Cx<'_>, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
    match &node.value {
        Value::Integer(i) if (min..=max).contains(i) => Some(*i),
        Value::Integer(i) => {
            cx.err(
                node.best_span(),
                format!("{what} must be between {min} and {max}, not {i}"),
            );
            None
        }
        other => {
            cx.err(
                node.best_span(),
                format!("{what} must be a whole number, not {}", other.type_name()),
            );
            None
        }
    }
}

pub(crate) fn array<'n>(cx: &mut Cx<'_>, node: &'n Node, what: &str) -> Option<&'n [Node]> {
    match &node.value {
        Value::Array(items) => Some(items),
        other => {
            cx.err(
                node.best_span(),
                format!("{what} must be an array, not {}", other.type_name()),
            );
            None
        }
    }
}

/// An array of strings; each non-string is reported.
pub(crate) fn strings<'n>(cx: &mut Cx<'_>, node: &'n Node, what: &str) -> Option<Vec<&'n str>> {
    let items = array(cx, node, what)?;
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match string(cx, item, &format!("each item of {what}")) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `"24h"`, `"7d"`, `"90m"`, `"30s"`, `"2w"`, or a sum such as `"1h30m"`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::zero();
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        digits.clear();
        let part = match c {
            's' => Duration::try_seconds(n)?,
            'm' => Duration::try_minutes(n)?,
            'h' => Duration::try_hours(n)?,
            'd' => Duration::try_days(n)?,
            'w' => Duration::try_weeks(n)?,
            _ => return None,
        };
        total = total.checked_add(&part)?;
    }
    digits.is_empty().then_some(total)
}

/// A positive duration no longer than `max` (a constant above, named in the refusal).
pub(crate) fn duration(
    cx: &mut Cx<'_>,
    node: &Node,
    what: &str,
    max: Duration,
) -> Option<Duration> {
    let d = duration_up_to(cx, node, what, max)?;
    if d > Duration::zero() {
        Some(d)
    } else {
        cx.err(node.best_span(), format!("{what} must be longer than zero"));
        None
    }
}

/// A duration no longer than `max`, zero included (a spacing, not a period of a rule).
pub(crate) fn duration_up_to(
    cx: &mut Cx<'_>,
    node: &Node,
    what: &str,
    max: Duration,
) -> Option<Duration> {
    let text = string(cx, node, what)?;
    match parse_duration(text) {
        Some(d) if d > max => {
            cx.err(
                node.best_span(),
                format!(
                    "{what}: `{text}` is too long; at most {} is allowed",
                    fmt_duration(max)
                ),
            );
            None
        }
        Some(d) => Some(d),
        None => {
            cx.err(
                node.best_span(),
                format!(
                    "{what}: `{text}` is not a duration; write a number and a unit (s, m, h, d, w), e.g. \"24h\", \"7d\" or \"1h30m\""
                ),
            );
            None
        }
    }
}

/// A moment: a TOML date (midnight UTC that day) or a date-time with an offset, written bare
/// or as a string.
pub(crate) fn moment(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<DateTime<Utc>> {
    let (text, native) = match &node.value {
        Value::Datetime(d) => (d.to_string(), true),
        Value::String(s) => (s.clone(), false),
        other => {
            cx.err(
                node.best_span(),
                format!("{what} must be a date, not {}", other.type_name()),
            );
            return None;
        }
    };
    match parse_moment(&text) {
        Ok(t) if POLICY_YEARS.contains(&t.year()) => Some(t),
        Ok(_) => {
            let shown = if native { text } else { format!("\"{text}\"") };
            cx.err(
                node.best_span(),
                format!(
                    "{what}: {shown} lies outside the years {} to {}",
                    POLICY_YEARS.start(),
                    POLICY_YEARS.end()
                ),
            );
            None
        }
        Err(why) => {
            let shown = if native { text } else { format!("\"{text}\"") };
            cx.err(node.best_span(), format!("{what}: {shown} {why}"));
            None
        }
    }
}

/// `2026-04-27` (midnight UTC) or RFC 3339 (`2026-04-27T09:00:00Z`, `…+02:00`).
pub(crate) fn parse_moment(text: &str) -> Result<DateTime<Utc>, &'static str> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_time(NaiveTime::MIN).and_utc());
    }
    // `get`, not `[..10]`: the tenth byte may fall inside a character (`2026-04-2ä7`).
    let date_part = text.get(..10).filter(|_| text.len() > 10);
    if date_part.is_some_and(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()) {
        return Err(
            "has no time zone offset; add one (e.g. Z for UTC) so the moment is unambiguous",
        );
    }
    Err("is not a date; write 2026-04-27 (midnight UTC) or 2026-04-27T09:00:00Z")
}

/// `"08:00"`.
pub(crate) fn clock_time(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<NaiveTime> {
    let text = string(cx, node, what)?;
    match NaiveTime::parse_from_str(text, "%H:%M") {
        Ok(t) => Some(t),
        Err(_) => {
            cx.err(
                node.best_span(),
                format!("{what}: `{text}` is not a time of day; write HH:MM from 00:00 to 23:59"),
            );
            None
        }
    }
}

pub(crate) fn timezone(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<Tz> {
    let text = string(cx, node, what)?;
    match text.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            cx.err(
                node.best_span(),
                format!("{what}: `{text}` is not an IANA time zone such as \"UTC\" or \"Europe/Berlin\""),
            );
            None
        }
    }
}

/// A value written by its name (`role = "marketer"`, `category = "receipt"`), read with its
/// `FromStr`, whose refusal is the message.
pub(crate) fn named<T>(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = string(cx, node, what)?;
    match text.parse::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            cx.err(node.best_span(), format!("{what}: {e}"));
            None
        }
    }
}

/// The message tags a policy may name, in the order a refusal lists them.
pub(crate) const TAGS: [Tag; 4] = [
    Tag::HumanAgent,
    Tag::PostPurchaseUpdate,
    Tag::AccountUpdate,
    Tag::ConfirmedEventUpdate,
];

/// The messaging types, in the order a refusal lists them.
const MESSAGING_TYPES: [MessagingType; 4] = [
    MessagingType::Response,
    MessagingType::Update,
    MessagingType::MessageTag,
    MessagingType::Utility,
];

/// A message tag by its Send API spelling (`POST_PURCHASE_UPDATE`).
pub(crate) fn tag_named(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<Tag> {
    spelled(cx, node, what, "message tag", &TAGS, Tag::as_str)
}

/// A messaging type by its Send API spelling (`UTILITY`).
pub(crate) fn messaging_type_named(
    cx: &mut Cx<'_>,
    node: &Node,
    what: &str,
) -> Option<MessagingType> {
    spelled(
        cx,
        node,
        what,
        "messaging type",
        &MESSAGING_TYPES,
        MessagingType::as_str,
    )
}

/// One of `all` by its `spelling`; an unknown name is refused with the list of known ones.
fn spelled<T: Copy>(
    cx: &mut Cx<'_>,
    node: &Node,
    what: &str,
    kind: &str,
    all: &[T],
    spelling: fn(T) -> &'static str,
) -> Option<T> {
    let name = string(cx, node, what)?;
    let found = all.iter().copied().find(|t| spelling(*t) == name);
    if found.is_none() {
        let known: Vec<&str> = all.iter().copied().map(spelling).collect();
        cx.err(
            node.best_span(),
            format!(
                "{what}: unknown {kind} `{name}`; expected one of: {}",
                known.join(", ")
            ),
        );
    }
    found
}

/// An array of category names; each unknown one is reported.
pub(crate) fn categories(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<CategorySet> {
    let items = array(cx, node, what)?;
    let mut set = CategorySet::EMPTY;
    let mut ok = true;
    for item in items {
        let Some(name) = string(cx, item, &format!("each item of {what}")) else {
            ok = false;
            continue;
        };
        match name.parse::<Category>() {
            Ok(c) if set.contains(c) => {
                cx.err(item.best_span(), format!("{what} lists `{name}` twice"));
                ok = false;
            }
            Ok(c) => set = set.with(c),
            Err(e) => {
                cx.err(item.best_span(), format!("{what}: {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(set)
}

/// `en`, `pt_BR`, `zh-Hant`, `fil`.
pub(crate) fn is_language_code(s: &str) -> bool {
    let mut parts = s.splitn(2, ['_', '-']);
    let base = parts.next().unwrap_or_default();
    let base_ok = (2..=3).contains(&base.len()) && base.bytes().all(|b| b.is_ascii_lowercase());
    let rest_ok = parts
        .next()
        .is_none_or(|r| (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()));
    base_ok && rest_ok
}

#[cfg(test)]
mod tests;
