//! The loaded policy: every rule of the files, checked and compiled into the shape the engine
//! reads without searching or allocating.
//!
//! This file holds the rules' types and what the rest of Herald asks of a set; `words.rs` how
//! rules read in words (durations, moments, routes), `summary.rs` the set as `GET /v1/policy`
//! shows it.

mod summary;
mod words;

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use crate::domain::decision::{MessagingType, Tag};
use crate::domain::{Category, Role};

pub(crate) use self::words::{dated_label, fmt_duration, fmt_moment};

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
