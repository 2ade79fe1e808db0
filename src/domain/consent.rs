use serde::{Deserialize, Serialize};

/// What a consent covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    Transactional,
    Marketing,
}

impl ConsentScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentScope::Transactional => "transactional",
            ConsentScope::Marketing => "marketing",
        }
    }
}

/// Where a consent (or opt-out) came from; kept with its evidence for the auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// Recorded by a client through `POST /v1/consents`.
    Api,
    /// The user wrote to the page first.
    UserMessage,
    /// A checkbox or Send-to-Messenger plugin opt-in (webhook `messaging_optins`).
    Plugin,
    /// A Marketing Messages opt-in (webhook `messaging_optins` of type `notification_messages`).
    MarketingOptin,
    /// An m.me link, Messenger code or ad referral.
    Referral,
    /// A stop keyword written by the user.
    StopKeyword,
    /// The user stopped or resumed notifications in Messenger.
    NotificationSettings,
}

impl ConsentSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConsentSource::Api => "api",
            ConsentSource::UserMessage => "user_message",
            ConsentSource::Plugin => "plugin",
            ConsentSource::MarketingOptin => "marketing_optin",
            ConsentSource::Referral => "referral",
            ConsentSource::StopKeyword => "stop_keyword",
            ConsentSource::NotificationSettings => "notification_settings",
        }
    }
}
