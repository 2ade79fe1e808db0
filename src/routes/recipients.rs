//! What Herald knows about a recipient (roles backend, compliance and admin).

use actix_web::{get, web, HttpResponse};

use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::AppState;
use crate::app::RecipientView;
use crate::auth::Client;
use crate::domain::{Psid, Role};
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_recipient);
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
