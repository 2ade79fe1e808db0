use super::*;

#[test]
fn durations_read_as_written() {
    assert_eq!(parse_duration("24h"), Some(Duration::hours(24)));
    assert_eq!(parse_duration("7d"), Some(Duration::days(7)));
    assert_eq!(parse_duration("1h30m"), Some(Duration::minutes(90)));
    assert_eq!(parse_duration("2w"), Some(Duration::weeks(2)));
    assert_eq!(parse_duration("24"), None, "a number without a unit");
    assert_eq!(parse_duration("h"), None, "a unit without a number");
    assert_eq!(parse_duration("3y"), None, "years are not a unit");
    assert_eq!(parse_duration(""), None);
}

#[test]
fn moments_are_dates_at_midnight_utc_or_rfc3339() {
    let d = parse_moment("2026-04-27").expect("date");
    assert_eq!(d.to_rfc3339(), "2026-04-27T00:00:00+00:00");
    let t = parse_moment("2026-04-27T02:00:00+02:00").expect("offset");
    assert_eq!(t, d);
    assert!(parse_moment("2026-04-27T09:00:00").is_err(), "no offset");
    assert!(parse_moment("2026-02-30").is_err(), "no such day");
    assert!(parse_moment("tomorrow").is_err());
}

#[test]
fn language_codes() {
    for ok in ["en", "de", "pt_BR", "zh-Hant", "fil", "en_US"] {
        assert!(is_language_code(ok), "{ok}");
    }
    for bad in ["EN", "e", "english", "en_", "en_USAAA", ""] {
        assert!(!is_language_code(bad), "{bad}");
    }
}
