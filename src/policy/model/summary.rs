//! `GET /v1/policy`: the version, the files, and every rule in words with its dates, in the
//! order the engine checks them.

use serde_json::{json, Value};

use super::{fmt_duration, fmt_moment, Dated, Keywords, Meta, OptOutKind, PolicySet};
use crate::domain::{Category, Role};

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
