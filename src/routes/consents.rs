//! Consents and opt-outs (roles backend and admin).

use actix_web::{delete, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::{json_body, AppState};
use crate::app::{ConsentCommand, ConsentView, OptOutScope, RecipientView};
use crate::auth::Client;
use crate::domain::{
    parse_recipient, ConsentScope, FieldError, Psid, RecipientRef, Role, Violations,
};
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(post_consent).service(delete_consent);
}

/// Who may record and withdraw consents.
const CONSENT_ROLES: &[Role] = &[Role::Backend];

/// Record a consent with its evidence.
#[utoipa::path(
    tag = "recipients",
    request_body = ConsentBody,
    responses((status = 201, description = "the consent as recorded", body = ConsentView), CommandProblems)
)]
#[post("/consents")]
async fn post_consent(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    client.require(CONSENT_ROLES)?;
    let body: ConsentBody = serde_json::from_value(json_body(&req, &body)?)
        .map_err(|e| ApiError::BadRequest(format!("the body is not a consent: {e}")))?;
    let command = ConsentCommand::try_from(body).map_err(ApiError::Invalid)?;
    let recorded = state.herald.record_consent(&client, command).await?;
    Ok(HttpResponse::Created().json(recorded))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ScopeQuery {
    /// `marketing`, `transactional` or `all` (the default).
    scope: Option<String>,
}

/// Record an opt-out; history is kept, never deleted.
#[utoipa::path(
    tag = "recipients",
    params(("psid" = String, Path), ScopeQuery),
    responses((status = 200, description = "the recipient after the opt-out", body = RecipientView), CommandProblems)
)]
#[delete("/consents/{psid}")]
async fn delete_consent(
    state: web::Data<AppState>,
    client: Client,
    psid: web::Path<String>,
    query: web::Query<ScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    client.require(CONSENT_ROLES)?;
    let psid = Psid::parse(&psid).map_err(ApiError::BadRequest)?;
    let scope = match query.scope.as_deref().unwrap_or("all") {
        "transactional" => OptOutScope::Transactional,
        "marketing" => OptOutScope::Marketing,
        "all" => OptOutScope::All,
        _ => {
            return Err(ApiError::Invalid(vec![FieldError::new(
                "scope",
                "must be marketing, transactional or all",
            )]))
        }
    };
    let view = state.herald.opt_out(&client, &psid, scope).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `POST /v1/consents`.
// Every field is read as JSON first, so that each bad one is named in the 400, not only the
// first (see `domain::requests`); anything else lands in `unknown` and is refused by name. The
// document has always called it `ConsentRequest`; serde's messages name `ConsentBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ConsentRequest)]
struct ConsentBody {
    #[schema(value_type = RecipientRef)]
    recipient: Option<Value>,
    #[schema(value_type = ConsentScope)]
    scope: Option<Value>,
    /// Where the consent was given, e.g. `checkout_checkbox`.
    #[schema(value_type = String)]
    source: Option<Value>,
    /// What proves it: a non-empty string or object.
    #[schema(value_type = Object)]
    evidence: Option<Value>,
    #[schema(value_type = Option<String>)]
    email: Option<Value>,
    /// An IANA time zone such as `Europe/Berlin`.
    #[schema(value_type = Option<String>)]
    timezone: Option<Value>,
    #[schema(value_type = Option<String>)]
    locale: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

impl TryFrom<ConsentBody> for ConsentCommand {
    type Error = Vec<FieldError>;

    fn try_from(body: ConsentBody) -> Result<ConsentCommand, Vec<FieldError>> {
        let mut v = Violations::default();
        for key in body.unknown.keys() {
            v.push(key.clone(), "is not a known field");
        }
        let recipient = match &body.recipient {
            Some(r) => parse_recipient(r, "recipient", &mut v),
            None => {
                v.push("recipient", "is required");
                None
            }
        };
        let scope = match body.scope.as_ref().and_then(Value::as_str) {
            Some("transactional") => Some(ConsentScope::Transactional),
            Some("marketing") => Some(ConsentScope::Marketing),
            _ => {
                v.push("scope", "must be transactional or marketing");
                None
            }
        };
        let source = match body.source.as_ref().and_then(Value::as_str) {
            Some(s) if !s.trim().is_empty() && s.len() <= 200 => s.to_owned(),
            _ => {
                v.push(
                    "source",
                    "is required: where the consent was given (e.g. checkout_checkbox)",
                );
                String::new()
            }
        };
        let evidence = match body.evidence {
            Some(Value::String(s)) if !s.trim().is_empty() => Value::String(s),
            Some(Value::Object(m)) if !m.is_empty() => Value::Object(m),
            _ => {
                v.push(
                    "evidence",
                    "is required: a non-empty string or object proving the consent",
                );
                Value::Null
            }
        };
        let email = optional_text(body.email, "email", &mut v);
        if email.as_deref().is_some_and(|e| !e.contains('@')) {
            v.push("email", "must be an email address");
        }
        let timezone = optional_text(body.timezone, "timezone", &mut v);
        if timezone
            .as_deref()
            .is_some_and(|tz| tz.parse::<chrono_tz::Tz>().is_err())
        {
            v.push(
                "timezone",
                "must be an IANA time zone such as Europe/Berlin",
            );
        }
        let locale = optional_text(body.locale, "locale", &mut v);
        match (recipient, scope) {
            (Some(recipient), Some(scope)) if v.is_empty() => Ok(ConsentCommand {
                recipient,
                scope,
                source,
                evidence,
                email,
                timezone,
                locale,
            }),
            _ => Err(v.into_inner()),
        }
    }
}

fn optional_text(value: Option<Value>, name: &str, v: &mut Violations) -> Option<String> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 320 => Some(s),
        Some(_) => {
            v.push(name, "must be a non-empty string");
            None
        }
    }
}
