//! Campaigns (roles marketer and admin): create one from a JSON body or a CSV upload, list,
//! read, pause, resume, cancel.
//!
//! This file holds the handlers; `campaigns/body.rs` reads and checks a campaign's body,
//! `campaigns/csv.rs` a CSV upload's audience. (The handlers stay in `campaigns.rs`, not a
//! `mod.rs`: the API suite counts the handlers of `src/routes/*.rs` against the document.)

mod body;
mod csv;

use std::collections::HashMap;

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use futures_util::stream;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::{json_body, AppState};
use crate::app::{Audience, CampaignView, ListKind};
use crate::auth::Client;
use crate::domain::{FieldError, Psid, Role};
use crate::error::ApiError;

use self::body::{query_as_json, AudienceBody, CampaignBody};
use self::csv::csv_members;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get_one)
        .service(pause)
        .service(resume)
        .service(cancel);
}

/// Who may touch campaigns.
const CAMPAIGN_ROLES: &[Role] = &[Role::Marketer];

/// The one segment Herald knows.
const MARKETING_OPTED_IN: &str = "marketing_opted_in";

/// `POST /v1/campaigns` with a JSON body, or a `text/csv` body with a `psid` column and the
/// other fields as query parameters (`message`, `rollout` and `guard` as JSON).
#[utoipa::path(
    tag = "campaigns",
    request_body(
        description = "JSON, or `text/csv` with a `psid` column and the other fields as query parameters",
        content(
            (CampaignBody = "application/json"),
            (String = "text/csv")
        )
    ),
    responses((status = 201, description = "scheduled", body = CampaignView), CommandProblems)
)]
#[post("/campaigns")]
async fn create(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    let csv = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/csv"));
    let view = if csv {
        let body = CampaignBody::parse(query_as_json(&query)?)?;
        if body.audience.is_some() {
            return Err(invalid(
                "audience",
                "comes from the CSV body, not a parameter",
            ));
        }
        let new = body.into_campaign(state.herald.clock.now())?;
        let members = csv_members(payload);
        let audience = Audience::Listed {
            members: Box::pin(members),
            kind: ListKind::Csv,
        };
        state.herald.create_campaign(&client, new, audience).await?
    } else {
        // Refused before the body is read: an upload of the wrong type costs nothing.
        super::json::require_json(&req)?;
        let bytes = payload
            .to_bytes_limited(MAX_JSON_BODY)
            .await
            .map_err(|_| {
                ApiError::TooLarge(
                    "the body is over 16 MiB: upload large audiences as text/csv".into(),
                )
            })?
            .map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        let mut body = CampaignBody::parse(json_body(&req, &bytes)?)?;
        let audience = body.audience.take();
        let new = body.into_campaign(state.herald.clock.now())?;
        match audience {
            Some(AudienceBody { psids: Some(psids), segment: None }) => {
                let members = stream::iter(psids.into_iter().enumerate().map(|(i, p)| {
                    p.as_str()
                        .and_then(|s| Psid::parse(s).ok())
                        .ok_or_else(|| {
                            FieldError::new(format!("audience.psids[{i}]"), "must be a PSID string")
                        })
                }));
                let audience = Audience::Listed {
                    members,
                    kind: ListKind::Json,
                };
                state.herald.create_campaign(&client, new, audience).await?
            }
            Some(AudienceBody { psids: None, segment: Some(segment) }) if segment == MARKETING_OPTED_IN => {
                let audience = Audience::<stream::Empty<Result<Psid, FieldError>>>::MarketingOptedIn;
                state.herald.create_campaign(&client, new, audience).await?
            }
            Some(AudienceBody { psids: None, segment: Some(segment) }) => {
                return Err(invalid(
                    "audience.segment",
                    &format!("unknown segment {segment:?}; the one segment is {MARKETING_OPTED_IN}"),
                ))
            }
            _ => {
                return Err(invalid(
                    "audience",
                    "is required: {\"psids\": [...]} or {\"segment\": \"marketing_opted_in\"}, or upload text/csv",
                ))
            }
        }
    };
    Ok(HttpResponse::Created().json(view))
}

/// A JSON campaign body may list up to about a million PSIDs; larger audiences go as CSV.
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// `GET /v1/campaigns`.
#[derive(Serialize, ToSchema)]
struct CampaignList {
    campaigns: Vec<CampaignView>,
}

/// Every campaign with its counts.
#[utoipa::path(tag = "campaigns", responses((status = 200, body = CampaignList), CommandProblems))]
#[get("/campaigns")]
async fn list(state: web::Data<AppState>, client: Client) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    let campaigns = state.herald.campaigns().await?;
    Ok(HttpResponse::Ok().json(CampaignList { campaigns }))
}

/// A campaign: status and counts.
#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "cmp_…")), responses((status = 200, body = CampaignView), CommandProblems))]
#[get("/campaigns/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.campaign(&id).await?))
}

#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "cmp_…")), responses((status = 200, body = CampaignView), CommandProblems))]
#[post("/campaigns/{id}/pause")]
async fn pause(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.pause_campaign(&client, &id).await?))
}

#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "cmp_…")), responses((status = 200, body = CampaignView), CommandProblems))]
#[post("/campaigns/{id}/resume")]
async fn resume(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.resume_campaign(&client, &id).await?))
}

#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "cmp_…")), responses((status = 200, body = CampaignView), CommandProblems))]
#[post("/campaigns/{id}/cancel")]
async fn cancel(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.cancel_campaign(&client, &id).await?))
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Invalid(vec![FieldError::new(field, message)])
}
