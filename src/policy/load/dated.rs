//! Rules that change over time (`from` / `until` entries that together cover every moment
//! once), and the names and days they are written with.

use super::*;

/// Where something was written, when the parser knows.
pub(super) type Span = Option<Range<usize>>;

/// One entry of a dated rule, while it is read.
pub(super) struct RawDated<T> {
    pub(super) from: Option<DateTime<Utc>>,
    pub(super) until: Option<DateTime<Utc>>,
    pub(super) value: T,
    pub(super) span: Option<Range<usize>>,
}

/// A rule that may change over time: a single table (in force always, unless it has `from` /
/// `until`) or an array of tables, each with `from` (inclusive) and/or `until` (exclusive).
/// Together the entries must cover every moment exactly once.
pub(super) fn dated<T>(
    cx: &mut Cx<'_>,
    node: &Node,
    path: &str,
    value_keys: &[&str],
    mut read_value: impl FnMut(&mut Cx<'_>, &[Entry], &Option<Range<usize>>) -> Option<T>,
    describe: impl Fn(&T) -> String,
) -> Option<(Dated<T>, Vec<Span>)> {
    let items: Vec<&Node> = match &node.value {
        Value::Array(items) => items.iter().collect(),
        Value::Table(_) => vec![node],
        other => {
            cx.err(
                node.best_span(),
                format!(
                    "`{path}` must be a table or an array of tables ([[{path}]]), not {}",
                    other.type_name()
                ),
            );
            return None;
        }
    };
    if items.is_empty() {
        cx.err(node.best_span(), format!("`{path}` has no entries"));
        return None;
    }
    let mut raw = read_entries(cx, items, path, value_keys, &mut read_value)?;
    // Sort by start (open start first) and insist that each entry starts where the last ended.
    raw.sort_by_key(|r| r.from);
    if !covers_every_moment_once(cx, &raw, path) {
        return None;
    }
    let spans = raw.iter().map(|r| r.span.clone()).collect();
    let entries = raw
        .into_iter()
        .map(|r| DatedEntry {
            label: dated_label(r.from, r.until, &describe(&r.value)),
            from: r.from,
            until: r.until,
            value: r.value,
        })
        .collect();
    Some((Dated { entries }, spans))
}

/// Each entry of a dated rule, with its `from` and `until`; `None` when any is wrong (each
/// problem reported).
fn read_entries<T>(
    cx: &mut Cx<'_>,
    items: Vec<&Node>,
    path: &str,
    value_keys: &[&str],
    read_value: &mut impl FnMut(&mut Cx<'_>, &[Entry], &Option<Range<usize>>) -> Option<T>,
) -> Option<Vec<RawDated<T>>> {
    let mut allowed = vec!["from", "until"];
    allowed.extend_from_slice(value_keys);
    let mut raw = Vec::new();
    let mut ok = true;
    for item in items {
        let span = item.best_span();
        let Some(entries) = table(cx, item, &format!("an entry of `{path}`"), &allowed) else {
            ok = false;
            continue;
        };
        let from = get(entries, "from").map(|n| moment(cx, n, "`from`"));
        let until = get(entries, "until").map(|n| moment(cx, n, "`until`"));
        let value = read_value(cx, entries, &span);
        match (from, until, value) {
            (Some(None), _, _) | (_, Some(None), _) | (_, _, None) => ok = false,
            (from, until, Some(value)) => {
                let (from, until) = (from.flatten(), until.flatten());
                if let (Some(f), Some(u)) = (from, until) {
                    if f >= u {
                        cx.err(
                            span.clone(),
                            format!(
                                "`{path}`: from {} is not before until {}",
                                fmt_moment(f),
                                fmt_moment(u)
                            ),
                        );
                        ok = false;
                        continue;
                    }
                }
                raw.push(RawDated {
                    from,
                    until,
                    value,
                    span,
                });
            }
        }
    }
    ok.then_some(raw)
}

/// Whether entries sorted by start cover every moment exactly once: the first with no `from`,
/// each starting where the one before ended, the last with no `until`. Reports each gap and
/// overlap.
fn covers_every_moment_once<T>(cx: &mut Cx<'_>, raw: &[RawDated<T>], path: &str) -> bool {
    let mut coverage_ok = true;
    for (i, r) in raw.iter().enumerate() {
        if i == 0 {
            if let Some(f) = r.from {
                cx.err(
                    r.span.clone(),
                    format!(
                        "`{path}` says nothing about the time before {}: give its earliest entry no `from`, so that every moment is covered",
                        fmt_moment(f)
                    ),
                );
                coverage_ok = false;
            }
            continue;
        }
        let prev = &raw[i - 1];
        let prev_line = cx
            .line(&prev.span)
            .map_or(String::new(), |l| format!(" (line {l})"));
        match (prev.until, r.from) {
            (None, _) | (_, None) => {
                cx.err(
                    r.span.clone(),
                    format!(
                        "`{path}`: this entry overlaps the entry{prev_line} that has no `until`"
                    ),
                );
                coverage_ok = false;
            }
            (Some(u), Some(f)) if f < u => {
                cx.err(
                    r.span.clone(),
                    format!(
                        "`{path}`: this entry, from {}, overlaps the entry{prev_line} that runs until {}; two rules would be in force at once",
                        fmt_moment(f),
                        fmt_moment(u)
                    ),
                );
                coverage_ok = false;
            }
            (Some(u), Some(f)) if f > u => {
                cx.err(
                    r.span.clone(),
                    format!(
                        "`{path}`: nothing is in force from {} until {} (between the entry{prev_line} and this one)",
                        fmt_moment(u),
                        fmt_moment(f)
                    ),
                );
                coverage_ok = false;
            }
            _ => {}
        }
    }
    if let Some(last) = raw.last() {
        if let Some(u) = last.until {
            cx.err(
                last.span.clone(),
                format!(
                    "`{path}` says nothing about the time from {} on: give its latest entry no `until`",
                    fmt_moment(u)
                ),
            );
            coverage_ok = false;
        }
    }
    coverage_ok
}

/// `["sat", "sun"]`: days of the week, by their first three letters; not all seven.
pub(super) fn weekdays(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<Vec<Weekday>> {
    let names = strings(cx, node, what)?;
    let mut days = Vec::new();
    for name in names {
        match name.parse::<Weekday>() {
            Ok(d) if name.len() == 3 => {
                if !days.contains(&d) {
                    days.push(d);
                }
            }
            _ => {
                cx.err(
                    node.best_span(),
                    format!(
                        "{what}: `{name}` is not a day; write mon, tue, wed, thu, fri, sat or sun"
                    ),
                );
                return None;
            }
        }
    }
    if days.len() == 7 {
        cx.err(
            node.best_span(),
            format!("{what}: every day is off, which leaves no day to send on; remove the category's messages from [roles] instead"),
        );
        return None;
    }
    Some(days)
}
