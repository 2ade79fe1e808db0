//! Logging: `tracing` to stderr, human-readable by default, JSON with `HERALD_LOG_FORMAT=json`.
//! Filter with `RUST_LOG` (default `info`).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::error::ApiError;
use crate::routes::AppState;

/// Installs the global subscriber once; later calls (tests) do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sled=warn,actix_server=warn"));
    // tokio-postgres logs each statement's parameters at debug: PSIDs and message content.
    // Personal data never reaches the log, whatever RUST_LOG asks for.
    let filter = match "tokio_postgres=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let json = std::env::var("HERALD_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Around every request: one span (`request`, with the method and the route pattern; handlers
/// add `message_id`, `page` and `recipient` once they know them), the request counted and timed
/// by route pattern and status, the security headers, and one log line at the end. The log
/// names the route pattern and path only — never the query string (it carries
/// `hub.verify_token` on the webhook handshake and `access_token` on the Graph endpoint) nor a
/// header.
pub async fn around_request(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| Arc::clone(&state.herald.metrics));
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %req.path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        message_id = tracing::field::Empty,
        page = tracing::field::Empty,
        recipient = tracing::field::Empty,
    );
    // Handlers answer their own errors, so an error here comes from actix itself; it is
    // answered by actix as it stands (and counted).
    let mut res = match next.call(req).instrument(span.clone()).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16().to_string();
            if let Some(m) = metrics {
                m.http_requests
                    .with_label_values(&["unmatched", method.as_str(), &status])
                    .inc();
            }
            return Err(e);
        }
    };
    // The pattern (`/v1/messages/{id}`), not the path: bounded label values, no ids.
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(m) = metrics {
        m.http_requests
            .with_label_values(&[route.as_str(), method.as_str(), &status.to_string()])
            .inc();
        m.http_seconds
            .with_label_values(&[route.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem(res.headers()) {
        // actix refuses an oversized body before any handler runs, in plain text; the client
        // gets the same problem body as for every other error.
        let problem = ApiError::TooLarge(
            "the body is larger than the server accepts ([server] max_body_bytes)".into(),
        );
        res = res.into_response(problem.error_response());
    }
    security_headers(res.headers_mut());
    span.record("route", route.as_str());
    span.record("status", status);
    span.in_scope(|| {
        tracing::info!(
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "{method} {} {status}",
            res.request().path()
        );
    });
    Ok(res)
}

fn is_problem(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

/// What every answer carries: no MIME sniffing, no framing, no referrer, and no caching
/// (answers hold personal data and decisions that change). A handler that sets its own
/// `Content-Security-Policy` or `Cache-Control` (the `/docs` page) keeps it.
fn security_headers(headers: &mut HeaderMap) {
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let defaults = [
        (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}
