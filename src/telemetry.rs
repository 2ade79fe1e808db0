//! Logging: `tracing` to stderr, human-readable by default, JSON with `HERALD_LOG_FORMAT=json`.
//! Filter with `RUST_LOG` (default `info`).

use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use serde_json::json;
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use utoipa_actix_web::AppExt;

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
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| Arc::clone(&state.herald.metrics));
    // A label from a closed set: anyone may invent methods, and each would be a new series.
    let method = method_label(req.method());
    let span = request_span(&req, method);
    // Handlers answer their own errors, so an error here comes from actix itself; it is
    // answered by actix as it stands (and counted).
    let call = match answer_early(&mut req) {
        Some(answer) => Ok(req.into_response(answer)),
        None => next
            .call(req)
            .instrument(span.clone())
            .await
            .map(ServiceResponse::map_into_boxed_body),
    };
    let mut res = match call {
        Ok(res) => res,
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16().to_string();
            if let Some(m) = metrics {
                m.http_requests
                    .with_label_values(&["unmatched", method, &status])
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
            .with_label_values(&[route.as_str(), method, &status.to_string()])
            .inc();
        m.http_seconds
            .with_label_values(&[route.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem(res.headers()) {
        res = too_large_as_problem(res);
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

/// The request's span: its method and path now; the route, the status and what handlers
/// learn (`message_id`, `page`, `recipient`) as they are known.
fn request_span(req: &ServiceRequest, method: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = %method,
        path = %req.path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        message_id = tracing::field::Empty,
        page = tracing::field::Empty,
        recipient = tracing::field::Empty,
    )
}

/// A HEAD on a path served by GET becomes that GET (the connection sends the head without
/// the body); a method the path does not serve is answered 405 here, before any handler.
fn answer_early(req: &mut ServiceRequest) -> Option<HttpResponse> {
    match methods_served(req.path()) {
        Some(served) if req.method() == Method::HEAD && served.contains(&Method::GET) => {
            req.head_mut().method = Method::GET;
            None
        }
        Some(served) if !served.contains(req.method()) => Some(method_not_allowed(served)),
        _ => None,
    }
}

/// actix refuses an oversized body before any handler runs, in plain text; the client gets the
/// same problem body as for every other error.
fn too_large_as_problem(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let problem = ApiError::TooLarge(
        "the body is larger than the server accepts ([server] max_body_bytes)".into(),
    );
    res.into_response(problem.error_response())
}

/// The `method` label of a request: one of a fixed few, `other` for the rest.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Every route's path template (`/v1/messages/{id}`, split in segments) and the methods it
/// is served with, read once from the routes as registered (the same registration that
/// documents them: whatever is served is in the OpenAPI document).
fn routes() -> &'static [(Vec<String>, Vec<Method>)] {
    static ROUTES: OnceLock<Vec<(Vec<String>, Vec<Method>)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let (_, spec) = actix_web::App::new()
            .into_utoipa_app()
            .configure(crate::routes::configure)
            .split_for_parts();
        spec.paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    (&item.get, Method::GET),
                    (&item.post, Method::POST),
                    (&item.put, Method::PUT),
                    (&item.patch, Method::PATCH),
                    (&item.delete, Method::DELETE),
                ]
                .into_iter()
                .filter(|(operation, _)| operation.is_some())
                .map(|(_, method)| method)
                .collect();
                (path.split('/').map(str::to_owned).collect(), methods)
            })
            .collect()
    })
}

/// The methods `path` is served with (HEAD wherever GET is), or `None` when no route has
/// that path: that is a 404, whatever the method.
fn methods_served(path: &str) -> Option<Vec<Method>> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut served: Vec<Method> = Vec::new();
    let mut found = false;
    for (template, methods) in routes() {
        let matches = template.len() == segments.len()
            && template.iter().zip(&segments).all(|(t, s)| {
                // `{name}` stands for one segment, as actix matches it.
                (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
            });
        if matches {
            found = true;
            for m in methods {
                if !served.contains(m) {
                    served.push(m.clone());
                }
            }
        }
    }
    if served.contains(&Method::GET) {
        served.push(Method::HEAD);
    }
    found.then_some(served)
}

/// 405 with `Allow`, as a problem body like every other error.
fn method_not_allowed(served: Vec<Method>) -> HttpResponse {
    let allow = served
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let body = json!({
        "type": "https://herald.dev/problems/method_not_allowed",
        "title": "Method not allowed",
        "status": 405,
        "detail": format!("this path is served with {allow} only"),
    });
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow))
        .insert_header((header::CONTENT_TYPE, "application/problem+json"))
        .body(body.to_string())
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
