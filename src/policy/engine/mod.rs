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
//!
//! One room per part of the walk: this file runs the stages in order and holds the role,
//! consent and opt-out stages; `route.rs` the window and the route outside it (tags, the
//! Marketing Messages token); `template.rs` the utility template and the order fields that fill
//! it; `limits.rs` the frequency caps and quiet hours.

mod limits;
mod route;
mod template;

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::model::{category_index, role_index, Meta, OptOutKind, PolicySet};
use crate::domain::decision::{
    Decision, MessagingType, Outcome, Reason, StepResult, Tag, TraceStep, Via,
};
use crate::domain::facts::Facts;
use crate::domain::{Category, OutboundMessage, UtilityTemplate};

pub use self::route::window_open;

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
