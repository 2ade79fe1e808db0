//! What the engine knows about the world when it decides: everything comes in, nothing is read.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::{Category, Role};

/// The facts one decision is made from. The store gathers them; the engine only reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// The moment of the decision (the engine never reads a clock).
    pub now: DateTime<Utc>,
    /// The role of the client asking to send.
    pub role: Role,
    /// A consent of scope `transactional` is on record and was not withdrawn since.
    pub transactional_consent: bool,
    /// A consent of scope `marketing` is on record and was not withdrawn since.
    pub marketing_consent: bool,
    /// A transactional consent was recorded by a client through the API (`POST /v1/consents`,
    /// with its evidence), not only inferred from a webhook.
    pub transactional_consent_by_api: bool,
    /// A marketing consent was recorded by a client through the API.
    pub marketing_consent_by_api: bool,
    /// The recipient opted out of transactional messages (`DELETE /v1/consents?scope=all`).
    pub transactional_opted_out: bool,
    /// The recipient opted out of marketing (stop keyword, stopped notifications, API).
    pub marketing_opted_out: bool,
    /// Messenger answered "this person isn't available" (551) since the user last wrote.
    pub unreachable: bool,
    /// The timestamp Messenger gave the user's last message, postback, reaction or referral.
    pub last_user_interaction_at: Option<DateTime<Utc>>,
    /// For `user_ref` recipients: when the checkbox opt-in happened.
    pub user_ref_optin_at: Option<DateTime<Utc>>,
    /// The recipient's Marketing Messages token, if any.
    pub marketing_token: Option<MarketingToken>,
    /// The sending page's region (`EU`, `UK`, …) as configured.
    pub page_region: Option<String>,
    /// The recipient's IANA time zone, if known.
    pub timezone: Option<Tz>,
    /// Messages allowed to this recipient recently, newest first (enough for the longest
    /// frequency window of the policy).
    pub recent_sends: Vec<RecentSend>,
}

/// A Marketing Messages (notification messages) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketingToken {
    /// The user tapped "Stop these messages".
    pub stopped: bool,
    /// When a message last went out on this token.
    pub last_sent_at: Option<DateTime<Utc>>,
}

/// One earlier send to the same recipient that the policy allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentSend {
    /// When it was allowed.
    pub at: DateTime<Utc>,
    /// Its category.
    pub category: Category,
}

impl Facts {
    /// Facts for a recipient Herald knows nothing about.
    pub fn unknown(now: DateTime<Utc>, role: Role) -> Facts {
        Facts {
            now,
            role,
            transactional_consent: false,
            marketing_consent: false,
            transactional_consent_by_api: false,
            marketing_consent_by_api: false,
            transactional_opted_out: false,
            marketing_opted_out: false,
            unreachable: false,
            last_user_interaction_at: None,
            user_ref_optin_at: None,
            marketing_token: None,
            page_region: None,
            timezone: None,
            recent_sends: Vec::new(),
        }
    }
}
