//! `GET /openapi.json` and `GET /docs`. The document is not written by hand: it is what
//! `utoipa-actix-web` collected while the routes were registered ([`super::configure`]), so a
//! route cannot be served without being documented. `/docs` is one self-contained page that
//! renders that document in the browser; it fetches nothing but `/openapi.json`, so it works
//! offline.

use std::collections::BTreeMap;

use actix_web::{get, web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::error::Problem;

/// The document as served, built once at start-up.
pub struct ApiDocument(pub String);

/// The parts of the document no route says: title, version, the bearer scheme, the problem
/// body.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "A policy-enforcing outbound messaging gateway for Facebook Messenger. \
            Every error is application/problem+json. Authenticate with a Herald JWT \
            (`herald token --sub NAME --role ROLE`) as `Authorization: Bearer`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem)),
    security(("bearer" = [])),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// A problem+json answer for each `(status, when)`.
fn problems(cases: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    cases
        .iter()
        .map(|(status, when)| {
            let response = ResponseBuilder::new()
                .description(*when)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

const UNAUTHORIZED: (u16, &str) = (401, "missing, expired or invalid token");
const FORBIDDEN: (u16, &str) = (403, "the token's role may not do this");
const INVALID: (u16, &str) = (400, "invalid body or parameter, naming each bad field");
const NOT_FOUND: (u16, &str) = (404, "no such resource, or not the caller's");
const UNSUPPORTED: (u16, &str) = (415, "the body is not `application/json`");
const UNAVAILABLE: (u16, &str) = (503, "the store is unavailable; nothing was written");

/// What any authenticated route may answer.
pub struct AuthProblems;

impl IntoResponses for AuthProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[UNAUTHORIZED, FORBIDDEN, UNAVAILABLE])
    }
}

/// What an authenticated route that reads a body or parameters may answer.
pub struct CommandProblems;

impl IntoResponses for CommandProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            INVALID,
            UNAUTHORIZED,
            FORBIDDEN,
            NOT_FOUND,
            (409, "the resource is not in a state that allows this"),
            (413, "the body is larger than `[server] max_body_bytes`"),
            UNSUPPORTED,
            UNAVAILABLE,
        ])
    }
}

/// What a send may answer besides 202.
pub struct SendProblems;

impl IntoResponses for SendProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            INVALID,
            UNAUTHORIZED,
            (
                403,
                "the role may not send this category (reason role_forbidden)",
            ),
            (409, "the Idempotency-Key was used with another body"),
            (413, "the body is larger than `[server] max_body_bytes`"),
            UNSUPPORTED,
            (
                422,
                "the policy denied the message: reason, rule and message_id",
            ),
            (429, "the client is over its quota; see Retry-After"),
            UNAVAILABLE,
        ])
    }
}

/// The OpenAPI 3.1 document of every route.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
#[get("/openapi.json")]
async fn openapi_json(document: web::Data<ApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// The API reference: a page that renders `/openapi.json`, with nothing fetched from elsewhere.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses((status = 200, description = "The API reference (HTML)", content_type = "text/html"))
)]
#[get("/docs")]
async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // The page's own script and style are inline; nothing else may load.
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; frame-ancestors 'none'",
        ))
        .body(DOCS_PAGE)
}

const DOCS_PAGE: &str = include_str!("docs.html");

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(openapi_json).service(docs);
}

/// The document: [`ApiDoc`] merged with what the routes registered, as JSON.
pub fn document(from_routes: Document) -> Result<String, serde_json::Error> {
    let mut doc = ApiDoc::openapi();
    doc.merge(from_routes);
    doc.to_json()
}
