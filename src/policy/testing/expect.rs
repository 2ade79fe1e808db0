//! What a case expects (`expect = { outcome = "deny", reason = "no_consent", … }`): read with
//! the policy reader's helpers, and compared field by field with the decision.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use super::facts::relative_time;
use super::Mismatch;
use crate::domain::decision::{Decision, MessagingType, Outcome, Reason, Tag, Via};
use crate::policy::read::{
    get, messaging_type_named, optional, required, string, strings, table, tag_named, Cx,
};
use crate::policy::tree::{Node, Value};

const EXPECT_KEYS: [&str; 9] = [
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

/// What a case expects; `None` fields are not checked.
pub(super) struct Expect {
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
    /// Each expected field that differs.
    pub(super) fn compare(&self, d: &Decision) -> Vec<Mismatch> {
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

/// An `expect` table; every field it names is checked, `outcome` always.
pub(super) fn read_expect(cx: &mut Cx<'_>, node: &Node, now: DateTime<Utc>) -> Option<Expect> {
    let fields = table(cx, node, "`expect`", &EXPECT_KEYS)?;
    let outcome = required(cx, fields, &node.best_span(), "outcome", "`expect`")
        .and_then(|n| wire_name::<Outcome>(cx, n, "outcome"));
    let reason = optional(get(fields, "reason"), |n| {
        wire_name::<Reason>(cx, n, "reason")
    });
    let rule = optional(get(fields, "rule"), |n| {
        string(cx, n, "`expect.rule`").map(str::to_owned)
    });
    let messaging_type = optional(get(fields, "messaging_type"), |n| {
        none_or(n, || messaging_type_named(cx, n, "`expect.messaging_type`"))
    });
    let tag = optional(get(fields, "tag"), |n| {
        none_or(n, || tag_named(cx, n, "`expect.tag`"))
    });
    let via = optional(get(fields, "via"), |n| via_named(cx, n));
    let not_before = optional(get(fields, "not_before"), |n| {
        none_or(n, || relative_time(cx, n, now, "`expect.not_before`"))
    });
    let template = optional(get(fields, "template"), |n| {
        none_or(n, || string(cx, n, "`expect.template`").map(str::to_owned))
    });
    let parameters = optional(get(fields, "parameters"), |n| {
        strings(cx, n, "`expect.parameters`").map(|v| v.into_iter().map(str::to_owned).collect())
    });
    Some(Expect {
        outcome: Some(outcome?),
        reason: reason?,
        rule: rule?,
        messaging_type: messaging_type?,
        tag: tag?,
        via: via?,
        not_before: not_before?,
        template: template?,
        parameters: parameters?,
    })
}

/// `"none"` (the decision must have no such field), or what `read` makes of the value.
fn none_or<T>(node: &Node, read: impl FnOnce() -> Option<T>) -> Option<Option<T>> {
    match &node.value {
        Value::String(s) if s == "none" => Some(None),
        _ => read().map(Some),
    }
}

fn via_named(cx: &mut Cx<'_>, node: &Node) -> Option<Via> {
    match string(cx, node, "`expect.via`")? {
        "recipient" => Some(Via::Recipient),
        "marketing_token" => Some(Via::MarketingToken),
        other => {
            cx.err(
                node.best_span(),
                format!("`expect.via`: `{other}` must be recipient or marketing_token"),
            );
            None
        }
    }
}

/// A wire spelling (`"allow"`, `"outside_window"`) into its enum.
fn wire_name<T: serde::de::DeserializeOwned>(
    cx: &mut Cx<'_>,
    node: &Node,
    what: &str,
) -> Option<T> {
    let s = string(cx, node, &format!("`expect.{what}`"))?;
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
