//! The operator's status page (roles compliance and admin): the outbox, the last hour's sends,
//! the policy in force.

use actix_web::{get, web, HttpResponse};

use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::AppState;
use crate::auth::Client;
use crate::domain::Role;
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_status);
}

/// The outbox, the last hour's sends by result, and the policy in force.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "outbox depth, oldest due, the last hour's attempts by result and Graph code, sends per minute, the policy version in force and the one each instance runs", content_type = "application/json"), CommandProblems)
)]
#[get("/status")]
async fn get_status(state: web::Data<AppState>, client: Client) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Compliance])?;
    Ok(HttpResponse::Ok().json(state.herald.operator_status().await?))
}
