//! Tests of the engine against the default policy (every reason code, every date boundary), of
//! the loader's error reporting, and of the shipped `policies/` directory with its test cases.

use std::borrow::Cow;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::testing::run_text;
use super::*;
use crate::domain::{Category, Content, OutboundMessage, Psid, Recipient, Role, UtilityTemplate};

const DEFAULT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/default.toml"
));

fn policy() -> PolicySet {
    PolicySet::from_sources(&[("default.toml", DEFAULT)]).expect("the default policy loads")
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("a valid test time")
        .with_timezone(&Utc)
}

fn text() -> Content {
    Content::Message(json!({"text": "hello"}))
}

fn receipt() -> Content {
    Content::Receipt(
        serde_json::from_value(json!({
            "order_number": "A-7", "currency": "USD", "payment_method": "Visa 1234",
            "recipient_name": "Grace Hopper", "summary": {"total_cost": 19.9}, "elements": []
        }))
        .expect("a valid receipt"),
    )
}

fn shipment() -> Content {
    Content::ShippingUpdate(
        serde_json::from_value(json!({"order_number": "A-7", "status": "delivered"}))
            .expect("a valid shipment"),
    )
}

fn message(category: Category, content: Content) -> OutboundMessage {
    OutboundMessage {
        page_id: None,
        recipient: Recipient::Psid(Psid::parse("42").expect("psid")),
        category,
        content,
        utility_template: None,
        send_at: None,
        expires_at: None,
        respect_quiet_hours: true,
    }
}

fn h(n: i64) -> Duration {
    Duration::hours(n)
}

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

const NOW: &str = "2026-05-04T12:00:00Z";

fn recently(f: &mut Facts, _: &mut OutboundMessage) {
    f.transactional_consent = true;
    f.last_user_interaction_at = Some(f.now - h(1));
}

fn marketing_recently(f: &mut Facts, _: &mut OutboundMessage) {
    f.marketing_consent = true;
    f.last_user_interaction_at = Some(f.now - h(1));
}

fn long_ago(f: &mut Facts, _: &mut OutboundMessage) {
    f.transactional_consent = true;
    f.last_user_interaction_at = Some(f.now - h(72));
}

fn token(f: &mut Facts, region: &str, last_sent_hours_ago: Option<i64>) {
    f.marketing_consent = true;
    f.page_region = Some(region.to_owned());
    f.marketing_token = Some(MarketingToken {
        stopped: false,
        last_sent_at: last_sent_hours_ago.map(|n| f.now - h(n)),
    });
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

#[test]
fn an_allowed_message_inside_the_window_traces_every_stage_in_order_without_formatting() {
    let p = policy();
    let mut f = Facts::unknown(t(NOW), Role::Backend);
    let mut m = message(Category::Receipt, receipt());
    recently(&mut f, &mut m);
    let d = evaluate(&p, &m, &f);
    let steps: Vec<(&str, StepResult)> = d
        .trace
        .iter()
        .map(|s| {
            (
                s.rule.trim_start_matches("policies/default.toml#"),
                s.result,
            )
        })
        .collect();
    use StepResult::*;
    assert_eq!(
        steps,
        [
            ("roles.backend", Pass),
            ("consent.receipt", Pass),
            ("opt_out.marketing", Skip),
            ("opt_out.transactional", Pass),
            ("opt_out.unreachable", Pass),
            ("window.standard", Pass),
            ("receipt.inside_window", Pass),
            ("marketing.frequency", Skip),
            ("transactional.frequency", Pass),
            ("marketing.quiet_hours", Skip),
            ("send_rate.per_page", Pass),
        ]
    );
    assert!(
        d.trace.iter().all(|s| matches!(s.detail, Cow::Borrowed(_))),
        "the allow path inside the window uses static details: {:?}",
        d.trace
    );
    let json = serde_json::to_value(&d).expect("serialises");
    assert_eq!(json["outcome"], "allow");
    assert_eq!(json["messaging_type"], "UPDATE");
    assert!(
        json.get("via").is_none(),
        "via is left out for plain recipients"
    );
    assert_eq!(json["trace"][0]["result"], "pass");
}

#[test]
fn utility_parameters_come_from_the_order_and_the_shipment() {
    let p = policy();
    let mut f = Facts::unknown(t(NOW), Role::Backend);
    let mut m = message(Category::Receipt, receipt());
    long_ago(&mut f, &mut m);
    let d = evaluate(&p, &m, &f);
    let tpl = d.utility_template.expect("a template");
    assert_eq!(tpl.name, "herald_order_receipt");
    assert_eq!(tpl.language, "en_US");
    assert_eq!(tpl.parameters, ["Grace Hopper", "A-7", "19.90", "USD"]);

    let mut m = message(Category::ShippingUpdate, shipment());
    long_ago(&mut f, &mut m);
    let d = evaluate(&p, &m, &f);
    let tpl = d.utility_template.expect("a template");
    assert_eq!(
        tpl.parameters,
        ["A-7", "has been delivered", "-"],
        "no tracking number: the placeholder"
    );

    // Before the retirement the tag is used and no template is attached.
    f.now = t("2026-04-01T12:00:00Z");
    f.last_user_interaction_at = Some(f.now - h(72));
    let d = evaluate(&p, &m, &f);
    assert_eq!(d.utility_template, None);
    assert_eq!(d.tag, Some(Tag::PostPurchaseUpdate));
}

#[test]
fn a_client_template_is_used_for_free_form_content_but_never_replaces_the_order_template() {
    let p = policy();
    let mut f = Facts::unknown(t(NOW), Role::Backend);
    let client = UtilityTemplate {
        name: "mine".into(),
        language: "fr_FR".into(),
        parameters: vec!["x".into()],
    };
    let mut m = message(Category::EventUpdate, text());
    long_ago(&mut f, &mut m);
    m.utility_template = Some(client.clone());
    let d = evaluate(&p, &m, &f);
    assert_eq!(
        d.utility_template.as_ref(),
        Some(&client),
        "free-form event update"
    );

    let mut m = message(Category::Receipt, receipt());
    m.utility_template = Some(client);
    let d = evaluate(&p, &m, &f);
    assert_eq!(
        d.utility_template.map(|t| t.name).as_deref(),
        Some("herald_order_receipt"),
        "a structured receipt fills the policy's template"
    );
}

#[test]
fn user_ref_recipients_get_a_window_from_their_checkbox_opt_in() {
    let p = policy();
    let mut f = Facts::unknown(t(NOW), Role::Backend);
    f.transactional_consent = true;
    f.user_ref_optin_at = Some(f.now - h(2));
    let mut m = message(Category::Response, text());
    m.recipient = Recipient::UserRef("ref-1".into());
    let d = evaluate(&p, &m, &f);
    assert_eq!(d.outcome, Outcome::Allow, "{:?}", d.trace);
    assert_eq!(d.trace[5].rule, "policies/default.toml#window.user_ref");

    f.user_ref_optin_at = Some(f.now - h(24));
    let d = evaluate(&p, &m, &f);
    assert_eq!(
        d.reason,
        Reason::OutsideWindow,
        "the opt-in window lasts 24h"
    );

    m.recipient = Recipient::Psid(Psid::parse("42").expect("psid"));
    f.user_ref_optin_at = Some(f.now - h(2));
    let d = evaluate(&p, &m, &f);
    assert_eq!(
        d.reason,
        Reason::OutsideWindow,
        "a PSID recipient's window needs a message"
    );
}

#[test]
fn sends_in_the_future_or_of_other_categories_do_not_count() {
    let p = policy();
    let mut f = Facts::unknown(t(NOW), Role::Marketer);
    let mut m = message(Category::Marketing, text());
    marketing_recently(&mut f, &mut m);
    f.recent_sends = vec![
        RecentSend {
            at: f.now + h(1),
            category: Category::Marketing,
        },
        RecentSend {
            at: f.now - h(1),
            category: Category::Receipt,
        },
        RecentSend {
            at: f.now - h(48),
            category: Category::Marketing,
        },
    ];
    let d = evaluate(&p, &m, &f);
    assert_eq!(d.outcome, Outcome::Allow, "{:?}", d.trace);
}

fn custom(replace: &[(&str, &str)]) -> PolicySet {
    let mut text = DEFAULT.to_owned();
    for (from, to) in replace {
        assert!(
            text.contains(from),
            "the default policy no longer has {from:?}"
        );
        text = text.replace(from, to);
    }
    PolicySet::from_sources(&[("default.toml", &text)]).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_full_frequency_period_reopens_when_its_oldest_counted_send_leaves_it() {
    let p = custom(&[(
        "max           = 1\nper           = \"48h\"",
        "max           = 3\nper           = \"10h\"",
    )]);
    let mut f = Facts::unknown(t(NOW), Role::Marketer);
    let mut m = message(Category::Marketing, text());
    marketing_recently(&mut f, &mut m);
    f.recent_sends = [1, 4, 6, 9]
        .into_iter()
        .map(|n| RecentSend {
            at: f.now - h(n),
            category: Category::Marketing,
        })
        .collect();
    let d = evaluate(&p, &m, &f);
    assert_eq!(d.outcome, Outcome::Defer);
    // Newest first: -1h, -4h, -6h, -9h. With -6h gone (at +4h) only two remain.
    assert_eq!(d.not_before, Some(f.now + h(4)));
}

#[test]
fn quiet_hours_may_wrap_midnight() {
    let p = custom(&[(
        "send_from           = \"08:00\"\nsend_until          = \"21:00\"",
        "send_from           = \"22:00\"\nsend_until          = \"06:00\"",
    )]);
    let mut f = Facts::unknown(t("2026-05-04T23:30:00Z"), Role::Marketer);
    let mut m = message(Category::Marketing, text());
    marketing_recently(&mut f, &mut m);
    assert_eq!(
        evaluate(&p, &m, &f).outcome,
        Outcome::Allow,
        "23:30 is inside 22:00–06:00"
    );
    f.now = t("2026-05-04T12:00:00Z");
    f.last_user_interaction_at = Some(f.now - h(1));
    let d = evaluate(&p, &m, &f);
    assert_eq!(d.reason, Reason::QuietHours);
    assert_eq!(
        d.not_before,
        Some(t("2026-05-04T22:00:00Z")),
        "waits until 22:00 the same day"
    );
}

#[test]
fn the_accessors_read_the_default_policy() {
    let p = policy();
    assert_eq!(p.standard_window(), h(24));
    assert_eq!(p.user_ref_window(), h(24));
    assert_eq!(p.human_agent_window(), Duration::days(7));
    assert_eq!(p.page_rate_per_second(), 300);
    assert_eq!(p.longest_frequency_window(), h(48));
    assert_eq!(p.files(), ["default.toml"]);
    assert_eq!(p.version().len(), 64);
    let s = p.summary();
    assert_eq!(s["version"], p.version());
    let ids: Vec<&str> = s["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    for id in [
        "roles.backend",
        "consent.marketing",
        "receipt.outside_window",
        "marketing.token_regions",
        "marketing.frequency",
        "send_rate.per_page",
    ] {
        assert!(
            ids.contains(&format!("policies/default.toml#{id}").as_str()),
            "summary lacks {id}"
        );
    }
    let receipt = s["rules"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|r| r["id"] == "policies/default.toml#receipt.outside_window")
        })
        .expect("receipt rule");
    assert_eq!(receipt["dated"][0]["until"], "2026-04-27T00:00:00Z");
    assert_eq!(receipt["dated"][1]["from"], "2026-04-27T00:00:00Z");
}

#[test]
fn stop_keywords_match_whole_messages_only() {
    let p = policy();
    for yes in [
        "STOP",
        "stop",
        " Stop! ",
        "stop   all",
        "Unsubscribe",
        "STOPP",
        "стоп",
        "СТОП",
        "ARRÊT",
        "arret",
        "baja",
        "配信停止",
    ] {
        assert!(p.is_stop_keyword(yes), "{yes:?} is a stop keyword");
    }
    for no in [
        "",
        "stop my order please",
        "don't stop",
        "stopping",
        "START",
        &"stop ".repeat(200),
    ] {
        assert!(!p.is_stop_keyword(no), "{no:?} is not a stop keyword");
    }
    assert!(p.is_resume_keyword("start"));
    assert!(!p.is_resume_keyword("stop"));
    assert_eq!(
        p.stop_keyword_rule("Stopp"),
        Some("policies/default.toml#stop_keywords.de")
    );
}

#[test]
fn the_version_covers_names_and_bytes() {
    let a = PolicySet::from_sources(&[("default.toml", DEFAULT)]).expect("loads");
    let b = PolicySet::from_sources(&[("default.toml", DEFAULT)]).expect("loads");
    assert_eq!(a.version(), b.version(), "same files, same version");
    let edited = format!("{DEFAULT}\n# a comment\n");
    let c = PolicySet::from_sources(&[("default.toml", &edited)]).expect("loads");
    assert_ne!(a.version(), c.version(), "any edit changes the version");
    let d = PolicySet::from_sources(&[("main.toml", DEFAULT)]).expect("loads");
    assert_ne!(a.version(), d.version(), "a rename changes the version");
    assert!(d.summary()["rules"][0]["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("policies/main.toml#")));
}

// ---- the loader -------------------------------------------------------------------------------

fn errors_of(files: &[(&str, &str)]) -> Vec<String> {
    match PolicySet::from_sources(files) {
        Ok(_) => panic!("expected the policy to be refused"),
        Err(e) => {
            let lines: Vec<String> = e.errors().iter().map(ToString::to_string).collect();
            assert_eq!(
                e.to_string(),
                lines.join("\n"),
                "Display is one error per line"
            );
            lines
        }
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the policy"))
}

/// `line:column` (1-based, the column in characters) of the first occurrence of `needle`.
fn at(text: &str, needle: &str) -> String {
    let line = line_of(text, needle);
    let column = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.find(needle).map(|i| l[..i].chars().count() + 1))
        .unwrap_or_default();
    format!("{line}:{column}")
}

fn broken(from: &str, to: &str) -> String {
    assert!(
        DEFAULT.contains(from),
        "the default policy no longer has {from:?}"
    );
    DEFAULT.replacen(from, to, 1)
}

#[test]
fn an_unknown_key_is_reported_with_its_file_and_line() {
    let text = broken(
        "human_agent = \"7d\"",
        "human_agent = \"7d\"\nhuman_agnet = \"8d\"",
    );
    let errors = errors_of(&[("default.toml", &text)]);
    let line = at(&text, "human_agnet");
    assert_eq!(
        errors,
        [format!("policies/default.toml:{line}: unknown key `human_agnet` in [window]; expected one of: standard, user_ref, human_agent")]
    );
}

#[test]
fn a_bad_date_is_reported_with_its_line() {
    let text = broken("from    = 2026-02-10", "from    = \"2026-02-30\"");
    let errors = errors_of(&[("default.toml", &text)]);
    let line = at(&text, "\"2026-02-30\"");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with(&format!(
            "policies/default.toml:{line}: `from`: \"2026-02-30\" is not a date"
        )),
        "{errors:#?}"
    );

    let text = broken("from    = 2026-02-10", "from    = 2026-02-30");
    let errors = errors_of(&[("default.toml", &text)]);
    let line = at(&text, "2026-02-30");
    assert_eq!(
        errors.len(),
        1,
        "a syntax error is one error, not a cascade: {errors:#?}"
    );
    assert!(
        errors[0].starts_with(&format!("policies/default.toml:{line}: ")),
        "{errors:#?}"
    );
}

#[test]
fn an_unknown_tag_is_reported_with_its_line() {
    let text = broken(
        "tag            = \"ACCOUNT_UPDATE\"",
        "tag            = \"ACCOUNT_UPDATES\"",
    );
    let errors = errors_of(&[("default.toml", &text)]);
    let line = at(&text, "\"ACCOUNT_UPDATES\"");
    assert_eq!(
        errors,
        [format!("policies/default.toml:{line}: `tag`: unknown message tag `ACCOUNT_UPDATES`; expected one of: HUMAN_AGENT, POST_PURCHASE_UPDATE, ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE")]
    );
}

#[test]
fn every_problem_of_a_file_is_reported_at_once() {
    let mut text = broken(
        "marketer = [\"marketing\"]",
        "marketer = [\"marketing\", \"newsletter\"]",
    );
    for (from, to) in [
        (
            "inside_window  = \"RESPONSE\"\n# A reply",
            "inside_window  = \"RESPONSES\"\n# A reply",
        ),
        (
            "send_until          = \"21:00\"",
            "send_until          = \"25:00\"",
        ),
        (
            "timezone_if_unknown = \"UTC\"",
            "timezone_if_unknown = \"Mars/Olympus\"",
        ),
        ("\n[send_rate]\n", "\n[send_rates]\n"),
        ("max           = 20", "max           = 0"),
    ] {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    let errors = errors_of(&[("default.toml", &text)]);
    let expect = [
        (
            line_of(&text, "newsletter"),
            "unknown category \"newsletter\"",
        ),
        (
            line_of(&text, "RESPONSES"),
            "unknown messaging type `RESPONSES`",
        ),
        (
            line_of(&text, "max           = 0"),
            "`max` must be between 1 and 1000000",
        ),
        (line_of(&text, "25:00"), "`25:00` is not a time of day"),
        (line_of(&text, "Mars/Olympus"), "not an IANA time zone"),
        (
            line_of(&text, "[send_rates]"),
            "unknown section [send_rates]",
        ),
    ];
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
    for ((line, words), got) in expect.iter().zip(&errors) {
        assert!(
            got.starts_with(&format!("policies/default.toml:{line}:")) && got.contains(words),
            "expected line {line} with {words:?}, got {got:?}"
        );
    }
}

#[test]
fn dated_rules_must_neither_overlap_nor_leave_gaps() {
    let text = broken(
        "from     = 2025-09-01\ncooldown = \"48h\"",
        "from     = 2025-08-01\ncooldown = \"48h\"",
    );
    let errors = errors_of(&[("default.toml", &text)]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("overlaps"), "{errors:#?}");

    let text = broken(
        "from     = 2025-09-01\ncooldown = \"48h\"",
        "from     = 2025-10-01\ncooldown = \"48h\"",
    );
    let errors = errors_of(&[("default.toml", &text)]);
    assert!(
        errors[0].contains("nothing is in force from 2025-09-01 until 2025-10-01"),
        "{errors:#?}"
    );

    let text = broken(
        "until    = 2025-09-01\ncooldown = \"24h\"",
        "from     = 2025-01-01\nuntil    = 2025-09-01\ncooldown = \"24h\"",
    );
    let errors = errors_of(&[("default.toml", &text)]);
    assert!(
        errors[0].contains("says nothing about the time before 2025-01-01"),
        "{errors:#?}"
    );
}

#[test]
fn a_route_may_not_use_a_tag_after_messenger_retires_it() {
    let text = broken(
        "until          = 2026-04-27\nmessaging_type = \"MESSAGE_TAG\"\ntag            = \"CONFIRMED_EVENT_UPDATE\"",
        "until          = 2026-05-27\nmessaging_type = \"MESSAGE_TAG\"\ntag            = \"CONFIRMED_EVENT_UPDATE\"",
    );
    let text = text.replacen(
        "[[event_update.outside_window]]\nfrom           = 2026-04-27",
        "[[event_update.outside_window]]\nfrom           = 2026-05-27",
        1,
    );
    let errors = errors_of(&[("default.toml", &text)]);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("Messenger retires that tag on 2026-04-27"),
        "{errors:#?}"
    );
}

#[test]
fn rules_that_contradict_messenger_are_refused() {
    for (from, to, words) in [
        ("outside_window = { messaging_type = \"MESSAGE_TAG\", tag = \"HUMAN_AGENT\" }", "outside_window = { messaging_type = \"UPDATE\" }", "outside the window a message goes as MESSAGE_TAG or UTILITY"),
        ("outside_window = \"marketing_token\"", "outside_window = { messaging_type = \"MESSAGE_TAG\", tag = \"POST_PURCHASE_UPDATE\" }", "message tags may never carry marketing"),
        ("compliance = []", "compliance = [\"response\"]", "the compliance role reads and verifies"),
        ("marketing       = \"marketing\"", "marketing       = \"transactional\"", "must require the marketing scope"),
        ("human_agent = \"7d\"", "human_agent = \"1h\"", "shorter than the standard window"),
        ("send_from           = \"08:00\"", "send_from           = \"21:00\"", "leaves no hours to send in"),
        ("[account_update]\ninside_window = \"UPDATE\"", "[account_update]\ninside_window = \"UPDATE\"\n\n[[account_update.outside_window]]\nmessaging_type = \"MESSAGE_TAG\"\ntag = \"HUMAN_AGENT\"", "HUMAN_AGENT is for replies a person types"),
        ("[[receipt.outside_window]]\nfrom           = 2026-04-27\nmessaging_type = \"UTILITY\"", "[[receipt.outside_window]]\nfrom           = 2026-04-27\nvia = \"marketing_token\"", "Marketing Messages tokens carry marketing only"),
    ] {
        let text = broken(from, to);
        let errors = errors_of(&[("default.toml", &text)]);
        assert!(errors.iter().any(|e| e.contains(words)), "{words:?} not in {errors:#?}");
    }
    let text = broken(
        "parameters = [\"recipient_name\", \"order_number\", \"total_cost\", \"currency\"]",
        "parameters = [\"recipient_name\", \"tracking_number\"]",
    );
    let errors = errors_of(&[("default.toml", &text)]);
    assert!(
        errors[0].contains("a receipt has no field `tracking_number`"),
        "{errors:#?}"
    );
}

#[test]
fn a_rule_is_defined_once_across_files_and_the_files_must_cover_every_rule() {
    let extra = "[marketing.quiet_hours]\nsend_from = \"09:00\"\nsend_until = \"20:00\"\n";
    let errors = errors_of(&[("default.toml", DEFAULT), ("extra.toml", extra)]);
    let first = line_of(DEFAULT, "[marketing.quiet_hours]");
    assert_eq!(
        errors,
        [format!("policies/extra.toml:1:12: `marketing.quiet_hours` is already defined at policies/default.toml:{first}; each rule is defined once across the policy files")]
    );

    // Split the default policy in two: the quiet hours move to their own file.
    let start = DEFAULT.find("[marketing.quiet_hours]").expect("section");
    let end = DEFAULT[start..]
        .find("\n\n")
        .map(|i| start + i)
        .expect("section end");
    let (rest, moved) = (
        format!("{}{}", &DEFAULT[..start], &DEFAULT[end..]),
        &DEFAULT[start..end],
    );
    let split = PolicySet::from_sources(&[("default.toml", &rest), ("quiet.toml", moved)])
        .expect("two files load");
    assert!(split.summary()["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .any(|r| r["id"] == "policies/quiet.toml#marketing.quiet_hours"));

    let errors = errors_of(&[("default.toml", "[send_rate]\nper_page = 300\n")]);
    assert!(
        errors
            .iter()
            .all(|e| e.starts_with("policies: no policy file defines")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("`roles.backend`")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`receipt.outside_window`")),
        "{errors:#?}"
    );
}

#[test]
fn load_dir_reads_only_the_toml_files_directly_in_the_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("default.toml"), DEFAULT).expect("write");
    std::fs::write(dir.path().join("README.md"), "not a policy").expect("write");
    std::fs::create_dir(dir.path().join("tests")).expect("mkdir");
    std::fs::write(dir.path().join("tests/broken.toml"), "this is not toml").expect("write");
    let p = PolicySet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.version(),
        policy().version(),
        "same name and bytes, same version"
    );

    std::fs::write(dir.path().join("z.toml"), "[window]\nstandard = \"1d\"\n").expect("write");
    let e = PolicySet::load_dir(dir.path()).expect_err("duplicate");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}:2:1: `window.standard` is already defined at",
            dir.path().join("z.toml").display()
        )),
        "{shown}"
    );

    let empty = tempfile::tempdir().expect("temp dir");
    let e = PolicySet::load_dir(empty.path()).expect_err("no files");
    assert!(e.to_string().contains("holds no *.toml policy file"), "{e}");
}

// ---- the shipped policy and its tests ----------------------------------------------------------

#[test]
fn the_shipped_policy_loads_and_its_tests_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let p = PolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("policies/ does not load:\n{e}"));
    let report = run_policy_tests(&p, &dir.join("tests")).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.all_passed(), "{report}");
    assert!(
        report.total() >= 60,
        "the shipped suite has {} cases",
        report.total()
    );
}

#[test]
fn the_test_runner_reports_what_differs() {
    let p = policy();
    let cases = r#"
[[case]]
name = "wrong on purpose"
now = 2026-05-04T12:00:00Z
category = "receipt"
content = "receipt"
consents = ["transactional"]
last_user_interaction = "-3d"
expect = { outcome = "allow", tag = "POST_PURCHASE_UPDATE", not_before = "none" }

[[case]]
name = "right"
now = 2026-05-04T12:00:00Z
category = "response"
expect = { outcome = "deny", reason = "no_consent", rule = "consent.response" }
"#;
    let report = run_text(&p, "t.toml", cases).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.passed.len(), 1);
    let f = &report.failed[0];
    assert_eq!(
        (f.file.as_str(), f.line, f.name.as_str()),
        ("t.toml", Some(2), "wrong on purpose")
    );
    assert_eq!(f.expected, "tag=POST_PURCHASE_UPDATE");
    assert!(
        f.got
            .starts_with("tag=none  (allow ok by policies/default.toml#receipt.outside_window)"),
        "{}",
        f.got
    );
    let shown = report.to_string();
    assert!(
        shown.contains("FAIL  t.toml:2  wrong on purpose"),
        "{shown}"
    );
    assert!(shown.ends_with("2 cases: 1 passed, 1 failed"), "{shown}");

    let bad = "[[case]]\nname = \"x\"\nnow = 2026-05-04T12:00:00Z\ncategory = \"receipt\"\nlast_user_interaction = \"3 days ago\"\nexpect = { outcome = \"maybe\" }\n";
    let e = run_text(&p, "t.toml", bad).expect_err("bad case file");
    let lines: Vec<String> = e.errors().iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with("t.toml:5:25: `last_user_interaction`"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("t.toml:6:22: `expect.outcome`: `maybe`"),
        "{lines:#?}"
    );
}

#[test]
fn a_case_file_is_refused_with_the_policy_readers_messages_and_places() {
    let p = policy();
    let bad = "[[case]]\nname = \"x\"\nnow = 2026-05-04T12:00:00Z\ncategory = \"receipt\"\nrecent_sends = [{ at = \"-1h\", category = \"receipt\", every = \"soon\" }]\nexpect = { outcome = \"allow\", tag = \"ACCOUNT_UPDATES\" }\n";
    let column = |needle: &str| {
        let line = bad
            .lines()
            .find(|l| l.contains(needle))
            .expect("in the text");
        line.find(needle).expect("in its line") + 1
    };
    let e = run_text(&p, "t.toml", bad).expect_err("bad case file");
    let lines: Vec<String> = e.errors().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!("t.toml:5:{}: `every`: `soon` is not a duration; write a number and a unit (s, m, h, d, w), e.g. \"24h\", \"7d\" or \"1h30m\"", column("\"soon\"")),
            format!("t.toml:6:{}: `expect.tag`: unknown message tag `ACCOUNT_UPDATES`; expected one of: HUMAN_AGENT, POST_PURCHASE_UPDATE, ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE", column("\"ACCOUNT_UPDATES\"")),
        ]
    );
}

#[test]
fn the_email_fallback_allows_transactional_categories_with_consent_and_an_address_only() {
    let p = policy();
    let mut f = Facts::unknown(t("2026-11-30T10:00:00Z"), Role::Backend);
    f.transactional_consent = true;
    let refused = FallbackCause::Refused("unreachable: 551".into());
    let d = evaluate_fallback(&p, Category::Receipt, &f, true, &refused);
    assert_eq!((d.outcome, d.reason), (Outcome::Allow, Reason::Ok));
    assert_eq!(d.rule, "policies/default.toml#fallback.email");
    assert!(
        d.trace.last().is_some_and(|s| s
            .detail
            .contains("Messenger cannot take it: unreachable: 551")),
        "{:?}",
        d.trace
    );
    let outage = FallbackCause::Outage {
        since: t("2026-11-30T09:45:00Z"),
    };
    let d = evaluate_fallback(&p, Category::ShippingUpdate, &f, true, &outage);
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.rule, "policies/default.toml#fallback.outage_after");

    let denied = |cat, facts: &Facts, address| {
        let d = evaluate_fallback(&p, cat, facts, address, &refused);
        assert_eq!(d.outcome, Outcome::Deny);
        let last = d.trace.last().map(|s| s.detail.to_string());
        (d.reason, last.unwrap_or_default())
    };
    let (reason, why) = denied(Category::Marketing, &f, true);
    assert_eq!(reason, Reason::NotForEmail);
    assert_eq!(why, "marketing never goes by email");
    assert_eq!(denied(Category::Response, &f, true).0, Reason::NotForEmail);
    assert_eq!(
        denied(Category::Receipt, &f, false).0,
        Reason::NoEmailAddress
    );
    let mut opted_out = f.clone();
    opted_out.transactional_opted_out = true;
    assert_eq!(
        denied(Category::Receipt, &opted_out, true).0,
        Reason::OptedOut
    );
    let none = Facts::unknown(f.now, Role::Backend);
    assert_eq!(denied(Category::Receipt, &none, true).0, Reason::NoConsent);
}

#[test]
fn a_fallback_section_that_lists_marketing_or_a_short_outage_is_refused() {
    let with = |fallback: &str| {
        let text = DEFAULT.replace(
            "[fallback]\nemail        = [\"receipt\", \"shipping_update\", \"account_update\"]\noutage_after = \"10m\"",
            fallback,
        );
        assert_ne!(text, DEFAULT, "the default policy's [fallback] was found");
        PolicySet::from_sources(&[("default.toml", &text)])
    };
    let errors = with("[fallback]\nemail = [\"receipt\", \"marketing\"]")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(errors.contains("marketing never goes by email"), "{errors}");
    let errors = with("[fallback]\noutage_after = \"0s\"")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(errors.contains("fallback.outage_after"), "{errors}");
    let without = with("").expect("[fallback] is optional");
    assert!(!without.may_go_by_email(Category::Receipt));
    assert_eq!(without.outage_after(), Duration::minutes(10));
    let set = policy();
    assert!(set.may_go_by_email(Category::AccountUpdate));
    assert!(!set.may_go_by_email(Category::EventUpdate));
}
