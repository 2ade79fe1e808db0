//! Policy files → [`PolicySet`]: read every `*.toml` of the policy directory, check everything,
//! and report each problem as `file:line:column: message`.
//!
//! The format is described for its readers at the top of `policies/default.toml`. In short: one
//! section per stage of the decision (`[roles]`, `[consent]`, `[opt_out.*]`, `[window]`), one per
//! category (`[receipt]` with `inside_window` and `outside_window`, `[marketing]` with its token
//! rules, `[<category>.frequency]`, `[<category>.quiet_hours]`), `[transactional]` for limits that
//! cover every transactional category together, `[send_rate]`, `[fallback]` (email when Messenger
//! cannot take a message), `[tag_retirements]` and the keyword lists. Rules that change over time
//! are arrays of entries with `from` / `until`.
//!
//! Several files may share the work, but each rule (`receipt.outside_window`, `roles.backend`)
//! is defined in exactly one of them, and together they must define every rule the engine needs.
//!
//! One room per kind of section: this file takes the directory's files (read and parsed by
//! `policy/source.rs`, which the test-case reader shares) and hands each section of each
//! file to the [`Builder`]; `sections.rs` reads the sections every policy has the same way
//! (roles, consent, opt-outs, window, tag retirements, send rate, keywords), `categories.rs` a
//! category's section and its limits, `routes.rs` a route outside the window, `dated.rs` rules
//! that change over time, `fallback.rs` the email fallback, and `finish.rs` checks the files
//! against each other and builds the set.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use chrono::{DateTime, Duration, Utc, Weekday};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::errors::{PolicyError, PolicyErrors};
use super::model::{
    category_index, dated_label, fmt_duration, fmt_moment, role_index, CategorySet, ConsentRule,
    Dated, DatedEntry, FrequencyRule, Keywords, Meta, OptOutKind, OptOutRule, OrderFields,
    PolicySet, QuietHoursRule, Regions, RoleRule, Route, Routes, SendRate, TagRetirement,
    TemplateSpec, TokenRules, WhenExceeded, WindowRule, Windows,
};
use super::read::{
    boolean, categories, clock_time, duration, get, integer, is_language_code,
    messaging_type_named, moment, required, string, strings, table, tag_named, timezone, Cx,
    FREQUENCY_PER_MAX, TAGS, TOKEN_COOLDOWN_MAX, WINDOW_MAX,
};
use super::source::{read_tree, toml_files, Source};
use super::tree::{Entry, Node, Value};
use crate::domain::decision::{MessagingType, Tag};
use crate::domain::{Category, Role};

mod categories;
mod dated;
mod fallback;
mod finish;
mod routes;
mod sections;

use self::dated::{dated, weekdays};
use self::routes::{regions, route_entry, single};

/// The prefix of every rule id, whatever directory the files were read from, so that ids stay
/// the same across deployments: `policies/default.toml#marketing.frequency`.
const ID_DIR: &str = "policies";

/// The default policy directory, compiled into the binary: each file's path inside the
/// directory and its text. `herald serve --sandbox` writes it out where there is no `./policies`
/// (run outside a checkout); the same names and bytes give the same version as the directory.
/// A test checks that these are exactly the `*.toml` files of `policies/` and `policies/tests/`.
pub const DEFAULT_POLICY: [(&str, &str); 2] = [
    (
        "default.toml",
        include_str!("../../../policies/default.toml"),
    ),
    (
        "tests/default.toml",
        include_str!("../../../policies/tests/default.toml"),
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

impl PolicySet {
    /// Loads every `*.toml` file directly inside `dir` (not `dir/tests/`), in file-name order.
    ///
    /// Every problem is reported, each as `file:line: message`; a set with any problem is not
    /// returned at all, so a bad edit can never half-apply.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyErrors> {
        build(&dir.display().to_string(), toml_files(dir, "policy")?)
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
        read_tree(&s.display, &id_file, &s.text, &mut errors, |cx, root| {
            b.read_file(cx, root)
        });
    }
    let version = version_of(&sources);
    let files = sources.iter().map(|s| s.name.clone()).collect();
    match b.finish(dir_label, &mut errors, version, files) {
        Some(set) if errors.is_empty() => Ok(set),
        _ => Err(PolicyErrors::new(errors)),
    }
}

// ---------------------------------------------------------------------------------------------
// The sections.
// ---------------------------------------------------------------------------------------------

const SECTIONS: &str = "policy, roles, consent, opt_out, window, tag_retirements, response, receipt, shipping_update, account_update, event_update, agent_reply, marketing, transactional, send_rate, fallback, stop_keywords, resume_keywords";

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
    fallback: super::model::Fallback,
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
                "fallback" => self.read_fallback(cx, e),
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
}
