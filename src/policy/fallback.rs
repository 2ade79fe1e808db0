//! The email fallback's decision: may a message that Messenger cannot take go by email? Pure,
//! like the engine: the facts come in, a [`Decision`] with its trace goes out.
//!
//! ```text
//!   fallback.email (its category listed; never marketing) ─ consent (transactional, on record)
//!     ─ opt-out (transactional) ─ address (on the person's consent) ─ cause (why Messenger cannot)
//! ```

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::model::{category_index, fmt_duration, Meta, OptOutKind, PolicySet};
use crate::domain::decision::{Decision, Outcome, Reason, StepResult, TraceStep, Via};
use crate::domain::facts::Facts;
use crate::domain::Category;

/// Why Messenger cannot take the message.
#[derive(Debug, Clone)]
pub enum FallbackCause {
    /// Messenger refused it for good, or the person is unreachable: what it answered.
    Refused(String),
    /// The page's Graph API has been failing since this moment, for at least `outage_after`.
    Outage { since: DateTime<Utc> },
}

/// The rule id the fallback's steps name when the policy has no `[fallback]` section.
const UNWRITTEN: &str = "fallback";

/// Decides whether a `category` message Messenger cannot take goes by email, from the person's
/// `facts` and whether an address is on their consent.
pub fn evaluate_fallback(
    policy: &PolicySet,
    category: Category,
    facts: &Facts,
    address_on_file: bool,
    cause: &FallbackCause,
) -> Decision {
    let mut trace = Vec::with_capacity(5);
    let stop = checks(policy, category, facts, address_on_file, &mut trace);
    let (outcome, reason, rule) = match stop {
        Some((rule, reason)) => (Outcome::Deny, reason, rule),
        None => {
            let (rule, detail) = cause_step(policy, cause);
            step(&mut trace, &rule, StepResult::Pass, detail.into());
            (Outcome::Allow, Reason::Ok, rule)
        }
    };
    Decision {
        outcome,
        reason,
        rule,
        policy_version: policy.version.clone(),
        messaging_type: None,
        tag: None,
        utility_template: None,
        via: Via::Recipient,
        not_before: None,
        consent: None,
        trace,
    }
}

fn step(trace: &mut Vec<TraceStep>, rule: &str, result: StepResult, detail: Cow<'static, str>) {
    trace.push(TraceStep {
        rule: rule.to_owned(),
        result,
        detail,
    });
}

/// The checks in order, each traced; the rule and reason of the first that fails.
fn checks(
    policy: &PolicySet,
    category: Category,
    facts: &Facts,
    address_on_file: bool,
    trace: &mut Vec<TraceStep>,
) -> Option<(String, Reason)> {
    let fallback = &policy.fallback;
    let email_rule = fallback.email_meta.as_ref().map_or(UNWRITTEN, |m| &m.id);
    if !fallback.email.contains(category) {
        let why = if category == Category::Marketing {
            "marketing never goes by email".into()
        } else if fallback.email_meta.is_none() {
            "the policy has no [fallback] email: nothing goes by email".into()
        } else {
            format!("{category} is not among the categories [fallback] email lists").into()
        };
        step(trace, email_rule, StepResult::Fail, why);
        return Some((email_rule.to_owned(), Reason::NotForEmail));
    }
    let may = format!("{category} may go by email");
    step(trace, email_rule, StepResult::Pass, may.into());
    let consent = &policy.consent[category_index(category)].meta.id;
    if !facts.transactional_consent {
        let why = "no transactional consent is on record: email goes only with one";
        step(trace, consent, StepResult::Fail, why.into());
        return Some((consent.clone(), Reason::NoConsent));
    }
    let has = "a transactional consent is on record";
    step(trace, consent, StepResult::Pass, has.into());
    let opt_out = opt_out_rule(policy).map_or(UNWRITTEN, |m| &m.id);
    if facts.transactional_opted_out {
        let why = "the recipient opted out of transactional messages";
        step(trace, opt_out, StepResult::Fail, why.into());
        return Some((opt_out.to_owned(), Reason::OptedOut));
    }
    let none = "no transactional opt-out is on record";
    step(trace, opt_out, StepResult::Pass, none.into());
    if !address_on_file {
        let why = "no email address is on the person's consent";
        step(trace, email_rule, StepResult::Fail, why.into());
        return Some((email_rule.to_owned(), Reason::NoEmailAddress));
    }
    let on_file = "an email address is on the person's consent";
    step(trace, email_rule, StepResult::Pass, on_file.into());
    None
}

/// The last step of an allowed fallback: why Messenger cannot take the message, under the rule
/// that covers it.
fn cause_step(policy: &PolicySet, cause: &FallbackCause) -> (String, String) {
    let fallback = &policy.fallback;
    match cause {
        FallbackCause::Refused(what) => (
            fallback
                .email_meta
                .as_ref()
                .map_or(UNWRITTEN, |m| &m.id)
                .to_owned(),
            format!("Messenger cannot take it: {what}"),
        ),
        FallbackCause::Outage { since } => (
            fallback
                .outage_meta
                .as_ref()
                .map_or(UNWRITTEN, |m| &m.id)
                .to_owned(),
            format!(
                "the page's Graph API has failed since {} (outage_after {})",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                fmt_duration(fallback.outage_after)
            ),
        ),
    }
}

/// The transactional opt-out rule, when the policy has one.
fn opt_out_rule(policy: &PolicySet) -> Option<&Meta> {
    policy
        .opt_outs
        .iter()
        .find(|o| o.kind == OptOutKind::Transactional)
        .map(|o| &o.meta)
}
