//! Messenger's sending rules as pure functions of the facts and an explicit `now`
//! (MESSENGER.md §2, §3.1). No clock and no state: the Send API handler gathers the facts,
//! these functions decide, and the unit tests below pin every boundary.

use chrono::{DateTime, Duration, Utc};

use super::error::GraphError;

/// The standard messaging window: 24 h after the person's last qualifying action.
pub const STANDARD_WINDOW: Duration = Duration::hours(24);

/// `HUMAN_AGENT` may answer for 7 days after the person's last qualifying action.
pub const HUMAN_AGENT_WINDOW: Duration = Duration::days(7);

/// 2026-04-27T00:00:00Z: from then on the three business tags answer code 100 (§2.2).
pub const RETIRED_TAGS_FROM_UNIX: i64 = 1_777_248_000;

/// 2026-02-10T00:00:00Z: from then on Marketing Messages tokens work only in
/// [`MARKETING_REGIONS`] (§3.1).
pub const MARKETING_REGION_RULE_FROM_UNIX: i64 = 1_770_681_600;

/// 2025-09-01T00:00:00Z: from then on a token allows one send per 48 h instead of 24 h (§3.1).
pub const MARKETING_48H_COOLDOWN_FROM_UNIX: i64 = 1_756_684_800;

/// Regions where Marketing Messages tokens still work after the region rule took effect.
pub const MARKETING_REGIONS: [&str; 5] = ["AU", "EU", "JP", "KR", "UK"];

/// A message tag the Send API knows (`tag`, only with `messaging_type: MESSAGE_TAG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A person answering by hand, up to 7 days after the person's last message.
    HumanAgent,
    /// Retired on 2026-04-27.
    PostPurchaseUpdate,
    /// Retired on 2026-04-27.
    AccountUpdate,
    /// Retired on 2026-04-27.
    ConfirmedEventUpdate,
    /// News Page Index pages only; the sandbox's pages are not in it.
    NonPromotionalSubscription,
}

impl Tag {
    /// Every tag name the Send API accepts, for error messages.
    pub const NAMES: &'static str = "HUMAN_AGENT, POST_PURCHASE_UPDATE, ACCOUNT_UPDATE, \
                                     CONFIRMED_EVENT_UPDATE, NON_PROMOTIONAL_SUBSCRIPTION";

    /// Parses the wire name of a tag.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "HUMAN_AGENT" => Some(Self::HumanAgent),
            "POST_PURCHASE_UPDATE" => Some(Self::PostPurchaseUpdate),
            "ACCOUNT_UPDATE" => Some(Self::AccountUpdate),
            "CONFIRMED_EVENT_UPDATE" => Some(Self::ConfirmedEventUpdate),
            "NON_PROMOTIONAL_SUBSCRIPTION" => Some(Self::NonPromotionalSubscription),
            _ => None,
        }
    }

    /// The wire name of the tag.
    pub fn name(self) -> &'static str {
        match self {
            Self::HumanAgent => "HUMAN_AGENT",
            Self::PostPurchaseUpdate => "POST_PURCHASE_UPDATE",
            Self::AccountUpdate => "ACCOUNT_UPDATE",
            Self::ConfirmedEventUpdate => "CONFIRMED_EVENT_UPDATE",
            Self::NonPromotionalSubscription => "NON_PROMOTIONAL_SUBSCRIPTION",
        }
    }

    /// Whether this is one of the three business tags retired on 2026-04-27.
    pub fn is_retired_business_tag(self) -> bool {
        matches!(
            self,
            Self::PostPurchaseUpdate | Self::AccountUpdate | Self::ConfirmedEventUpdate
        )
    }
}

/// What a send asks of the window, derived from `messaging_type` and `tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `RESPONSE`, `UPDATE`, no `messaging_type`, or a sender action: the standard window.
    Standard,
    /// `MESSAGE_TAG` with this tag.
    Tagged(Tag),
    /// `UTILITY` with an approved template: allowed outside the window.
    Utility,
}

/// Decides whether a send to a person (PSID or checkbox `user_ref`) fits the window.
///
/// `last_interaction` is the timestamp of the person's last qualifying action on this page
/// (message, postback, reaction, referral, or the checkbox opt-in for a `user_ref`); `None`
/// when there never was one. The window is half-open: it closes exactly 24 h (or 7 days)
/// after that timestamp.
pub fn check_window(
    purpose: Purpose,
    last_interaction: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), GraphError> {
    let within = |window: Duration| {
        last_interaction.is_some_and(|at| now < crate::domain::bounds::later(at, window))
    };
    match purpose {
        Purpose::Utility => Ok(()),
        Purpose::Tagged(tag) if tag.is_retired_business_tag() => {
            if now.timestamp() >= RETIRED_TAGS_FROM_UNIX {
                Err(GraphError::invalid_parameter(&format!(
                    "The message tag {} is no longer supported since April 27, 2026. Send a \
                     utility template with messaging_type UTILITY instead.",
                    tag.name()
                )))
            } else if last_interaction.is_some() {
                Ok(())
            } else {
                Err(GraphError::outside_window())
            }
        }
        Purpose::Tagged(Tag::HumanAgent) if within(HUMAN_AGENT_WINDOW) => Ok(()),
        Purpose::Tagged(Tag::NonPromotionalSubscription) if !within(STANDARD_WINDOW) => {
            Err(GraphError::new(
                10,
                Some(2018065),
                "This message is sent outside of allowed window. You need page_messaging_\
                 subscriptions permission to be able to do it.",
            ))
        }
        _ if within(STANDARD_WINDOW) => Ok(()),
        _ => Err(GraphError::outside_window()),
    }
}

/// Whether a page in `region` may still send with Marketing Messages tokens at `now`.
/// Regions compare case-insensitively; a page without a region is not in an allowed one.
pub fn marketing_region_allowed(region: Option<&str>, now: DateTime<Utc>) -> bool {
    now.timestamp() < MARKETING_REGION_RULE_FROM_UNIX
        || region.is_some_and(|region| {
            MARKETING_REGIONS
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(region.trim()))
        })
}

/// The minimum time between two sends on one Marketing Messages token at `now`.
pub fn marketing_cooldown(now: DateTime<Utc>) -> Duration {
    if now.timestamp() >= MARKETING_48H_COOLDOWN_FROM_UNIX {
        Duration::hours(48)
    } else {
        Duration::hours(24)
    }
}

/// What the sandbox knows about a Marketing Messages token when a send uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFacts {
    /// The person tapped "Stop these messages".
    pub stopped: bool,
    /// When the last send on this token was accepted.
    pub last_sent: Option<DateTime<Utc>>,
}

/// Decides whether a send on a valid Marketing Messages token is allowed at `now`:
/// the page's region first, then the person's stop, then the per-token cooldown.
pub fn check_marketing_token(
    token: TokenFacts,
    region: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), GraphError> {
    if !marketing_region_allowed(region, now) {
        return Err(GraphError::new(
            10,
            None,
            "Marketing messages sent with a notification_messages_token are no longer \
             available for this Page's region; since February 10, 2026 they work only for \
             Pages in AU, EU, JP, KR and UK.",
        ));
    }
    if token.stopped {
        return Err(GraphError::new(
            10,
            Some(1893015),
            "This person has stopped notification messages for this topic.",
        ));
    }
    if token
        .last_sent
        .is_some_and(|last| now < last + marketing_cooldown(now))
    {
        return Err(GraphError::new(
            4,
            Some(2018354),
            "The minimum delay between 2 notifications has not passed yet for this \
             notification_messages_token.",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test timestamps are RFC 3339")
            .with_timezone(&Utc)
    }

    fn code(result: Result<(), GraphError>) -> Option<(u32, Option<u32>)> {
        result.err().map(|error| (error.code, error.subcode))
    }

    const OUTSIDE: Option<(u32, Option<u32>)> = Some((10, Some(2018278)));

    #[test]
    fn cut_over_constants_are_the_documented_dates() {
        let cases = [
            (RETIRED_TAGS_FROM_UNIX, "2026-04-27T00:00:00Z"),
            (MARKETING_REGION_RULE_FROM_UNIX, "2026-02-10T00:00:00Z"),
            (MARKETING_48H_COOLDOWN_FROM_UNIX, "2025-09-01T00:00:00Z"),
        ];
        for (constant, date) in cases {
            assert_eq!(constant, at(date).timestamp(), "{date}");
        }
    }

    #[test]
    fn standard_window_closes_exactly_24_hours_after_the_last_interaction() {
        let last = at("2026-11-01T12:00:00Z");
        let cases = [
            ("1 s after", at("2026-11-01T12:00:01Z"), None),
            ("1 s before close", at("2026-11-02T11:59:59Z"), None),
            ("at close", at("2026-11-02T12:00:00Z"), OUTSIDE),
            ("25 h after", at("2026-11-02T13:00:00Z"), OUTSIDE),
            ("event in the future", at("2026-11-01T11:00:00Z"), None),
        ];
        for (case, now, expected) in cases {
            let got = code(check_window(Purpose::Standard, Some(last), now));
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn a_person_who_never_interacted_is_outside_every_window_but_utility() {
        let now = at("2026-11-01T12:00:00Z");
        let closed = [Purpose::Standard, Purpose::Tagged(Tag::HumanAgent)];
        for purpose in closed {
            assert_eq!(
                code(check_window(purpose, None, now)),
                OUTSIDE,
                "{purpose:?}"
            );
        }
        assert_eq!(code(check_window(Purpose::Utility, None, now)), None);
    }

    #[test]
    fn human_agent_answers_for_seven_days() {
        let last = at("2026-11-01T12:00:00Z");
        let cases = [
            ("3 days", at("2026-11-04T12:00:00Z"), None),
            ("1 s before 7 days", at("2026-11-08T11:59:59Z"), None),
            ("exactly 7 days", at("2026-11-08T12:00:00Z"), OUTSIDE),
            ("8 days", at("2026-11-09T12:00:00Z"), OUTSIDE),
        ];
        for (case, now, expected) in cases {
            let got = code(check_window(
                Purpose::Tagged(Tag::HumanAgent),
                Some(last),
                now,
            ));
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn retired_tags_work_outside_the_window_until_2026_04_27_then_answer_100() {
        let tags = [
            Tag::PostPurchaseUpdate,
            Tag::AccountUpdate,
            Tag::ConfirmedEventUpdate,
        ];
        let last = at("2026-01-01T00:00:00Z");
        for tag in tags {
            let purpose = Purpose::Tagged(tag);
            let before = at("2026-04-26T23:59:59Z");
            assert_eq!(
                code(check_window(purpose, Some(last), before)),
                None,
                "{tag:?}"
            );
            let from = at("2026-04-27T00:00:00Z");
            let got = code(check_window(purpose, Some(last), from));
            assert_eq!(got, Some((100, None)), "{tag:?} at the cut-over");
            let inside = Some(at("2026-11-01T11:00:00Z"));
            let got = code(check_window(purpose, inside, at("2026-11-01T12:00:00Z")));
            assert_eq!(got, Some((100, None)), "{tag:?} even inside the window");
        }
    }

    #[test]
    fn utility_is_allowed_long_after_the_window() {
        let last = Some(at("2025-01-01T00:00:00Z"));
        let got = code(check_window(
            Purpose::Utility,
            last,
            at("2026-11-01T00:00:00Z"),
        ));
        assert_eq!(got, None);
    }

    #[test]
    fn non_promotional_subscription_needs_a_permission_outside_the_window() {
        let last = Some(at("2026-11-01T00:00:00Z"));
        let purpose = Purpose::Tagged(Tag::NonPromotionalSubscription);
        let inside = code(check_window(purpose, last, at("2026-11-01T01:00:00Z")));
        assert_eq!(inside, None);
        let outside = code(check_window(purpose, last, at("2026-11-03T00:00:00Z")));
        assert_eq!(outside, Some((10, Some(2018065))));
    }

    #[test]
    fn tag_names_round_trip() {
        let tags = [
            Tag::HumanAgent,
            Tag::PostPurchaseUpdate,
            Tag::AccountUpdate,
            Tag::ConfirmedEventUpdate,
            Tag::NonPromotionalSubscription,
        ];
        for tag in tags {
            assert_eq!(Tag::parse(tag.name()), Some(tag));
            assert!(Tag::NAMES.contains(tag.name()));
        }
        assert_eq!(Tag::parse("SHIPPING_UPDATE"), None);
    }

    #[test]
    fn marketing_regions_are_checked_from_2026_02_10_case_insensitively() {
        let before = at("2026-02-09T23:59:59Z");
        let from = at("2026-02-10T00:00:00Z");
        let cases = [
            (Some("EU"), before, true),
            (Some("US"), before, true),
            (None, before, true),
            (Some("EU"), from, true),
            (Some("uk"), from, true),
            (Some("Jp"), from, true),
            (Some("AU"), from, true),
            (Some("kr"), from, true),
            (Some("US"), from, false),
            (Some("EUROPE"), from, false),
            (None, from, false),
        ];
        for (region, now, allowed) in cases {
            assert_eq!(
                marketing_region_allowed(region, now),
                allowed,
                "{region:?} at {now}"
            );
        }
    }

    #[test]
    fn token_cooldown_is_24_hours_before_2025_09_01_and_48_hours_after() {
        assert_eq!(
            marketing_cooldown(at("2025-08-31T23:59:59Z")),
            Duration::hours(24)
        );
        assert_eq!(
            marketing_cooldown(at("2025-09-01T00:00:00Z")),
            Duration::hours(48)
        );
    }

    #[test]
    fn a_token_allows_one_send_per_48_hours() {
        let last = at("2026-11-01T12:00:00Z");
        let facts = TokenFacts {
            stopped: false,
            last_sent: Some(last),
        };
        let cooldown = Some((4, Some(2018354)));
        let cases = [
            ("1 h later", at("2026-11-01T13:00:00Z"), cooldown),
            ("1 s before 48 h", at("2026-11-03T11:59:59Z"), cooldown),
            ("exactly 48 h", at("2026-11-03T12:00:00Z"), None),
        ];
        for (case, now, expected) in cases {
            let got = code(check_marketing_token(facts, Some("EU"), now));
            assert_eq!(got, expected, "{case}");
        }
        let fresh = TokenFacts {
            stopped: false,
            last_sent: None,
        };
        let now = at("2026-11-01T12:00:00Z");
        assert_eq!(code(check_marketing_token(fresh, Some("EU"), now)), None);
    }

    #[test]
    fn token_checks_region_then_stop_then_cooldown() {
        let now = at("2026-11-01T12:00:00Z");
        let stopped_and_cooling = TokenFacts {
            stopped: true,
            last_sent: Some(now),
        };
        let got = code(check_marketing_token(stopped_and_cooling, Some("US"), now));
        assert_eq!(got, Some((10, None)), "region first");
        let got = code(check_marketing_token(stopped_and_cooling, Some("EU"), now));
        assert_eq!(got, Some((10, Some(1893015))), "then the stop");
    }
}
