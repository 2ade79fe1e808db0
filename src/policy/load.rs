//! Policy files → [`PolicySet`]: read every `*.toml` of the policy directory, check everything,
//! and report each problem as `file:line: message`.
//!
//! The format is described for its readers at the top of `policies/default.toml`. In short: one
//! section per stage of the decision (`[roles]`, `[consent]`, `[opt_out.*]`, `[window]`), one per
//! category (`[receipt]` with `inside_window` and `outside_window`, `[marketing]` with its token
//! rules, `[<category>.frequency]`, `[<category>.quiet_hours]`), `[transactional]` for limits that
//! cover every transactional category together, `[send_rate]`, `[tag_retirements]` and the
//! keyword lists. Rules that change over time are arrays of entries with `from` / `until`.
//!
//! Several files may share the work, but each rule (`receipt.outside_window`, `roles.backend`)
//! is defined in exactly one of them, and together they must define every rule the engine needs.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use chrono::{DateTime, Duration, Utc, Weekday};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::decision::{MessagingType, Tag};
use super::errors::{PolicyError, PolicyErrors};
use super::model::{
    category_index, dated_label, fmt_duration, fmt_moment, role_index, CategorySet, ConsentRule,
    Dated, DatedEntry, FrequencyRule, Keywords, Meta, OptOutKind, OptOutRule, OrderFields,
    PolicySet, QuietHoursRule, Regions, RoleRule, Route, Routes, SendRate, TagRetirement,
    TemplateSpec, TokenRules, WhenExceeded, WindowRule, Windows,
};
use super::read::{
    boolean, categories, clock_time, duration, get, integer, is_language_code, moment, required,
    string, strings, table, timezone, Cx, FREQUENCY_PER_MAX, TOKEN_COOLDOWN_MAX, WINDOW_MAX,
};
use super::tree::{self, Entry, Lines, Node, Value};
use crate::domain::{Category, Role};

/// The prefix of every rule id, whatever directory the files were read from, so that ids stay
/// the same across deployments: `policies/default.toml#marketing.frequency`.
const ID_DIR: &str = "policies";

/// The default policy directory, compiled into the binary: each file's path inside the
/// directory and its text. `herald serve --sandbox` writes it out where there is no `./policies`
/// (run outside a checkout); the same names and bytes give the same version as the directory.
/// A test checks that these are exactly the `*.toml` files of `policies/` and `policies/tests/`.
pub const DEFAULT_POLICY: [(&str, &str); 2] = [
    ("default.toml", include_str!("../../policies/default.toml")),
    (
        "tests/default.toml",
        include_str!("../../policies/tests/default.toml"),
    ),
];

/// The fields of an order a receipt's utility template may be filled from.
pub(crate) const RECEIPT_FIELDS: [&str; 11] = [
    "recipient_name",
    "order_number",
    "currency",
    "payment_method",
    "merchant_name",
    "order_url",
    "timestamp",
    "total_cost",
    "subtotal",
    "shipping_cost",
    "total_tax",
];

/// The fields of a shipping update its utility template may be filled from.
pub(crate) const SHIPPING_FIELDS: [&str; 7] = [
    "order_number",
    "status",
    "status_code",
    "carrier",
    "tracking_number",
    "tracking_url",
    "estimated_delivery",
];

const TAGS: [Tag; 4] = [
    Tag::HumanAgent,
    Tag::PostPurchaseUpdate,
    Tag::AccountUpdate,
    Tag::ConfirmedEventUpdate,
];

/// One policy file's text, with the names it goes by.
struct Source {
    /// `default.toml`.
    name: String,
    /// As the operator would open it: `policies/default.toml` or `/etc/herald/policies/x.toml`.
    display: String,
    text: String,
}

impl PolicySet {
    /// Loads every `*.toml` file directly inside `dir` (not `dir/tests/`), in file-name order.
    ///
    /// Every problem is reported, each as `file:line: message`; a set with any problem is not
    /// returned at all, so a bad edit can never half-apply.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyErrors> {
        let dir_label = dir.display().to_string();
        let read = std::fs::read_dir(dir).map_err(|e| {
            PolicyErrors::one(&dir_label, format!("cannot read the policy directory: {e}"))
        })?;
        let mut paths = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| {
                PolicyErrors::one(&dir_label, format!("cannot list the policy directory: {e}"))
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
            let display = path.display().to_string();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| display.clone());
            match std::fs::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => sources.push(Source {
                        name,
                        display,
                        text,
                    }),
                    Err(e) => {
                        // The line of the first byte that is not UTF-8, so the editor finds it.
                        let valid = e.as_bytes().get(..e.utf8_error().valid_up_to());
                        let line = valid.map(|v| v.iter().filter(|b| **b == b'\n').count() + 1);
                        errors.push(PolicyError {
                            file: display,
                            line,
                            column: None,
                            message: "is not UTF-8 text".to_owned(),
                        })
                    }
                },
                Err(e) => errors.push(PolicyError {
                    file: display,
                    line: None,
                    column: None,
                    message: format!("cannot be read: {e}"),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(PolicyErrors::new(errors));
        }
        build(&dir_label, sources)
    }

    /// Builds a set from in-memory files, `(file name, TOML text)`, as if they were the files of
    /// a `policies/` directory. Meant for tests and for checking an upload before writing it.
    pub fn from_sources(files: &[(&str, &str)]) -> Result<PolicySet, PolicyErrors> {
        let mut sources: Vec<Source> = files
            .iter()
            .map(|(name, text)| Source {
                name: (*name).to_owned(),
                display: format!("{ID_DIR}/{name}"),
                text: (*text).to_owned(),
            })
            .collect();
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        build(ID_DIR, sources)
    }
}

/// sha256 over, for each file in name order: its name, a newline, its length in bytes as
/// decimal, a newline, its bytes. Renaming, reordering or editing any file changes it.
fn version_of(sources: &[Source]) -> String {
    let mut hasher = Sha256::new();
    for s in sources {
        hasher.update(s.name.as_bytes());
        hasher.update(b"\n");
        hasher.update(s.text.len().to_string().as_bytes());
        hasher.update(b"\n");
        hasher.update(s.text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn build(dir_label: &str, sources: Vec<Source>) -> Result<PolicySet, PolicyErrors> {
    if sources.is_empty() {
        return Err(PolicyErrors::one(
            dir_label,
            "holds no *.toml policy file; Herald will not run without a policy",
        ));
    }
    let mut errors = Vec::new();
    let mut b = Builder::default();
    for s in &sources {
        let id_file = format!("{ID_DIR}/{}", s.name);
        let mut cx = Cx {
            display: &s.display,
            id_file: &id_file,
            lines: Lines::new(&s.text),
            errors: &mut errors,
        };
        let before = cx.errors.len();
        match tree::parse(&s.text) {
            Ok(root) => b.read_file(&mut cx, &root),
            Err((message, span)) => cx.err(span, message.trim_end().replace('\n', " ")),
        }
        cx.errors[before..].sort_by_key(|e| (e.line, e.column));
    }
    let version = version_of(&sources);
    let files = sources.iter().map(|s| s.name.clone()).collect();
    match b.finish(dir_label, &mut errors, version, files) {
        Some(set) if errors.is_empty() => Ok(set),
        _ => Err(PolicyErrors::new(errors)),
    }
}

fn tag_named(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<Tag> {
    let name = string(cx, node, what)?;
    let found = TAGS.into_iter().find(|t| t.as_str() == name);
    if found.is_none() {
        cx.err(
            node.best_span(),
            format!(
                "{what}: unknown message tag `{name}`; expected one of: {}",
                TAGS.map(Tag::as_str).join(", ")
            ),
        );
    }
    found
}

fn messaging_type_named(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<MessagingType> {
    let name = string(cx, node, what)?;
    let all = [
        MessagingType::Response,
        MessagingType::Update,
        MessagingType::MessageTag,
        MessagingType::Utility,
    ];
    let found = all.into_iter().find(|m| m.as_str() == name);
    if found.is_none() {
        cx.err(
            node.best_span(),
            format!(
                "{what}: unknown messaging type `{name}`; expected one of: {}",
                all.map(MessagingType::as_str).join(", ")
            ),
        );
    }
    found
}

/// Where something was written, when the parser knows.
type Span = Option<Range<usize>>;

/// One entry of a dated rule, while it is read.
struct RawDated<T> {
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    value: T,
    span: Option<Range<usize>>,
}

/// A rule that may change over time: a single table (in force always, unless it has `from` /
/// `until`) or an array of tables, each with `from` (inclusive) and/or `until` (exclusive).
/// Together the entries must cover every moment exactly once.
fn dated<T>(
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
    if !ok {
        return None;
    }
    // Sort by start (open start first) and insist that each entry starts where the last ended.
    raw.sort_by_key(|r| r.from);
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
    if !coverage_ok {
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

// ---------------------------------------------------------------------------------------------
// The sections.
// ---------------------------------------------------------------------------------------------

const SECTIONS: &str = "policy, roles, consent, opt_out, window, tag_retirements, response, receipt, shipping_update, account_update, event_update, agent_reply, marketing, transactional, send_rate, stop_keywords, resume_keywords";

/// A tag used by a route entry, kept for checking against `[tag_retirements]`.
struct TagUse {
    tag: Tag,
    until: Option<DateTime<Utc>>,
    path: String,
    display: String,
    line: Option<usize>,
}

/// A place to report a cross-file problem.
struct Loc {
    display: String,
    line: Option<usize>,
}

/// The rules read so far, across files.
#[derive(Default)]
struct Builder {
    descriptions: Vec<String>,
    /// Rule path → where it was first defined.
    seen: HashMap<String, String>,
    roles: [Option<RoleRule>; 4],
    consent: [Option<ConsentRule>; 7],
    opt_outs: Vec<OptOutRule>,
    standard: Option<WindowRule>,
    user_ref: Option<WindowRule>,
    human_agent: Option<WindowRule>,
    human_agent_loc: Option<Loc>,
    inside: [Option<(Meta, MessagingType)>; 7],
    outside: [Option<(Meta, Dated<Route>)>; 7],
    tag_uses: Vec<TagUse>,
    token_uses: Vec<Loc>,
    token_regions: Option<(Meta, Dated<Regions>)>,
    token_cooldown: Option<(Meta, Dated<Duration>)>,
    frequency: Vec<FrequencyRule>,
    quiet_hours: Vec<QuietHoursRule>,
    send_rate: Option<SendRate>,
    retirements: Vec<TagRetirement>,
    stop: Keywords,
    resume: Keywords,
}

impl Builder {
    /// Records that `path` is defined here; reports it if another place already did.
    fn claim(&mut self, cx: &mut Cx<'_>, path: &str, span: &Option<Range<usize>>) -> bool {
        if let Some(first) = self.seen.get(path) {
            cx.err(
                span.clone(),
                format!(
                    "`{path}` is already defined at {first}; each rule is defined once across the policy files"
                ),
            );
            return false;
        }
        self.seen.insert(path.to_owned(), cx.here(span));
        true
    }

    fn read_file(&mut self, cx: &mut Cx<'_>, root: &Node) {
        let Some(entries) = root.as_table() else {
            cx.err(None, "a policy file must be a TOML document of tables");
            return;
        };
        for e in entries {
            match e.key.as_str() {
                "policy" => self.read_policy(cx, e),
                "roles" => self.read_roles(cx, e),
                "consent" => self.read_consent(cx, e),
                "opt_out" => self.read_opt_out(cx, e),
                "window" => self.read_window(cx, e),
                "tag_retirements" => self.read_retirements(cx, e),
                "transactional" => {
                    self.read_limits(cx, e, "transactional", CategorySet::all_transactional())
                }
                "send_rate" => self.read_send_rate(cx, e),
                "stop_keywords" => self.read_keywords(cx, e, true),
                "resume_keywords" => self.read_keywords(cx, e, false),
                other => match other.parse::<Category>() {
                    Ok(cat) => self.read_category(cx, e, cat),
                    Err(_) => cx.err(
                        e.span(),
                        format!("unknown section [{other}]; expected one of: {SECTIONS}"),
                    ),
                },
            }
        }
    }

    fn read_policy(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let Some(entries) = table(cx, &e.node, "[policy]", &["description"]) else {
            return;
        };
        if let Some(d) = get(entries, "description").and_then(|n| string(cx, n, "`description`")) {
            self.descriptions.push(d.trim().to_owned());
        }
    }

    fn read_roles(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let names = Role::ALL.map(Role::as_str);
        let Some(entries) = table(cx, &e.node, "[roles]", &names) else {
            return;
        };
        for r in entries {
            let Ok(role) = r.key.parse::<Role>() else {
                continue; // reported by `table`
            };
            let path = format!("roles.{role}");
            let Some(may_send) = categories(cx, &r.node, &format!("`{path}`")) else {
                continue;
            };
            if role == Role::Compliance && may_send != CategorySet::EMPTY {
                cx.err(
                    r.span(),
                    "`roles.compliance` must be []: the compliance role reads and verifies, it never sends (API.md §3)",
                );
                continue;
            }
            if self.claim(cx, &path, &r.span()) {
                self.roles[role_index(role)] = Some(RoleRule {
                    meta: cx.meta(&path, &r.span()),
                    may_send,
                });
            }
        }
    }

    fn read_consent(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let names = Category::ALL.map(Category::as_str);
        let Some(entries) = table(cx, &e.node, "[consent]", &names) else {
            return;
        };
        for c in entries {
            let Ok(cat) = c.key.parse::<Category>() else {
                continue;
            };
            let path = format!("consent.{cat}");
            // `{ scopes = …, recorded_by = "api" }`: the same scopes, counted only when a
            // client recorded them through the API.
            let (node, by_api) = match &c.node.value {
                Value::Table(_) => {
                    let what = format!("`{path}`");
                    let Some(fields) = table(cx, &c.node, &what, &["scopes", "recorded_by"]) else {
                        continue;
                    };
                    let by_api = match get(fields, "recorded_by") {
                        None => false,
                        Some(n) => match string(cx, n, &format!("`{path}.recorded_by`")) {
                            Some("api") => true,
                            Some("anyone") => false,
                            Some(other) => {
                                cx.err(
                                    n.best_span(),
                                    format!("`{path}.recorded_by`: `{other}` must be \"api\" (only consents recorded through POST /v1/consents count) or \"anyone\""),
                                );
                                continue;
                            }
                            None => continue,
                        },
                    };
                    let Some(scopes) = required(cx, fields, &c.span(), "scopes", &what) else {
                        continue;
                    };
                    (scopes, by_api)
                }
                _ => (&c.node, false),
            };
            let scopes: Vec<&str> = match &node.value {
                Value::String(s) => vec![s.as_str()],
                Value::Array(_) => match strings(cx, node, &format!("`{path}`")) {
                    Some(v) => v,
                    None => continue,
                },
                other => {
                    cx.err(
                        c.span(),
                        format!(
                            "`{path}` must be \"transactional\", \"marketing\", \"none\" or a list of scopes, not {}",
                            other.type_name()
                        ),
                    );
                    continue;
                }
            };
            let (mut transactional, mut marketing, mut ok) = (false, false, true);
            for s in &scopes {
                match *s {
                    "transactional" => transactional = true,
                    "marketing" => marketing = true,
                    "none" if scopes.len() == 1 => {}
                    "none" => {
                        cx.err(
                            c.span(),
                            format!("`{path}`: \"none\" cannot be combined with a scope"),
                        );
                        ok = false;
                    }
                    other => {
                        cx.err(
                            c.span(),
                            format!("`{path}`: unknown consent scope `{other}`; expected transactional, marketing or none"),
                        );
                        ok = false;
                    }
                }
            }
            if ok && cat == Category::Marketing && !marketing {
                cx.err(
                    c.span(),
                    "`consent.marketing` must require the marketing scope: marketing is only sent to people who opted in to it",
                );
                ok = false;
            }
            if ok && self.claim(cx, &path, &c.span()) {
                self.consent[category_index(cat)] = Some(ConsentRule {
                    meta: cx.meta(&path, &c.span()),
                    transactional,
                    marketing,
                    by_api,
                });
            }
        }
    }

    fn read_opt_out(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let names = OptOutKind::ALL.map(|(_, n)| n);
        let Some(entries) = table(cx, &e.node, "[opt_out]", &names) else {
            return;
        };
        for o in entries {
            let Some((kind, name)) = OptOutKind::ALL.into_iter().find(|(_, n)| *n == o.key) else {
                continue;
            };
            let path = format!("opt_out.{name}");
            let what = format!("[{path}]");
            let Some(fields) = table(cx, &o.node, &what, &["stops"]) else {
                continue;
            };
            let span = o.span();
            let Some(stops) = required(cx, fields, &span, "stops", &what)
                .and_then(|n| categories(cx, n, &format!("`{path}.stops`")))
            else {
                continue;
            };
            if kind == OptOutKind::Marketing && !stops.contains(Category::Marketing) {
                cx.err(
                    span.clone(),
                    "`opt_out.marketing.stops` must include marketing",
                );
                continue;
            }
            if self.claim(cx, &path, &span) {
                self.opt_outs.push(OptOutRule {
                    meta: cx.meta(&path, &span),
                    kind,
                    stops,
                });
            }
        }
    }

    fn read_window(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let Some(entries) = table(
            cx,
            &e.node,
            "[window]",
            &["standard", "user_ref", "human_agent"],
        ) else {
            return;
        };
        for w in entries {
            let path = format!("window.{}", w.key);
            let slot = match w.key.as_str() {
                "standard" => &mut self.standard,
                "user_ref" => &mut self.user_ref,
                "human_agent" => &mut self.human_agent,
                _ => continue,
            };
            let Some(length) = duration(cx, &w.node, &format!("`{path}`"), WINDOW_MAX) else {
                continue;
            };
            let meta = cx.meta(&path, &w.span());
            if w.key == "human_agent" {
                self.human_agent_loc = Some(Loc {
                    display: cx.display.to_owned(),
                    line: cx.line(&w.span()),
                });
            }
            // Claim after taking the slot would borrow self twice; check the map directly.
            if let Some(first) = self.seen.get(&path) {
                cx.err(
                    w.span(),
                    format!("`{path}` is already defined at {first}; each rule is defined once across the policy files"),
                );
                continue;
            }
            *slot = Some(WindowRule { meta, length });
            self.seen.insert(path, cx.here(&w.span()));
        }
    }

    fn read_retirements(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let names = TAGS.map(Tag::as_str);
        let Some(entries) = table(cx, &e.node, "[tag_retirements]", &names) else {
            return;
        };
        for t in entries {
            let Some(tag) = TAGS.into_iter().find(|x| x.as_str() == t.key) else {
                continue;
            };
            let path = format!("tag_retirements.{}", t.key);
            let Some(on) = moment(cx, &t.node, &format!("`{path}`")) else {
                continue;
            };
            if self.claim(cx, &path, &t.span()) {
                self.retirements.push(TagRetirement {
                    meta: cx.meta(&path, &t.span()),
                    tag,
                    on,
                });
            }
        }
    }

    fn read_send_rate(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let Some(entries) = table(cx, &e.node, "[send_rate]", &["per_page"]) else {
            return;
        };
        let span = e.span();
        let Some(per_page) = required(cx, entries, &span, "per_page", "[send_rate]")
            .and_then(|n| integer(cx, n, "`send_rate.per_page`", 1, 100_000))
        else {
            return;
        };
        let key_span = entries
            .iter()
            .find(|x| x.key == "per_page")
            .and_then(Entry::span);
        if self.claim(cx, "send_rate.per_page", &key_span) {
            self.send_rate = Some(SendRate {
                meta: cx.meta("send_rate.per_page", &key_span),
                per_page: u32::try_from(per_page).unwrap_or(u32::MAX),
            });
        }
    }

    fn read_keywords(&mut self, cx: &mut Cx<'_>, e: &Entry, stop: bool) {
        let section = if stop {
            "stop_keywords"
        } else {
            "resume_keywords"
        };
        let Some(entries) = e.node.as_table() else {
            cx.err(
                e.span(),
                format!("[{section}] must be a table of language = [keywords]"),
            );
            return;
        };
        for k in entries {
            let path = format!("{section}.{}", k.key);
            if !is_language_code(&k.key) {
                cx.err(
                    k.span(),
                    format!(
                        "[{section}]: `{}` is not a language code such as en, de, pt_BR",
                        k.key
                    ),
                );
                continue;
            }
            let Some(words) = strings(cx, &k.node, &format!("`{path}`")) else {
                continue;
            };
            if words.is_empty() || words.iter().any(|w| w.trim().is_empty()) {
                cx.err(
                    k.span(),
                    format!("`{path}` must list keywords, none of them empty"),
                );
                continue;
            }
            if self.claim(cx, &path, &k.span()) {
                let meta = cx.meta(&path, &k.span());
                let words = words.into_iter().map(str::to_owned).collect();
                let list = if stop {
                    &mut self.stop
                } else {
                    &mut self.resume
                };
                list.add(meta, k.key.clone(), words);
            }
        }
    }

    fn read_category(&mut self, cx: &mut Cx<'_>, e: &Entry, cat: Category) {
        let mut allowed = vec![
            "inside_window",
            "outside_window",
            "frequency",
            "quiet_hours",
        ];
        if cat == Category::Marketing {
            allowed.extend(["token_regions", "token_cooldown"]);
        }
        let Some(entries) = table(cx, &e.node, &format!("[{cat}]"), &allowed) else {
            return;
        };
        for x in entries {
            let path = format!("{cat}.{}", x.key);
            match x.key.as_str() {
                "inside_window" => {
                    let Some(mt) = messaging_type_named(cx, &x.node, &format!("`{path}`")) else {
                        continue;
                    };
                    if !matches!(mt, MessagingType::Response | MessagingType::Update) {
                        cx.err(
                            x.span(),
                            format!("`{path}`: inside the window a message goes as RESPONSE or UPDATE, not {}", mt.as_str()),
                        );
                        continue;
                    }
                    if self.claim(cx, &path, &x.span()) {
                        self.inside[category_index(cat)] = Some((cx.meta(&path, &x.span()), mt));
                    }
                }
                "outside_window" => self.read_outside(cx, x, cat, &path),
                "token_regions" => {
                    let read = dated(
                        cx,
                        &x.node,
                        &path,
                        &["regions"],
                        |cx, fields, span| {
                            let node =
                                required(cx, fields, span, "regions", "a token_regions entry")?;
                            regions(cx, node)
                        },
                        Regions::describe,
                    );
                    if let Some((d, _)) = read {
                        if self.claim(cx, &path, &x.span()) {
                            self.token_regions = Some((cx.meta(&path, &x.span()), d));
                        }
                    }
                }
                "token_cooldown" => {
                    let read = dated(
                        cx,
                        &x.node,
                        &path,
                        &["cooldown"],
                        |cx, fields, span| {
                            let node =
                                required(cx, fields, span, "cooldown", "a token_cooldown entry")?;
                            duration(cx, node, "`cooldown`", TOKEN_COOLDOWN_MAX)
                        },
                        |d| format!("at most one message per token per {}", fmt_duration(*d)),
                    );
                    if let Some((d, _)) = read {
                        if self.claim(cx, &path, &x.span()) {
                            self.token_cooldown = Some((cx.meta(&path, &x.span()), d));
                        }
                    }
                }
                "frequency" => self.read_frequency(cx, x, &path, CategorySet::EMPTY.with(cat)),
                "quiet_hours" => self.read_quiet(cx, x, &path, CategorySet::EMPTY.with(cat)),
                _ => {}
            }
        }
    }

    /// `[transactional]`: limits over every transactional category together.
    fn read_limits(&mut self, cx: &mut Cx<'_>, e: &Entry, section: &str, applies: CategorySet) {
        let Some(entries) = table(
            cx,
            &e.node,
            &format!("[{section}]"),
            &["frequency", "quiet_hours"],
        ) else {
            return;
        };
        for x in entries {
            let path = format!("{section}.{}", x.key);
            match x.key.as_str() {
                "frequency" => self.read_frequency(cx, x, &path, applies),
                "quiet_hours" => self.read_quiet(cx, x, &path, applies),
                _ => {}
            }
        }
    }

    fn read_outside(&mut self, cx: &mut Cx<'_>, x: &Entry, cat: Category, path: &str) {
        let shorthand = match &x.node.value {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        };
        let (routes, spans) = match shorthand {
            Some("deny") => (single(Route::Deny), vec![x.span()]),
            Some("marketing_token") if cat == Category::Marketing => {
                (single(Route::MarketingToken), vec![x.span()])
            }
            Some(other) => {
                cx.err(
                    x.span(),
                    format!(
                        "`{path}`: `{other}` is not a route; write \"deny\"{}, or a table with messaging_type = \"MESSAGE_TAG\" (and tag) or \"UTILITY\" (and template)",
                        if cat == Category::Marketing { ", \"marketing_token\"" } else { "" }
                    ),
                );
                return;
            }
            None => {
                let read = dated(
                    cx,
                    &x.node,
                    path,
                    &["messaging_type", "tag", "template", "via", "deny"],
                    |cx, fields, span| route_entry(cx, fields, span, cat, path),
                    Route::describe,
                );
                match read {
                    Some(r) => r,
                    None => return,
                }
            }
        };
        if !self.claim(cx, path, &x.span()) {
            return;
        }
        for (entry, span) in routes.entries.iter().zip(&spans) {
            match entry.value {
                Route::Tag(tag) => self.tag_uses.push(TagUse {
                    tag,
                    until: entry.until,
                    path: path.to_owned(),
                    display: cx.display.to_owned(),
                    line: cx.line(span),
                }),
                Route::MarketingToken => self.token_uses.push(Loc {
                    display: cx.display.to_owned(),
                    line: cx.line(span),
                }),
                Route::Deny | Route::Utility(_) => {}
            }
        }
        self.outside[category_index(cat)] = Some((cx.meta(path, &x.span()), routes));
    }

    fn read_frequency(&mut self, cx: &mut Cx<'_>, x: &Entry, path: &str, applies: CategorySet) {
        let what = format!("[{path}]");
        let Some(fields) = table(cx, &x.node, &what, &["max", "per", "when_exceeded"]) else {
            return;
        };
        let span = x.span();
        let max = required(cx, fields, &span, "max", &what)
            .and_then(|n| integer(cx, n, "`max`", 1, 1_000_000));
        let per = required(cx, fields, &span, "per", &what)
            .and_then(|n| duration(cx, n, &format!("`{path}.per`"), FREQUENCY_PER_MAX));
        let when =
            required(cx, fields, &span, "when_exceeded", &what).and_then(|n| {
                match string(cx, n, "`when_exceeded`")? {
                    "defer" => Some(WhenExceeded::Defer),
                    "deny" => Some(WhenExceeded::Deny),
                    other => {
                        cx.err(
                            n.best_span(),
                            format!("`when_exceeded`: `{other}` must be \"defer\" or \"deny\""),
                        );
                        None
                    }
                }
            });
        let (Some(max), Some(per), Some(when_exceeded)) = (max, per, when) else {
            return;
        };
        if !self.claim(cx, path, &span) {
            return;
        }
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let label = format!(
            "{}: at most {max} per recipient per {}; beyond that {}",
            applies.names().join(", "),
            fmt_duration(per),
            match when_exceeded {
                WhenExceeded::Defer => "a message waits until the period allows it (defer)",
                WhenExceeded::Deny => "a message is refused (deny frequency_cap)",
            }
        );
        self.frequency.push(FrequencyRule {
            meta: cx.meta(path, &span),
            applies_to: applies,
            max,
            per,
            when_exceeded,
            label,
        });
    }

    fn read_quiet(&mut self, cx: &mut Cx<'_>, x: &Entry, path: &str, applies: CategorySet) {
        let what = format!("[{path}]");
        let Some(fields) = table(
            cx,
            &x.node,
            &what,
            &["send_from", "send_until", "timezone_if_unknown", "days_off"],
        ) else {
            return;
        };
        let span = x.span();
        let days_off = match get(fields, "days_off") {
            None => Some(Vec::new()),
            Some(n) => weekdays(cx, n, &format!("`{path}.days_off`")),
        };
        let from = required(cx, fields, &span, "send_from", &what)
            .and_then(|n| clock_time(cx, n, "`send_from`"));
        let until = required(cx, fields, &span, "send_until", &what)
            .and_then(|n| clock_time(cx, n, "`send_until`"));
        let tz = match get(fields, "timezone_if_unknown") {
            Some(n) => timezone(cx, n, "`timezone_if_unknown`"),
            None => Some(Tz::UTC),
        };
        let (Some(send_from), Some(send_until), Some(tz), Some(days_off)) =
            (from, until, tz, days_off)
        else {
            return;
        };
        if send_from == send_until {
            cx.err(
                span,
                format!("{what}: send_from and send_until are both {}, which leaves no hours to send in; remove the section to allow every hour", send_from.format("%H:%M")),
            );
            return;
        }
        if !self.claim(cx, path, &span) {
            return;
        }
        let days = match days_off.as_slice() {
            [] => String::new(),
            days => format!(
                ", never on {}",
                days.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let label = format!(
            "{}: sent only between {} and {}{days} in the recipient's time zone ({} when unknown); at other times they wait until {} there",
            applies.names().join(", "),
            send_from.format("%H:%M"),
            send_until.format("%H:%M"),
            tz.name(),
            send_from.format("%H:%M"),
        );
        self.quiet_hours.push(QuietHoursRule {
            meta: cx.meta(path, &span),
            applies_to: applies,
            send_from,
            send_until,
            timezone_if_unknown: tz,
            days_off,
            label,
        });
    }

    /// Cross-file checks, and the compiled set when every rule the engine needs is present.
    fn finish(
        self,
        dir: &str,
        errors: &mut Vec<PolicyError>,
        version: String,
        files: Vec<String>,
    ) -> Option<PolicySet> {
        // A rule refused for a bad value would also show up as missing: only report absent
        // rules when everything that was written is sound.
        let report_missing = errors.is_empty();
        let mut missing = |what: String| {
            if !report_missing {
                return;
            }
            errors.push(PolicyError {
                file: dir.to_owned(),
                line: None,
                column: None,
                message: format!("no policy file defines {what}"),
            })
        };
        for (role, rule) in Role::ALL.iter().zip(&self.roles) {
            if rule.is_none() {
                missing(format!(
                    "`roles.{role}` (which categories the {role} role may send)"
                ));
            }
        }
        for (cat, rule) in Category::ALL.iter().zip(&self.consent) {
            if rule.is_none() {
                missing(format!("`consent.{cat}` (the consent {cat} needs)"));
            }
        }
        for (name, w) in [
            ("standard", &self.standard),
            ("user_ref", &self.user_ref),
            ("human_agent", &self.human_agent),
        ] {
            if w.is_none() {
                missing(format!("`window.{name}`"));
            }
        }
        for cat in Category::ALL {
            if self.inside[category_index(cat)].is_none() {
                missing(format!("`{cat}.inside_window`"));
            }
            if self.outside[category_index(cat)].is_none() {
                missing(format!("`{cat}.outside_window`"));
            }
        }
        if self.send_rate.is_none() {
            missing("`send_rate.per_page`".to_owned());
        }
        if !self.token_uses.is_empty() {
            if self.token_regions.is_none() {
                missing("`marketing.token_regions`, which marketing_token routes need".to_owned());
            }
            if self.token_cooldown.is_none() {
                missing("`marketing.token_cooldown`, which marketing_token routes need".to_owned());
            }
        }
        // A route must stop using a tag by the day Messenger retires it.
        for u in &self.tag_uses {
            let Some(r) = self.retirements.iter().find(|r| r.tag == u.tag) else {
                continue;
            };
            if u.until.is_none_or(|until| until > r.on) {
                errors.push(PolicyError {
                    file: u.display.clone(),
                    line: u.line,
                    column: None,
                    message: format!(
                        "`{}` sends {} {}, but Messenger retires that tag on {} ({}); end this entry by then",
                        u.path,
                        u.tag.as_str(),
                        match u.until {
                            Some(until) => format!("until {}", fmt_moment(until)),
                            None => "with no end date".to_owned(),
                        },
                        fmt_moment(r.on),
                        r.meta.id,
                    ),
                });
            }
        }
        if let (Some(s), Some(h)) = (&self.standard, &self.human_agent) {
            if h.length < s.length {
                let (file, line) = self
                    .human_agent_loc
                    .as_ref()
                    .map_or((dir.to_owned(), None), |l| (l.display.clone(), l.line));
                errors.push(PolicyError {
                    file,
                    line,
                    column: None,
                    message: format!(
                        "`window.human_agent` ({}) is shorter than the standard window ({}); HUMAN_AGENT exists to reach further",
                        fmt_duration(h.length),
                        fmt_duration(s.length)
                    ),
                });
            }
        }
        if !errors.is_empty() {
            return None;
        }

        let roles: [RoleRule; 4] = self
            .roles
            .into_iter()
            .collect::<Option<Vec<_>>>()?
            .try_into()
            .ok()?;
        let consent: [ConsentRule; 7] = self
            .consent
            .into_iter()
            .collect::<Option<Vec<_>>>()?
            .try_into()
            .ok()?;
        let mut routes = Vec::with_capacity(7);
        for (inside, outside) in self.inside.into_iter().zip(self.outside) {
            let ((inside_meta, inside), (outside_meta, outside)) = (inside?, outside?);
            routes.push(Routes {
                inside_meta,
                inside,
                outside_meta,
                outside,
            });
        }
        let routes: [Routes; 7] = routes.try_into().ok()?;
        let token = match (self.token_regions, self.token_cooldown) {
            (Some((regions_meta, regions)), Some((cooldown_meta, cooldown))) => Some(TokenRules {
                regions_meta,
                regions,
                cooldown_meta,
                cooldown,
            }),
            _ => None,
        };
        let mut opt_outs = self.opt_outs;
        opt_outs.sort_by_key(|o| OptOutKind::ALL.iter().position(|(k, _)| *k == o.kind));
        let mut retirements = self.retirements;
        retirements.sort_by_key(|r| r.on);
        Some(PolicySet {
            version,
            files,
            description: (!self.descriptions.is_empty()).then(|| self.descriptions.join("\n")),
            roles,
            consent,
            opt_outs,
            windows: Windows {
                standard: self.standard?,
                user_ref: self.user_ref?,
                human_agent: self.human_agent?,
            },
            routes,
            token,
            frequency: self.frequency,
            quiet_hours: self.quiet_hours,
            send_rate: self.send_rate?,
            tag_retirements: retirements,
            stop_keywords: self.stop,
            resume_keywords: self.resume,
        })
    }
}

/// `["sat", "sun"]`: days of the week, by their first three letters; not all seven.
fn weekdays(cx: &mut Cx<'_>, node: &Node, what: &str) -> Option<Vec<Weekday>> {
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

fn single(route: Route) -> Dated<Route> {
    Dated {
        entries: vec![DatedEntry {
            from: None,
            until: None,
            label: route.describe(),
            value: route,
        }],
    }
}

fn regions(cx: &mut Cx<'_>, node: &Node) -> Option<Regions> {
    if let Value::String(s) = &node.value {
        if s == "all" {
            return Some(Regions::All);
        }
    }
    let list = strings(cx, node, "`regions`")?;
    let mut ok = !list.is_empty();
    if !ok {
        cx.err(
            node.best_span(),
            "`regions` lists no region; write \"all\" or codes such as [\"EU\", \"UK\"]",
        );
    }
    for r in &list {
        if !(r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase())) {
            cx.err(
                node.best_span(),
                format!("`regions`: `{r}` is not a two-letter region code such as EU, UK or JP"),
            );
            ok = false;
        }
    }
    ok.then(|| Regions::Only(list.into_iter().map(str::to_owned).collect()))
}

fn route_entry(
    cx: &mut Cx<'_>,
    fields: &[Entry],
    span: &Option<Range<usize>>,
    cat: Category,
    path: &str,
) -> Option<Route> {
    let chosen: Vec<&str> = ["messaging_type", "via", "deny"]
        .into_iter()
        .filter(|k| get(fields, k).is_some())
        .collect();
    if chosen.len() != 1 {
        cx.err(
            span.clone(),
            format!(
                "an entry of `{path}` needs exactly one of messaging_type, via or deny{}",
                if chosen.is_empty() {
                    String::new()
                } else {
                    format!(", not {}", chosen.join(" and "))
                }
            ),
        );
        return None;
    }
    let tag = get(fields, "tag");
    let template = get(fields, "template");
    if let Some(n) = get(fields, "deny") {
        let yes = boolean(cx, n, "`deny`")?;
        if !yes || tag.is_some() || template.is_some() {
            cx.err(
                span.clone(),
                format!("an entry of `{path}` with deny must say deny = true and nothing else"),
            );
            return None;
        }
        return Some(Route::Deny);
    }
    if let Some(n) = get(fields, "via") {
        let via = string(cx, n, "`via`")?;
        if via != "marketing_token" {
            cx.err(
                n.best_span(),
                format!("`via`: `{via}` is unknown; the only value is \"marketing_token\""),
            );
            return None;
        }
        if cat != Category::Marketing {
            cx.err(
                n.best_span(),
                format!("`{path}`: Marketing Messages tokens carry marketing only"),
            );
            return None;
        }
        if tag.is_some() || template.is_some() {
            cx.err(
                span.clone(),
                format!("an entry of `{path}` with via takes no tag or template"),
            );
            return None;
        }
        return Some(Route::MarketingToken);
    }
    let mt_node = get(fields, "messaging_type")?;
    let mt = messaging_type_named(cx, mt_node, "`messaging_type`")?;
    match mt {
        MessagingType::MessageTag => {
            if template.is_some() {
                cx.err(
                    span.clone(),
                    "`template` goes with messaging_type = \"UTILITY\", not MESSAGE_TAG",
                );
                return None;
            }
            let Some(tag_node) = tag else {
                cx.err(
                    span.clone(),
                    format!("an entry of `{path}` with MESSAGE_TAG needs `tag`"),
                );
                return None;
            };
            let tag = tag_named(cx, tag_node, "`tag`")?;
            if cat == Category::Marketing {
                cx.err(
                    tag_node.best_span(),
                    "message tags may never carry marketing (MESSENGER.md §2.2)",
                );
                return None;
            }
            if tag == Tag::HumanAgent && cat != Category::AgentReply {
                cx.err(
                    tag_node.best_span(),
                    format!("HUMAN_AGENT is for replies a person types (agent_reply), not {cat}"),
                );
                return None;
            }
            Some(Route::Tag(tag))
        }
        MessagingType::Utility => {
            if tag.is_some() {
                cx.err(
                    span.clone(),
                    "`tag` goes with messaging_type = \"MESSAGE_TAG\", not UTILITY",
                );
                return None;
            }
            if cat == Category::Marketing {
                cx.err(
                    mt_node.best_span(),
                    "utility templates may never carry marketing",
                );
                return None;
            }
            match template {
                Some(t) => template_spec(cx, t, cat).map(|t| Route::Utility(Some(t))),
                None => Some(Route::Utility(None)),
            }
        }
        MessagingType::Response | MessagingType::Update => {
            cx.err(
                mt_node.best_span(),
                format!(
                    "`{path}`: outside the window a message goes as MESSAGE_TAG or UTILITY (or via = \"marketing_token\", or deny = true), not {}",
                    mt.as_str()
                ),
            );
            None
        }
    }
}

fn template_spec(cx: &mut Cx<'_>, node: &Node, cat: Category) -> Option<TemplateSpec> {
    let fields_of: &[&str] = match OrderFields::of(cat) {
        Some(OrderFields::Receipt) => &RECEIPT_FIELDS,
        Some(OrderFields::Shipping) => &SHIPPING_FIELDS,
        None => {
            cx.err(
                node.best_span(),
                format!("{cat} messages are free-form, so the client names their utility template in the request (`utility_template`); remove `template` here"),
            );
            return None;
        }
    };
    let entries = table(
        cx,
        node,
        "`template`",
        &["name", "language", "parameters", "when_missing"],
    )?;
    let span = node.best_span();
    let name = required(cx, entries, &span, "name", "`template`").and_then(|n| {
        let s = string(cx, n, "`template.name`")?;
        let ok = !s.is_empty()
            && s.len() <= 512
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            cx.err(n.best_span(), format!("`template.name`: `{s}` must be lowercase letters, digits and _ (as Meta names templates)"));
        }
        ok.then(|| s.to_owned())
    });
    let language = required(cx, entries, &span, "language", "`template`").and_then(|n| {
        let s = string(cx, n, "`template.language`")?;
        let ok = is_language_code(s);
        if !ok {
            cx.err(
                n.best_span(),
                format!("`template.language`: `{s}` is not a language code such as en_US"),
            );
        }
        ok.then(|| s.to_owned())
    });
    let parameters = match get(entries, "parameters") {
        None => Some(Vec::new()),
        Some(n) => {
            let list = strings(cx, n, "`template.parameters`")?;
            let mut ok = true;
            for p in &list {
                if !fields_of.contains(p) {
                    cx.err(
                        n.best_span(),
                        format!("`template.parameters`: a {cat} has no field `{p}`; expected one of: {}", fields_of.join(", ")),
                    );
                    ok = false;
                }
            }
            ok.then(|| list.into_iter().map(str::to_owned).collect())
        }
    };
    let when_missing = match get(entries, "when_missing") {
        None => Some("-".to_owned()),
        Some(n) => string(cx, n, "`template.when_missing`").map(str::to_owned),
    };
    let (name, language) = (name?, language?);
    let detail = format!(
        "outside the window: UTILITY with the policy's template {name} ({language}) filled from the {}",
        if cat == Category::ShippingUpdate { "shipment" } else { "order" }
    );
    Some(TemplateSpec {
        name,
        language,
        parameters: parameters?,
        when_missing: when_missing?,
        detail,
    })
}
