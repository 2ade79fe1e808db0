//! What the person does, each action as a Messenger user would take it: messages, postbacks,
//! reactions, referrals, opt-ins (marketing, notifications, the checkbox), blocking the page,
//! and the delivery and read receipts of their app.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{ok, parse_body, psid, Reply};
use crate::sandbox::error::Problem;
use crate::sandbox::{ids, webhooks, Shared};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    text: String,
    page_id: Option<String>,
    at: Option<DateTime<Utc>>,
    mid: Option<String>,
}

/// `POST /sandbox/users/{psid}/messages` → `{mid, webhook_status}`.
pub(super) async fn send_message(
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
pub(super) async fn send_postback(
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
pub(super) async fn send_reaction(
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
pub(super) async fn send_referral(
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
pub(super) async fn marketing_optin(
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
pub(super) async fn stop_notifications(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
    toggle_notifications(path, &body, &shared, true).await
}

/// `POST /sandbox/users/{psid}/resume-notifications` → `{tokens, webhook_status}`.
pub(super) async fn resume_notifications(
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
pub(super) async fn checkbox(body: web::Bytes, shared: web::Data<Shared>) -> Reply {
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
pub(super) async fn block(path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
    set_blocked(path, &shared, true)
}

/// `POST /sandbox/users/{psid}/unblock` → `{psid, blocked: false}`.
pub(super) async fn unblock(path: web::Path<String>, shared: web::Data<Shared>) -> Reply {
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
pub(super) async fn deliveries(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
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
pub(super) async fn reads(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> Reply {
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
