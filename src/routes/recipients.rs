//! What Herald knows about a recipient (roles backend, compliance and admin), and erasing it
//! (admin).

use actix_web::{delete, get, web, HttpResponse};

use super::AppState;
use crate::auth::Client;
use crate::domain::{Psid, Role};
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_recipient).service(erase_recipient);
}

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
