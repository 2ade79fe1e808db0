//! The decision table of the default policy: one row per rule and boundary, and every reason
//! code reachable from it.

use super::*;

/// One row of the decision table.
struct Row {
    what: &'static str,
    now: &'static str,
    role: Role,
    category: Category,
    content: fn() -> Content,
    setup: fn(&mut Facts, &mut OutboundMessage),
    outcome: Outcome,
    reason: Reason,
    /// The deciding rule, after `policies/default.toml#`.
    rule: &'static str,
    messaging_type: Option<MessagingType>,
    tag: Option<Tag>,
    not_before: Option<&'static str>,
}

fn rows() -> Vec<Row> {
    use Category::*;
    use MessagingType as M;
    vec![
        // ---- role
        Row { what: "a marketer may not send a receipt", now: NOW, role: Role::Marketer, category: Receipt, content: receipt, setup: recently,
              outcome: Outcome::Deny, reason: Reason::RoleForbidden, rule: "roles.marketer", messaging_type: None, tag: None, not_before: None },
        Row { what: "the backend may not send marketing", now: NOW, role: Role::Backend, category: Marketing, content: text, setup: marketing_recently,
              outcome: Outcome::Deny, reason: Reason::RoleForbidden, rule: "roles.backend", messaging_type: None, tag: None, not_before: None },
        Row { what: "compliance may not send a response", now: NOW, role: Role::Compliance, category: Response, content: text, setup: recently,
              outcome: Outcome::Deny, reason: Reason::RoleForbidden, rule: "roles.compliance", messaging_type: None, tag: None, not_before: None },
        Row { what: "an admin may send marketing", now: NOW, role: Role::Admin, category: Marketing, content: text, setup: marketing_recently,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "marketing.inside_window", messaging_type: Some(M::Update), tag: None, not_before: None },
        // ---- consent
        Row { what: "no transactional consent: no receipt", now: NOW, role: Role::Backend, category: Receipt, content: receipt,
              setup: |f, _| f.last_user_interaction_at = Some(f.now - h(1)),
              outcome: Outcome::Deny, reason: Reason::NoConsent, rule: "consent.receipt", messaging_type: None, tag: None, not_before: None },
        Row { what: "a transactional consent does not cover marketing", now: NOW, role: Role::Marketer, category: Marketing, content: text, setup: recently,
              outcome: Outcome::Deny, reason: Reason::NoConsent, rule: "consent.marketing", messaging_type: None, tag: None, not_before: None },
        // ---- opt-outs
        Row { what: "a marketing opt-out stops marketing", now: NOW, role: Role::Marketer, category: Marketing, content: text,
              setup: |f, m| { marketing_recently(f, m); f.marketing_opted_out = true; },
              outcome: Outcome::Deny, reason: Reason::OptedOut, rule: "opt_out.marketing", messaging_type: None, tag: None, not_before: None },
        Row { what: "a marketing opt-out does not stop a receipt", now: NOW, role: Role::Backend, category: Receipt, content: receipt,
              setup: |f, m| { recently(f, m); f.marketing_opted_out = true; },
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "receipt.inside_window", messaging_type: Some(M::Update), tag: None, not_before: None },
        Row { what: "a transactional opt-out stops a shipping update", now: NOW, role: Role::Backend, category: ShippingUpdate, content: shipment,
              setup: |f, m| { recently(f, m); f.transactional_opted_out = true; },
              outcome: Outcome::Deny, reason: Reason::OptedOut, rule: "opt_out.transactional", messaging_type: None, tag: None, not_before: None },
        Row { what: "a 551 since the user last wrote stops everything", now: NOW, role: Role::Backend, category: Response, content: text,
              setup: |f, m| { recently(f, m); f.unreachable = true; },
              outcome: Outcome::Deny, reason: Reason::RecipientUnreachable, rule: "opt_out.unreachable", messaging_type: None, tag: None, not_before: None },
        // ---- window: response
        Row { what: "a response inside the window goes as RESPONSE", now: NOW, role: Role::Backend, category: Response, content: text, setup: recently,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "response.inside_window", messaging_type: Some(M::Response), tag: None, not_before: None },
        Row { what: "a response 24h after the last message is outside the window", now: NOW, role: Role::Backend, category: Response, content: text,
              setup: |f, _| { f.transactional_consent = true; f.last_user_interaction_at = Some(f.now - h(24)); },
              outcome: Outcome::Deny, reason: Reason::OutsideWindow, rule: "response.outside_window", messaging_type: None, tag: None, not_before: None },
        // ---- window: receipts across 2026-04-27
        Row { what: "a receipt inside the window goes as UPDATE", now: NOW, role: Role::Backend, category: Receipt, content: receipt, setup: recently,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "receipt.inside_window", messaging_type: Some(M::Update), tag: None, not_before: None },
        Row { what: "a receipt outside the window one second before 2026-04-27 carries POST_PURCHASE_UPDATE", now: "2026-04-26T23:59:59Z", role: Role::Backend, category: Receipt, content: receipt, setup: long_ago,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "receipt.outside_window", messaging_type: Some(M::MessageTag), tag: Some(Tag::PostPurchaseUpdate), not_before: None },
        Row { what: "a receipt outside the window at 2026-04-27 goes as UTILITY", now: "2026-04-27T00:00:00Z", role: Role::Backend, category: Receipt, content: receipt, setup: long_ago,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "receipt.outside_window", messaging_type: Some(M::Utility), tag: None, not_before: None },
        Row { what: "a free-form receipt outside the window after 2026-04-27 needs a template", now: NOW, role: Role::Backend, category: Receipt, content: text, setup: long_ago,
              outcome: Outcome::Deny, reason: Reason::TemplateRequired, rule: "receipt.outside_window", messaging_type: None, tag: None, not_before: None },
        Row { what: "a shipping update outside the window before 2026-04-27 carries POST_PURCHASE_UPDATE", now: "2026-04-26T12:00:00Z", role: Role::Backend, category: ShippingUpdate, content: shipment, setup: long_ago,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "shipping_update.outside_window", messaging_type: Some(M::MessageTag), tag: Some(Tag::PostPurchaseUpdate), not_before: None },
        Row { what: "a shipping update outside the window after 2026-04-27 goes as UTILITY", now: NOW, role: Role::Backend, category: ShippingUpdate, content: shipment, setup: long_ago,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "shipping_update.outside_window", messaging_type: Some(M::Utility), tag: None, not_before: None },
        Row { what: "an account update outside the window before 2026-04-27 carries ACCOUNT_UPDATE", now: "2026-04-26T12:00:00Z", role: Role::Backend, category: AccountUpdate, content: text, setup: long_ago,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "account_update.outside_window", messaging_type: Some(M::MessageTag), tag: Some(Tag::AccountUpdate), not_before: None },
        Row { what: "an account update outside the window after 2026-04-27 without a template is denied", now: NOW, role: Role::Backend, category: AccountUpdate, content: text, setup: long_ago,
              outcome: Outcome::Deny, reason: Reason::TemplateRequired, rule: "account_update.outside_window", messaging_type: None, tag: None, not_before: None },
        Row { what: "an account update after 2026-04-27 with the client's template goes as UTILITY", now: NOW, role: Role::Backend, category: AccountUpdate, content: text,
              setup: |f, m| { long_ago(f, m); m.utility_template = Some(UtilityTemplate { name: "pw".into(), language: "en".into(), parameters: vec![] }); },
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "account_update.outside_window", messaging_type: Some(M::Utility), tag: None, not_before: None },
        Row { what: "an event update outside the window before 2026-04-27 carries CONFIRMED_EVENT_UPDATE", now: "2026-04-26T12:00:00Z", role: Role::Backend, category: EventUpdate, content: text, setup: long_ago,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "event_update.outside_window", messaging_type: Some(M::MessageTag), tag: Some(Tag::ConfirmedEventUpdate), not_before: None },
        // ---- window: agent replies
        Row { what: "an agent reply inside the window goes as RESPONSE", now: NOW, role: Role::Backend, category: AgentReply, content: text, setup: recently,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "agent_reply.inside_window", messaging_type: Some(M::Response), tag: None, not_before: None },
        Row { what: "an agent reply three days on carries HUMAN_AGENT", now: NOW, role: Role::Backend, category: AgentReply, content: text, setup: long_ago,
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "agent_reply.outside_window", messaging_type: Some(M::MessageTag), tag: Some(Tag::HumanAgent), not_before: None },
        Row { what: "an agent reply exactly seven days on is too late", now: NOW, role: Role::Backend, category: AgentReply, content: text,
              setup: |f, _| { f.transactional_consent = true; f.last_user_interaction_at = Some(crate::domain::bounds::earlier(f.now, Duration::days(7))); },
              outcome: Outcome::Deny, reason: Reason::HumanAgentWindowExpired, rule: "window.human_agent", messaging_type: None, tag: None, not_before: None },
        // ---- window: marketing and tokens
        Row { what: "marketing outside the window without a token is denied", now: NOW, role: Role::Marketer, category: Marketing, content: text,
              setup: |f, _| f.marketing_consent = true,
              outcome: Outcome::Deny, reason: Reason::MarketingOutsideWindow, rule: "marketing.outside_window", messaging_type: None, tag: None, not_before: None },
        Row { what: "a stopped token is denied", now: NOW, role: Role::Marketer, category: Marketing, content: text,
              setup: |f, _| { token(f, "EU", None); if let Some(t) = &mut f.marketing_token { t.stopped = true; } },
              outcome: Outcome::Deny, reason: Reason::MarketingTokenStopped, rule: "marketing.outside_window", messaging_type: None, tag: None, not_before: None },
        Row { what: "a US page passes the region rule one second before 2026-02-10, then waits for 08:00", now: "2026-02-09T23:59:59Z", role: Role::Marketer, category: Marketing, content: text,
              setup: |f, _| token(f, "US", None),
              outcome: Outcome::Defer, reason: Reason::QuietHours, rule: "marketing.quiet_hours", messaging_type: None, tag: None, not_before: Some("2026-02-10T08:00:00Z") },
        Row { what: "a US page may use its token before 2026-02-10 in the daytime", now: "2026-02-09T12:00:00Z", role: Role::Marketer, category: Marketing, content: text,
              setup: |f, _| token(f, "US", None),
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "marketing.outside_window", messaging_type: None, tag: None, not_before: None },
        Row { what: "a US page may not use its token from 2026-02-10", now: "2026-02-10T00:00:00Z", role: Role::Marketer, category: Marketing, content: text,
              setup: |f, _| token(f, "US", None),
              outcome: Outcome::Deny, reason: Reason::MarketingOutsideWindow, rule: "marketing.token_regions", messaging_type: None, tag: None, not_before: None },
        Row { what: "an EU page may use its token after 2026-02-10", now: NOW, role: Role::Marketer, category: Marketing, content: text,
              setup: |f, _| token(f, "eu", Some(72)),
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "marketing.outside_window", messaging_type: None, tag: None, not_before: None },
        Row { what: "one second before 2025-09-01 a token used 30h ago may go (24h cooldown)", now: "2025-08-31T23:59:59Z", role: Role::Marketer, category: Marketing, content: text,
              setup: |f, _| { token(f, "US", Some(30)); f.timezone = Some(chrono_tz::Asia::Tokyo); },
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "marketing.outside_window", messaging_type: None, tag: None, not_before: None },
        Row { what: "from 2025-09-01 a token used 30h ago waits for 48h", now: "2025-09-01T00:00:00Z", role: Role::Marketer, category: Marketing, content: text,
              setup: |f, _| token(f, "US", Some(30)),
              outcome: Outcome::Defer, reason: Reason::MarketingTokenCooldown, rule: "marketing.token_cooldown", messaging_type: None, tag: None, not_before: Some("2025-09-01T18:00:00Z") },
        // ---- frequency
        Row { what: "the 21st transactional message in an hour is denied", now: NOW, role: Role::Backend, category: Response, content: text,
              setup: |f, m| { recently(f, m); f.recent_sends = (1..=20).map(|i| RecentSend { at: crate::domain::bounds::earlier(f.now, Duration::minutes(i)), category: Category::Receipt }).collect(); },
              outcome: Outcome::Deny, reason: Reason::FrequencyCap, rule: "transactional.frequency", messaging_type: None, tag: None, not_before: None },
        Row { what: "a second marketing message in 48h waits", now: NOW, role: Role::Marketer, category: Marketing, content: text,
              setup: |f, m| { marketing_recently(f, m); f.recent_sends = vec![RecentSend { at: f.now - h(40), category: Category::Marketing }]; },
              outcome: Outcome::Defer, reason: Reason::FrequencyCap, rule: "marketing.frequency", messaging_type: Some(M::Update), tag: None, not_before: Some("2026-05-04T20:00:00Z") },
        // ---- quiet hours
        Row { what: "marketing at 21:00 UTC with no known time zone waits for 08:00 UTC", now: "2026-05-04T21:00:00Z", role: Role::Marketer, category: Marketing, content: text, setup: marketing_recently,
              outcome: Outcome::Defer, reason: Reason::QuietHours, rule: "marketing.quiet_hours", messaging_type: Some(M::Update), tag: None, not_before: Some("2026-05-05T08:00:00Z") },
        Row { what: "marketing at 07:59 in Berlin waits a minute", now: "2026-05-04T05:59:00Z", role: Role::Marketer, category: Marketing, content: text,
              setup: |f, m| { marketing_recently(f, m); f.timezone = Some(chrono_tz::Europe::Berlin); },
              outcome: Outcome::Defer, reason: Reason::QuietHours, rule: "marketing.quiet_hours", messaging_type: Some(M::Update), tag: None, not_before: Some("2026-05-04T06:00:00Z") },
        Row { what: "marketing at 08:00 in Berlin goes", now: "2026-05-04T06:00:00Z", role: Role::Marketer, category: Marketing, content: text,
              setup: |f, m| { marketing_recently(f, m); f.timezone = Some(chrono_tz::Europe::Berlin); },
              outcome: Outcome::Allow, reason: Reason::Ok, rule: "marketing.inside_window", messaging_type: Some(M::Update), tag: None, not_before: None },
    ]
}

#[test]
fn the_decision_table_of_the_default_policy() {
    let p = policy();
    for row in rows() {
        let mut f = Facts::unknown(t(row.now), row.role);
        let mut m = message(row.category, (row.content)());
        (row.setup)(&mut f, &mut m);
        let d = evaluate(&p, &m, &f);
        let trace: Vec<String> = d
            .trace
            .iter()
            .map(|s| format!("{:?} {} {}", s.result, s.rule, s.detail))
            .collect();
        let ctx = format!("{}\n  trace: {trace:#?}", row.what);
        assert_eq!(d.outcome, row.outcome, "outcome: {ctx}");
        assert_eq!(d.reason, row.reason, "reason: {ctx}");
        assert_eq!(
            d.rule,
            format!("policies/default.toml#{}", row.rule),
            "rule: {ctx}"
        );
        assert_eq!(
            d.messaging_type, row.messaging_type,
            "messaging_type: {ctx}"
        );
        assert_eq!(d.tag, row.tag, "tag: {ctx}");
        assert_eq!(d.not_before, row.not_before.map(t), "not_before: {ctx}");
        assert_eq!(d.policy_version, p.version(), "policy_version: {ctx}");
        let last = d.trace.last().expect("a trace");
        if d.outcome == Outcome::Allow {
            assert!(
                d.trace.iter().all(|s| s.result != StepResult::Fail),
                "an allowed message has no failing step: {ctx}"
            );
            assert_eq!(
                last.rule, "policies/default.toml#send_rate.per_page",
                "{ctx}"
            );
        } else {
            assert_eq!(
                last.result,
                StepResult::Fail,
                "the last step decides: {ctx}"
            );
            assert_eq!(
                last.rule, d.rule,
                "the last step is the deciding rule: {ctx}"
            );
        }
    }
}

#[test]
fn every_reason_code_is_reachable_from_the_table() {
    let reasons: Vec<Reason> = rows().iter().map(|r| r.reason).collect();
    for r in [
        Reason::Ok,
        Reason::RoleForbidden,
        Reason::NoConsent,
        Reason::OptedOut,
        Reason::RecipientUnreachable,
        Reason::OutsideWindow,
        Reason::TemplateRequired,
        Reason::HumanAgentWindowExpired,
        Reason::MarketingOutsideWindow,
        Reason::MarketingTokenStopped,
        Reason::MarketingTokenCooldown,
        Reason::FrequencyCap,
        Reason::QuietHours,
    ] {
        assert!(reasons.contains(&r), "no table row decides {r}");
    }
}
