use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use super::{JwtKeys, TokenError};
use crate::domain::Client;
use crate::error::ApiError;

/// How a request's [`Client`] is made: from its verified token (what an HTTP caller is, not
/// what a role may do, which is the domain's).
impl Client {
    /// Reads and verifies a bearer token.
    pub fn from_token(keys: &JwtKeys, token: Option<&str>) -> Result<Client, ApiError> {
        let token = token.ok_or(TokenError::Missing).map_err(unauthorized)?;
        let claims = keys.verify(token).map_err(unauthorized)?;
        Ok(Client {
            name: claims.sub,
            role: claims.role,
        })
    }
}

fn unauthorized(e: TokenError) -> ApiError {
    ApiError::Unauthorized(e.to_string())
}

/// The token from `Authorization: Bearer …`.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequest for Client {
    type Error = ApiError;
    type Future = Ready<Result<Client, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(keys) = req.app_data::<web::Data<Arc<JwtKeys>>>() else {
            return ready(Err(ApiError::Internal(anyhow::anyhow!(
                "JwtKeys missing from app data"
            ))));
        };
        ready(Client::from_token(keys, bearer(req)))
    }
}
