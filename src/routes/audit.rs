//! The audit log (roles compliance and admin): query, export, verify, checkpoint.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::json;

use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::AppState;
use crate::app::ExportFormat;
use crate::auth::Client;
use crate::domain::audit::{AuditKind, ChainHead, ChainPoint};
use crate::domain::{bounds, parse_time, Category, FieldError, Role, Violations};
use crate::error::ApiError;
use crate::store::{AuditCursor, AuditFilter, AuditOrder};

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
    /// From 1 to 1000 entries a page.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    cursor: Option<String>,
    /// `oldest` (the default: log order) or `newest` (the latest first; the cursor then pages
    /// back in time).
    order: Option<String>,
    format: Option<String>,
}

impl FilterQuery {
    /// The filter and the page size, naming every bad parameter; `from` and `to` are bounded
    /// from `now`.
    fn filter(&self, now: DateTime<Utc>) -> Result<(AuditFilter, Option<usize>), ApiError> {
        let mut v = Violations::default();
        let mut moment = |name: &str, text: &Option<String>| {
            let at = text
                .as_ref()
                .and_then(|t| parse_time(&serde_json::Value::String(t.clone()), name, &mut v))?;
            match bounds::check_moment(at, now) {
                Ok(()) => Some(at),
                Err(e) => {
                    v.push(name, e);
                    None
                }
            }
        };
        let from = moment("from", &self.from);
        let to = moment("to", &self.to);
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                v.push("from", "must not be later than to");
            }
        }
        let limit = self.limit.as_deref().and_then(|text| {
            let n = text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| bounds::AUDIT_LIMIT.contains(n));
            if n.is_none() {
                let range = &bounds::AUDIT_LIMIT;
                v.push(
                    "limit",
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
            }
            n
        });
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
        let filter = AuditFilter {
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
        };
        Ok((filter, limit))
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
    let (filter, limit) = query.filter(state.herald.clock.now())?;
    let order = match query.order.as_deref() {
        None | Some("oldest") => AuditOrder::OldestFirst,
        Some("newest") => AuditOrder::NewestFirst,
        Some(_) => {
            return Err(ApiError::Invalid(vec![FieldError::new(
                "order",
                "must be oldest or newest",
            )]))
        }
    };
    let cursor = query.cursor.clone().map(AuditCursor);
    let page = state
        .herald
        .audit(&filter, order, cursor.as_ref(), limit)
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
    let (filter, _) = query.filter(state.herald.clock.now())?;
    let format = query
        .format
        .as_deref()
        .unwrap_or("jsonl")
        .parse::<ExportFormat>()
        .map_err(|e| ApiError::Invalid(vec![FieldError::new("format", e)]))?;
    let body = state
        .herald
        .export_audit(filter, format)
        .map_ok(web::Bytes::from)
        .map_err(|e| {
            // The status went out with the first chunk; all that is left is to cut the body
            // short, which the client sees as a broken transfer, and to say why here.
            tracing::error!(error = %crate::report::error_chain(&e), "audit export failed");
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
    /// The checkpoint's `seq`: 1 or more, at most the log's head.
    #[param(value_type = Option<u64>)]
    checkpoint_seq: Option<String>,
    /// The checkpoint's `head`: 64 hex characters, either case.
    checkpoint_head: Option<String>,
    /// On PostgreSQL: the checkpoint's chain heads, `chain:seq:hash` separated by commas.
    checkpoint_chains: Option<String>,
}

impl VerifyQuery {
    /// The checkpoint to verify against, if one is given, naming each bad parameter. A
    /// malformed checkpoint is the caller's mistake, not evidence that the log was rewritten.
    fn point(&self) -> Result<Option<ChainPoint>, ApiError> {
        let (seq, head) = match (&self.checkpoint_seq, &self.checkpoint_head) {
            (Some(seq), Some(head)) => (seq, head),
            (None, None) if self.checkpoint_chains.is_none() => return Ok(None),
            _ => {
                return Err(ApiError::Invalid(vec![FieldError::new(
                    "checkpoint_seq",
                    "checkpoint_seq and checkpoint_head go together",
                )]))
            }
        };
        let mut v = Violations::default();
        let seq = match seq.trim().parse::<u64>() {
            Ok(0) => {
                v.push("checkpoint_seq", "must be 1 or more: the log starts at 1");
                None
            }
            Ok(seq) => Some(seq),
            Err(_) => {
                v.push("checkpoint_seq", "must be a whole number");
                None
            }
        };
        let hash = hash_hex(head);
        if hash.is_none() {
            v.push("checkpoint_head", "must be 64 hexadecimal characters");
        }
        let chains = chain_heads(self.checkpoint_chains.as_deref().unwrap_or_default())
            .map_err(|e| v.push("checkpoint_chains", e))
            .ok();
        match (seq, hash, chains) {
            (Some(seq), Some(hash), Some(chains)) if v.is_empty() => {
                Ok(Some(ChainPoint { seq, hash, chains }))
            }
            _ => Err(ApiError::Invalid(v.into_inner())),
        }
    }
}

/// A sha256 in hex as the log writes it (lowercase), from either case; `None` if it is not one.
fn hash_hex(text: &str) -> Option<String> {
    let text = text.trim();
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

/// `chain:seq:hash,…` as chain heads.
fn chain_heads(text: &str) -> Result<Vec<ChainHead>, String> {
    let bad = |part: &str| {
        format!(
            "must be chain:seq:hash entries separated by commas, each hash 64 hexadecimal \
             characters; {part:?} is not"
        )
    };
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let mut fields = part.trim().splitn(3, ':');
            let chain = fields.next().and_then(|c| c.parse().ok());
            let seq = fields.next().and_then(|s| s.parse().ok());
            let hash = fields.next().and_then(hash_hex);
            match (chain, seq, hash) {
                (Some(chain), Some(seq), Some(hash)) => Ok(ChainHead { chain, seq, hash }),
                _ => Err(bad(part.trim())),
            }
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
    let point = query.point()?;
    // A checkpoint past the head is not refused: a log that lost its tail looks like that, and
    // verify says so (`ok: false`), as it does for an entry rewritten in place.
    let verification = state.herald.verify_audit(point.as_ref()).await?;
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
