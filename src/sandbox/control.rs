//! The control API under `/sandbox`: plays the person (messages, postbacks, reactions,
//! referrals, opt-ins, blocks, receipts), injects faults and reports what was received.
//!
//! Every action that needs a person creates it, and every event updates the sandbox's own
//! state *before* its webhook goes out: Herald may answer a message synchronously, and the
//! window must already be open when it does. Actions wait for Herald's answer and report its
//! HTTP status as `webhook_status` (`null` when no webhook URL is set or Herald is down).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    text: String,
    page_id: Option<String>,
    at: Option<DateTime<Utc>>,
    mid: Option<String>,
}

/// `POST /sandbox/users/{psid}/messages` → `{mid, webhook_status}`.
async fn send_message(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let psid = psid(path)?;
    let message: NewMessage = parse_body(&body)?;
    let page = shared.control_page(message.page_id.as_deref())?;
    let mid = message.mid.unwrap_or_else(ids::message_id);
    let payload = json!({ "mid": mid, "text": message.text });
    let at = message.at.unwrap_or_else(|| shared.now());
    let status = shared
        .person_acts(&psid, &page.id, at, "message", payload)
        .await;
    ok(json!({ "mid": mid, "webhook_status": status }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPostback {
    payload: String,
    title: Option<String>,
    page_id: Option<String>,
    at: Option<DateTime<Utc>>,
    #[serde(rename = "ref")]
    reference: Option<String>,
}

/// `POST /sandbox/users/{psid}/postbacks` → `{mid, webhook_status}`. With `ref`, the postback
/// carries the referral of an m.me link that opened a new thread.
async fn send_postback(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let psid = psid(path)?;
    let postback: NewPostback = parse_body(&body)?;
    let page = shared.control_page(postback.page_id.as_deref())?;
    let mid = ids::message_id();
    let title = postback.title.unwrap_or_else(|| postback.payload.clone());
    let mut payload = json!({ "mid": mid, "title": title, "payload": postback.payload });
    if let Some(reference) = postback.reference {
        payload["referral"] =
            json!({ "ref": reference, "source": "SHORTLINK", "type": "OPEN_THREAD" });
    }
    let at = postback.at.unwrap_or_else(|| shared.now());
    let status = shared
        .person_acts(&psid, &page.id, at, "postback", payload)
        .await;
    ok(json!({ "mid": mid, "webhook_status": status }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReaction {
    reaction: Option<String>,
    mid: Option<String>,
    page_id: Option<String>,
    at: Option<DateTime<Utc>>,
}

/// `POST /sandbox/users/{psid}/reactions` → `{mid, webhook_status}`, `mid` being the message
/// reacted to (by default the page's last message to the person).
async fn send_reaction(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let psid = psid(path)?;
    let reaction: NewReaction = parse_body(&body)?;
    let page = shared.control_page(reaction.page_id.as_deref())?;
    let kind = reaction.reaction.unwrap_or_else(|| "love".to_owned());
    let emoji = webhooks::reaction_emoji(&kind).ok_or_else(|| {
        Problem::bad_request(
            "reaction must be one of smile, angry, sad, wow, love, like, dislike, other",
        )
    })?;
    let last_mid = shared.state().last_message_id(&psid, &page.id);
    let mid = reaction.mid.or(last_mid).unwrap_or_else(ids::message_id);
    let payload = json!({ "reaction": kind, "emoji": emoji, "action": "react", "mid": mid });
    let at = reaction.at.unwrap_or_else(|| shared.now());
    let status = shared
        .person_acts(&psid, &page.id, at, "reaction", payload)
        .await;
    ok(json!({ "mid": mid, "webhook_status": status }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReferral {
    #[serde(rename = "ref")]
    reference: String,
    source: Option<String>,
    page_id: Option<String>,
    at: Option<DateTime<Utc>>,
}

/// `POST /sandbox/users/{psid}/referrals`: the person follows an m.me link into an existing
/// thread → `{webhook_status}`.
async fn send_referral(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let psid = psid(path)?;
    let referral: NewReferral = parse_body(&body)?;
    let page = shared.control_page(referral.page_id.as_deref())?;
    let source = referral.source.unwrap_or_else(|| "SHORTLINK".to_owned());
    let payload = json!({ "ref": referral.reference, "source": source, "type": "OPEN_THREAD" });
    let at = referral.at.unwrap_or_else(|| shared.now());
    let status = shared
        .person_acts(&psid, &page.id, at, "referral", payload)
        .await;
    ok(json!({ "webhook_status": status }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMarketingOptin {
    page_id: Option<String>,
    title: Option<String>,
    timezone: Option<String>,
    payload: Option<String>,
    at: Option<DateTime<Utc>>,
}

/// `POST /sandbox/users/{psid}/marketing-optin`: the person accepts a Marketing Messages
/// opt-in request → `{token, webhook_status}`. It does not open the window (§2.1).
async fn marketing_optin(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    let psid = psid(path)?;
    let optin: NewMarketingOptin = parse_body(&body)?;
    let page = shared.control_page(optin.page_id.as_deref())?;
    let token = shared.state().issue_marketing_token(&psid, &page.id);
    let title = optin
        .title
        .unwrap_or_else(|| "Updates and promotions".to_owned());
    let mut payload = json!({
        "type": "notification_messages",
        "payload": optin.payload.unwrap_or_default(),
        "notification_messages_token": token,
        "user_token_status": "NOT_REFRESHED",
        "title": title,
    });
    if let Some(timezone) = optin.timezone {
        payload["notification_messages_timezone"] = json!(timezone);
    }
    let at = optin.at.unwrap_or_else(|| shared.now());
    let event = webhooks::from_person(&psid, &page.id, at, "optin", payload);
    let status = shared.webhooks.post(&page.id, vec![event]).await;
    ok(json!({ "token": token, "webhook_status": status }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationsToggle {
    page_id: Option<String>,
    token: Option<String>,
}

/// `POST /sandbox/users/{psid}/stop-notifications` → `{tokens, webhook_status}`.
async fn stop_notifications(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    toggle_notifications(path, &body, &shared, true).await
}

/// `POST /sandbox/users/{psid}/resume-notifications` → `{tokens, webhook_status}`.
async fn resume_notifications(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    toggle_notifications(path, &body, &shared, false).await
}

/// Stops or resumes the person's tokens on the page (or only `token`), one
/// `messaging_optins` event per token.
async fn toggle_notifications(
    path: web::Path<String>,
    body: &[u8],
    shared: &Shared,
    stop: bool,
) -> Reply {
    let psid = psid(path)?;
    let toggle: NotificationsToggle = parse_body(body)?;
    let page = shared.control_page(toggle.page_id.as_deref())?;
    let tokens =
        shared
            .state()
            .set_notifications_stopped(&psid, &page.id, toggle.token.as_deref(), stop);
    if tokens.is_empty() {
        return Err(Problem::not_found(
            "no_marketing_token",
            format!("{psid} has no Marketing Messages token on page {}", page.id),
        ));
    }
    let status = if stop {
        "STOP NOTIFICATIONS"
    } else {
        "RESUME NOTIFICATIONS"
    };
    let now = shared.now();
    let events = tokens
        .iter()
        .map(|token| {
            let optin = json!({
                "type": "notification_messages",
                "notification_messages_token": token,
                "notification_messages_status": status,
            });
            webhooks::from_person(&psid, &page.id, now, "optin", optin)
        })
        .collect();
    let webhook_status = shared.webhooks.post(&page.id, events).await;
    ok(json!({ "tokens": tokens, "webhook_status": webhook_status }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCheckboxOptin {
    user_ref: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    page_id: Option<String>,
    at: Option<DateTime<Utc>>,
}

/// `POST /sandbox/checkbox`: a website visitor ticks the checkbox plugin →
/// `{user_ref, webhook_status}`. Sends to that `user_ref` are allowed for 24 h.
async fn checkbox(body: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let optin: NewCheckboxOptin = parse_body(&body)?;
    let page = shared.control_page(optin.page_id.as_deref())?;
    let user_ref = optin.user_ref.unwrap_or_else(ids::user_ref);
    let at = optin.at.unwrap_or_else(|| shared.now());
    shared
        .state()
        .record_checkbox_optin(&user_ref, &page.id, at);
    let event = webhooks::checkbox_optin(&page.id, at, optin.reference.as_deref(), &user_ref);
    let status = shared.webhooks.post(&page.id, vec![event]).await;
    ok(json!({ "user_ref": user_ref, "webhook_status": status }))
}

/// `POST /sandbox/users/{psid}/block` → `{psid, blocked: true}`: sends answer 551.
async fn block(path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    set_blocked(path, &shared, true)
}

/// `POST /sandbox/users/{psid}/unblock` → `{psid, blocked: false}`.
async fn unblock(path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    set_blocked(path, &shared, false)
}

fn set_blocked(path: web::Path<String>, shared: &Shared, blocked: bool) -> Reply {
    let psid = psid(path)?;
    shared.state().set_blocked(&psid, blocked);
    ok(json!({ "psid": psid, "blocked": blocked }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReceipt {
    /// Epoch milliseconds; now when absent.
    watermark: Option<i64>,
    page_id: Option<String>,
    /// For deliveries: the ids to report; by default every message not yet reported.
    mids: Option<Vec<String>>,
}

impl NewReceipt {
    fn watermark(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, Problem> {
        match self.watermark {
            None => Ok(now),
            Some(ms) => DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| Problem::bad_request("watermark is out of range")),
        }
    }
}

/// `POST /sandbox/users/{psid}/deliveries` → `{mids, watermark, webhook_status}`.
async fn deliveries(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let psid = psid(path)?;
    let receipt: NewReceipt = parse_body(&body)?;
    let page = shared.control_page(receipt.page_id.as_deref())?;
    let watermark = receipt.watermark(shared.now())?;
    let pending = shared.state().deliver_until(&psid, &page.id, watermark);
    let mids = receipt.mids.unwrap_or(pending);
    let delivery = json!({ "mids": mids, "watermark": watermark.timestamp_millis() });
    let event = webhooks::from_person(&psid, &page.id, shared.now(), "delivery", delivery);
    let status = shared.webhooks.post(&page.id, vec![event]).await;
    ok(json!({ "mids": mids, "watermark": watermark.timestamp_millis(), "webhook_status": status }))
}

/// `POST /sandbox/users/{psid}/reads` → `{watermark, webhook_status}`.
async fn reads(path: web::Path<String>, body: web::Bytes, shared: web::Data<Shared>) -> Reply {
    let psid = psid(path)?;
    let receipt: NewReceipt = parse_body(&body)?;
    if receipt.mids.is_some() {
        return Err(Problem::bad_request("read receipts carry only a watermark"));
    }
    let page = shared.control_page(receipt.page_id.as_deref())?;
    let watermark = receipt.watermark(shared.now())?.timestamp_millis();
    let event = webhooks::from_person(
        &psid,
        &page.id,
        shared.now(),
        "read",
        json!({ "watermark": watermark }),
    );
    let status = shared.webhooks.post(&page.id, vec![event]).await;
    ok(json!({ "watermark": watermark, "webhook_status": status }))
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
