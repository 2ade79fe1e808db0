//! Tests of the engine against the default policy (every reason code, every date boundary), of
//! the loader's error reporting, and of the shipped `policies/` directory with its test cases.
//!
//! This file holds the engine's tests and the helpers the others share; `table.rs` the
//! decision table, `loader.rs` the loader's errors, `runner.rs` the shipped policy and the
//! test-case runner, `fallback.rs` the email fallback.

mod fallback;
mod loader;
mod runner;
mod table;

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
