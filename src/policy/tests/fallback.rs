//! The email fallback's rules: which categories may go by email, and what a fallback
//! section may not say.

use super::*;

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
