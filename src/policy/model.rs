//! The loaded policy: every rule of the files, checked and compiled into the shape the engine
//! reads without searching or allocating.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde_json::{json, Value};

use crate::domain::decision::{MessagingType, Tag};
use crate::domain::{Category, Role};

/// A loaded, validated set of policy files. Immutable; share it behind an `Arc` and swap the
/// whole set on reload.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub(crate) version: String,
    pub(crate) files: Vec<String>,
    pub(crate) description: Option<String>,
    /// Indexed by [`role_index`].
    pub(crate) roles: [RoleRule; 4],
    /// Indexed by [`category_index`].
    pub(crate) consent: [ConsentRule; 7],
    /// In the order they are checked: marketing, transactional, unreachable (those defined).
    pub(crate) opt_outs: Vec<OptOutRule>,
    pub(crate) windows: Windows,
    /// Indexed by [`category_index`].
    pub(crate) routes: [Routes; 7],
    pub(crate) token: Option<TokenRules>,
    pub(crate) frequency: Vec<FrequencyRule>,
    pub(crate) quiet_hours: Vec<QuietHoursRule>,
    pub(crate) send_rate: SendRate,
    pub(crate) fallback: Fallback,
    pub(crate) tag_retirements: Vec<TagRetirement>,
    pub(crate) stop_keywords: Keywords,
    pub(crate) resume_keywords: Keywords,
}

/// A rule's stable id (`policies/default.toml#marketing.frequency`) and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub id: String,
    /// `policies/default.toml:42`, for the summary.
    pub at: String,
}

/// A small set of categories, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CategorySet(u8);

impl CategorySet {
    pub const EMPTY: CategorySet = CategorySet(0);

    pub fn all_transactional() -> CategorySet {
        Category::ALL
            .into_iter()
            .filter(|c| c.is_transactional())
            .fold(CategorySet::EMPTY, CategorySet::with)
    }

    pub fn with(self, c: Category) -> CategorySet {
        CategorySet(self.0 | (1 << category_index(c)))
    }

    pub fn contains(self, c: Category) -> bool {
        self.0 & (1 << category_index(c)) != 0
    }

    pub fn names(self) -> Vec<&'static str> {
        Category::ALL
            .into_iter()
            .filter(|c| self.contains(*c))
            .map(Category::as_str)
            .collect()
    }
}

/// Position of a category in the per-category arrays.
pub(crate) fn category_index(c: Category) -> usize {
    match c {
        Category::Response => 0,
        Category::Receipt => 1,
        Category::ShippingUpdate => 2,
        Category::AccountUpdate => 3,
        Category::EventUpdate => 4,
        Category::AgentReply => 5,
        Category::Marketing => 6,
    }
}

/// Position of a role in the per-role array.
pub(crate) fn role_index(r: Role) -> usize {
    match r {
        Role::Backend => 0,
        Role::Marketer => 1,
        Role::Compliance => 2,
        Role::Admin => 3,
    }
}

/// `[roles] <role> = [categories]`.
#[derive(Debug, Clone)]
pub(crate) struct RoleRule {
    pub meta: Meta,
    pub may_send: CategorySet,
}

/// `[consent] <category> = "transactional" | "marketing" | ["transactional", "marketing"] | "none"`,
/// or `{ scopes = …, recorded_by = "api" }`.
#[derive(Debug, Clone)]
pub(crate) struct ConsentRule {
    pub meta: Meta,
    pub transactional: bool,
    pub marketing: bool,
    /// Only consents a client recorded through the API count (`recorded_by = "api"`).
    pub by_api: bool,
}

/// Which recorded stop signal an opt-out rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OptOutKind {
    Marketing,
    Transactional,
    Unreachable,
}

impl OptOutKind {
    pub const ALL: [(OptOutKind, &'static str); 3] = [
        (OptOutKind::Marketing, "marketing"),
        (OptOutKind::Transactional, "transactional"),
        (OptOutKind::Unreachable, "unreachable"),
    ];
}

/// `[opt_out.<kind>] stops = [categories]`.
#[derive(Debug, Clone)]
pub(crate) struct OptOutRule {
    pub meta: Meta,
    pub kind: OptOutKind,
    pub stops: CategorySet,
}

/// One window length (`[window] standard | user_ref | human_agent`).
#[derive(Debug, Clone)]
pub(crate) struct WindowRule {
    pub meta: Meta,
    pub length: Duration,
}

/// The three window lengths.
#[derive(Debug, Clone)]
pub(crate) struct Windows {
    pub standard: WindowRule,
    pub user_ref: WindowRule,
    pub human_agent: WindowRule,
}

/// Rules in force over stretches of time: `[from, until)`, sorted, covering every moment.
#[derive(Debug, Clone)]
pub(crate) struct Dated<T> {
    pub entries: Vec<DatedEntry<T>>,
}

/// One stretch of a [`Dated`] rule.
#[derive(Debug, Clone)]
pub(crate) struct DatedEntry<T> {
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub value: T,
    /// What the entry says, with its dates, for traces and the summary.
    pub label: String,
}

impl<T> Dated<T> {
    /// The entry in force at `at`.
    pub fn at(&self, at: DateTime<Utc>) -> Option<&DatedEntry<T>> {
        self.entries.iter().find(|e| {
            e.from.is_none_or(|from| from <= at) && e.until.is_none_or(|until| at < until)
        })
    }
}

/// How a category goes once the standard window has closed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    /// Not at all.
    Deny,
    /// `messaging_type: MESSAGE_TAG` with this tag.
    Tag(Tag),
    /// `messaging_type: UTILITY`; the policy's template for structured content, else the client's.
    Utility(Option<TemplateSpec>),
    /// Through the recipient's Marketing Messages token, subject to `[marketing] token_*`.
    MarketingToken,
}

/// A utility template the policy names, with the order/shipment fields that fill it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TemplateSpec {
    pub name: String,
    pub language: String,
    pub parameters: Vec<String>,
    /// Stands in for an optional field the message does not have (a tracking number, say).
    pub when_missing: String,
    /// The trace detail when it is used, written once at load.
    pub detail: String,
}

/// `[<category>] inside_window` and `outside_window`.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    pub inside_meta: Meta,
    pub inside: MessagingType,
    pub outside_meta: Meta,
    pub outside: Dated<Route>,
}

/// Where Marketing Messages tokens may be used.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Regions {
    All,
    Only(Vec<String>),
}

/// `[[marketing.token_regions]]` and `[[marketing.token_cooldown]]`.
#[derive(Debug, Clone)]
pub(crate) struct TokenRules {
    pub regions_meta: Meta,
    pub regions: Dated<Regions>,
    pub cooldown_meta: Meta,
    pub cooldown: Dated<Duration>,
}

/// What happens to a message over a frequency cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhenExceeded {
    /// Queue it for when the oldest counted message leaves the period.
    Defer,
    /// Refuse it (`frequency_cap`).
    Deny,
}

/// `[<category or transactional>.frequency]`.
#[derive(Debug, Clone)]
pub(crate) struct FrequencyRule {
    pub meta: Meta,
    /// The categories it limits; sends of these categories are the ones counted.
    pub applies_to: CategorySet,
    pub max: u32,
    pub per: Duration,
    pub when_exceeded: WhenExceeded,
    pub label: String,
}

/// `[<category or transactional>.quiet_hours]`.
#[derive(Debug, Clone)]
pub(crate) struct QuietHoursRule {
    pub meta: Meta,
    pub applies_to: CategorySet,
    /// Local time from which messages may go (inclusive).
    pub send_from: NaiveTime,
    /// Local time from which they wait for the next `send_from` (exclusive end of sending).
    pub send_until: NaiveTime,
    pub timezone_if_unknown: Tz,
    /// Local days of the week on which nothing is sent at all (`days_off`).
    pub days_off: Vec<Weekday>,
    pub label: String,
}

impl QuietHoursRule {
    /// Whether a local wall-clock time falls in the sending hours (which may wrap midnight).
    pub fn allows(&self, t: NaiveTime) -> bool {
        if self.send_from < self.send_until {
            self.send_from <= t && t < self.send_until
        } else {
            t >= self.send_from || t < self.send_until
        }
    }

    /// Whether a local day is one of the days off.
    pub fn is_day_off(&self, day: Weekday) -> bool {
        self.days_off.contains(&day)
    }
}

/// `[send_rate] per_page`.
#[derive(Debug, Clone)]
pub(crate) struct SendRate {
    pub meta: Meta,
    pub per_page: u32,
}

/// `[fallback]`: the categories that may go by email when Messenger cannot take them, and how
/// long a page's Graph API must fail before it counts as an outage. Optional: without it
/// nothing goes by email.
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    /// `fallback.email`, where it is written (none: no category goes by email).
    pub email_meta: Option<Meta>,
    pub email: CategorySet,
    /// `fallback.outage_after`, where it is written (none: the default).
    pub outage_meta: Option<Meta>,
    pub outage_after: Duration,
}

/// How long a page's Graph API fails before Herald treats it as an outage, unless the policy
/// says otherwise.
pub(crate) const DEFAULT_OUTAGE_AFTER_MINUTES: i64 = 10;

impl Default for Fallback {
    fn default() -> Self {
        Fallback {
            email_meta: None,
            email: CategorySet::EMPTY,
            outage_meta: None,
            outage_after: Duration::minutes(DEFAULT_OUTAGE_AFTER_MINUTES),
        }
    }
}

/// `[tag_retirements] <TAG> = <date>`.
#[derive(Debug, Clone)]
pub(crate) struct TagRetirement {
    pub meta: Meta,
    pub tag: Tag,
    pub on: DateTime<Utc>,
}

/// Stop (or resume) keywords: per language as written, and normalised for matching.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keywords {
    pub by_language: Vec<(Meta, String, Vec<String>)>,
    pub normalised: HashSet<String>,
    /// Longest normalised keyword in bytes: longer messages are never keywords.
    pub longest: usize,
}

impl Keywords {
    pub fn add(&mut self, meta: Meta, language: String, words: Vec<String>) {
        for w in &words {
            let n = normalise_keyword(w);
            self.longest = self.longest.max(n.len());
            self.normalised.insert(n);
        }
        self.by_language.push((meta, language, words));
    }

    pub fn matches(&self, text: &str) -> bool {
        // A message much longer than any keyword is a sentence, not a keyword; don't lowercase it.
        if self.normalised.is_empty()
            || text.len() > self.longest.saturating_mul(4).saturating_add(64)
        {
            return false;
        }
        self.normalised.contains(&normalise_keyword(text))
    }
}

/// The form keywords are compared in: trimmed, without surrounding punctuation, inner runs of
/// white space made one space, lowercased (Unicode-aware, so `СТОП` matches `стоп`).
pub(crate) fn normalise_keyword(text: &str) -> String {
    let trimmed = text.trim_matches(|c: char| {
        c.is_whitespace() || matches!(c, '.' | '!' | '?' | '¡' | '¿' | '"' | '\'' | '。' | '！')
    });
    let mut out = String::with_capacity(trimmed.len());
    for (i, word) in trimmed.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

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

fn dated_json<T>(d: &Dated<T>) -> Value {
    Value::Array(
        d.entries
            .iter()
            .map(|e| {
                json!({
                    "from": e.from.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    "until": e.until.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    "says": e.label,
                })
            })
            .collect(),
    )
}

fn rule_json(meta: &Meta, stage: &str, says: String) -> Value {
    json!({ "id": meta.id, "stage": stage, "says": says, "defined_at": meta.at })
}

impl PolicySet {
    /// Hex sha256 over the files' names and bytes, in file-name order: the `policy_version` every
    /// decision carries.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The file names the set was loaded from, sorted.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// The standard messaging window (`[window] standard`, 24 h by default).
    pub fn standard_window(&self) -> Duration {
        self.windows.standard.length
    }

    /// The window of a checkbox (`user_ref`) opt-in (`[window] user_ref`).
    pub fn user_ref_window(&self) -> Duration {
        self.windows.user_ref.length
    }

    /// How long after the user's last message a `HUMAN_AGENT` reply may go (7 days by default).
    pub fn human_agent_window(&self) -> Duration {
        self.windows.human_agent.length
    }

    /// How long a page's Graph API must fail before its circuit breaker opens
    /// (`[fallback] outage_after`).
    pub fn outage_after(&self) -> Duration {
        self.fallback.outage_after
    }

    /// Whether the policy lets `category` go by email when Messenger cannot take it.
    pub fn may_go_by_email(&self, category: Category) -> bool {
        self.fallback.email.contains(category)
    }

    /// Sends per second per page the delivery worker paces to (`[send_rate] per_page`).
    pub fn page_rate_per_second(&self) -> u32 {
        self.send_rate.per_page
    }

    /// How far back `Facts::recent_sends` must reach: the longest frequency period (zero when
    /// the policy has no frequency cap).
    pub fn longest_frequency_window(&self) -> Duration {
        self.frequency
            .iter()
            .map(|f| f.per)
            .max()
            .unwrap_or_else(Duration::zero)
    }

    /// Whether a whole incoming message is a stop keyword of any language: trimmed, compared
    /// case-insensitively, surrounding punctuation and extra inner spaces ignored.
    pub fn is_stop_keyword(&self, text: &str) -> bool {
        self.stop_keywords.matches(text)
    }

    /// Whether a whole incoming message is a resume keyword (`[resume_keywords]`; none when the
    /// policy lists none). Matching as for [`PolicySet::is_stop_keyword`].
    pub fn is_resume_keyword(&self, text: &str) -> bool {
        self.resume_keywords.matches(text)
    }

    /// The rule id of the stop keywords, for the consent record a stop keyword creates.
    pub fn stop_keyword_rule(&self, text: &str) -> Option<&str> {
        let n = normalise_keyword(text);
        self.stop_keywords
            .by_language
            .iter()
            .find(|(_, _, words)| words.iter().any(|w| normalise_keyword(w) == n))
            .map(|(meta, _, _)| meta.id.as_str())
    }

    /// Whether the `[roles]` rule lets `role` send `category` at all: the one place that says
    /// which role may send what.
    pub fn role_may_send(&self, role: Role, category: Category) -> bool {
        self.roles[role_index(role)].may_send.contains(category)
    }

    /// The category whose outside-window rule names the utility template `name`, in any of its
    /// dated entries (first in [`Category::ALL`] order): how a Send API request with
    /// `messaging_type: UTILITY` is read back into a category.
    pub fn category_of_template(&self, name: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .zip(&self.routes)
            .find(|(_, r)| {
                r.outside
                    .entries
                    .iter()
                    .any(|e| matches!(&e.value, Route::Utility(Some(t)) if t.name == name))
            })
            .map(|(c, _)| c)
    }

    /// For `GET /v1/policy`: the version, the files, and every rule in words with its dates, in
    /// the order the engine checks them.
    pub fn summary(&self) -> Value {
        let mut rules = Vec::new();
        self.who_may_be_sent_to(&mut rules);
        self.window_rules(&mut rules);
        self.limit_rules(&mut rules);
        let keywords = |k: &Keywords| -> Value {
            k.by_language
                .iter()
                .map(|(meta, lang, words)| (lang.clone(), json!({ "id": meta.id, "words": words })))
                .collect::<serde_json::Map<String, Value>>()
                .into()
        };
        json!({
            "version": self.version,
            "files": self.files,
            "description": self.description,
            "rules": rules,
            "stop_keywords": keywords(&self.stop_keywords),
            "resume_keywords": keywords(&self.resume_keywords),
        })
    }

    /// The summary's rules on who may send what to whom: roles, consent, opt-outs.
    fn who_may_be_sent_to(&self, rules: &mut Vec<Value>) {
        for (role, rule) in Role::ALL.iter().zip(&self.roles) {
            let says = match rule.may_send.names() {
                names if names.is_empty() => format!("{role} may send no messages"),
                names => format!("{role} may send {}", names.join(", ")),
            };
            rules.push(rule_json(&rule.meta, "role", says));
        }
        for (cat, rule) in Category::ALL.iter().zip(&self.consent) {
            let mut needs = match (rule.transactional, rule.marketing) {
                (false, false) => "no recorded consent".to_owned(),
                (true, false) => "a transactional consent".to_owned(),
                (false, true) => "a marketing consent".to_owned(),
                (true, true) => "both a transactional and a marketing consent".to_owned(),
            };
            if rule.by_api {
                needs.push_str(" recorded by a client through the API");
            }
            rules.push(rule_json(
                &rule.meta,
                "consent",
                format!("{cat} needs {needs}"),
            ));
        }
        for rule in &self.opt_outs {
            let signal = match rule.kind {
                OptOutKind::Marketing => {
                    "a marketing opt-out (stop keyword, stopped notifications, API)"
                }
                OptOutKind::Transactional => {
                    "a transactional opt-out (API, scope transactional or all)"
                }
                OptOutKind::Unreachable => {
                    "Messenger reporting the person unavailable (551) since they last wrote"
                }
            };
            let says = format!("{signal} stops {}", rule.stops.names().join(", "));
            rules.push(rule_json(&rule.meta, "opt_out", says));
        }
    }

    /// The summary's rules on the window and the ways outside it: windows, routes, tokens, tags.
    fn window_rules(&self, rules: &mut Vec<Value>) {
        let w = &self.windows;
        rules.push(rule_json(
            &w.standard.meta,
            "window",
            format!(
                "the standard window lasts {} from the user's last message, postback, reaction or referral",
                fmt_duration(w.standard.length)
            ),
        ));
        rules.push(rule_json(
            &w.user_ref.meta,
            "window",
            format!(
                "a checkbox (user_ref) opt-in opens a window of {}",
                fmt_duration(w.user_ref.length)
            ),
        ));
        rules.push(rule_json(
            &w.human_agent.meta,
            "window",
            format!(
                "HUMAN_AGENT replies may go up to {} after the user's last message",
                fmt_duration(w.human_agent.length)
            ),
        ));
        for (cat, r) in Category::ALL.iter().zip(&self.routes) {
            rules.push(rule_json(
                &r.inside_meta,
                "window",
                format!("{cat} inside the window goes as {}", r.inside.as_str()),
            ));
            let says = match r.outside.entries.as_slice() {
                [only] if only.from.is_none() && only.until.is_none() => {
                    format!("{cat} outside the window: {}", only.label)
                }
                _ => format!("{cat} outside the window, by date (see `dated`)"),
            };
            let mut v = rule_json(&r.outside_meta, "window", says);
            v["dated"] = dated_json(&r.outside);
            rules.push(v);
        }
        if let Some(t) = &self.token {
            let mut v = rule_json(
                &t.regions_meta,
                "window",
                "where Marketing Messages tokens work, by the page's region".to_owned(),
            );
            v["dated"] = dated_json(&t.regions);
            rules.push(v);
            let mut v = rule_json(
                &t.cooldown_meta,
                "window",
                "the least time between two sends on one Marketing Messages token".to_owned(),
            );
            v["dated"] = dated_json(&t.cooldown);
            rules.push(v);
        }
        for t in &self.tag_retirements {
            rules.push(rule_json(
                &t.meta,
                "window",
                format!(
                    "Messenger stops accepting {} on {}",
                    t.tag.as_str(),
                    fmt_moment(t.on)
                ),
            ));
        }
    }

    /// The summary's limits and the fallback: frequency, quiet hours, send rate, email.
    fn limit_rules(&self, rules: &mut Vec<Value>) {
        for f in &self.frequency {
            rules.push(rule_json(&f.meta, "frequency", f.label.clone()));
        }
        for q in &self.quiet_hours {
            rules.push(rule_json(&q.meta, "quiet_hours", q.label.clone()));
        }
        rules.push(rule_json(
            &self.send_rate.meta,
            "send_rate",
            format!(
                "sends to one page are paced at {} per second by the delivery worker (queued, never denied)",
                self.send_rate.per_page
            ),
        ));
        if let Some(meta) = &self.fallback.email_meta {
            rules.push(rule_json(
                meta,
                "fallback",
                format!(
                    "when Messenger cannot take them, {} go by email to the address on the person's transactional consent",
                    self.fallback.email.names().join(", ")
                ),
            ));
        }
        if let Some(meta) = &self.fallback.outage_meta {
            rules.push(rule_json(
                meta,
                "fallback",
                format!(
                    "a page whose Graph API has failed for {} is out: its breaker opens, probes, and closes when it answers",
                    fmt_duration(self.fallback.outage_after)
                ),
            ));
        }
    }
}

/// Which structured content a category's policy template is filled from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderFields {
    /// An order (`POST /v1/receipts`, or a Messenger receipt template).
    Receipt,
    /// A shipment (`POST /v1/shipping-updates`).
    Shipping,
}

impl OrderFields {
    /// `None` for categories whose messages are free-form.
    pub fn of(cat: Category) -> Option<OrderFields> {
        match cat {
            Category::Receipt => Some(OrderFields::Receipt),
            Category::ShippingUpdate => Some(OrderFields::Shipping),
            _ => None,
        }
    }
}
