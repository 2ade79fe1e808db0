//! The operator's status page (roles compliance and admin): the outbox, the last hour's sends,
//! the policy in force.

use actix_web::{get, web, HttpResponse};

use super::AppState;
use crate::auth::Client;
use crate::domain::Role;
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_status);
}

#[get("/status")]
async fn get_status(state: web::Data<AppState>, client: Client) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Compliance])?;
    Ok(HttpResponse::Ok().json(state.herald.operator_status().await?))
}
