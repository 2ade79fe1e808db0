use actix_web::{delete, post, web, HttpResponse};
use serde::Deserialize;

use super::{json_body, AppState};
use crate::auth::Client;
use crate::domain::{Psid, Role};
use crate::error::ApiError;
use crate::service::{ConsentRequest, OptOutScope};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(post_consent).service(delete_consent);
}

#[post("/consents")]
async fn post_consent(
    state: web::Data<AppState>,
    client: Client,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Backend])?;
    let request = ConsentRequest::parse(&json_body(&body)?)?;
    let record = state.herald.record_consent(&client, request).await?;
    Ok(HttpResponse::Created().json(record))
}

#[derive(Deserialize)]
struct ScopeQuery {
    scope: Option<String>,
}

#[delete("/consents/{psid}")]
async fn delete_consent(
    state: web::Data<AppState>,
    client: Client,
    psid: web::Path<String>,
    query: web::Query<ScopeQuery>,
) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Backend])?;
    let psid = Psid::parse(&psid).map_err(ApiError::BadRequest)?;
    let scope = OptOutScope::parse(query.scope.as_deref())?;
    let view = state.herald.opt_out(&client, &psid, scope).await?;
    Ok(HttpResponse::Ok().json(view))
}
