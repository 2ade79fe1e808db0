//! What the stand-in remembers: people and their threads, Marketing Messages tokens,
//! checkbox opt-ins, what each recipient received, faults to inject and the counters.
//!
//! One [`State`] lives behind one mutex in [`super::Shared`]. Every method is short and
//! synchronous, so a lock is held for one decision and never across an `.await`.

use std::collections::{HashMap, VecDeque};

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{GraphError, Throttle};
use super::rules::{self, TokenFacts};
use super::validate::{Content, Recipient, SendRequest};
use super::{ids, ReceivedMessage, Rejection, SandboxPage, SandboxStats};

/// How many recent rejections [`SandboxStats::rejections`] keeps; the count is never capped.
const KEPT_REJECTIONS: usize = 1000;

/// A person the sandbox plays.
#[derive(Debug, Default)]
struct User {
    blocked: bool,
    /// Per page id: the person's conversation with that page.
    threads: HashMap<String, Thread>,
}

/// One person's conversation with one page.
#[derive(Debug, Default)]
struct Thread {
    /// The latest timestamp of a message, postback, reaction or referral.
    last_interaction: Option<DateTime<Utc>>,
    /// Messages received up to here were reported in a delivery webhook.
    delivered_until: Option<DateTime<Utc>>,
}

/// A Marketing Messages (Recurring Notification) token the sandbox issued.
#[derive(Debug)]
struct MarketingToken {
    psid: String,
    page_id: String,
    stopped: bool,
    last_sent: Option<DateTime<Utc>>,
}

/// A checkbox plugin opt-in; `user_ref` sends are allowed for 24 h after it.
#[derive(Debug)]
struct CheckboxOptin {
    page_id: String,
    at: DateTime<Utc>,
}

/// A Graph error to answer instead of the next matching sends, set by `POST /sandbox/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fault {
    /// `error.code`, e.g. 1200.
    pub code: u32,
    /// `error.error_subcode`, e.g. 2018024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcode: Option<u32>,
    /// How many matching sends fail; each failure uses one.
    pub count: u32,
    /// Only sends to this recipient (PSID, or the `user_ref` of a checkbox send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psid: Option<String>,
    /// Only sends from this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    /// Seconds for a `Retry-After` header; also the usage header's time to regain access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// HTTP status of the answer; 500 for codes 1200 and 2, else 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// `error.message`; Messenger's text for the code when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Fail only every n-th matching send (a share of the traffic), not each one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u32>,
    /// Answer only after this many milliseconds: past Herald's request timeout, a timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Cut the connection instead of answering.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_connection: bool,
    /// For a rate-limit code: send the `X-Business-Use-Case-Usage` header (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_header: Option<bool>,
    /// Matching sends seen so far, for `every`.
    #[serde(skip)]
    pub seen: u32,
}

/// How an injected fault reaches the caller.
#[derive(Debug, Clone)]
pub(crate) struct Injected {
    pub error: GraphError,
    pub delay: Option<std::time::Duration>,
    pub drop_connection: bool,
}

impl Fault {
    fn matches(&self, page_id: &str, recipient: Option<&str>) -> bool {
        self.page_id.as_deref().is_none_or(|page| page == page_id)
            && self
                .psid
                .as_deref()
                .is_none_or(|psid| recipient == Some(psid))
    }

    /// The Graph error this fault answers with.
    fn error(&self) -> GraphError {
        let mut error =
            GraphError::new(self.code, self.subcode, GraphError::default_text(self.code));
        if let Some(message) = &self.message {
            error.message.clone_from(message);
        }
        let default_status = match self.code {
            1200 | 2 => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        error.status = self
            .http_status
            .and_then(|status| StatusCode::from_u16(status).ok())
            .unwrap_or(default_status);
        error.retry_after = self.retry_after;
        if matches!(self.code, 4 | 17 | 32 | 613 | 80001) && self.usage_header != Some(false) {
            error.throttle = Some(Throttle {
                minutes_to_regain_access: self.retry_after.unwrap_or(0).div_ceil(60),
            });
        }
        error
    }
}

/// What became of a send that passed authentication, pacing and shape checks.
#[derive(Debug)]
pub(crate) enum SendOutcome {
    /// Messenger would have delivered it.
    Accepted(Accepted),
    /// A rule refused it; the counters already say which.
    Refused(GraphError),
    /// An injected fault: answered late, cut off, or as this error.
    Fault(Injected),
}

/// An accepted send.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// The PSID for the response's `recipient_id`; `None` for `user_ref` sends.
    pub recipient_id: Option<String>,
    /// The new message's id; `None` for sender actions, which answer only `recipient_id`.
    pub message_id: Option<String>,
}

/// Everything the stand-in remembers.
#[derive(Debug, Default)]
pub(crate) struct State {
    users: HashMap<String, User>,
    marketing_tokens: HashMap<String, MarketingToken>,
    checkbox_optins: HashMap<String, CheckboxOptin>,
    /// Per recipient (PSID, or `user_ref` for checkbox sends), oldest first.
    inboxes: HashMap<String, Vec<ReceivedMessage>>,
    faults: Vec<Fault>,
    accepted: u64,
    rejected: u64,
    injected_faults: u64,
    rejections: VecDeque<Rejection>,
    /// Each send waits up to this long (at random) before Messenger takes it, so that sends
    /// made side by side arrive out of order and their answers overtake each other.
    latency_ms: u64,
}

impl State {
    /// Makes sure the person exists; says whether it was created now.
    pub fn ensure_user(&mut self, psid: &str) -> bool {
        if self.users.contains_key(psid) {
            return false;
        }
        self.users.insert(psid.to_owned(), User::default());
        true
    }

    fn thread(&mut self, psid: &str, page_id: &str) -> &mut Thread {
        self.users
            .entry(psid.to_owned())
            .or_default()
            .threads
            .entry(page_id.to_owned())
            .or_default()
    }

    /// Records a qualifying action (message, postback, reaction, referral) at `at`; the
    /// window runs from the latest such timestamp, so an older event never shortens it.
    pub fn record_interaction(&mut self, psid: &str, page_id: &str, at: DateTime<Utc>) {
        let thread = self.thread(psid, page_id);
        thread.last_interaction = thread.last_interaction.max(Some(at));
    }

    /// Blocks or unblocks the page(s) for this person.
    pub fn set_blocked(&mut self, psid: &str, blocked: bool) {
        self.users.entry(psid.to_owned()).or_default().blocked = blocked;
    }

    /// Issues a new Marketing Messages token for the person on the page.
    pub fn issue_marketing_token(&mut self, psid: &str, page_id: &str) -> String {
        self.ensure_user(psid);
        let token = ids::notification_messages_token();
        self.marketing_tokens.insert(
            token.clone(),
            MarketingToken {
                psid: psid.to_owned(),
                page_id: page_id.to_owned(),
                stopped: false,
                last_sent: None,
            },
        );
        token
    }

    /// Stops or resumes the person's tokens on the page (only `token` when given); returns
    /// the tokens changed, sorted.
    pub fn set_notifications_stopped(
        &mut self,
        psid: &str,
        page_id: &str,
        token: Option<&str>,
        stopped: bool,
    ) -> Vec<String> {
        self.ensure_user(psid);
        let mut changed: Vec<String> = self
            .marketing_tokens
            .iter_mut()
            .filter(|(id, t)| {
                t.psid == psid && t.page_id == page_id && token.is_none_or(|only| only == *id)
            })
            .map(|(id, t)| {
                t.stopped = stopped;
                id.clone()
            })
            .collect();
        changed.sort();
        changed
    }

    /// Records a checkbox opt-in for `user_ref` on the page at `at`.
    pub fn record_checkbox_optin(&mut self, user_ref: &str, page_id: &str, at: DateTime<Utc>) {
        let optin = CheckboxOptin {
            page_id: page_id.to_owned(),
            at,
        };
        self.checkbox_optins.insert(user_ref.to_owned(), optin);
    }

    /// Queues a fault for the next `fault.count` matching sends.
    pub fn add_fault(&mut self, fault: Fault) {
        if fault.count > 0 {
            self.faults.push(fault);
        }
    }

    /// Sets the longest wait before a send is taken ([`State::latency_ms`]); 0: none.
    pub fn set_latency(&mut self, max_ms: u64) {
        self.latency_ms = max_ms;
    }

    /// The longest wait before a send is taken, in milliseconds.
    pub fn latency_ms(&self) -> u64 {
        self.latency_ms
    }

    /// Drops every fault not yet used; returns how many sends they would still have failed.
    pub fn clear_faults(&mut self) -> u32 {
        self.faults.drain(..).map(|fault| fault.count).sum()
    }

    /// The id of the last message the page sent the person, if any.
    pub fn last_message_id(&self, psid: &str, page_id: &str) -> Option<String> {
        self.inboxes
            .get(psid)?
            .iter()
            .rev()
            .find(|message| message.page_id == page_id)
            .map(|message| message.message_id.clone())
    }

    /// Marks the page's messages to the person received up to `watermark` as delivered and
    /// returns the ids not reported delivered before, oldest first.
    pub fn deliver_until(
        &mut self,
        psid: &str,
        page_id: &str,
        watermark: DateTime<Utc>,
    ) -> Vec<String> {
        let thread = self.thread(psid, page_id);
        let since = thread.delivered_until;
        thread.delivered_until = thread.delivered_until.max(Some(watermark));
        self.inboxes
            .get(psid)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|message| {
                message.page_id == page_id
                    && message.received_at <= watermark
                    && since.is_none_or(|since| message.received_at > since)
            })
            .map(|message| message.message_id.clone())
            .collect()
    }

    /// Counts a send refused by Messenger's rules (token, pacing, shape, recipient, window).
    pub fn record_rejection(&mut self, error: &GraphError, psid: Option<&str>) {
        self.rejected += 1;
        if self.rejections.len() == KEPT_REJECTIONS {
            self.rejections.pop_front();
        }
        self.rejections.push_back(Rejection {
            code: error.code,
            subcode: error.subcode,
            message: error.message.clone(),
            psid: psid.map(str::to_owned),
        });
    }

    /// Decides a well-formed send from `page` at `now`: an injected fault first, then the
    /// recipient's rules; an accepted message lands in the recipient's inbox with `body`.
    pub fn process_send(
        &mut self,
        page: &SandboxPage,
        request: &SendRequest,
        body: Value,
        now: DateTime<Utc>,
    ) -> SendOutcome {
        let inbox_key = self.inbox_key(&request.recipient);
        if let Some(fault) = self.take_fault(&page.id, inbox_key.as_deref()) {
            self.injected_faults += 1;
            return SendOutcome::Fault(fault);
        }
        let recipient_id = match self.check_rules(page, request, now) {
            Ok(recipient_id) => recipient_id,
            Err(error) => {
                self.record_rejection(&error, inbox_key.as_deref());
                return SendOutcome::Refused(error);
            }
        };
        self.accepted += 1;
        if let Recipient::MarketingToken(token) = &request.recipient {
            if let Some(token) = self.marketing_tokens.get_mut(token) {
                token.last_sent = Some(now);
            }
        }
        let message_id = match (request.content, inbox_key) {
            (Content::Message, Some(key)) => {
                let message = ReceivedMessage {
                    message_id: ids::message_id(),
                    page_id: page.id.clone(),
                    body,
                    received_at: now,
                };
                let message_id = message.message_id.clone();
                self.inboxes.entry(key).or_default().push(message);
                Some(message_id)
            }
            _ => None,
        };
        SendOutcome::Accepted(Accepted {
            recipient_id,
            message_id,
        })
    }

    /// The inbox a send would land in: the PSID, a token's owner, or a `user_ref`.
    fn inbox_key(&self, recipient: &Recipient) -> Option<String> {
        match recipient {
            Recipient::Psid(psid) => Some(psid.clone()),
            Recipient::UserRef(user_ref) => Some(user_ref.clone()),
            Recipient::MarketingToken(token) => self
                .marketing_tokens
                .get(token)
                .map(|token| token.psid.clone()),
            Recipient::Unmodelled { .. } => None,
        }
    }

    /// The first fault that fires for this send: each matching fault counts the send, and one
    /// with `every` fires on every n-th of them only.
    fn take_fault(&mut self, page_id: &str, recipient: Option<&str>) -> Option<Injected> {
        let mut firing = None;
        for (index, fault) in self.faults.iter_mut().enumerate() {
            if !fault.matches(page_id, recipient) {
                continue;
            }
            fault.seen = fault.seen.wrapping_add(1);
            let fires = fault.every.is_none_or(|n| fault.seen % n.max(1) == 0);
            if fires && firing.is_none() {
                firing = Some(index);
            }
        }
        let index = firing?;
        let fault = &mut self.faults[index];
        let injected = Injected {
            error: fault.error(),
            delay: fault.delay_ms.map(std::time::Duration::from_millis),
            drop_connection: fault.drop_connection,
        };
        fault.count -= 1;
        if fault.count == 0 {
            self.faults.remove(index);
        }
        Some(injected)
    }

    /// Messenger's rules for the recipient; `Ok` carries the response's `recipient_id`.
    fn check_rules(
        &self,
        page: &SandboxPage,
        request: &SendRequest,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, GraphError> {
        match &request.recipient {
            Recipient::Psid(psid) => {
                let user = self.reachable_user(psid)?;
                let last = user
                    .threads
                    .get(&page.id)
                    .and_then(|thread| thread.last_interaction);
                rules::check_window(request.purpose, last, now)?;
                Ok(Some(psid.clone()))
            }
            Recipient::UserRef(user_ref) => {
                let optin = self
                    .checkbox_optins
                    .get(user_ref)
                    .filter(|optin| optin.page_id == page.id)
                    .ok_or_else(GraphError::no_matching_user)?;
                rules::check_window(request.purpose, Some(optin.at), now)?;
                Ok(None)
            }
            Recipient::MarketingToken(token) => {
                let token = self
                    .marketing_tokens
                    .get(token)
                    .filter(|token| token.page_id == page.id)
                    .ok_or_else(|| {
                        GraphError::invalid_parameter("notification_messages_token is invalid")
                    })?;
                self.reachable_user(&token.psid)?;
                let facts = TokenFacts {
                    stopped: token.stopped,
                    last_sent: token.last_sent,
                };
                rules::check_marketing_token(facts, page.region.as_deref(), now)?;
                Ok(Some(token.psid.clone()))
            }
            Recipient::Unmodelled { form, value } => Err(unmodelled_recipient(form, value)),
        }
    }

    fn reachable_user(&self, psid: &str) -> Result<&User, GraphError> {
        let user = self
            .users
            .get(psid)
            .ok_or_else(GraphError::no_matching_user)?;
        if user.blocked {
            return Err(GraphError::person_unavailable());
        }
        Ok(user)
    }

    /// The counters and recent rejections.
    pub fn stats(&self) -> SandboxStats {
        SandboxStats {
            accepted: self.accepted,
            rejected: self.rejected,
            injected_faults: self.injected_faults,
            rejections: self.rejections.iter().cloned().collect(),
        }
    }

    /// What the recipient (PSID, or checkbox `user_ref`) received, oldest first.
    pub fn inbox(&self, recipient: &str) -> Vec<ReceivedMessage> {
        self.inboxes.get(recipient).cloned().unwrap_or_default()
    }
}

/// The answer for recipient forms the sandbox has no people for: what Messenger says when
/// the object or permission is missing.
fn unmodelled_recipient(form: &str, value: &str) -> GraphError {
    match form {
        "one_time_notif_token" => GraphError::invalid_parameter("one_time_notif_token is invalid"),
        "phone_number" => GraphError::new(
            200,
            Some(2018027),
            "pages_messaging_phone_number permission is not approved for this app",
        ),
        _ => GraphError::new(
            100,
            Some(33),
            &format!(
                "Unsupported post request. Object with ID '{value}' does not exist, cannot be \
                 loaded due to missing permissions, or does not support this operation"
            ),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
