//! Graph API errors, classified once (MESSENGER.md §5.2) so the worker only asks "what now?".

use serde::Deserialize;

use crate::domain::GraphErrorRecord;

/// The `error` object of a Graph API error response.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    pub code: i64,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

/// What the delivery worker should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later with backoff (1200, 2, 1, network trouble, 5xx).
    Transient,
    /// The page or app is over a rate limit: back off the whole page (4, 17, 32, 613, 80001).
    RateLimited,
    /// Outside the messaging window: permanent until the user writes again (10/2018278…).
    Window,
    /// The person blocked the page or is unavailable (551, 200/1545041): stop sending.
    Unreachable,
    /// The user stopped this Marketing Messages token (10/1893015).
    TokenStopped,
    /// Too early for this Marketing Messages token (4/2018354).
    TokenCooldown,
    /// The token or permissions are wrong: an operator must act (190, 200, 10, 230…).
    Auth,
    /// Anything else about this request: it will never succeed as it is (100…).
    Permanent,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Window => "window",
            ErrorClass::Unreachable => "unreachable",
            ErrorClass::TokenStopped => "token_stopped",
            ErrorClass::TokenCooldown => "token_cooldown",
            ErrorClass::Auth => "auth",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl GraphError {
    /// The table of MESSENGER.md §5.2, in one place.
    pub fn class(&self) -> ErrorClass {
        match (self.code, self.error_subcode) {
            (4, Some(2_018_354)) => ErrorClass::TokenCooldown,
            (10, Some(1_893_015)) => ErrorClass::TokenStopped,
            (10, Some(2_018_278 | 2_018_065 | 2_534_022)) => ErrorClass::Window,
            (551, _) | (200, Some(1_545_041)) | (10, Some(2_018_108)) => ErrorClass::Unreachable,
            (613, Some(1_893_016 | 2_018_338)) => ErrorClass::Permanent,
            (4 | 17 | 32 | 341 | 613 | 80_001, _) | (2_018_144, _) => ErrorClass::RateLimited,
            (1, Some(99)) => ErrorClass::Auth,
            (1 | 2 | 1200 | 2_018_321, _) if self.error_subcode != Some(2_018_344) => {
                ErrorClass::Transient
            }
            (100, Some(2_018_008 | 2_018_294)) => ErrorClass::Transient,
            (10 | 102 | 190 | 200 | 230 | 368 | 2022, _) | (2, Some(2_018_344)) => ErrorClass::Auth,
            _ => ErrorClass::Permanent,
        }
    }

    /// What the store keeps of it.
    pub fn record(&self) -> GraphErrorRecord {
        GraphErrorRecord {
            code: self.code,
            subcode: self.error_subcode,
            message: Some(self.message.chars().take(300).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: i64, subcode: Option<i64>) -> ErrorClass {
        GraphError {
            message: String::new(),
            kind: None,
            code,
            error_subcode: subcode,
            fbtrace_id: None,
        }
        .class()
    }

    #[test]
    fn the_table_of_messenger_md_holds() {
        let cases = [
            (
                1200,
                Some(2_018_024),
                ErrorClass::Transient,
                "temporary send failure",
            ),
            (
                1200,
                None,
                ErrorClass::Transient,
                "temporary send failure, no subcode",
            ),
            (
                2,
                None,
                ErrorClass::Transient,
                "service temporarily unavailable",
            ),
            (
                2,
                Some(2_018_344),
                ErrorClass::Auth,
                "privacy ToS not accepted",
            ),
            (613, None, ErrorClass::RateLimited, "rate limit"),
            (
                613,
                Some(2_018_338),
                ErrorClass::Permanent,
                "bothersome tag use",
            ),
            (4, None, ErrorClass::RateLimited, "app request limit"),
            (32, None, ErrorClass::RateLimited, "page rate limit"),
            (
                4,
                Some(2_018_354),
                ErrorClass::TokenCooldown,
                "marketing cooldown",
            ),
            (10, Some(2_018_278), ErrorClass::Window, "outside window"),
            (
                10,
                Some(1_893_015),
                ErrorClass::TokenStopped,
                "token stopped",
            ),
            (10, None, ErrorClass::Auth, "permission denied"),
            (551, None, ErrorClass::Unreachable, "blocked"),
            (
                551,
                Some(1_545_041),
                ErrorClass::Unreachable,
                "blocked with subcode",
            ),
            (
                200,
                Some(1_545_041),
                ErrorClass::Unreachable,
                "person not available",
            ),
            (190, Some(460), ErrorClass::Auth, "expired token"),
            (
                100,
                Some(2_018_001),
                ErrorClass::Permanent,
                "no matching user",
            ),
            (100, None, ErrorClass::Permanent, "retired tag"),
            (
                100,
                Some(2_018_008),
                ErrorClass::Transient,
                "could not fetch the file",
            ),
        ];
        for (code, subcode, expected, what) in cases {
            assert_eq!(class(code, subcode), expected, "{what}: {code}/{subcode:?}");
        }
    }
}
