//! The window stage: inside Messenger's window the category's messaging type; outside it the
//! route in force (a tag, a utility template, the Marketing Messages token, or a denial), and
//! whether the window is open at all.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::{outside_reason, rfc3339, Chosen, Eval, Stop};
use crate::domain::bounds::later;
use crate::domain::decision::{MessagingType, Outcome, Reason, StepResult, Tag, Via};
use crate::domain::facts::Facts;
use crate::domain::{Recipient, UtilityTemplate};
use crate::policy::model::{category_index, fmt_duration, Meta, PolicySet, Route, Routes};

impl<'a> Eval<'a> {
    /// The window stage: inside it, the category's messaging type; outside, the route in force.
    pub(super) fn route(&mut self) -> Result<(), Stop<'a>> {
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
