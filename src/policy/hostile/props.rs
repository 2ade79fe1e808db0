//! Property tests: arbitrary text, and the real policy and test files mutated where they hold
//! dates and durations; every refusal names a line, nothing panics.

use super::*;

/// What a mutation puts into the text: characters of more than one byte, and runs that make
/// dates and durations huge, negative or malformed.
const MULTIBYTE: &[&str] = &["ä", "é", "€", "中", "𝄞", "\u{200b}", "ä7"];
const PIECES: &[&str] = &[
    "\u{0}",
    "0",
    "9",
    "-",
    "+",
    ":",
    "T",
    "Z",
    ".",
    "\"",
    "'",
    "\n",
    "[",
    "]",
    "=",
    "#",
    "{",
    "}",
    ",",
    " ",
    "d",
    "h",
    "w",
    "s",
    "99999999999",
    "9223372036854775807",
    "262143",
    "0000",
    "T25:61:00Z",
    "+99:00",
    "-00:00",
    "1h30",
];

/// One edit: at a byte offset (rounded down to a character), insert or replace a piece.
#[derive(Debug, Clone)]
struct Mutation {
    /// At a digit of a value (a date, a duration), rather than anywhere.
    targeted: bool,
    at: prop::sample::Index,
    replace: bool,
    multibyte: bool,
    piece: prop::sample::Index,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        any::<bool>(),
        any::<prop::sample::Index>(),
        any::<bool>(),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(targeted, at, replace, multibyte, piece)| Mutation {
            targeted,
            at,
            replace,
            multibyte,
            piece,
        })
}

/// The file with its bare dates (`until = 2026-04-27`) written as strings, which the reader
/// takes too: a character inserted into a string reaches the date parser, where in a bare date
/// it is only a TOML syntax error.
fn quoted_dates(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| match line.split_once('=') {
            Some((key, value))
                if !key.trim_start().starts_with('#')
                    && chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").is_ok() =>
            {
                format!("{key}= \"{}\"\n", value.trim())
            }
            _ => line.to_owned(),
        })
        .collect()
}

/// Byte offsets of the digits in the values of a file (not in its comments): where its dates,
/// durations and numbers are.
fn value_digits(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if !line.trim_start().starts_with('#') {
            let code = line.split(" #").next().unwrap_or(line);
            out.extend(
                code.char_indices()
                    .filter(|(_, c)| c.is_ascii_digit())
                    .map(|(i, _)| start + i),
            );
        }
        start += line.len();
    }
    out
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut text = text.to_owned();
    for m in mutations {
        let digits = value_digits(&text);
        let at = if m.targeted && !digits.is_empty() {
            digits[m.at.index(digits.len())]
        } else {
            let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            chars[m
                .at
                .index(chars.len().max(1))
                .min(chars.len().saturating_sub(1))]
        };
        let piece = if m.multibyte {
            MULTIBYTE[m.piece.index(MULTIBYTE.len())]
        } else {
            PIECES[m.piece.index(PIECES.len())]
        };
        let end = if m.replace {
            text[at..].chars().next().map_or(at, |c| at + c.len_utf8())
        } else {
            at
        };
        text.replace_range(at..end, piece);
    }
    text
}

/// Every problem in a file names its line; only problems of the whole set (a rule no file
/// defines) name none, and those name the directory instead.
fn check_errors(errors: &PolicyErrors, file: &str) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty());
    for e in errors.errors() {
        if e.file == file {
            prop_assert!(e.line.is_some(), "no line: {}", e);
        } else {
            prop_assert_eq!(e.file.as_str(), "policies", "{}", e);
            prop_assert!(e.message.starts_with("no policy file defines"), "{}", e);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_policy_or_errors_that_name_their_lines(text in any::<String>()) {
        match PolicySet::from_sources(&[("default.toml", &text)]) {
            Ok(_) => {}
            Err(errors) => check_errors(&errors, "policies/default.toml")?,
        }
    }

    #[test]
    fn the_default_policy_mutated_is_read_or_refused_line_by_line(
        quoted in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let base = if quoted { quoted_dates(DEFAULT) } else { DEFAULT.to_owned() };
        let text = mutate(&base, &mutations);
        match PolicySet::from_sources(&[("default.toml", &text)]) {
            Ok(policy) => {
                // What loads is within bounds, and decides.
                prop_assert!(policy.longest_frequency_window() <= read::FREQUENCY_PER_MAX);
                prop_assert!(policy.human_agent_window() <= read::WINDOW_MAX);
                let now = DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
                    .expect("time")
                    .with_timezone(&Utc);
                for category in Category::ALL {
                    let message = OutboundMessage {
                        page_id: None,
                        recipient: Recipient::Psid(Psid::parse("42").expect("psid")),
                        category,
                        content: Content::Message(json!({"text": "hello"})),
                        utility_template: None,
                        send_at: None,
                        expires_at: None,
                        respect_quiet_hours: true,
                    };
                    evaluate(&policy, &message, &far_facts(now, now, None));
                }
            }
            Err(errors) => check_errors(&errors, "policies/default.toml")?,
        }
    }

}

proptest! {
    // Fewer cases: each runs the eighty-odd cases of the file.
    #![proptest_config(ProptestConfig { cases: 60, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_default_tests_mutated_run_or_are_refused_line_by_line(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        static POLICY: LazyLock<PolicySet> = LazyLock::new(|| {
            PolicySet::from_sources(&[("default.toml", DEFAULT)]).expect("default")
        });
        let text = mutate(DEFAULT_TESTS, &mutations);
        if let Err(errors) = run_text(&POLICY, "tests/default.toml", &text) {
            for e in errors.errors() {
                prop_assert!(e.line.is_some(), "no line: {}", e);
            }
        }
    }
}
