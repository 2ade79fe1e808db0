//! The engine: a pure function from a policy, a message and the facts about its recipient to a
//! decision. No I/O and no clock (`facts.now` is the moment of the decision), so every rule is a
//! table test and `POST /v1/policy/evaluate` is the very same call with nothing written.
//!
//! Rules run in the order of API.md §4 and the first that fails decides:
//!
//! ```text
//!   role ─ consent ─ opt-outs (marketing, transactional, 551) ─ window → route ─ frequency ─ quiet hours ─ send rate
//! ```
//!
//! The trace names every rule looked at. On the allow path the details are static text, so an
//! allowed message costs a handful of small allocations (the rule ids) and no formatting.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Number, Value};

use super::model::{
    category_index, fmt_duration, role_index, Meta, OptOutKind, PolicySet, Route, Routes,
    TemplateSpec, WhenExceeded,
};
use crate::domain::bounds::{earlier, later};
use crate::domain::decision::{
    Decision, MessagingType, Outcome, Reason, StepResult, Tag, TraceStep, Via,
};
use crate::domain::facts::Facts;
use crate::domain::{
    Category, Content, OutboundMessage, Receipt, Recipient, ShippingStatus, ShippingUpdate,
    UtilityTemplate,
};

/// Decides whether `message` may be sent now (`facts.now`), and how.
///
/// `send_at` is not looked at: a scheduled message is evaluated again when its time comes.
pub fn evaluate(policy: &PolicySet, message: &OutboundMessage, facts: &Facts) -> Decision {
    let mut e = Eval {
        policy,
        message,
        facts,
        trace: Vec::with_capacity(12),
        chosen: None,
    };
    let stop = e.run().err();
    let Eval { trace, chosen, .. } = e;
    let (outcome, reason, rule, not_before) = match &stop {
        Some(s) => (s.outcome, s.reason, s.rule, s.not_before),
        None => (
            Outcome::Allow,
            Reason::Ok,
            chosen.as_ref().map_or("", |c| c.rule),
            None,
        ),
    };
    // A deferred message keeps the route it will most likely take; a denied one has none.
    let route = if outcome == Outcome::Deny {
        None
    } else {
        chosen
    };
    let (messaging_type, tag, utility_template, via) = match route {
        Some(c) => (c.messaging_type, c.tag, c.template, c.via),
        None => (None, None, None, Via::Recipient),
    };
    Decision {
        outcome,
        reason,
        rule: rule.to_owned(),
        policy_version: policy.version.clone(),
        messaging_type,
        tag,
        utility_template,
        via,
        not_before,
        consent: None,
        trace,
    }
}

/// How the message goes, once the window stage has found a way.
struct Chosen<'a> {
    messaging_type: Option<MessagingType>,
    tag: Option<Tag>,
    template: Option<UtilityTemplate>,
    via: Via,
    rule: &'a str,
}

/// The rule that stopped the message.
struct Stop<'a> {
    outcome: Outcome,
    reason: Reason,
    rule: &'a str,
    not_before: Option<DateTime<Utc>>,
}

struct Eval<'a> {
    policy: &'a PolicySet,
    message: &'a OutboundMessage,
    facts: &'a Facts,
    trace: Vec<TraceStep>,
    chosen: Option<Chosen<'a>>,
}

impl<'a> Eval<'a> {
    fn step(&mut self, meta: &Meta, result: StepResult, detail: impl Into<Cow<'static, str>>) {
        self.trace.push(TraceStep {
            rule: meta.id.clone(),
            result,
            detail: detail.into(),
        });
    }

    fn pass(&mut self, meta: &Meta, detail: impl Into<Cow<'static, str>>) {
        self.step(meta, StepResult::Pass, detail);
    }

    fn skip(&mut self, meta: &Meta) {
        self.step(meta, StepResult::Skip, "does not apply to this category");
    }

    fn stop(
        &mut self,
        meta: &'a Meta,
        outcome: Outcome,
        reason: Reason,
        not_before: Option<DateTime<Utc>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Stop<'a> {
        self.step(meta, StepResult::Fail, detail);
        Stop {
            outcome,
            reason,
            rule: &meta.id,
            not_before,
        }
    }

    fn deny(
        &mut self,
        meta: &'a Meta,
        reason: Reason,
        detail: impl Into<Cow<'static, str>>,
    ) -> Stop<'a> {
        self.stop(meta, Outcome::Deny, reason, None, detail)
    }

    fn run(&mut self) -> Result<(), Stop<'a>> {
        let p = self.policy;
        let f = self.facts;
        let cat = self.message.category;

        let role = &p.roles[role_index(f.role)];
        if !role.may_send.contains(cat) {
            return Err(self.deny(
                &role.meta,
                Reason::RoleForbidden,
                format!("the {} role may not send {cat} messages", f.role),
            ));
        }
        self.pass(&role.meta, "this role may send this category");

        self.consent()?;
        self.opt_outs()?;
        self.route()?;
        self.frequency()?;
        self.quiet_hours()?;

        self.pass(
            &p.send_rate.meta,
            "the delivery worker paces sends to each page; a message is never refused for rate",
        );
        Ok(())
    }

    /// The consent stage: the recorded consent the category needs.
    fn consent(&mut self) -> Result<(), Stop<'a>> {
        let p = self.policy;
        let f = self.facts;
        let cat = self.message.category;
        let consent = &p.consent[category_index(cat)];
        // With `recorded_by = "api"` only consents a client recorded (with its evidence) count.
        let (has_t, has_m) = if consent.by_api {
            (f.transactional_consent_by_api, f.marketing_consent_by_api)
        } else {
            (f.transactional_consent, f.marketing_consent)
        };
        let lacks_t = consent.transactional && !has_t;
        let lacks_m = consent.marketing && !has_m;
        if lacks_t || lacks_m {
            let detail = match (lacks_t, lacks_m, consent.by_api) {
                (true, true, false) => "no transactional and no marketing consent is on record",
                (true, false, false) => "no transactional consent is on record",
                (false, _, false) => "no marketing consent is on record",
                (true, true, true) => {
                    "no transactional and no marketing consent recorded through the API is on record"
                }
                (true, false, true) => "no transactional consent recorded through the API is on record",
                (false, _, true) => "no marketing consent recorded through the API is on record",
            };
            return Err(self.deny(&consent.meta, Reason::NoConsent, detail));
        }
        self.pass(
            &consent.meta,
            match (consent.transactional, consent.marketing, consent.by_api) {
                (false, false, _) => "this category needs no recorded consent",
                (true, false, false) => "a transactional consent is on record",
                (false, true, false) => "a marketing consent is on record",
                (true, true, false) => "transactional and marketing consents are on record",
                (true, false, true) => {
                    "a transactional consent recorded through the API is on record"
                }
                (false, true, true) => "a marketing consent recorded through the API is on record",
                (true, true, true) => {
                    "transactional and marketing consents recorded through the API are on record"
                }
            },
        );

        Ok(())
    }

    /// The opt-out stage: marketing, transactional and 551, each where it applies.
    fn opt_outs(&mut self) -> Result<(), Stop<'a>> {
        let p = self.policy;
        let f = self.facts;
        let cat = self.message.category;
        for o in &p.opt_outs {
            if !o.stops.contains(cat) {
                self.skip(&o.meta);
                continue;
            }
            let (hit, reason, yes, no) = match o.kind {
                OptOutKind::Marketing => (
                    f.marketing_opted_out,
                    Reason::OptedOut,
                    "the recipient opted out of marketing (stop keyword, stopped notifications or API)",
                    "no marketing opt-out is on record",
                ),
                OptOutKind::Transactional => (
                    f.transactional_opted_out,
                    Reason::OptedOut,
                    "the recipient opted out of transactional messages",
                    "no transactional opt-out is on record",
                ),
                OptOutKind::Unreachable => (
                    f.unreachable,
                    Reason::RecipientUnreachable,
                    "Messenger answered 551 (this person isn't available) since the user last wrote",
                    "Messenger has not reported the person unavailable since they last wrote",
                ),
            };
            if hit {
                return Err(self.deny(&o.meta, reason, yes));
            }
            self.pass(&o.meta, no);
        }

        Ok(())
    }

    /// The window stage: inside it, the category's messaging type; outside, the route in force.
    fn route(&mut self) -> Result<(), Stop<'a>> {
        let p = self.policy;
        let f = self.facts;
        let now = f.now;
        let w = &p.windows;
        let (by_message, by_optin) = window_ends(p, &self.message.recipient, f);
        if by_message.is_some_and(|until| until > now) {
            self.pass(
                &w.standard.meta,
                "open: the user wrote within the standard window",
            );
            self.inside_window();
            return Ok(());
        }
        if by_optin.is_some_and(|until| until > now) {
            self.pass(
                &w.user_ref.meta,
                "open: the checkbox opt-in is within its window",
            );
            self.inside_window();
            return Ok(());
        }
        let closed: Cow<'static, str> = match (f.last_user_interaction_at, by_optin) {
            (Some(t), _) => format!(
                "closed: the user last wrote at {}, more than {} before now",
                rfc3339(t),
                fmt_duration(w.standard.length)
            )
            .into(),
            (None, Some(_)) => {
                "closed: the checkbox opt-in is past its window and the user has not written".into()
            }
            (None, None) => "closed: the user has never written to the page".into(),
        };
        let window_meta = match (f.last_user_interaction_at, by_optin) {
            (None, Some(_)) => &w.user_ref.meta,
            _ => &w.standard.meta,
        };
        self.step(window_meta, StepResult::Skip, closed);
        self.outside_window()
    }

    /// The message when it is nothing but a utility template (which goes as UTILITY).
    fn only_template(&self) -> Option<&'a UtilityTemplate> {
        let message = self.message;
        message
            .utility_template
            .as_ref()
            .filter(|_| message.content.is_utility_template())
    }

    /// Inside the window: the category's messaging type.
    fn inside_window(&mut self) {
        let routes: &'a Routes = &self.policy.routes[category_index(self.message.category)];
        // A message that is nothing but a utility template has no RESPONSE/UPDATE form;
        // Messenger takes UTILITY inside the window as well.
        let (messaging_type, template, detail) = match self.only_template() {
            Some(t) => (
                MessagingType::Utility,
                Some(t.clone()),
                "inside the window: the message is a utility template, sent as UTILITY",
            ),
            None => (
                routes.inside,
                None,
                match routes.inside {
                    MessagingType::Response => "inside the window: sent as RESPONSE",
                    _ => "inside the window: sent as UPDATE",
                },
            ),
        };
        self.pass(&routes.inside_meta, detail);
        self.chosen = Some(Chosen {
            messaging_type: Some(messaging_type),
            tag: None,
            template,
            via: Via::Recipient,
            rule: &routes.inside_meta.id,
        });
    }

    /// Outside the window: the category's route in force now — a tag, a utility template, the
    /// Marketing Messages token, or a denial.
    fn outside_window(&mut self) -> Result<(), Stop<'a>> {
        let cat = self.message.category;
        let routes: &'a Routes = &self.policy.routes[category_index(cat)];
        let outside = &routes.outside_meta;
        let Some(entry) = routes.outside.at(self.facts.now) else {
            return Err(self.deny(
                outside,
                outside_reason(cat),
                "no outside-window rule is in force at this moment",
            ));
        };
        match &entry.value {
            Route::Deny => Err(self.deny(outside, outside_reason(cat), entry.label.clone())),
            Route::Tag(_) | Route::MarketingToken if self.only_template().is_some() => {
                Err(self.deny(
                    outside,
                    outside_reason(cat),
                    format!(
                        "{}; this message is a utility template, which this rule does not send",
                        entry.label
                    ),
                ))
            }
            Route::Tag(tag) => {
                self.pass(outside, entry.label.clone());
                self.chosen = Some(Chosen {
                    messaging_type: Some(MessagingType::MessageTag),
                    tag: Some(*tag),
                    template: None,
                    via: Via::Recipient,
                    rule: &outside.id,
                });
                if *tag == Tag::HumanAgent {
                    self.human_agent_window()?;
                }
                Ok(())
            }
            Route::Utility(spec) => match self.template(spec.as_ref()) {
                Some((template, detail)) => {
                    self.pass(outside, detail);
                    self.chosen = Some(Chosen {
                        messaging_type: Some(MessagingType::Utility),
                        tag: None,
                        template: Some(template),
                        via: Via::Recipient,
                        rule: &outside.id,
                    });
                    Ok(())
                }
                None => Err(self.deny(
                    outside,
                    Reason::TemplateRequired,
                    format!(
                        "{}; this message is free-form, so the request must name a utility_template",
                        entry.label
                    ),
                )),
            },
            Route::MarketingToken => self.token(outside),
        }
    }

    /// HUMAN_AGENT reaches only as far as its own window from the user's last message.
    fn human_agent_window(&mut self) -> Result<(), Stop<'a>> {
        let ha = &self.policy.windows.human_agent;
        match self.facts.last_user_interaction_at {
            Some(t) if later(t, ha.length) > self.facts.now => {
                self.pass(&ha.meta, "the user wrote within the HUMAN_AGENT window");
                Ok(())
            }
            Some(t) => Err(self.deny(
                &ha.meta,
                Reason::HumanAgentWindowExpired,
                format!(
                    "the user last wrote at {}, more than {} before now",
                    rfc3339(t),
                    fmt_duration(ha.length)
                ),
            )),
            None => Err(self.deny(
                &ha.meta,
                Reason::HumanAgentWindowExpired,
                "the user has never written, so no agent may reply",
            )),
        }
    }

    /// The utility template for this message: the policy's, filled from the order or shipment,
    /// for structured content; otherwise the one the client gave.
    fn template(
        &self,
        spec: Option<&TemplateSpec>,
    ) -> Option<(UtilityTemplate, Cow<'static, str>)> {
        let content = &self.message.content;
        let structured = match content {
            Content::Receipt(_) | Content::ShippingUpdate(_) => true,
            Content::Message(_) => false,
        };
        if !structured {
            if let Some(t) = &self.message.utility_template {
                let detail = format!(
                    "outside the window: UTILITY with the request's template {} ({})",
                    t.name, t.language
                );
                return Some((t.clone(), detail.into()));
            }
        }
        let spec = spec?;
        if !(structured || content.is_receipt()) {
            return None;
        }
        let parameters = spec
            .parameters
            .iter()
            .map(|p| field(content, p).unwrap_or_else(|| spec.when_missing.clone()))
            .collect();
        Some((
            UtilityTemplate {
                name: spec.name.clone(),
                language: spec.language.clone(),
                parameters,
            },
            spec.detail.clone().into(),
        ))
    }

    /// Marketing outside the window: the token, its region rule and its cooldown.
    fn token(&mut self, outside: &'a Meta) -> Result<(), Stop<'a>> {
        let p = self.policy;
        let f = self.facts;
        let now = f.now;
        let Some(token) = &f.marketing_token else {
            return Err(self.deny(
                outside,
                Reason::MarketingOutsideWindow,
                "outside the window marketing goes only through a Marketing Messages token, and this recipient has none",
            ));
        };
        if token.stopped {
            return Err(self.deny(
                outside,
                Reason::MarketingTokenStopped,
                "the recipient stopped these marketing messages in Messenger",
            ));
        }
        self.pass(
            outside,
            "outside the window: through the recipient's Marketing Messages token",
        );
        self.chosen = Some(Chosen {
            messaging_type: None,
            tag: None,
            template: None,
            via: Via::MarketingToken,
            rule: &outside.id,
        });
        let Some(rules) = &p.token else {
            return Err(self.deny(
                outside,
                Reason::MarketingOutsideWindow,
                "the policy has no token rules",
            ));
        };
        let region = f.page_region.as_deref();
        match rules.regions.at(now) {
            Some(e) if e.value.allows(region) => self.pass(
                &rules.regions_meta,
                "the page's region may use tokens at this moment",
            ),
            found => {
                let says = found.map_or("no region rule is in force", |e| e.label.as_str());
                let detail = match region {
                    Some(r) => format!("{says}; this page's region is {r}"),
                    None => format!("{says}; this page has no region configured"),
                };
                return Err(self.deny(&rules.regions_meta, Reason::MarketingOutsideWindow, detail));
            }
        }
        let cooldown = rules.cooldown.at(now);
        match (cooldown, token.last_sent_at) {
            (Some(e), Some(last)) if later(last, e.value) > now => {
                let reopen = later(last, e.value);
                let detail = format!(
                    "{}; the last went at {}, so the next may go at {}",
                    e.label,
                    rfc3339(last),
                    rfc3339(reopen)
                );
                Err(self.stop(
                    &rules.cooldown_meta,
                    Outcome::Defer,
                    Reason::MarketingTokenCooldown,
                    Some(reopen),
                    detail,
                ))
            }
            _ => {
                self.pass(&rules.cooldown_meta, "the token's cooldown has passed");
                Ok(())
            }
        }
    }

    fn frequency(&mut self) -> Result<(), Stop<'a>> {
        let p = self.policy;
        let f = self.facts;
        let now = f.now;
        let cat = self.message.category;
        for rule in &p.frequency {
            if !rule.applies_to.contains(cat) {
                self.skip(&rule.meta);
                continue;
            }
            let since = earlier(now, rule.per);
            let counted = |at: DateTime<Utc>| at > since && at <= now;
            let count = f
                .recent_sends
                .iter()
                .filter(|s| rule.applies_to.contains(s.category) && counted(s.at))
                .count();
            if count < rule.max as usize {
                self.pass(&rule.meta, "under the cap for its period");
                continue;
            }
            let said = format!(
                "{count} sent to this recipient in the last {}; the cap is {}",
                fmt_duration(rule.per),
                rule.max
            );
            return Err(match rule.when_exceeded {
                WhenExceeded::Deny => self.deny(&rule.meta, Reason::FrequencyCap, said),
                WhenExceeded::Defer => {
                    // The period has room again once the max-th newest counted send leaves it.
                    let mut ats: Vec<DateTime<Utc>> = f
                        .recent_sends
                        .iter()
                        .filter(|s| rule.applies_to.contains(s.category) && counted(s.at))
                        .map(|s| s.at)
                        .collect();
                    ats.sort_unstable_by(|a, b| b.cmp(a));
                    let nth = ats
                        .get((rule.max as usize).saturating_sub(1))
                        .copied()
                        .unwrap_or(now);
                    let reopen = later(nth, rule.per);
                    let detail = format!("{said}; it may go at {}", rfc3339(reopen));
                    self.stop(
                        &rule.meta,
                        Outcome::Defer,
                        Reason::FrequencyCap,
                        Some(reopen),
                        detail,
                    )
                }
            });
        }
        Ok(())
    }

    fn quiet_hours(&mut self) -> Result<(), Stop<'a>> {
        let p = self.policy;
        let f = self.facts;
        let cat = self.message.category;
        for rule in &p.quiet_hours {
            if !rule.applies_to.contains(cat) {
                self.skip(&rule.meta);
                continue;
            }
            if !self.message.respect_quiet_hours {
                self.step(
                    &rule.meta,
                    StepResult::Skip,
                    "waived: the campaign was created with respect_quiet_hours false",
                );
                continue;
            }
            let tz = f.timezone.unwrap_or(rule.timezone_if_unknown);
            let local = f.now.with_timezone(&tz);
            let day_off = rule.is_day_off(local.weekday());
            if !day_off && rule.allows(local.time()) {
                self.pass(
                    &rule.meta,
                    "inside the sending hours in the recipient's time zone",
                );
                continue;
            }
            let mut next = next_local(tz, local, rule.send_from);
            // Past the days off: at most six in a row, since the loader refuses all seven.
            for _ in 0..7 {
                let there = next.with_timezone(&tz);
                if !rule.is_day_off(there.weekday()) {
                    break;
                }
                next = next_local(tz, there, rule.send_from);
            }
            let detail = format!(
                "it is {} {} in {}{}; sending resumes at {} there ({})",
                local.format("%A"),
                local.format("%H:%M"),
                tz.name(),
                if f.timezone.is_none() {
                    " (the recipient's time zone is unknown)"
                } else {
                    ""
                },
                rule.send_from.format("%H:%M"),
                rfc3339(next)
            );
            return Err(self.stop(
                &rule.meta,
                Outcome::Defer,
                Reason::QuietHours,
                Some(next),
                detail,
            ));
        }
        Ok(())
    }
}

/// When the standard window (from the user's last message) and a checkbox opt-in's window
/// close for `recipient`; `None` where there is no such window at all.
fn window_ends(
    policy: &PolicySet,
    recipient: &Recipient,
    facts: &Facts,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let w = &policy.windows;
    let by_message = facts
        .last_user_interaction_at
        .map(|t| later(t, w.standard.length));
    let by_optin = match recipient {
        Recipient::UserRef(_) => facts.user_ref_optin_at.map(|t| later(t, w.user_ref.length)),
        Recipient::Psid(_) => None,
    };
    (by_message, by_optin)
}

/// Whether Messenger's window with `recipient` is open at `facts.now`, by the same rule the
/// window stage of [`evaluate`] applies: for what may only go inside it, such as sender actions.
pub fn window_open(policy: &PolicySet, recipient: &Recipient, facts: &Facts) -> bool {
    let (by_message, by_optin) = window_ends(policy, recipient, facts);
    [by_message, by_optin]
        .into_iter()
        .flatten()
        .any(|until| until > facts.now)
}

fn outside_reason(cat: Category) -> Reason {
    if cat == Category::Marketing {
        Reason::MarketingOutsideWindow
    } else {
        Reason::OutsideWindow
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The next moment after `local` at which the wall clock there reads `at`. A time skipped by a
/// daylight-saving jump moves forward to the first hour that exists; a repeated one takes the
/// earlier occurrence.
///
/// Never panics: at the ends of chrono's range, where the local date or the wanted time does
/// not exist, it answers a day later (saturating), which no real clock reaches.
fn next_local(tz: Tz, local: DateTime<Tz>, at: NaiveTime) -> DateTime<Utc> {
    // Not `date_naive()`, which panics when the local date lies beyond chrono's last day.
    let today = local
        .naive_utc()
        .checked_add_offset(local.offset().fix())
        .map(|n| n.date());
    let day = today.and_then(|today| {
        if local.time() < at {
            Some(today)
        } else {
            today.succ_opt()
        }
    });
    if let Some(day) = day {
        let wanted = day.and_time(at);
        for shift in 0..4 {
            let Some(t) = wanted.checked_add_signed(Duration::hours(shift)) else {
                break;
            };
            match tz.from_local_datetime(&t) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    return t.with_timezone(&Utc)
                }
                LocalResult::None => continue,
            }
        }
    }
    later(local.with_timezone(&Utc), Duration::hours(24))
}

/// A named field of the message's order or shipment, as template text; `None` when absent.
fn field(content: &Content, name: &str) -> Option<String> {
    let value = match content {
        Content::Receipt(r) => receipt_field(r, name),
        Content::ShippingUpdate(s) => shipping_field(s, name),
        Content::Message(m) => receipt_json_field(m.pointer("/attachment/payload")?, name),
    };
    value.filter(|v| !v.trim().is_empty())
}

fn receipt_field(r: &Receipt, name: &str) -> Option<String> {
    match name {
        "recipient_name" => Some(r.recipient_name.clone()),
        "order_number" => Some(r.order_number.clone()),
        "currency" => Some(r.currency.clone()),
        "payment_method" => Some(r.payment_method.clone()),
        "merchant_name" => r.merchant_name.clone(),
        "order_url" => r.order_url.clone(),
        "timestamp" => r.timestamp.clone(),
        "total_cost" => Some(amount(&r.summary.total_cost)),
        "subtotal" => r.summary.subtotal.as_ref().map(amount),
        "shipping_cost" => r.summary.shipping_cost.as_ref().map(amount),
        "total_tax" => r.summary.total_tax.as_ref().map(amount),
        _ => None,
    }
}

fn receipt_json_field(payload: &Value, name: &str) -> Option<String> {
    let value = match name {
        "total_cost" | "subtotal" | "shipping_cost" | "total_tax" => {
            payload.get("summary")?.get(name)?
        }
        _ => payload.get(name)?,
    };
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(amount(n)),
        _ => None,
    }
}

fn shipping_field(s: &ShippingUpdate, name: &str) -> Option<String> {
    match name {
        "order_number" => Some(s.order_number.clone()),
        "status" => Some(s.status.phrase().to_owned()),
        "status_code" => Some(status_code(s.status).to_owned()),
        "carrier" => s.carrier.clone(),
        "tracking_number" => s.tracking_number.clone(),
        "tracking_url" => s.tracking_url.clone(),
        "estimated_delivery" => s.estimated_delivery.clone(),
        _ => None,
    }
}

fn status_code(s: ShippingStatus) -> &'static str {
    match s {
        ShippingStatus::Shipped => "shipped",
        ShippingStatus::InTransit => "in_transit",
        ShippingStatus::OutForDelivery => "out_for_delivery",
        ShippingStatus::Delivered => "delivered",
        ShippingStatus::Delayed => "delayed",
        ShippingStatus::Returned => "returned",
    }
}

/// Money as people read it: `42.50` rather than `42.5`; whole numbers and finer amounts as
/// given. Works on the number's own text, so no float is rounded along the way.
fn amount(n: &Number) -> String {
    let mut s = n.to_string();
    if s.find('.').is_some_and(|dot| s.len() - dot == 2) {
        s.push('0');
    }
    s
}
