//! Policy test cases (`policies/tests/*.toml`): a message, the facts about its recipient, and the
//! decision the policy must reach. `herald policy test` runs them; so does `cargo test`.
//!
//! The format is explained for its readers at the top of `policies/tests/default.toml`. In short,
//! each `[[case]]` has a `name`, a `now`, a `category`, facts written relative to `now`
//! (`last_user_interaction = "-3d"`), an optional `at` (decide at another moment, under the rules
//! in force then, with the same facts) and an `expect` table. A `[defaults]` table gives values
//! every case of the file starts from.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value as Json};

use super::engine::evaluate;
use super::errors::{PolicyError, PolicyErrors};
use super::model::{fmt_duration, PolicySet};
use super::read::{
    boolean, get, integer, moment, parse_duration, parse_moment, required, string, strings, table,
    timezone, Cx, TEST_OFFSET_MAX,
};
use super::tree::{self, Entry, Lines, Node, Value};
use crate::domain::bounds::{earlier, later};
use crate::domain::decision::{Decision, MessagingType, Outcome, Reason, Tag, Via};
use crate::domain::facts::{Facts, MarketingToken, RecentSend};
use crate::domain::{
    Category, Content, OutboundMessage, Psid, Receipt, Recipient, Role, ShippingUpdate,
    UtilityTemplate,
};

const CASE_KEYS: [&str; 19] = [
    "name",
    "now",
    "at",
    "role",
    "category",
    "content",
    "recipient",
    "utility_template",
    "consents",
    "api_consents",
    "opted_out",
    "unreachable",
    "last_user_interaction",
    "user_ref_optin",
    "token",
    "region",
    "timezone",
    "recent_sends",
    "expect",
];

const CONTENTS: [&str; 5] = [
    "text",
    "receipt",
    "receipt_template",
    "shipping_update",
    "shipping_update_without_tracking",
];

/// The outcome of running a directory of policy test cases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestReport {
    /// Cases whose decision matched, as `file:line name`.
    pub passed: Vec<CasePass>,
    /// Cases whose decision did not.
    pub failed: Vec<CaseFailure>,
}

/// A case that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePass {
    /// `policies/tests/default.toml`.
    pub file: String,
    /// The line of the case's `[[case]]`.
    pub line: Option<usize>,
    /// The case's `name`.
    pub name: String,
}

/// A case that failed: what it expected, and the decision it got.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFailure {
    /// `policies/tests/default.toml`.
    pub file: String,
    /// The line of the case's `[[case]]`.
    pub line: Option<usize>,
    /// The case's `name`.
    pub name: String,
    /// The expected fields that differ, as `field=value`.
    pub expected: String,
    /// The same fields in the decision, and the deciding rule.
    pub got: String,
    /// The whole decision, trace included (`None` for a keyword check).
    pub decision: Option<Decision>,
}

impl TestReport {
    /// Whether every case passed.
    pub fn all_passed(&self) -> bool {
        self.failed.is_empty()
    }

    /// How many cases ran.
    pub fn total(&self) -> usize {
        self.passed.len() + self.failed.len()
    }
}

fn at(file: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{file}:{l}"),
        None => file.to_owned(),
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.passed {
            writeln!(f, "ok    {}  {}", at(&p.file, p.line), p.name)?;
        }
        for c in &self.failed {
            writeln!(f, "FAIL  {}  {}", at(&c.file, c.line), c.name)?;
            writeln!(f, "      expected: {}", c.expected)?;
            writeln!(f, "      got:      {}", c.got)?;
            let trace = c.decision.as_ref().map_or(&[][..], |d| d.trace.as_slice());
            for step in trace {
                let result = match step.result {
                    crate::domain::decision::StepResult::Pass => "pass",
                    crate::domain::decision::StepResult::Fail => "FAIL",
                    crate::domain::decision::StepResult::Skip => "skip",
                };
                writeln!(f, "        {result} {}: {}", step.rule, step.detail)?;
            }
        }
        write!(
            f,
            "{} cases: {} passed, {} failed",
            self.total(),
            self.passed.len(),
            self.failed.len()
        )
    }
}

/// Runs every `*.toml` case file directly in `tests_dir` against `policy`.
///
/// A case file that cannot be read as cases is an error (each problem as `file:line: message`);
/// a case whose decision differs from its expectation is a failure in the report.
pub fn run_policy_tests(policy: &PolicySet, tests_dir: &Path) -> Result<TestReport, PolicyErrors> {
    let dir_label = tests_dir.display().to_string();
    let read = std::fs::read_dir(tests_dir).map_err(|e| {
        PolicyErrors::one(
            &dir_label,
            format!("cannot read the policy tests directory: {e}"),
        )
    })?;
    let mut paths: Vec<_> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(PolicyErrors::one(
            dir_label,
            "holds no *.toml test file; a policy without tests cannot be trusted",
        ));
    }
    let mut errors = Vec::new();
    let mut cases = Vec::new();
    for path in paths {
        let display = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let before = errors.len();
                cases.extend(read_cases(&display, &text, &mut errors));
                errors[before..].sort_by_key(|e| (e.line, e.column));
            }
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
    Ok(run_cases(policy, cases))
}

/// Runs the cases of one test file given as text (for tests of the runner itself).
#[cfg(test)]
pub(crate) fn run_text(
    policy: &PolicySet,
    display: &str,
    text: &str,
) -> Result<TestReport, PolicyErrors> {
    let mut errors = Vec::new();
    let cases = read_cases(display, text, &mut errors);
    if !errors.is_empty() {
        return Err(PolicyErrors::new(errors));
    }
    Ok(run_cases(policy, cases))
}

fn run_cases(policy: &PolicySet, cases: Vec<Case>) -> TestReport {
    let mut report = TestReport::default();
    for case in cases {
        let (mismatches, decision) = match &case.check {
            Check::Decide {
                message,
                facts,
                expect,
            } => {
                let decision = evaluate(policy, message, facts);
                (expect.compare(&decision), Some(decision))
            }
            Check::Keyword { text, stop, resume } => {
                let mut out = Vec::new();
                let got_stop = policy.is_stop_keyword(text);
                let got_resume = policy.is_resume_keyword(text);
                if stop.is_some_and(|s| s != got_stop) {
                    out.push(("stop", (!got_stop).to_string(), got_stop.to_string()));
                }
                if resume.is_some_and(|r| r != got_resume) {
                    out.push(("resume", (!got_resume).to_string(), got_resume.to_string()));
                }
                (out, None)
            }
        };
        if mismatches.is_empty() {
            report.passed.push(CasePass {
                file: case.file,
                line: case.line,
                name: case.name,
            });
        } else {
            let expected = mismatches
                .iter()
                .map(|(k, e, _)| format!("{k}={e}"))
                .collect::<Vec<_>>()
                .join(" ");
            let mut got = mismatches
                .iter()
                .map(|(k, _, g)| format!("{k}={g}"))
                .collect::<Vec<_>>()
                .join(" ");
            if let Some(d) = &decision {
                got.push_str(&format!(
                    "  ({} {} by {})",
                    d.outcome.as_str(),
                    d.reason,
                    d.rule
                ));
            }
            report.failed.push(CaseFailure {
                file: case.file,
                line: case.line,
                name: case.name,
                expected,
                got,
                decision,
            });
        }
    }
    report
}

/// One case, ready to run.
struct Case {
    file: String,
    line: Option<usize>,
    name: String,
    check: Check,
}

/// What a case checks.
enum Check {
    /// `[[case]]`: a decision.
    Decide {
        message: Box<OutboundMessage>,
        facts: Box<Facts>,
        expect: Box<Expect>,
    },
    /// `[[keyword]]`: whether a text is a stop (or resume) keyword.
    Keyword {
        text: String,
        stop: Option<bool>,
        resume: Option<bool>,
    },
}

/// What a case expects; `None` fields are not checked.
#[derive(Default)]
struct Expect {
    outcome: Option<Outcome>,
    reason: Option<Reason>,
    rule: Option<String>,
    /// `Some(None)`: the decision must have no messaging_type.
    messaging_type: Option<Option<MessagingType>>,
    tag: Option<Option<Tag>>,
    via: Option<Via>,
    not_before: Option<Option<DateTime<Utc>>>,
    template: Option<Option<String>>,
    parameters: Option<Vec<String>>,
}

fn show<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or("none".to_owned(), |v| v.to_string())
}

impl Expect {
    /// Each expected field that differs: (field, expected, got).
    fn compare(&self, d: &Decision) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        if let Some(o) = self.outcome {
            if o != d.outcome {
                out.push((
                    "outcome",
                    o.as_str().to_owned(),
                    d.outcome.as_str().to_owned(),
                ));
            }
        }
        if let Some(r) = self.reason {
            if r != d.reason {
                out.push(("reason", r.to_string(), d.reason.to_string()));
            }
        }
        if let Some(rule) = &self.rule {
            let matches = d.rule == *rule || d.rule.ends_with(&format!("#{rule}"));
            if !matches {
                out.push(("rule", rule.clone(), d.rule.clone()));
            }
        }
        if let Some(m) = self.messaging_type {
            if m != d.messaging_type {
                out.push((
                    "messaging_type",
                    show(m.map(MessagingType::as_str)),
                    show(d.messaging_type.map(MessagingType::as_str)),
                ));
            }
        }
        if let Some(t) = self.tag {
            if t != d.tag {
                out.push((
                    "tag",
                    show(t.map(Tag::as_str)),
                    show(d.tag.map(Tag::as_str)),
                ));
            }
        }
        if let Some(v) = self.via {
            if v != d.via {
                out.push(("via", via_name(v).to_owned(), via_name(d.via).to_owned()));
            }
        }
        if let Some(nb) = self.not_before {
            if nb != d.not_before {
                let fmt = |t: Option<DateTime<Utc>>| {
                    show(t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
                };
                out.push(("not_before", fmt(nb), fmt(d.not_before)));
            }
        }
        let got_name = d.utility_template.as_ref().map(|t| t.name.clone());
        if let Some(name) = &self.template {
            if *name != got_name {
                out.push(("template", show(name.as_ref()), show(got_name.as_ref())));
            }
        }
        if let Some(params) = &self.parameters {
            let got = d.utility_template.as_ref().map(|t| &t.parameters);
            if Some(params) != got {
                out.push((
                    "parameters",
                    format!("{params:?}"),
                    got.map_or("none".to_owned(), |g| format!("{g:?}")),
                ));
            }
        }
        out
    }
}

fn via_name(v: Via) -> &'static str {
    match v {
        Via::Recipient => "recipient",
        Via::MarketingToken => "marketing_token",
    }
}

/// Reads every case of one file; problems go to `errors`.
fn read_cases(display: &str, text: &str, errors: &mut Vec<PolicyError>) -> Vec<Case> {
    let mut cx = Cx {
        display,
        id_file: display,
        lines: Lines::new(text),
        errors,
    };
    let root = match tree::parse(text) {
        Ok(root) => root,
        Err((message, span)) => {
            cx.err(span, message.trim_end().replace('\n', " "));
            return Vec::new();
        }
    };
    let Some(top) = table(
        &mut cx,
        &root,
        "a policy test file",
        &["defaults", "case", "keyword"],
    ) else {
        return Vec::new();
    };
    let defaults: &[Entry] = match get(top, "defaults") {
        Some(d) => {
            let allowed: Vec<&str> = CASE_KEYS
                .into_iter()
                .filter(|k| *k != "name" && *k != "expect")
                .collect();
            table(&mut cx, d, "[defaults]", &allowed).unwrap_or(&[])
        }
        None => &[],
    };
    let mut names = std::collections::HashMap::new();
    let mut cases = Vec::new();
    if let Some(kw) = get(top, "keyword") {
        for item in array_of_tables(&mut cx, kw, "keyword") {
            if let Some(case) = read_keyword(&mut cx, item) {
                cases.push(case);
            }
        }
    }
    let Some(case_nodes) = get(top, "case") else {
        if cases.is_empty() {
            cx.err(Some(0..0), "the file has no [[case]] and no [[keyword]]");
        }
        return cases;
    };
    let mut decided = Vec::new();
    for item in array_of_tables(&mut cx, case_nodes, "case") {
        let span = item.best_span();
        let Some(fields) = table(&mut cx, item, "a [[case]]", &CASE_KEYS) else {
            continue;
        };
        let lookup = Lookup { fields, defaults };
        if let Some(case) = read_case(&mut cx, &lookup, &span) {
            if let Some(first) = names.insert(case.name.clone(), case.line) {
                cx.err(
                    span,
                    format!(
                        "a case named {:?} already exists{}; names must be unique",
                        case.name,
                        first.map_or(String::new(), |l| format!(" (line {l})"))
                    ),
                );
                continue;
            }
            decided.push(case);
        }
    }
    // Report in the order the file is written.
    cases.extend(decided);
    cases.sort_by_key(|c| c.line);
    cases
}

fn array_of_tables<'n>(cx: &mut Cx<'_>, node: &'n Node, name: &str) -> &'n [Node] {
    match &node.value {
        Value::Array(items) => items,
        _ => {
            cx.err(
                node.best_span(),
                format!("write these as [[{name}]], an array of tables"),
            );
            &[]
        }
    }
}

/// `[[keyword]] text = "Stop!"  stop = true  resume = false`.
fn read_keyword(cx: &mut Cx<'_>, item: &Node) -> Option<Case> {
    let span = item.best_span();
    let fields = table(cx, item, "a [[keyword]]", &["text", "stop", "resume"])?;
    let text = required(cx, fields, &span, "text", "a [[keyword]]")
        .and_then(|n| string(cx, n, "`text`"))?;
    let flag = |cx: &mut Cx<'_>, key: &str| match get(fields, key) {
        Some(n) => boolean(cx, n, &format!("`{key}`")).map(Some),
        None => Some(None),
    };
    let stop = flag(cx, "stop")?;
    let resume = flag(cx, "resume")?;
    if stop.is_none() && resume.is_none() {
        cx.err(
            span,
            "a [[keyword]] needs `stop` or `resume` (true or false)",
        );
        return None;
    }
    Some(Case {
        file: cx.display.to_owned(),
        line: cx.line(&span),
        name: format!("keyword {text:?}"),
        check: Check::Keyword {
            text: text.to_owned(),
            stop,
            resume,
        },
    })
}

/// A case's own fields, falling back to the file's `[defaults]`.
struct Lookup<'n> {
    fields: &'n [Entry],
    defaults: &'n [Entry],
}

impl<'n> Lookup<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        get(self.fields, key).or_else(|| get(self.defaults, key))
    }
}

/// A `[[case]]` (with its file's `[defaults]`): its name, the message, the facts about the
/// recipient and the decision expected. Every problem of the case is reported, in the order its
/// keys are read.
fn read_case(cx: &mut Cx<'_>, l: &Lookup<'_>, span: &Option<Range<usize>>) -> Option<Case> {
    let line = cx.line(span);
    let name = required(cx, l.fields, span, "name", "a [[case]]")
        .and_then(|n| string(cx, n, "`name`"))
        .map(str::to_owned);
    let now = match l.get("now") {
        Some(n) => moment(cx, n, "`now`"),
        None => {
            cx.err(span.clone(), "a [[case]] needs `now` (or [defaults] now)");
            None
        }
    };
    let now = now?;
    let moments = read_moments(cx, l, now);
    let role = match l.get("role") {
        Some(n) => named::<Role>(cx, n, "role"),
        None => Some(Role::Backend),
    };
    let message = read_message(cx, l, span);
    let recipient = read_recipient(cx, l, now);
    let expect = match get(l.fields, "expect") {
        Some(n) => read_expect(cx, n, now),
        None => {
            cx.err(span.clone(), "a [[case]] needs `expect`");
            None
        }
    };
    let (Some(name), Some(moments), Some(role), Some(message), Some(recipient), Some(expect)) =
        (name, moments, role, message, recipient, expect)
    else {
        return None;
    };
    Some(Case {
        file: cx.display.to_owned(),
        line,
        name,
        check: Check::Decide {
            message: Box::new(message),
            facts: Box::new(recipient.into_facts(moments, role)),
            expect: Box::new(expect),
        },
    })
}

/// A case's moments, relative to its `now`: when to decide (`at`), and when the user last
/// interacted and opted in by checkbox.
struct Moments {
    decide_at: DateTime<Utc>,
    last_user_interaction_at: Option<DateTime<Utc>>,
    user_ref_optin_at: Option<DateTime<Utc>>,
}

fn read_moments(cx: &mut Cx<'_>, l: &Lookup<'_>, now: DateTime<Utc>) -> Option<Moments> {
    let mut ok = true;
    let mut time = |cx: &mut Cx<'_>, key: &str| -> Option<DateTime<Utc>> {
        let n = l.get(key)?;
        let t = relative_time(cx, n, now, &format!("`{key}`"));
        ok &= t.is_some();
        t
    };
    let moments = Moments {
        decide_at: time(cx, "at").unwrap_or(now),
        last_user_interaction_at: time(cx, "last_user_interaction"),
        user_ref_optin_at: time(cx, "user_ref_optin"),
    };
    ok.then_some(moments)
}

/// A value written by its name (`role = "marketer"`, `category = "receipt"`).
fn named<T>(cx: &mut Cx<'_>, n: &Node, key: &str) -> Option<T>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    string(cx, n, &format!("`{key}`")).and_then(|s| match s.parse::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            cx.err(n.best_span(), format!("`{key}`: {e}"));
            None
        }
    })
}

/// The message a case decides on: its category, content, recipient and utility template.
fn read_message(
    cx: &mut Cx<'_>,
    l: &Lookup<'_>,
    span: &Option<Range<usize>>,
) -> Option<OutboundMessage> {
    let category = match l.get("category") {
        Some(n) => named::<Category>(cx, n, "category"),
        None => {
            cx.err(span.clone(), "a [[case]] needs `category`");
            None
        }
    };
    let content = match l.get("content") {
        Some(n) => string(cx, n, "`content`").and_then(|s| {
            let c = content_of(s);
            if c.is_none() {
                cx.err(
                    n.best_span(),
                    format!(
                        "`content`: `{s}` is unknown; expected one of: {}",
                        CONTENTS.join(", ")
                    ),
                );
            }
            c
        }),
        None => content_of("text"),
    };
    let psid = || Psid::parse(TEST_PSID).ok().map(Recipient::Psid);
    let recipient = match l.get("recipient") {
        None => psid(),
        Some(n) => match string(cx, n, "`recipient`") {
            Some("psid") => psid(),
            Some("user_ref") => Some(Recipient::UserRef("checkbox-ref-1".to_owned())),
            Some(other) => {
                cx.err(
                    n.best_span(),
                    format!("`recipient`: `{other}` must be \"psid\" or \"user_ref\""),
                );
                None
            }
            None => None,
        },
    };
    if recipient.is_none() && l.get("recipient").is_none() {
        cx.err(
            span.clone(),
            format!("the test PSID {TEST_PSID} no longer parses"),
        );
    }
    let utility_template = match l.get("utility_template") {
        None => Some(None),
        Some(n) => read_template(cx, n).map(Some),
    };
    Some(OutboundMessage {
        page_id: None,
        recipient: recipient?,
        category: category?,
        content: content?,
        utility_template: utility_template?,
        send_at: None,
        expires_at: None,
        respect_quiet_hours: true,
    })
}

/// What a case says of its recipient besides its moments: consents and opt-outs, reachability,
/// the Marketing Messages token, the page's region, the time zone and the recent sends.
struct RecipientFacts {
    /// Transactional, marketing; and of those, recorded through the API.
    consents: (bool, bool, bool, bool),
    /// Transactional, marketing.
    opted_out: (bool, bool),
    unreachable: bool,
    marketing_token: Option<MarketingToken>,
    page_region: Option<String>,
    timezone: Option<chrono_tz::Tz>,
    /// Newest first, as the store hands them over.
    recent_sends: Vec<RecentSend>,
}

impl RecipientFacts {
    fn into_facts(self, moments: Moments, role: Role) -> Facts {
        let (t, m, t_api, m_api) = self.consents;
        Facts {
            now: moments.decide_at,
            role,
            transactional_consent: t,
            marketing_consent: m,
            transactional_consent_by_api: t_api,
            marketing_consent_by_api: m_api,
            transactional_opted_out: self.opted_out.0,
            marketing_opted_out: self.opted_out.1,
            unreachable: self.unreachable,
            last_user_interaction_at: moments.last_user_interaction_at,
            user_ref_optin_at: moments.user_ref_optin_at,
            marketing_token: self.marketing_token,
            page_region: self.page_region,
            timezone: self.timezone,
            recent_sends: self.recent_sends,
        }
    }
}

/// `consents = ["transactional", "marketing"]` and the like: which of the two scopes are named.
fn scopes(cx: &mut Cx<'_>, l: &Lookup<'_>, key: &str) -> Option<(bool, bool)> {
    let Some(n) = l.get(key) else {
        return Some((false, false));
    };
    let list = strings(cx, n, &format!("`{key}`"))?;
    let (mut t, mut m) = (false, false);
    for s in list {
        match s {
            "transactional" => t = true,
            "marketing" => m = true,
            other => {
                cx.err(
                    n.best_span(),
                    format!("`{key}`: `{other}` must be transactional or marketing"),
                );
                return None;
            }
        }
    }
    Some((t, m))
}

fn read_recipient(cx: &mut Cx<'_>, l: &Lookup<'_>, now: DateTime<Utc>) -> Option<RecipientFacts> {
    // A consent recorded through the API is a consent too.
    let consents = scopes(cx, l, "consents");
    let api_consents = scopes(cx, l, "api_consents");
    let consents = consents
        .zip(api_consents)
        .map(|((t, m), (at, am))| (t || at, m || am, at, am));
    let opted_out = scopes(cx, l, "opted_out");
    let unreachable = match l.get("unreachable") {
        Some(n) => boolean(cx, n, "`unreachable`"),
        None => Some(false),
    };
    let token = match l.get("token") {
        None => Some(None),
        Some(n) => read_token(cx, n, now).map(Some),
    };
    let region = match l.get("region") {
        None => Some(None),
        Some(n) => string(cx, n, "`region`").map(|s| Some(s.to_owned())),
    };
    let tz = match l.get("timezone") {
        None => Some(None),
        Some(n) => timezone(cx, n, "`timezone`").map(Some),
    };
    let mut recent_sends = match l.get("recent_sends") {
        None => Some(Vec::new()),
        Some(n) => read_sends(cx, n, now),
    };
    if let Some(sends) = recent_sends.as_mut() {
        sends.sort_by_key(|s: &RecentSend| std::cmp::Reverse(s.at));
    }
    Some(RecipientFacts {
        consents: consents?,
        opted_out: opted_out?,
        unreachable: unreachable?,
        marketing_token: token?,
        page_region: region?,
        timezone: tz?,
        recent_sends: recent_sends?,
    })
}

/// `"-3d"` / `"+2h"` (relative to the case's `now`), `"now"`, or a moment.
fn relative_time(
    cx: &mut Cx<'_>,
    node: &Node,
    now: DateTime<Utc>,
    what: &str,
) -> Option<DateTime<Utc>> {
    if let Value::String(s) = &node.value {
        let s = s.trim();
        if s == "now" {
            return Some(now);
        }
        let signed = match s.as_bytes().first() {
            Some(b'-') => Some(-1),
            Some(b'+') => Some(1),
            _ => None,
        };
        if let Some(sign) = signed {
            // The sign is one ASCII byte, so `get(1..)` is the rest of the text.
            let offset = s.get(1..).and_then(parse_duration);
            return match offset {
                Some(d) if d > TEST_OFFSET_MAX => {
                    cx.err(
                        node.best_span(),
                        format!(
                            "{what}: `{s}` reaches too far from `now`; at most {} is allowed",
                            fmt_duration(TEST_OFFSET_MAX)
                        ),
                    );
                    None
                }
                Some(d) => Some(if sign < 0 {
                    earlier(now, d)
                } else {
                    later(now, d)
                }),
                None => {
                    cx.err(
                        node.best_span(),
                        format!("{what}: `{s}` is not a relative time; write e.g. \"-3d\", \"+2h\" or \"-1h30m\""),
                    );
                    None
                }
            };
        }
        if parse_moment(s).is_err() {
            cx.err(
                node.best_span(),
                format!("{what}: `{s}` is neither a relative time (\"-3d\") nor a moment (2026-04-27T09:00:00Z)"),
            );
            return None;
        }
    }
    moment(cx, node, what)
}

fn read_template(cx: &mut Cx<'_>, node: &Node) -> Option<UtilityTemplate> {
    let fields = table(
        cx,
        node,
        "`utility_template`",
        &["name", "language", "parameters"],
    )?;
    let span = node.best_span();
    let name = required(cx, fields, &span, "name", "`utility_template`")
        .and_then(|n| string(cx, n, "`utility_template.name`"));
    let language = required(cx, fields, &span, "language", "`utility_template`")
        .and_then(|n| string(cx, n, "`utility_template.language`"));
    let parameters = match get(fields, "parameters") {
        None => Some(Vec::new()),
        Some(n) => strings(cx, n, "`utility_template.parameters`")
            .map(|v| v.into_iter().map(str::to_owned).collect()),
    };
    Some(UtilityTemplate {
        name: name?.to_owned(),
        language: language?.to_owned(),
        parameters: parameters?,
    })
}

fn read_token(cx: &mut Cx<'_>, node: &Node, now: DateTime<Utc>) -> Option<MarketingToken> {
    let fields = table(cx, node, "`token`", &["stopped", "last_sent"])?;
    let stopped = match get(fields, "stopped") {
        Some(n) => boolean(cx, n, "`token.stopped`"),
        None => Some(false),
    };
    let last_sent_at = match get(fields, "last_sent") {
        Some(n) => relative_time(cx, n, now, "`token.last_sent`").map(Some),
        None => Some(None),
    };
    Some(MarketingToken {
        stopped: stopped?,
        last_sent_at: last_sent_at?,
    })
}

/// `[{ at = "-1h", category = "marketing", repeat = 20, every = "2m" }]`: `repeat` sends, each
/// `every` earlier than the one before, starting at `at`.
fn read_sends(cx: &mut Cx<'_>, node: &Node, now: DateTime<Utc>) -> Option<Vec<RecentSend>> {
    let Value::Array(items) = &node.value else {
        cx.err(
            node.best_span(),
            "`recent_sends` must be an array of { at, category, repeat?, every? }",
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        let span = item.best_span();
        let Some(fields) = table(
            cx,
            item,
            "a `recent_sends` item",
            &["at", "category", "repeat", "every"],
        ) else {
            ok = false;
            continue;
        };
        let at = required(cx, fields, &span, "at", "a `recent_sends` item")
            .and_then(|n| relative_time(cx, n, now, "`at`"));
        let category =
            required(cx, fields, &span, "category", "a `recent_sends` item").and_then(|n| {
                let s = string(cx, n, "`category`")?;
                match s.parse::<Category>() {
                    Ok(c) => Some(c),
                    Err(e) => {
                        cx.err(n.best_span(), format!("`category`: {e}"));
                        None
                    }
                }
            });
        let repeat = match get(fields, "repeat") {
            Some(n) => integer(cx, n, "`repeat`", 1, 10_000),
            None => Some(1),
        };
        let every = match get(fields, "every") {
            Some(n) => string(cx, n, "`every`").and_then(|s| match parse_duration(s) {
                Some(d) if d > TEST_OFFSET_MAX => {
                    cx.err(
                        n.best_span(),
                        format!(
                            "`every`: `{s}` is too long; at most {} is allowed",
                            fmt_duration(TEST_OFFSET_MAX)
                        ),
                    );
                    None
                }
                Some(d) => Some(d),
                None => {
                    cx.err(
                        n.best_span(),
                        format!("`every`: `{s}` is not a duration such as \"2m\""),
                    );
                    None
                }
            }),
            None => Some(Duration::minutes(1)),
        };
        match (at, category, repeat, every) {
            (Some(at), Some(category), Some(repeat), Some(every)) => {
                let mut t = at;
                for _ in 0..repeat {
                    out.push(RecentSend { at: t, category });
                    t = earlier(t, every);
                }
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_expect(cx: &mut Cx<'_>, node: &Node, now: DateTime<Utc>) -> Option<Expect> {
    let keys = [
        "outcome",
        "reason",
        "rule",
        "messaging_type",
        "tag",
        "via",
        "not_before",
        "template",
        "parameters",
    ];
    let fields = table(cx, node, "`expect`", &keys)?;
    let span = node.best_span();
    let mut ok = true;
    let mut e = Expect::default();
    let mut named = |cx: &mut Cx<'_>, key: &str| -> Option<(&Node, String)> {
        let n = get(fields, key)?;
        let s = string(cx, n, &format!("`expect.{key}`"));
        ok &= s.is_some();
        s.map(|s| (n, s.to_owned()))
    };
    let outcome = required(cx, fields, &span, "outcome", "`expect`").map(|_| ());
    if let (Some(()), Some((n, s))) = (outcome, named(cx, "outcome")) {
        e.outcome = from_json::<Outcome>(cx, n, &s, "outcome");
    }
    if let Some((n, s)) = named(cx, "reason") {
        e.reason = from_json::<Reason>(cx, n, &s, "reason");
    }
    if let Some((_, s)) = named(cx, "rule") {
        e.rule = Some(s);
    }
    if let Some((n, s)) = named(cx, "messaging_type") {
        e.messaging_type = if s == "none" {
            Some(None)
        } else {
            from_json::<MessagingType>(cx, n, &s, "messaging_type").map(Some)
        };
    }
    if let Some((n, s)) = named(cx, "tag") {
        e.tag = if s == "none" {
            Some(None)
        } else {
            from_json::<Tag>(cx, n, &s, "tag").map(Some)
        };
    }
    if let Some((n, s)) = named(cx, "via") {
        e.via = match s.as_str() {
            "recipient" => Some(Via::Recipient),
            "marketing_token" => Some(Via::MarketingToken),
            other => {
                cx.err(
                    n.best_span(),
                    format!("`expect.via`: `{other}` must be recipient or marketing_token"),
                );
                None
            }
        };
    }
    if let Some((_, s)) = named(cx, "template") {
        e.template = Some((s != "none").then_some(s));
    }
    if let Some(n) = get(fields, "not_before") {
        e.not_before = match &n.value {
            Value::String(s) if s == "none" => Some(None),
            _ => relative_time(cx, n, now, "`expect.not_before`").map(Some),
        };
        ok &= e.not_before.is_some();
    }
    if let Some(n) = get(fields, "parameters") {
        e.parameters = strings(cx, n, "`expect.parameters`")
            .map(|v| v.into_iter().map(str::to_owned).collect());
        ok &= e.parameters.is_some();
    }
    let all_read = e.outcome.is_some()
        && (get(fields, "reason").is_none() || e.reason.is_some())
        && (get(fields, "messaging_type").is_none() || e.messaging_type.is_some())
        && (get(fields, "tag").is_none() || e.tag.is_some())
        && (get(fields, "via").is_none() || e.via.is_some());
    (ok && all_read).then_some(e)
}

/// A wire spelling (`"allow"`, `"outside_window"`, `"MESSAGE_TAG"`) into its enum.
fn from_json<T: serde::de::DeserializeOwned>(
    cx: &mut Cx<'_>,
    node: &Node,
    s: &str,
    what: &str,
) -> Option<T> {
    match serde_json::from_value::<T>(Json::String(s.to_owned())) {
        Ok(v) => Some(v),
        Err(_) => {
            cx.err(
                node.best_span(),
                format!("`expect.{what}`: `{s}` is not a known {what}"),
            );
            None
        }
    }
}

/// The PSID every case's recipient has.
const TEST_PSID: &str = "1000000000000001";

/// The content a case's `content` names, with fixed sample values (see the test file's header).
fn content_of(kind: &str) -> Option<Content> {
    let order = json!({
        "order_number": "A-1001",
        "currency": "EUR",
        "payment_method": "Visa 2345",
        "recipient_name": "Ada Lovelace",
        "summary": { "subtotal": 40.0, "shipping_cost": 2.5, "total_cost": 42.5 },
        "elements": [ { "title": "Teapot", "quantity": 1, "price": 40.0 } ]
    });
    let shipment = json!({
        "order_number": "A-1001",
        "status": "in_transit",
        "carrier": "DHL",
        "tracking_number": "JD014600003828",
    });
    match kind {
        "text" => Some(Content::Message(
            json!({ "text": "Hello from the policy tests" }),
        )),
        "receipt" => serde_json::from_value::<Receipt>(order)
            .ok()
            .map(|r| Content::Receipt(Box::new(r))),
        "receipt_template" => {
            let mut payload = order;
            payload["template_type"] = json!("receipt");
            Some(Content::Message(json!({
                "attachment": { "type": "template", "payload": payload }
            })))
        }
        "shipping_update" => serde_json::from_value::<ShippingUpdate>(shipment)
            .ok()
            .map(Content::ShippingUpdate),
        "shipping_update_without_tracking" => {
            let mut s = shipment;
            if let Some(m) = s.as_object_mut() {
                m.remove("tracking_number");
            }
            serde_json::from_value::<ShippingUpdate>(s)
                .ok()
                .map(Content::ShippingUpdate)
        }
        _ => None,
    }
}
