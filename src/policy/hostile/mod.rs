//! Hostile policy files and far-off facts: whatever a policy or policy-test file says, the reader
//! answers with errors that name their line, and whatever date the facts hold, the engine
//! decides without panicking.
//!
//! This file holds the cases written out; `props.rs` the property tests.

mod props;

use std::sync::LazyLock;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use serde_json::json;

use super::testing::run_text;
use super::{read, *};
use crate::domain::{Category, Content, OutboundMessage, Psid, Recipient, Role};

const DEFAULT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/default.toml"
));

const DEFAULT_TESTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/tests/default.toml"
));

/// The errors of a policy made of `default.toml` with `from` replaced by `to` (once).
fn errors_with(from: &str, to: &str) -> (String, Vec<PolicyError>) {
    assert!(DEFAULT.contains(from), "the default policy has {from:?}");
    let text = DEFAULT.replacen(from, to, 1);
    match PolicySet::from_sources(&[("default.toml", &text)]) {
        Ok(_) => panic!("expected {to:?} to be refused"),
        Err(e) => (text, e.into_iter().collect()),
    }
}

/// The 1-based line of the first occurrence of `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).expect("needle in text");
    text[..at].matches('\n').count() + 1
}

#[test]
fn a_multibyte_character_in_a_date_is_an_error_on_its_line_not_a_panic() {
    let (text, errors) = errors_with("until          = 2026-04-27", "until = \"2026-04-2ä7\"");
    let line = line_of(&text, "2026-04-2ä7");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].line, Some(line), "{errors:#?}");
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("policies/default.toml:{line}:9: `until`:")),
        "{errors:#?}"
    );

    // The same slice once served the "no time zone offset" hint: a character across byte 10.
    for text in [
        "2026-04-2ä",
        "2026-04-27ä",
        "€€€€€€€€",
        "2026-04-27T09:00:00",
    ] {
        assert!(read::parse_moment(text).is_err(), "{text}");
    }
}

#[test]
fn every_duration_and_date_of_a_policy_is_bounded_and_a_refusal_names_the_key_and_line() {
    let cases = [
        (
            "standard    = \"24h\"",
            "standard    = \"31d\"",
            "`window.standard`",
        ),
        (
            "user_ref    = \"24h\"",
            "user_ref    = \"9999w\"",
            "`window.user_ref`",
        ),
        (
            "human_agent = \"7d\"",
            "human_agent = \"30d1s\"",
            "`window.human_agent`",
        ),
        ("cooldown = \"48h\"", "cooldown = \"367d\"", "`cooldown`"),
        (
            "per           = \"48h\"",
            "per           = \"99999999999d\"",
            "`marketing.frequency.per`",
        ),
        (
            "per           = \"1h\"",
            "per           = \"53w\"",
            "`transactional.frequency.per`",
        ),
        ("from    = 2026-02-10", "from    = 1999-12-31", "`from`"),
        (
            "until          = 2026-04-27",
            "until          = \"0999-01-01\"",
            "`until`",
        ),
        (
            "POST_PURCHASE_UPDATE   = 2026-04-27",
            // Midnight UTC on 10000-01-01: past the last year a policy may name.
            "POST_PURCHASE_UPDATE   = 9999-12-31T23:00:00-01:00",
            "`tag_retirements.POST_PURCHASE_UPDATE`",
        ),
    ];
    for (from, to, key) in cases {
        let (text, errors) = errors_with(from, to);
        let value = to.split_once('=').expect("key = value").1.trim();
        let line = line_of(&text, value);
        assert!(
            errors
                .iter()
                .any(|e| e.line == Some(line) && e.message.starts_with(key)),
            "{to}: {errors:#?}"
        );
        assert!(errors.iter().all(|e| e.line.is_some()), "{to}: {errors:#?}");
    }

    // The largest values allowed still load.
    let text = DEFAULT
        .replacen("human_agent = \"7d\"", "human_agent = \"30d\"", 1)
        .replacen("per           = \"48h\"", "per           = \"366d\"", 1)
        .replacen("cooldown = \"48h\"", "cooldown = \"366d\"", 1);
    let policy = PolicySet::from_sources(&[("default.toml", &text)]).expect("at the bounds");
    assert_eq!(policy.longest_frequency_window(), Duration::days(366));
}

#[test]
fn policy_test_files_bound_their_relative_times_too() {
    let policy = PolicySet::from_sources(&[("default.toml", DEFAULT)]).expect("default");
    let case = |extra: &str| {
        let now = if extra.starts_with("now") {
            ""
        } else {
            "now = 2026-06-01T12:00:00Z\n"
        };
        format!(
            "[[case]]\nname = \"far\"\n{now}category = \"response\"\n{extra}\n[case.expect]\noutcome = \"deny\"\n"
        )
    };
    for (extra, key) in [
        ("last_user_interaction = \"-99999999999d\"", "`last_user_interaction`"),
        ("at = \"+999999w\"", "`at`"),
        (
            "recent_sends = [{ at = \"-1h\", category = \"response\", repeat = 10000, every = \"999999w\" }]",
            "`every`",
        ),
        ("now = 1970-01-01T00:00:00Z", "`now`"),
    ] {
        let text = case(extra);
        let errors = match run_text(&policy, "tests/far.toml", &text) {
            Ok(report) => panic!("{extra} was accepted: {report}"),
            Err(e) => e,
        };
        let line = line_of(&text, extra);
        assert!(
            errors
                .errors()
                .iter()
                .any(|e| e.line == Some(line) && e.message.starts_with(key)),
            "{extra}: {errors}"
        );
    }
}

/// Every date of the facts at `far`, and the decision taken at `now`.
fn far_facts(now: DateTime<Utc>, far: DateTime<Utc>, tz: Option<Tz>) -> Facts {
    let mut f = Facts::unknown(now, Role::Admin);
    f.transactional_consent = true;
    f.marketing_consent = true;
    f.last_user_interaction_at = Some(far);
    f.user_ref_optin_at = Some(far);
    f.marketing_token = Some(MarketingToken {
        stopped: false,
        last_sent_at: Some(far),
    });
    f.page_region = Some("EU".to_owned());
    f.timezone = tz;
    f.recent_sends = Category::ALL
        .into_iter()
        .flat_map(|category| (0..25).map(move |_| RecentSend { at: far, category }))
        .collect();
    f
}

#[test]
fn the_engine_decides_without_panicking_whatever_dates_the_facts_hold() {
    let policy = PolicySet::from_sources(&[("default.toml", DEFAULT)]).expect("default");
    let (max, min) = (DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC);
    let normal = DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let zones = [
        None,
        Some(Tz::UTC),
        Some(Tz::Pacific__Kiritimati), // +14:00: the local date runs past chrono's last day
        Some(Tz::Pacific__Pago_Pago),  // -11:00: and before its first
    ];
    let recipients = [
        Recipient::Psid(Psid::parse("42").expect("psid")),
        Recipient::UserRef("ref-1".to_owned()),
    ];
    let mut decided = 0;
    for now in [normal, max, min] {
        for far in [max, min] {
            for tz in zones {
                for recipient in &recipients {
                    for category in Category::ALL {
                        let message = OutboundMessage {
                            page_id: None,
                            recipient: recipient.clone(),
                            category,
                            content: Content::Message(json!({"text": "hello"})),
                            utility_template: None,
                            send_at: None,
                            expires_at: None,
                            respect_quiet_hours: true,
                        };
                        let d = evaluate(&policy, &message, &far_facts(now, far, tz));
                        decided += 1;
                        let what = format!("{category} at {now} with facts at {far} ({tz:?})");
                        if let Some(nb) = d.not_before {
                            assert!(nb >= now, "{what}: deferred into the past: {d:?}");
                        }
                        assert_eq!(
                            d.outcome == Outcome::Defer,
                            d.not_before.is_some(),
                            "{what}"
                        );
                        assert!(!d.trace.is_empty(), "{what}");
                    }
                }
            }
        }
    }
    assert_eq!(decided, 3 * 2 * 4 * 2 * 7);

    // What the far dates mean, at a normal moment: a user who last wrote at the beginning of
    // time is outside the window; one whose last message is dated at its end is inside it.
    let reply = OutboundMessage {
        page_id: None,
        recipient: recipients[0].clone(),
        category: Category::Response,
        content: Content::Message(json!({"text": "hello"})),
        utility_template: None,
        send_at: None,
        expires_at: None,
        respect_quiet_hours: true,
    };
    let d = evaluate(&policy, &reply, &far_facts(normal, min, None));
    assert_eq!(
        (d.outcome, d.reason),
        (Outcome::Deny, Reason::OutsideWindow)
    );
    let d = evaluate(&policy, &reply, &far_facts(normal, max, None));
    assert_eq!((d.outcome, d.reason), (Outcome::Allow, Reason::Ok));

    // Marketing at the end of time with a full frequency period: deferred to the last moment
    // there is, not overflowed.
    let mut marketing = reply.clone();
    marketing.category = Category::Marketing;
    let d = evaluate(&policy, &marketing, &far_facts(max, max, None));
    assert_eq!(d.outcome, Outcome::Defer, "{d:?}");
    assert_eq!(d.not_before, Some(max), "{d:?}");
}

#[test]
fn the_policy_built_into_the_binary_is_the_policies_directory_byte_for_byte() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut on_disk = Vec::new();
    for sub in ["", "tests/"] {
        for entry in std::fs::read_dir(root.join(sub)).expect("policies") {
            let path = entry.expect("entry").path();
            if path.is_file() && path.extension().is_some_and(|x| x == "toml") {
                let name = path.file_name().expect("name").to_string_lossy();
                let text = std::fs::read_to_string(&path).expect("read");
                on_disk.push((format!("{sub}{name}"), text));
            }
        }
    }
    on_disk.sort();
    let mut built_in: Vec<(String, String)> = DEFAULT_POLICY
        .iter()
        .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
        .collect();
    built_in.sort();
    assert_eq!(built_in, on_disk, "add a new policy file to DEFAULT_POLICY");

    let dir = tempfile::tempdir().expect("dir");
    for (name, text) in DEFAULT_POLICY {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    assert_eq!(
        PolicySet::load_dir(dir.path())
            .expect("written out")
            .version(),
        PolicySet::load_dir(&root).expect("the directory").version(),
        "written out, the built-in policy has the directory's version"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused_naming_the_line_of_its_first_bad_byte() {
    let dir = tempfile::tempdir().expect("dir");
    let mut bytes = b"[window]\nstandard = \"24h\"\nuser_ref = \"".to_vec();
    bytes.extend([0xff, 0xfe]);
    bytes.extend(b"\"\n");
    std::fs::write(dir.path().join("default.toml"), bytes).expect("write");
    let errors = PolicySet::load_dir(dir.path()).expect_err("not UTF-8");
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.errors()[0].line, Some(3), "{errors}");
    assert!(
        errors
            .to_string()
            .ends_with("default.toml:3: is not UTF-8 text"),
        "{errors}"
    );
}

#[test]
fn an_error_names_the_line_and_the_column_of_what_is_wrong() {
    // The third line's value, after "standard   = " (13 characters, one of them two bytes wide
    // in UTF-8 in the comment before it, which must not shift the column).
    let text = "# politesse: é\n[window]\nstandard   = 24\n";
    let errors: Vec<_> = PolicySet::from_sources(&[("default.toml", text)])
        .expect_err("a number is not a duration")
        .into_iter()
        .collect();
    let wrong = errors
        .iter()
        .find(|e| e.message.contains("standard") || e.message.contains("duration"))
        .unwrap_or_else(|| panic!("an error about the window: {errors:#?}"));
    assert_eq!(
        (wrong.line, wrong.column),
        (Some(3), Some(14)),
        "{errors:#?}"
    );
    assert!(wrong.to_string().contains("default.toml:3:14: "), "{wrong}");
    // A syntax error is placed by the parser's own span.
    let broken = PolicySet::from_sources(&[("default.toml", "[window]\nstandard = \n")])
        .expect_err("no value");
    let first = &broken.errors()[0];
    assert_eq!(first.line, Some(2), "{broken}");
    assert!(first.column.is_some_and(|c| c >= 11), "{broken}");
}
