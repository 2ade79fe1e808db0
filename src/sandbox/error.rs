//! The two ways the sandbox says no: Graph-shaped errors on the Send API, and
//! `application/problem+json` on the control API.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::ids;

/// The Graph API's `error.type` for every Send API error Messenger returns.
const OAUTH_EXCEPTION: &str = "OAuthException";

/// A Send API error exactly as Messenger reports it (MESSENGER.md §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphError {
    /// `error.code`.
    pub code: u32,
    /// `error.error_subcode`, when Messenger gives one.
    pub subcode: Option<u32>,
    /// `error.message`, already prefixed with `(#code)` where Messenger does so.
    pub message: String,
    /// The HTTP status of the answer.
    pub status: StatusCode,
    /// Seconds for a `Retry-After` header (injected faults only).
    pub retry_after: Option<u64>,
    /// When set, the answer carries `X-Business-Use-Case-Usage` for the page (§6).
    pub throttle: Option<Throttle>,
}

/// What the `X-Business-Use-Case-Usage` header says about a throttled page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttle {
    /// `estimated_time_to_regain_access`, in minutes as Meta reports it.
    pub minutes_to_regain_access: u64,
}

impl GraphError {
    /// An error whose message is `(#code) text`, answered with HTTP 400.
    pub fn new(code: u32, subcode: Option<u32>, text: &str) -> Self {
        Self {
            code,
            subcode,
            message: format!("(#{code}) {text}"),
            status: StatusCode::BAD_REQUEST,
            retry_after: None,
            throttle: None,
        }
    }

    /// Code 100 without a subcode: a parameter Messenger does not accept.
    pub fn invalid_parameter(text: &str) -> Self {
        Self::new(100, None, text)
    }

    /// 100/2018001: the recipient is not a person the page can reach.
    pub fn no_matching_user() -> Self {
        Self::new(100, Some(2018001), "No matching user found")
    }

    /// 190: the access token is missing, malformed or not this page's.
    pub fn invalid_token() -> Self {
        // Graph words token errors without the usual `(#190)` prefix.
        let mut error = Self::new(190, None, "");
        error.message = "Invalid OAuth access token - Cannot parse access token".to_owned();
        error
    }

    /// 10/2018278: the standard (or Human Agent) window is closed.
    pub fn outside_window() -> Self {
        Self::new(
            10,
            Some(2018278),
            "This message is sent outside of allowed window. Learn more about the new policy \
             here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
        )
    }

    /// 551/1545041: the person blocked the page or cannot be reached.
    pub fn person_unavailable() -> Self {
        Self::new(551, Some(1545041), "This person isn't available right now.")
    }

    /// 613 from the per-page pacing limiter.
    pub fn rate_limited() -> Self {
        Self {
            throttle: Some(Throttle {
                minutes_to_regain_access: 0,
            }),
            ..Self::new(613, None, "Calls to this api have exceeded the rate limit.")
        }
    }

    /// The message Messenger gives for a code, used for injected faults.
    pub fn default_text(code: u32) -> &'static str {
        match code {
            1 => "An unknown error occurred",
            2 => "Service temporarily unavailable",
            4 => "Application request limit reached",
            10 => "Permission denied",
            17 => "User request limit reached",
            32 => "Page request limit reached",
            100 => "Invalid parameter",
            190 => "Invalid OAuth access token",
            200 => "Permissions error",
            551 => "This person isn't available right now.",
            613 => "Calls to this api have exceeded the rate limit.",
            1200 => "Temporary send message failure. Please try again later.",
            _ => "Injected sandbox fault",
        }
    }

    /// The Graph JSON answer, with the headers this error calls for.
    ///
    /// `page_id` keys the `X-Business-Use-Case-Usage` header when the error throttles.
    pub fn to_response(&self, page_id: Option<&str>) -> HttpResponse {
        let mut error = json!({
            "message": self.message,
            "type": OAUTH_EXCEPTION,
            "code": self.code,
            "fbtrace_id": ids::fbtrace_id(),
        });
        if let Some(subcode) = self.subcode {
            error["error_subcode"] = json!(subcode);
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if let (Some(throttle), Some(page_id)) = (self.throttle, page_id) {
            let usage = json!({ page_id: [{
                "type": "pages",
                "call_count": 100,
                "total_cputime": 100,
                "total_time": 100,
                "estimated_time_to_regain_access": throttle.minutes_to_regain_access,
            }]});
            response.insert_header(("X-Business-Use-Case-Usage", usage.to_string()));
        }
        if self.code == 190 {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                "OAuth \"Facebook Platform\" \"invalid_token\" \"Invalid OAuth access token\"",
            ));
        }
        response.json(json!({ "error": error }))
    }
}

/// A control API error, answered as `application/problem+json` (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub(crate) struct Problem {
    status: StatusCode,
    /// A stable snake_case code for programs.
    reason: &'static str,
    /// A sentence for people.
    detail: String,
}

impl Problem {
    /// 400: the request body or a parameter is not what the route takes.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: "invalid_request",
            detail: detail.into(),
        }
    }

    /// 400: `page_id` names a page the sandbox was not configured with.
    pub fn unknown_page(page_id: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason: "unknown_page",
            detail: format!("page {page_id:?} is not configured in the sandbox"),
        }
    }

    /// 404: there is nothing the action could apply to.
    pub fn not_found(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            reason,
            detail: detail.into(),
        }
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "reason": self.reason,
        });
        HttpResponse::build(self.status)
            .content_type("application/problem+json")
            .body(body.to_string())
    }
}
