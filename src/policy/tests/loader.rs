//! The loader's error reporting: each problem with its file, line and column, all at once.

use super::*;

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
