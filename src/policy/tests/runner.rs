//! The shipped `policies/` directory and its test cases, and the test-case runner's reports
//! and refusals.

use super::*;

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
