//! The control API under `/sandbox`: plays the person (messages, postbacks, reactions,
//! referrals, opt-ins, blocks, receipts), injects faults and reports what was received.
//!
//! Every action that needs a person creates it, and every event updates the sandbox's own
//! state *before* its webhook goes out: Herald may answer a message synchronously, and the
//! window must already be open when it does. Actions wait for Herald's answer and report its
//! HTTP status as `webhook_status` (`null` when no webhook URL is set or Herald is down).
//!
//! This file registers the routes, creates people and reports and injects (inbox, faults,
//! latency, stats, mail); `person.rs` holds what a person does.

mod person;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use self::person::{
    block, checkbox, deliveries, marketing_optin, reads, resume_notifications, send_message,
    send_postback, send_reaction, send_referral, stop_notifications, unblock,
};
use super::error::Problem;
use super::state::Fault;
use super::{ids, webhooks, SandboxPage, Shared};

type Reply = Result<HttpResponse, Problem>;

/// Registers the control routes under `/sandbox`.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    let user = |action: &str| format!("/users/{{psid}}/{action}");
    config.service(
        web::scope("/sandbox")
            .route("/users", web::post().to(create_user))
            .route(&user("messages"), web::post().to(send_message))
            .route(&user("postbacks"), web::post().to(send_postback))
            .route(&user("reactions"), web::post().to(send_reaction))
            .route(&user("referrals"), web::post().to(send_referral))
            .route(&user("marketing-optin"), web::post().to(marketing_optin))
            .route(
                &user("stop-notifications"),
                web::post().to(stop_notifications),
            )
            .route(
                &user("resume-notifications"),
                web::post().to(resume_notifications),
            )
            .route(&user("block"), web::post().to(block))
            .route(&user("unblock"), web::post().to(unblock))
            .route(&user("deliveries"), web::post().to(deliveries))
            .route(&user("reads"), web::post().to(reads))
            .route(&user("inbox"), web::get().to(inbox))
            .route("/checkbox", web::post().to(checkbox))
            .service(
                web::resource("/faults")
                    .route(web::post().to(add_fault))
                    .route(web::delete().to(clear_faults)),
            )
            .route("/latency", web::post().to(set_latency))
            .route("/stats", web::get().to(stats))
            .route("/mail", web::get().to(mail)),
    );
}

/// Parses a JSON body; an empty body counts as `{}`, so all-optional bodies may be left out.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|error| Problem::bad_request(format!("invalid body: {error}")))
}

/// The psid from the path, which must not be blank.
fn psid(path: web::Path<String>) -> Result<String, Problem> {
    let psid = path.into_inner();
    if psid.trim().is_empty() {
        return Err(Problem::bad_request("the psid must not be empty"));
    }
    Ok(psid)
}

fn ok(body: Value) -> Reply {
    Ok(HttpResponse::Ok().json(body))
}

impl Shared {
    /// The page named by a control body, or the first configured page.
    fn control_page(&self, page_id: Option<&str>) -> Result<&SandboxPage, Problem> {
        match page_id {
            None => self
                .config
                .pages
                .first()
                .ok_or_else(|| Problem::bad_request("the sandbox has no pages")),
            Some(id) => self
                .config
                .pages
                .iter()
                .find(|page| page.id == id)
                .ok_or_else(|| Problem::unknown_page(id)),
        }
    }

    /// Records a window-opening event from the person and sends its webhook.
    async fn person_acts(
        &self,
        psid: &str,
        page_id: &str,
        at: DateTime<Utc>,
        kind: &str,
        payload: Value,
    ) -> Option<u16> {
        self.state().record_interaction(psid, page_id, at);
        let event = webhooks::from_person(psid, page_id, at, kind, payload);
        self.webhooks.post(page_id, vec![event]).await
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    psid: Option<String>,
}

/// `POST /sandbox/users` → 201 `{psid}` for a new person, 200 when it already existed.
async fn create_user(body: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let NewUser { psid } = parse_body(&body)?;
    if psid.as_deref().is_some_and(|psid| psid.trim().is_empty()) {
        return Err(Problem::bad_request("the psid must not be empty"));
    }
    let psid = psid.unwrap_or_else(ids::psid);
    let created = shared.state().ensure_user(&psid);
    let mut reply = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(reply.json(json!({ "psid": psid })))
}

/// `GET /sandbox/users/{psid}/inbox` → `[ReceivedMessage]`, oldest first.
async fn inbox(path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    let psid = psid(path)?;
    Ok(HttpResponse::Ok().json(shared.state().inbox(&psid)))
}

/// `POST /sandbox/faults` → 201 with the fault: the next `count` matching sends fail with it.
async fn add_fault(body: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let fault: Fault = parse_body(&body)?;
    if fault.count == 0 {
        return Err(Problem::bad_request("count must be at least 1"));
    }
    if fault
        .http_status
        .is_some_and(|status| !(400..=599).contains(&status))
    {
        return Err(Problem::bad_request(
            "http_status must be an error status (400-599)",
        ));
    }
    if let Some(page_id) = &fault.page_id {
        shared.control_page(Some(page_id))?;
    }
    shared.state().add_fault(fault.clone());
    Ok(HttpResponse::Created().json(fault))
}

/// `DELETE /sandbox/faults` → `{cleared}`: the faults not yet used are dropped.
async fn clear_faults(shared: web::Data<Shared>) -> Reply {
    let cleared = shared.state().clear_faults();
    Ok(HttpResponse::Ok().json(json!({ "cleared": cleared })))
}

/// The longest latency `POST /sandbox/latency` takes: ten seconds.
const MAX_LATENCY_MS: u64 = 10_000;

/// `POST /sandbox/latency {"max_ms"}` → 200 with it: each later send waits a random time up to
/// `max_ms` before Messenger takes it (0: none), so that sends made side by side land out of
/// order and their answers overtake each other, as they may on the real network.
async fn set_latency(body: web::Bytes, shared: web::Data<Shared>) -> Reply {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Latency {
        max_ms: u64,
    }
    let latency: Latency = parse_body(&body)?;
    if latency.max_ms > MAX_LATENCY_MS {
        return Err(Problem::bad_request(
            "max_ms must be at most 10000 (ten seconds)",
        ));
    }
    shared.state().set_latency(latency.max_ms);
    Ok(HttpResponse::Ok().json(json!({ "max_ms": latency.max_ms })))
}

/// `GET /sandbox/stats` → [`super::SandboxStats`].
async fn stats(shared: web::Data<Shared>) -> Reply {
    Ok(HttpResponse::Ok().json(shared.state().stats()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailQuery {
    to: Option<String>,
}

/// `GET /sandbox/mail[?to=address]` → `{data: [email…]}`, what the SMTP stand-in received,
/// oldest first; with `to`, only emails whose envelope names that recipient.
async fn mail(request: HttpRequest, shared: web::Data<Shared>) -> Reply {
    let query = web::Query::<MailQuery>::from_query(request.query_string())
        .map_err(|error| Problem::bad_request(format!("invalid query: {error}")))?;
    ok(json!({ "data": shared.mail.list(query.to.as_deref()) }))
}
