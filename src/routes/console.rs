//! The web console (`GET /console`): static HTML, CSS and JavaScript compiled into the binary,
//! so it works offline and needs no build step. It holds no data and no secret: it calls the
//! same `/v1` API with the token the person signs in with, and the API decides what a role
//! may see. The Content-Security-Policy lets the page load and call only this origin.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{get, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(page).service(page_slash).service(asset);
}

const INDEX: &str = include_str!("../../assets/console/index.html");
const SCRIPT: &str = include_str!("../../assets/console/console.js");
const STYLE: &str = include_str!("../../assets/console/console.css");

/// Only this origin: no inline script or style, no frame, no plugin, no other host to call.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

fn respond(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // The assets change with the binary; a browser asks again rather than run an old
        // script against a new API.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The web console's page (it signs in with a Herald JWT and calls this API).
#[utoipa::path(
    tag = "console",
    responses((status = 200, description = "the console (HTML)", content_type = "text/html"))
)]
#[get("/console")]
async fn page() -> HttpResponse {
    respond("text/html; charset=utf-8", INDEX)
}

/// The same page, for a link that ends in a slash.
#[utoipa::path(
    tag = "console",
    responses((status = 200, description = "the console (HTML)", content_type = "text/html"))
)]
#[get("/console/")]
async fn page_slash() -> HttpResponse {
    respond("text/html; charset=utf-8", INDEX)
}

/// The console's script and style sheet.
#[utoipa::path(
    tag = "console",
    params(("asset" = String, Path, description = "console.js or console.css")),
    responses((status = 200, description = "the file"), (status = 404, description = "no such file"))
)]
#[get("/console/{asset}")]
async fn asset(name: web::Path<String>) -> HttpResponse {
    match name.as_str() {
        "console.js" => respond("text/javascript; charset=utf-8", SCRIPT),
        "console.css" => respond("text/css; charset=utf-8", STYLE),
        _ => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such console file"),
    }
}
