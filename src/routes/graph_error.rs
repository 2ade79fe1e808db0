//! `GraphApiError`: how the drop-in endpoint says no, in the Graph API's own shape
//! (`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`) and with
//! Messenger's own codes, so that a client library's existing error handling and retry logic
//! does the right thing (MESSENGER.md §5).
//!
//! | Herald                                   | Graph code / subcode                |
//! |------------------------------------------|-------------------------------------|
//! | missing or bad token                     | 190 (OAuthException)                |
//! | bad request (the parameter named)        | 100                                 |
//! | over the client's quota                  | 613, with `Retry-After`             |
//! | outside_window, template_required,       | 10 / 2018278                        |
//! | human_agent_window_expired,              |                                     |
//! | marketing_outside_window                 |                                     |
//! | marketing_token_stopped                  | 10 / 1893015                        |
//! | marketing_token_cooldown                 | 4 / 2018354                         |
//! | opted_out of marketing                   | 10 / 1893015                        |
//! | no_consent, other opt-outs               | 10 / 2018108                        |
//! | recipient_unreachable                    | 551 / 1545041                       |
//! | frequency_cap                            | 613 / 2018338                       |
//! | role_forbidden                           | 10                                  |
//! | store unavailable                        | 2 (HTTP 503: retry)                 |

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use rand::distributions::{Alphanumeric, DistString};
use serde::Serialize;
use utoipa::ToSchema;

use super::graph_request::SendApiError;
use crate::app::{SendError, SenderActionError};
use crate::domain::Category;
use crate::policy::{Decision, Reason};
use crate::report::error_chain;
use crate::store::StoreError;

/// Graph's `error.type` for Send API errors.
const OAUTH_EXCEPTION: &str = "OAuthException";

/// Messenger's words for a window that has closed (the sandbox and Messenger say the same).
const OUTSIDE_WINDOW: &str = "This message is sent outside of allowed window.";

/// A Graph-shaped error answer.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct GraphApiError {
    pub code: u32,
    pub subcode: Option<u32>,
    /// `error.message`, as Graph words it (`(#10) …`).
    pub message: String,
    pub status: StatusCode,
    /// `error.fbtrace_id`: Herald's message id when the refusal is on record, so that support
    /// can find it; otherwise a fresh random id.
    pub trace_id: String,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
    /// What to log once, for errors the client cannot act on.
    #[source]
    cause: Option<StoreError>,
}

impl GraphApiError {
    fn new(code: u32, subcode: Option<u32>, text: &str) -> GraphApiError {
        GraphApiError {
            code,
            subcode,
            message: format!("(#{code}) {text}"),
            status: StatusCode::BAD_REQUEST,
            trace_id: Alphanumeric.sample_string(&mut rand::thread_rng(), 11),
            retry_after: None,
            cause: None,
        }
    }

    /// 190: no Herald token, or one that does not verify.
    pub fn invalid_token(detail: &str) -> GraphApiError {
        GraphApiError {
            // Graph words token errors without the `(#190)` prefix.
            message: format!("Invalid OAuth access token - {detail}"),
            status: StatusCode::UNAUTHORIZED,
            ..GraphApiError::new(190, None, "")
        }
    }

    /// 613: the client is over its request quota.
    pub fn over_quota(retry_after_secs: u64) -> GraphApiError {
        GraphApiError {
            retry_after: Some(retry_after_secs),
            ..GraphApiError::new(613, None, "Calls to this api have exceeded the rate limit.")
        }
    }

    /// 2500: a path under `/graph` that Herald does not serve.
    pub fn unknown_path(path: &str) -> GraphApiError {
        GraphApiError {
            message: format!("Unknown path components: {path}"),
            ..GraphApiError::new(2500, None, "")
        }
    }

    /// 2: the store could not take the message; nothing was written, a retry may succeed.
    fn unavailable(cause: StoreError) -> GraphApiError {
        GraphApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(1),
            cause: Some(cause),
            ..GraphApiError::new(2, None, "Service temporarily unavailable")
        }
    }

    /// The policy's refusal of a `category` message, with the code Messenger gives for the same
    /// situation.
    fn denied(decision: &Decision, message_id: &str, category: Category) -> GraphApiError {
        let (code, subcode, text) = match decision.reason {
            // A marketing opt-out is what Messenger reports as stopped notifications.
            Reason::OptedOut if category == Category::Marketing => (
                10,
                Some(1893015),
                "The person has stopped notification messages for this topic.",
            ),
            Reason::OutsideWindow
            | Reason::TemplateRequired
            | Reason::HumanAgentWindowExpired
            | Reason::MarketingOutsideWindow => (10, Some(2018278), OUTSIDE_WINDOW),
            Reason::MarketingTokenStopped => (
                10,
                Some(1893015),
                "The person has stopped notification messages for this topic.",
            ),
            Reason::MarketingTokenCooldown => (
                4,
                Some(2018354),
                "The minimum delay between 2 notifications has not passed.",
            ),
            Reason::NoConsent | Reason::OptedOut => (
                10,
                Some(2018108),
                "This person isn't receiving messages from you right now.",
            ),
            Reason::RecipientUnreachable => {
                (551, Some(1545041), "This person isn't available right now.")
            }
            Reason::FrequencyCap => (
                613,
                Some(2018338),
                "Too many messages to this person; send fewer.",
            ),
            Reason::RoleForbidden => (10, None, "Permission denied."),
            // Never a refusal (the fallback's reasons are never a send's); kept total so a new
            // reason cannot slip through unmapped.
            Reason::Ok | Reason::QuietHours | Reason::NotForEmail | Reason::NoEmailAddress => {
                (1, None, "An unknown error occurred.")
            }
        };
        let herald = format!(
            " Herald: {} by {} (message {message_id}).",
            decision.reason, decision.rule
        );
        GraphApiError {
            message: format!("(#{code}) {text}{herald}"),
            trace_id: message_id.to_owned(),
            ..GraphApiError::new(code, subcode, text)
        }
    }

    /// The Graph JSON body.
    pub fn body(&self) -> GraphError {
        GraphError {
            error: GraphErrorBody {
                message: self.message.clone(),
                kind: OAUTH_EXCEPTION,
                code: self.code,
                error_subcode: self.subcode,
                fbtrace_id: self.trace_id.clone(),
            },
        }
    }
}

/// A Graph-shaped error, with Messenger's own codes where one fits.
#[derive(Debug, Serialize, ToSchema)]
pub struct GraphError {
    pub error: GraphErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraphErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
    #[schema(value_type = i64)]
    pub code: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub error_subcode: Option<u32>,
    pub fbtrace_id: String,
}

impl From<SendApiError> for GraphApiError {
    fn from(e: SendApiError) -> Self {
        GraphApiError::new(100, e.subcode, &e.to_string())
    }
}

impl From<StoreError> for GraphApiError {
    fn from(e: StoreError) -> Self {
        GraphApiError::unavailable(e)
    }
}

impl GraphApiError {
    /// Why a `category` message was not accepted.
    pub fn send(e: SendError, category: Category) -> GraphApiError {
        match e {
            SendError::Invalid(fields) => SendApiError::from_fields(&fields).into(),
            SendError::Denied {
                decision,
                message_id,
            } => GraphApiError::denied(&decision, message_id.as_str(), category),
            e @ SendError::IdempotencyConflict => GraphApiError::new(100, None, &e.to_string()),
            SendError::Store(e) => GraphApiError::unavailable(e),
        }
    }
}

impl From<SenderActionError> for GraphApiError {
    fn from(e: SenderActionError) -> Self {
        match e {
            SenderActionError::Invalid(fields) => SendApiError::from_fields(&fields).into(),
            SenderActionError::RoleForbidden(role) => GraphApiError::new(
                10,
                None,
                &format!(
                    "Permission denied. Herald: the {role} role may not act in conversations."
                ),
            ),
            SenderActionError::WindowClosed => {
                GraphApiError::new(10, Some(2018278), OUTSIDE_WINDOW)
            }
            // Messenger's own refusal goes back as Messenger gave it.
            SenderActionError::Graph {
                graph_error: Some(g),
                ..
            } => GraphApiError {
                message: g.message,
                trace_id: g
                    .fbtrace_id
                    .unwrap_or_else(|| GraphApiError::new(1, None, "").trace_id),
                ..GraphApiError::new(
                    u32::try_from(g.code).unwrap_or(1),
                    g.error_subcode.and_then(|s| u32::try_from(s).ok()),
                    "",
                )
            },
            SenderActionError::Graph {
                graph_error: None,
                detail,
            } => GraphApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..GraphApiError::new(
                    2,
                    None,
                    &format!("Service temporarily unavailable ({detail})"),
                )
            },
            SenderActionError::Store(e) => GraphApiError::unavailable(e),
        }
    }
}

impl ResponseError for GraphApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.cause {
            tracing::error!(error = %error_chain(cause), "store unavailable");
        }
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.code == 190 {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_graphs_shape() {
        let json = |e: &GraphApiError| serde_json::to_value(e.body()).expect("serialises");
        let e = GraphApiError::new(100, Some(2018001), "No matching user found");
        let body = json(&e);
        assert_eq!(body["error"]["message"], "(#100) No matching user found");
        assert_eq!(body["error"]["type"], "OAuthException");
        assert_eq!(body["error"]["code"], 100);
        assert_eq!(body["error"]["error_subcode"], 2018001);
        assert_eq!(body["error"]["fbtrace_id"].as_str().map(str::len), Some(11));
        let no_subcode = json(&GraphApiError::invalid_token("missing"));
        assert!(no_subcode["error"].get("error_subcode").is_none());
    }
}
