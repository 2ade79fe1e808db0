//! What Herald knows about a recipient (roles backend, compliance and admin), and erasing it
//! (admin).

use actix_web::{delete, get, web, HttpResponse};

use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::AppState;
use crate::app::RecipientView;
use crate::auth::Client;
use crate::domain::{Psid, Role};
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_recipient).service(erase_recipient);
}

/// Consents with their evidence, opt-outs, token, window, time zone and last messages.
#[utoipa::path(
    tag = "recipients",
    params(("psid" = String, Path)),
    responses((status = 200, body = RecipientView), CommandProblems)
)]
#[get("/recipients/{psid}")]
async fn get_recipient(
    state: web::Data<AppState>,
    client: Client,
    psid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Backend, Role::Compliance])?;
    let psid = Psid::parse(&psid).map_err(ApiError::BadRequest)?;
    Ok(HttpResponse::Ok().json(state.herald.recipient(&psid).await?))
}

/// Erases the person's personal data (admin only): the audit chain still verifies, and
/// nothing is sent to them until a new consent.
#[utoipa::path(
    tag = "recipients",
    params(("psid" = String, Path)),
    responses((status = 200, description = "what was erased: `{\"psid\", \"erased_at\", \"erased\", \"consents\", \"messages\", \"audit_entries\"}`", content_type = "application/json"), CommandProblems)
)]
#[delete("/recipients/{psid}")]
async fn erase_recipient(
    state: web::Data<AppState>,
    client: Client,
    psid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Admin])?;
    let psid = Psid::parse(&psid).map_err(ApiError::BadRequest)?;
    Ok(HttpResponse::Ok().json(state.herald.erase_recipient(&client, &psid).await?))
}
