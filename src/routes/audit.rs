//! The audit log (roles compliance and admin): query, export, verify, checkpoint.

use actix_web::{get, web, HttpResponse};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::json;

use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::AppState;
use crate::app::{export_audit, verify_audit, ExportFormat};
use crate::auth::Client;
use crate::domain::audit::{AuditKind, ChainHead, ChainPoint};
use crate::domain::{parse_time, Category, FieldError, Role, Violations};
use crate::error::ApiError;
use crate::store::{AuditCursor, AuditFilter};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_audit)
        .service(get_export)
        .service(get_verify)
        .service(get_checkpoint);
}

/// Who reads the audit log (admin always may).
const AUDIT_ROLES: &[Role] = &[Role::Compliance];

/// The filters of `GET /v1/audit` and its export (API.md §6).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FilterQuery {
    recipient: Option<String>,
    page_id: Option<String>,
    category: Option<String>,
    outcome: Option<String>,
    reason: Option<String>,
    campaign: Option<String>,
    client: Option<String>,
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    format: Option<String>,
}

impl FilterQuery {
    /// The filter, naming every bad parameter.
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        let mut v = Violations::default();
        let from = self
            .from
            .as_ref()
            .and_then(|t| parse_time(&serde_json::Value::String(t.clone()), "from", &mut v));
        let to = self
            .to
            .as_ref()
            .and_then(|t| parse_time(&serde_json::Value::String(t.clone()), "to", &mut v));
        let category = self.category.as_deref().and_then(|c| {
            c.parse::<Category>()
                .map_err(|e| v.push("category", e))
                .ok()
        });
        let kind = self
            .kind
            .as_deref()
            .and_then(|k| k.parse::<AuditKind>().map_err(|e| v.push("kind", e)).ok());
        if !v.is_empty() {
            return Err(ApiError::Invalid(v.into_inner()));
        }
        Ok(AuditFilter {
            recipient: self.recipient.clone(),
            page_id: self.page_id.clone(),
            category,
            outcome: self.outcome.clone(),
            reason: self.reason.clone(),
            campaign: self.campaign.clone(),
            client: self.client.clone(),
            kind,
            from,
            to,
        })
    }
}

fn bad_query(e: actix_web::error::QueryPayloadError) -> ApiError {
    ApiError::BadRequest(format!("bad query parameters: {e}"))
}

/// Entries matching the filters, oldest first, a page at a time (`next_cursor`).
#[utoipa::path(
    tag = "audit",
    params(FilterQuery),
    responses((status = 200, description = "`{\"entries\": [...], \"next_cursor\"}`", content_type = "application/json"), CommandProblems)
)]
#[get("/audit")]
async fn get_audit(
    state: web::Data<AppState>,
    client: Client,
    query: web::Query<FilterQuery>,
) -> Result<HttpResponse, ApiError> {
    client.require(AUDIT_ROLES)?;
    let filter = query.filter()?;
    let cursor = query.cursor.clone().map(AuditCursor);
    let page = state
        .herald
        .audit(&filter, cursor.as_ref(), query.limit)
        .await?;
    let entries: Vec<_> = page.entries.iter().map(|e| e.view()).collect();
    Ok(HttpResponse::Ok().json(json!({
        "entries": entries,
        "next_cursor": page.next.map(|c| c.0),
    })))
}

/// The matching entries, streamed as CSV or JSON lines (`format`).
#[utoipa::path(
    tag = "audit",
    params(FilterQuery),
    responses((status = 200, description = "CSV (text/csv) or JSON lines (application/x-ndjson), streamed"), CommandProblems)
)]
#[get("/audit/export")]
async fn get_export(
    state: web::Data<AppState>,
    client: Client,
    query: web::Query<FilterQuery>,
) -> Result<HttpResponse, ApiError> {
    client.require(AUDIT_ROLES)?;
    let filter = query.filter()?;
    let format = query
        .format
        .as_deref()
        .unwrap_or("jsonl")
        .parse::<ExportFormat>()
        .map_err(|e| ApiError::Invalid(vec![FieldError::new("format", e)]))?;
    let body = export_audit(state.herald.store.clone(), filter, format)
        .map_ok(web::Bytes::from)
        .map_err(|e| {
            // The status went out with the first chunk; all that is left is to cut the body
            // short, which the client sees as a broken transfer, and to say why here.
            tracing::error!(error = %crate::error::error_chain(&e), "audit export failed");
            actix_web::error::ErrorInternalServerError("audit export failed")
        });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .streaming(body))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    checkpoint_seq: Option<u64>,
    checkpoint_head: Option<String>,
    /// On PostgreSQL: the checkpoint's chain heads, `chain:seq:hash` separated by commas.
    checkpoint_chains: Option<String>,
}

/// `chain:seq:hash,…` as chain heads.
fn chain_heads(text: &str) -> Result<Vec<ChainHead>, ApiError> {
    let bad = || {
        ApiError::Invalid(vec![FieldError::new(
            "checkpoint_chains",
            "must be chain:seq:hash entries separated by commas",
        )])
    };
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let mut fields = part.trim().splitn(3, ':');
            let chain = fields.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
            let seq = fields.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
            let hash = fields.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
            Ok(ChainHead {
                chain,
                seq,
                hash: hash.to_owned(),
            })
        })
        .collect()
}

/// Walks the hash chain, and with a checkpoint proves the log still extends it.
#[utoipa::path(
    tag = "audit",
    params(VerifyQuery),
    responses((status = 200, description = "`{\"ok\", \"entries\", \"first_seq\", \"head_seq\", \"head\"}`, with `first_bad_seq` when broken", content_type = "application/json"), CommandProblems)
)]
#[get("/audit/verify")]
async fn get_verify(
    state: web::Data<AppState>,
    client: Client,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse, ApiError> {
    client.require(AUDIT_ROLES)?;
    let point = match (query.checkpoint_seq, query.checkpoint_head.clone()) {
        (Some(seq), Some(hash)) => Some(ChainPoint {
            seq,
            hash,
            chains: chain_heads(query.checkpoint_chains.as_deref().unwrap_or_default())?,
        }),
        (None, None) => None,
        _ => {
            return Err(ApiError::Invalid(vec![FieldError::new(
                "checkpoint_seq",
                "checkpoint_seq and checkpoint_head go together",
            )]))
        }
    };
    let verification = verify_audit(state.herald.store.as_ref(), point.as_ref()).await?;
    Ok(HttpResponse::Ok().json(verification))
}

/// The chain's head signed with the audit key (Ed25519 over `seq|head|at`).
#[utoipa::path(
    tag = "audit",
    responses((status = 200, description = "`{\"seq\", \"head\", \"at\", \"key_id\", \"public_key\", \"signature\"}`", content_type = "application/json"), CommandProblems)
)]
#[get("/audit/checkpoint")]
async fn get_checkpoint(
    state: web::Data<AppState>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    client.require(AUDIT_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.checkpoint().await?))
}

/// Query strings that do not parse answer 400 with a problem body, as every other error.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|e, _| bad_query(e).into())
}
