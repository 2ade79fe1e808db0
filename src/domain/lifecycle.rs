//! A message's life in one place: its statuses, the transitions Herald allows, and what each
//! transition writes — audit entries, the outbox, the send history. Pure: no I/O and no clock;
//! the worker, the webhook's receipts, cancel and expiry all change a message through [`apply`].
//!
//! ```text
//!            ┌─────────── decided again: allow ────────────┐
//!   accept ──┼─► deferred ── decided again: deny ──► denied │
//!            │     └── decided again: defer (stays)         ▼
//!            ├─► queued ◄───────────────────────────────────┘
//!            │     ├── the Graph API took it ──► sent ── delivery ──► delivered ── read ──► read
//!            │     ├── transient error: stays queued, tried again later      └──── read ─────┘
//!            │     ├── permanent error, or the last attempt ──► failed
//!            │     └── Messenger cannot take it, the fallback allows email: stays queued,
//!            │           channel email ── the SMTP server took it ──► sent (no receipts)
//!            │                          └─ SMTP fails: retried, then failed
//!            └─► denied
//!   queued | deferred ── cancel ──► cancelled          queued | deferred ── expired ──► expired
//! ```
//!
//! `sending` is never stored: it is how a queued message that the worker holds right now is
//! shown ([`shown_status`]).
//!
//! **Order per person.** Messages to one person from one page — a *lane* ([`lane`]) — go to
//! Messenger one at a time, in the order they were accepted among those due. The stores' claims
//! hand out at most one message per lane and none while another of its messages is being sent;
//! and a queued message that had its turn but did not go (a transient error waiting for its
//! retry, a page paused by Messenger) *holds* its lane ([`Effects::holds_lane`]) until it leaves
//! that state, so that the person's later messages do not overtake it. A deferred message waits
//! for its own time and holds nothing back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::audit::{AuditEntry, AuditKind};
use super::decision::{Decision, Outcome, TraceStep};
use super::records::{Attempt, AttemptOutcome, Channel, MessageRecord, StatusChange};
use super::Content;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Deferred,
    /// Shown, never stored: the worker is handing the message to the Graph API.
    Sending,
    Sent,
    Delivered,
    Read,
    Denied,
    Failed,
    Expired,
    Cancelled,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Deferred => "deferred",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Denied => "denied",
            MessageStatus::Failed => "failed",
            MessageStatus::Expired => "expired",
            MessageStatus::Cancelled => "cancelled",
        }
    }

    /// Still waiting in the outbox.
    pub fn is_pending(self) -> bool {
        matches!(self, MessageStatus::Queued | MessageStatus::Deferred)
    }
}

impl std::fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a message's outbox entry in a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxChange {
    Keep,
    Remove,
    /// Put it (back) in the outbox, due at this time (also kept as the record's `not_before`).
    Schedule(DateTime<Utc>),
}

/// Everything one transition writes besides the record itself, in the same transaction.
#[derive(Debug)]
pub struct Effects {
    pub audit: Vec<AuditEntry>,
    pub outbox: OutboxChange,
    /// Record the message in the recipient's send history at this moment (allowed now).
    pub counts_as_send: Option<DateTime<Utc>>,
    /// A new decision's trace, kept apart from the record (see the store's `trace`).
    pub trace: Option<Vec<TraceStep>>,
    /// With [`OutboxChange::Schedule`]: the message keeps its lane (its person's later
    /// messages) waiting until it is claimed again — it had its turn and waits for a retry or
    /// the end of a page's pause. Any other outbox change lets go of a lane it held.
    pub holds_lane: bool,
}

impl Effects {
    fn new(outbox: OutboxChange) -> Effects {
        Effects {
            audit: Vec::new(),
            outbox,
            counts_as_send: None,
            trace: None,
            holds_lane: false,
        }
    }

    /// Back in the outbox at `due`, holding its lane meanwhile when it is `queued` (a deferred
    /// message holds nothing back).
    fn retry_at(record: &MessageRecord, due: DateTime<Utc>) -> Effects {
        let mut effects = Effects::new(OutboxChange::Schedule(due_by_expiry(record, due)));
        effects.holds_lane = record.status == MessageStatus::Queued;
        effects
    }
}

/// The Graph message id a store keeps an index of (Graph id → message), when a change gave the
/// message one it did not have (`before`): receipts find a message by it. Only a message to a
/// `user_ref` needs one: its receipts come from the PSID Messenger gave the person, which no key
/// of the message names. A message to a PSID is among the latest sends to the PSID a receipt
/// comes from (the store's `recent_message_ids`), so indexing its Graph id would write the same
/// fact twice (issue 18).
pub fn graph_id_to_index<'a>(before: Option<&str>, after: &'a MessageRecord) -> Option<&'a str> {
    let graph_id = after.graph_message_id.as_deref()?;
    (after.recipient.psid().is_none() && before != Some(graph_id)).then_some(graph_id)
}

/// The lane a message goes in: its page and its person. A lane's messages are sent one at a
/// time, in order (see the module's comment).
pub fn lane(record: &MessageRecord) -> String {
    format!("{}/{}", record.page_id, record.recipient.key())
}

/// A delivery or read receipt from the webhook.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// `Delivered` or `Read`.
    pub status: MessageStatus,
    /// Messages named by their Graph id (deliveries name them).
    pub mids: Vec<String>,
    /// Everything sent at or before this moment is covered.
    pub watermark: DateTime<Utc>,
}

/// Something that happens to a message after it was accepted.
#[derive(Debug, Clone)]
pub enum Event {
    /// A deferred message's moment came and the policy decided again.
    Decided(Decision),
    /// Not now, although it is this message's turn (the page is paused by a rate limit, or is
    /// at its pace; a delivery that panicked): look again at this time. A queued message holds
    /// its lane meanwhile.
    Postpone(DateTime<Utc>),
    /// Not now, and not its turn (its campaign is paused): look again at this time, holding
    /// nothing back, as a deferred message does.
    SetAside(DateTime<Utc>),
    /// The Graph API took the message.
    Sent { graph_message_id: String },
    /// Messenger cannot take the message and the email fallback allows it to go by email:
    /// `attempt` is the try at Messenger that said so (none when the page's Graph API is out),
    /// `decision` the fallback's, with its trace. It stays queued, due now, on channel email.
    FallBack {
        attempt: Option<Attempt>,
        decision: Decision,
    },
    /// Messenger cannot take the message and the email fallback does not allow email: the
    /// try fails the message as [`Event::AttemptFailed`] would, and the fallback's decision is
    /// kept and audited, saying why not.
    NoFallback {
        attempt: Attempt,
        decision: Decision,
    },
    /// The SMTP server took the message (`attempt` holds its reply) for the address `to`, which
    /// the audit log keeps among the person's erasable values.
    Emailed { attempt: Attempt, to: String },
    /// A try at the Graph API failed: `Retry` attempts come back, `Failed` ones settle it.
    AttemptFailed(Attempt),
    /// A delivery or read receipt.
    Receipt(Receipt),
    /// A client cancelled it.
    Cancel,
    /// Its `expires_at` passed before it could be sent.
    Expire,
}

/// Why a transition was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} message cannot be {what}")]
pub struct Refused {
    /// The status the message is in.
    pub from: MessageStatus,
    /// What was asked, in words.
    pub what: &'static str,
}

/// Where a freshly decided message starts, and when it may go: a denied message goes nowhere;
/// a deferred one waits for the decision's `not_before` (or a later `send_at`); an allowed one
/// asked for later is deferred to be decided again then.
pub fn admit(
    decision: &Decision,
    send_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (MessageStatus, Option<DateTime<Utc>>) {
    let later = send_at.filter(|t| *t > now);
    match decision.outcome {
        Outcome::Deny => (MessageStatus::Denied, None),
        Outcome::Defer => {
            let at = decision.not_before.unwrap_or(now);
            (
                MessageStatus::Deferred,
                Some(later.map_or(at, |l| l.max(at))),
            )
        }
        Outcome::Allow => match later {
            Some(at) => (MessageStatus::Deferred, Some(at)),
            None => (MessageStatus::Queued, Some(now)),
        },
    }
}

/// The effects of accepting `record` (built with [`admit`]'s status): its decision's audit
/// entry, its outbox entry, its place in the send history, its trace kept apart.
pub fn accepted(record: &mut MessageRecord) -> Effects {
    let at = record.created_at;
    let trace = std::mem::take(&mut record.decision.trace);
    record.history = vec![StatusChange {
        status: record.status,
        at,
    }];
    let outbox = match record.not_before {
        Some(due) if record.status.is_pending() => {
            let due = due_by_expiry(record, due);
            record.not_before = Some(due);
            OutboxChange::Schedule(due)
        }
        _ => OutboxChange::Keep,
    };
    let mut effects = Effects::new(outbox);
    effects
        .audit
        .push(AuditEntry::decision(record, &record.decision, at));
    effects.counts_as_send = (record.status == MessageStatus::Queued).then_some(at);
    effects.trace = Some(trace);
    effects
}

/// A settled message whose outbox entry was left behind: the entry goes, nothing else changes.
pub fn tidy(record: &MessageRecord) -> Option<Effects> {
    (!record.status.is_pending()).then(|| Effects::new(OutboxChange::Remove))
}

/// Erases the personal data a message holds — its content and template parameters — for
/// `DELETE /v1/recipients/{psid}`. A message still waiting is cancelled: it cannot go without
/// its content, and nothing may go to the person until a new consent.
pub fn erase(record: &mut MessageRecord, at: DateTime<Utc>) -> Effects {
    let mut effects = Effects::new(OutboxChange::Keep);
    if record.status.is_pending() {
        effects.outbox = OutboxChange::Remove;
        move_to(record, MessageStatus::Cancelled, at, &mut effects);
    }
    record.content = Content::Message(serde_json::json!({ "erased": true }));
    record.utility_template = None;
    record.decision.utility_template = None;
    effects
}

/// Whether `record`, still waiting, may no longer be sent at `now`.
pub fn is_expired(record: &MessageRecord, now: DateTime<Utc>) -> bool {
    record.status.is_pending() && record.expires_at.is_some_and(|e| e <= now)
}

/// How a message is shown: a queued message the worker holds right now is `sending`.
pub fn shown_status(status: MessageStatus, in_flight: bool) -> MessageStatus {
    if status == MessageStatus::Queued && in_flight {
        MessageStatus::Sending
    } else {
        status
    }
}

/// Applies `event` to `record` at `at`, if the rules allow it, and returns what else must be
/// written with the changed record.
pub fn apply(
    record: &mut MessageRecord,
    event: Event,
    at: DateTime<Utc>,
) -> Result<Effects, Refused> {
    let from = record.status;
    let refuse = |what| Err(Refused { from, what });
    let queued = from == MessageStatus::Queued;
    let on_email = record.channel == Channel::Email;
    match event {
        Event::Decided(_) if from != MessageStatus::Deferred => refuse("decided again"),
        Event::Decided(decision) => Ok(decided_again(record, decision, at)),
        Event::Postpone(_) if !from.is_pending() => refuse("postponed"),
        Event::Postpone(until) => Ok(Effects::retry_at(record, until)),
        Event::SetAside(_) if !from.is_pending() => refuse("set aside"),
        Event::SetAside(until) => Ok(Effects::new(OutboxChange::Schedule(due_by_expiry(
            record, until,
        )))),
        Event::Sent { .. } if !queued || on_email => refuse("sent through Messenger"),
        Event::Sent { graph_message_id } => Ok(sent(record, graph_message_id, at)),
        Event::FallBack { .. } if !queued || on_email => refuse("sent by email"),
        Event::FallBack { attempt, decision } => Ok(fell_back(record, attempt, decision, at)),
        Event::NoFallback { attempt, decision } => {
            let entry = fallback_entry(record, &decision, at);
            let mut effects = apply(record, Event::AttemptFailed(attempt), at)?;
            // Before the status entry: the refusal is why the message failed.
            let place = effects.audit.len().saturating_sub(1);
            effects.audit.insert(place, entry);
            record.fallback = Some(decision);
            Ok(effects)
        }
        Event::Emailed { .. } if !queued || !on_email => refuse("emailed"),
        Event::Emailed { attempt, to } => Ok(emailed(record, attempt, to, at)),
        Event::AttemptFailed(_) if !queued => refuse("tried"),
        Event::AttemptFailed(attempt) => Ok(attempt_failed(record, attempt, at)),
        // Messenger's receipts speak of Messenger's messages: an email has none.
        Event::Receipt(_) if on_email => refuse("moved by this receipt"),
        Event::Receipt(receipt) => received(record, receipt, at),
        Event::Cancel if !from.is_pending() => refuse("cancelled"),
        Event::Expire if !is_expired(record, at) => refuse("expired"),
        Event::Cancel => Ok(ended(record, MessageStatus::Cancelled, at)),
        Event::Expire => Ok(ended(record, MessageStatus::Expired, at)),
    }
}

/// Out of the outbox for good, never sent: cancelled or expired.
fn ended(record: &mut MessageRecord, status: MessageStatus, at: DateTime<Utc>) -> Effects {
    let mut effects = Effects::new(OutboxChange::Remove);
    move_to(record, status, at, &mut effects);
    effects
}

/// The Graph API took it.
fn sent(record: &mut MessageRecord, graph_message_id: String, at: DateTime<Utc>) -> Effects {
    record.graph_message_id = Some(graph_message_id);
    record.sent_at = Some(at);
    let attempt = Attempt {
        http_status: Some(200),
        ..Attempt::messenger(at, AttemptOutcome::Sent)
    };
    let mut effects = Effects::new(OutboxChange::Remove);
    effects.audit.push(attempt_entry(record, &attempt));
    record.attempts.push(attempt);
    move_to(record, MessageStatus::Sent, at, &mut effects);
    effects
}

/// Over to email: due at once, holding its lane, the Messenger try and the decision audited.
fn fell_back(
    record: &mut MessageRecord,
    attempt: Option<Attempt>,
    decision: Decision,
    at: DateTime<Utc>,
) -> Effects {
    let mut effects = Effects::retry_at(record, at);
    if let Some(attempt) = attempt {
        effects.audit.push(attempt_entry(record, &attempt));
        record.attempts.push(attempt);
    }
    record.channel = Channel::Email;
    record.not_before = Some(at);
    effects.audit.push(fallback_entry(record, &decision, at));
    record.fallback = Some(decision);
    effects
}

/// The SMTP server took it, for `to` (kept among the entry's erasable values).
fn emailed(record: &mut MessageRecord, attempt: Attempt, to: String, at: DateTime<Utc>) -> Effects {
    record.sent_at = Some(at);
    let mut effects = Effects::new(OutboxChange::Remove);
    let mut entry = attempt_entry(record, &attempt);
    if let Some(personal) = entry.personal.as_mut() {
        personal.email = Some(to);
    }
    effects.audit.push(entry);
    record.attempts.push(attempt);
    move_to(record, MessageStatus::Sent, at, &mut effects);
    effects
}

/// A try failed: back in the outbox for its retry, or failed for good.
fn attempt_failed(record: &mut MessageRecord, attempt: Attempt, at: DateTime<Utc>) -> Effects {
    let entry = attempt_entry(record, &attempt);
    if let (AttemptOutcome::Retry, Some(next)) = (attempt.outcome, attempt.next_attempt_at) {
        let mut effects = Effects::retry_at(record, next);
        effects.audit.push(entry);
        record.attempts.push(attempt);
        return effects;
    }
    let mut effects = Effects::new(OutboxChange::Remove);
    effects.audit.push(entry);
    let graph_error = attempt.graph_error.clone();
    record.attempts.push(attempt);
    move_to(record, MessageStatus::Failed, at, &mut effects);
    if let Some(status) = effects.audit.last_mut() {
        status.graph_error = graph_error;
    }
    effects
}

/// A delivery or read receipt that names or covers the message moves it forward.
fn received(
    record: &mut MessageRecord,
    receipt: Receipt,
    at: DateTime<Utc>,
) -> Result<Effects, Refused> {
    let from = record.status;
    let refuse = |what| Err(Refused { from, what });
    let named = record
        .graph_message_id
        .as_ref()
        .is_some_and(|g| receipt.mids.contains(g));
    let covered = record.sent_at.is_some_and(|s| s <= receipt.watermark);
    if !(named || covered) {
        return refuse("covered by this receipt");
    }
    let mut effects = Effects::new(OutboxChange::Keep);
    match (from, receipt.status) {
        (MessageStatus::Sent, MessageStatus::Delivered) => {}
        // A read implies delivery: record both so the history tells the whole story.
        (MessageStatus::Sent, MessageStatus::Read) => {
            move_to(record, MessageStatus::Delivered, at, &mut effects);
        }
        (MessageStatus::Delivered, MessageStatus::Read) => {}
        _ => return refuse("moved by this receipt"),
    }
    move_to(record, receipt.status, at, &mut effects);
    Ok(effects)
}

fn decided_again(record: &mut MessageRecord, mut decision: Decision, at: DateTime<Utc>) -> Effects {
    let trace = std::mem::take(&mut decision.trace);
    let outcome = decision.outcome;
    let not_before = decision.not_before.unwrap_or(at);
    record.decision = decision;
    let mut effects = Effects::new(match outcome {
        Outcome::Allow => OutboxChange::Keep,
        Outcome::Deny => OutboxChange::Remove,
        Outcome::Defer => OutboxChange::Schedule(due_by_expiry(record, not_before)),
    });
    effects.trace = Some(trace);
    effects
        .audit
        .push(AuditEntry::decision(record, &record.decision, at));
    match outcome {
        Outcome::Allow => {
            record.status = MessageStatus::Queued;
            record.history.push(StatusChange {
                status: MessageStatus::Queued,
                at,
            });
            effects.counts_as_send = Some(at);
        }
        Outcome::Deny => move_to(record, MessageStatus::Denied, at, &mut effects),
        Outcome::Defer => {}
    }
    effects
}

/// Sets the status, adds it to the history and audits it.
fn move_to(
    record: &mut MessageRecord,
    status: MessageStatus,
    at: DateTime<Utc>,
    effects: &mut Effects,
) {
    record.status = status;
    record.history.push(StatusChange { status, at });
    effects.audit.push(AuditEntry::status(record, status, at));
}

/// A waiting message is looked at again at `wanted`, or when it expires if that comes first.
fn due_by_expiry(record: &MessageRecord, wanted: DateTime<Utc>) -> DateTime<Utc> {
    record.expires_at.map_or(wanted, |e| e.min(wanted))
}

/// The email fallback's decision, audited as a decision on channel email.
fn fallback_entry(record: &MessageRecord, decision: &Decision, at: DateTime<Utc>) -> AuditEntry {
    let deciding = decision
        .trace
        .iter()
        .rev()
        .find(|s| s.rule == decision.rule)
        .map(|s| s.detail.to_string());
    AuditEntry {
        channel: Some(Channel::Email.as_str().to_owned()),
        detail: deciding,
        ..AuditEntry::decision(record, decision, at)
    }
}

fn attempt_entry(record: &MessageRecord, attempt: &Attempt) -> AuditEntry {
    let decision = &record.decision;
    if attempt.channel == Channel::Email {
        return AuditEntry {
            outcome: Some(attempt.outcome.as_str().to_owned()),
            policy_version: Some(decision.policy_version.clone()),
            channel: Some(Channel::Email.as_str().to_owned()),
            detail: attempt.reply.clone().or_else(|| attempt.error.clone()),
            ..AuditEntry::about(AuditKind::Attempt, record, attempt.at)
        };
    }
    AuditEntry {
        outcome: Some(attempt.outcome.as_str().to_owned()),
        policy_version: Some(decision.policy_version.clone()),
        messaging_type: decision.messaging_type.map(|m| m.as_str().to_owned()),
        tag: decision.tag.map(|t| t.as_str().to_owned()),
        graph_message_id: record.graph_message_id.clone(),
        graph_error: attempt.graph_error.clone(),
        detail: attempt.error.clone(),
        ..AuditEntry::about(AuditKind::Attempt, record, attempt.at)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::decision::{Reason, Via};
    use crate::domain::records::GraphErrorRecord;
    use crate::domain::{Category, Content, MessageId, Psid, Recipient, Role};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn decision(outcome: Outcome, not_before: Option<DateTime<Utc>>) -> Decision {
        Decision {
            outcome,
            reason: match outcome {
                Outcome::Allow => Reason::Ok,
                Outcome::Deny => Reason::NoConsent,
                Outcome::Defer => Reason::QuietHours,
            },
            rule: "policies/default.toml#window".into(),
            policy_version: "v1".into(),
            messaging_type: None,
            tag: None,
            utility_template: None,
            via: Via::Recipient,
            not_before,
            consent: None,
            trace: Vec::new(),
        }
    }

    fn message(outcome: Outcome, now: DateTime<Utc>) -> MessageRecord {
        let decision = decision(outcome, None);
        let (status, not_before) = admit(&decision, None, now);
        MessageRecord {
            id: MessageId::generate(),
            created_at: now,
            client: "shop".into(),
            role: Role::Backend,
            page_id: crate::domain::PageId::parse("1").expect("a page id"),
            recipient: Recipient::Psid(Psid::parse("42").expect("psid")),
            category: Category::Response,
            content: Content::Message(serde_json::json!({"text": "hi"})),
            utility_template: None,
            decision,
            status,
            channel: Default::default(),
            fallback: None,
            not_before,
            expires_at: None,
            attempts: Vec::new(),
            graph_message_id: None,
            sent_at: None,
            history: Vec::new(),
            campaign: None,
            content_sha256: String::new(),
            trace_sha256: None,
        }
    }

    fn statuses(record: &MessageRecord) -> Vec<MessageStatus> {
        record.history.iter().map(|h| h.status).collect()
    }

    #[test]
    fn a_sent_message_moves_forward_through_its_receipts_and_never_back() {
        let now = at("2026-11-30T10:00:00Z");
        let mut m = message(Outcome::Allow, now);
        let effects = accepted(&mut m);
        assert_eq!(effects.outbox, OutboxChange::Schedule(now));
        assert_eq!(effects.counts_as_send, Some(now));
        let sent = apply(
            &mut m,
            Event::Sent {
                graph_message_id: "m_1".into(),
            },
            now,
        )
        .expect("sent");
        assert_eq!(sent.outbox, OutboxChange::Remove);
        assert_eq!(sent.audit.len(), 2, "the attempt and the status");
        let read = Receipt {
            status: MessageStatus::Read,
            mids: Vec::new(),
            watermark: now,
        };
        let effects = apply(&mut m, Event::Receipt(read.clone()), now).expect("read");
        assert_eq!(effects.audit.len(), 2, "a read implies delivery");
        assert_eq!(
            statuses(&m),
            [
                MessageStatus::Queued,
                MessageStatus::Sent,
                MessageStatus::Delivered,
                MessageStatus::Read
            ]
        );
        let delivered = Receipt {
            status: MessageStatus::Delivered,
            ..read
        };
        assert!(
            apply(&mut m, Event::Receipt(delivered), now).is_err(),
            "never back"
        );
        assert_eq!(m.status, MessageStatus::Read);
    }

    #[test]
    fn a_receipt_moves_only_the_messages_it_covers() {
        let now = at("2026-11-30T10:00:00Z");
        let mut m = message(Outcome::Allow, now);
        apply(
            &mut m,
            Event::Sent {
                graph_message_id: "m_1".into(),
            },
            now,
        )
        .expect("sent");
        let before = Receipt {
            status: MessageStatus::Delivered,
            mids: vec!["m_other".into()],
            watermark: now - Duration::seconds(1),
        };
        assert!(apply(&mut m, Event::Receipt(before.clone()), now).is_err());
        let named = Receipt {
            mids: vec!["m_1".into()],
            ..before
        };
        assert!(apply(&mut m, Event::Receipt(named), now).is_ok());
    }

    #[test]
    fn only_a_waiting_message_can_be_cancelled_or_expire() {
        let now = at("2026-11-30T10:00:00Z");
        let mut waiting = message(Outcome::Allow, now);
        let effects = apply(&mut waiting, Event::Cancel, now).expect("cancel");
        assert_eq!(effects.outbox, OutboxChange::Remove);
        assert_eq!(waiting.status, MessageStatus::Cancelled);
        assert_eq!(
            apply(&mut waiting, Event::Cancel, now).err(),
            Some(Refused {
                from: MessageStatus::Cancelled,
                what: "cancelled"
            })
        );

        let mut sent = message(Outcome::Allow, now);
        apply(
            &mut sent,
            Event::Sent {
                graph_message_id: "m".into(),
            },
            now,
        )
        .expect("sent");
        assert!(apply(&mut sent, Event::Cancel, now).is_err());

        let mut late = message(Outcome::Allow, now);
        late.expires_at = Some(now + Duration::hours(1));
        assert!(apply(&mut late, Event::Expire, now).is_err(), "not yet");
        assert!(!is_expired(&late, now));
        let then = now + Duration::hours(1);
        assert!(is_expired(&late, then));
        apply(&mut late, Event::Expire, then).expect("expire");
        assert_eq!(late.status, MessageStatus::Expired);
    }

    #[test]
    fn a_waiting_message_is_looked_at_again_no_later_than_it_expires() {
        let now = at("2026-11-30T22:00:00Z");
        let morning = at("2026-12-01T08:00:00Z");
        let mut m = message(Outcome::Defer, now);
        m.expires_at = Some(at("2026-12-01T02:00:00Z"));
        let effects = apply(
            &mut m,
            Event::Decided(decision(Outcome::Defer, Some(morning))),
            now,
        )
        .expect("decided");
        assert_eq!(
            effects.outbox,
            OutboxChange::Schedule(at("2026-12-01T02:00:00Z"))
        );
    }

    #[test]
    fn a_deferred_message_decided_again_is_queued_or_denied() {
        let now = at("2026-11-30T10:00:00Z");
        let mut m = message(Outcome::Defer, now);
        let effects =
            apply(&mut m, Event::Decided(decision(Outcome::Allow, None)), now).expect("allow");
        assert_eq!(
            (m.status, effects.counts_as_send),
            (MessageStatus::Queued, Some(now))
        );
        assert!(
            apply(&mut m, Event::Decided(decision(Outcome::Allow, None)), now).is_err(),
            "only a deferred message is decided again"
        );
        let mut m = message(Outcome::Defer, now);
        let effects =
            apply(&mut m, Event::Decided(decision(Outcome::Deny, None)), now).expect("deny");
        assert_eq!(
            (m.status, effects.outbox),
            (MessageStatus::Denied, OutboxChange::Remove)
        );
        assert_eq!(effects.audit.len(), 2, "the decision and the status");
    }

    #[test]
    fn a_retry_stays_queued_and_the_last_failure_settles_it() {
        let now = at("2026-11-30T10:00:00Z");
        let mut m = message(Outcome::Allow, now);
        let retry = Attempt {
            at: now,
            outcome: AttemptOutcome::Retry,
            http_status: Some(500),
            graph_error: Some(GraphErrorRecord {
                code: 2,
                subcode: None,
                message: None,
            }),
            error: Some("transient".into()),
            next_attempt_at: Some(now + Duration::seconds(5)),
            channel: Default::default(),
            reply: None,
        };
        let effects = apply(&mut m, Event::AttemptFailed(retry.clone()), now).expect("retry");
        assert_eq!(
            effects.outbox,
            OutboxChange::Schedule(now + Duration::seconds(5))
        );
        assert_eq!(m.status, MessageStatus::Queued);
        let last = Attempt {
            outcome: AttemptOutcome::Failed,
            next_attempt_at: None,
            channel: Default::default(),
            reply: None,
            ..retry
        };
        let effects = apply(&mut m, Event::AttemptFailed(last), now).expect("failed");
        assert_eq!(m.status, MessageStatus::Failed);
        assert_eq!(m.attempts.len(), 2);
        let status_entry = effects.audit.last().expect("status entry");
        assert_eq!(status_entry.graph_error.as_ref().map(|e| e.code), Some(2));
    }

    #[test]
    fn a_message_waiting_for_its_retry_or_a_pause_holds_its_lane_until_it_leaves_the_outbox() {
        let now = at("2026-11-30T10:00:00Z");
        let soon = now + Duration::seconds(5);
        let mut m = message(Outcome::Allow, now);
        assert!(!accepted(&mut m).holds_lane, "a new message holds nothing");
        let retry = Attempt {
            at: now,
            outcome: AttemptOutcome::Retry,
            http_status: Some(500),
            graph_error: None,
            error: Some("transient".into()),
            next_attempt_at: Some(soon),
            channel: Default::default(),
            reply: None,
        };
        let effects = apply(&mut m, Event::AttemptFailed(retry), now).expect("retry");
        assert!(
            effects.holds_lane,
            "a retry holds the person's later messages"
        );
        let effects = apply(&mut m, Event::Postpone(soon), now).expect("postpone");
        assert!(effects.holds_lane, "a page's pause holds them too");
        let effects = apply(&mut m, Event::SetAside(soon), now).expect("set aside");
        assert!(
            !effects.holds_lane,
            "a paused campaign's message holds nothing back"
        );
        let sent = Event::Sent {
            graph_message_id: "m_1".into(),
        };
        let effects = apply(&mut m, sent, now).expect("sent");
        assert_eq!(
            (effects.outbox, effects.holds_lane),
            (OutboxChange::Remove, false),
            "sent: the lane is free"
        );

        for (what, event) in [("cancelled", Event::Cancel), ("expired", Event::Expire)] {
            let mut m = message(Outcome::Allow, now);
            m.expires_at = Some(now);
            apply(&mut m, Event::Postpone(soon), now).expect("postpone");
            let effects = apply(&mut m, event, now).expect(what);
            assert_eq!(
                (effects.outbox, effects.holds_lane),
                (OutboxChange::Remove, false),
                "{what}: the lane is free"
            );
        }
    }

    #[test]
    fn a_deferred_message_holds_nothing_back() {
        let now = at("2026-11-30T22:00:00Z");
        let morning = at("2026-12-01T08:00:00Z");
        let mut m = message(Outcome::Defer, now);
        assert!(!accepted(&mut m).holds_lane);
        let effects = apply(&mut m, Event::Postpone(morning), now).expect("postpone");
        assert!(!effects.holds_lane, "postponed, but still deferred");
        let effects = apply(
            &mut m,
            Event::Decided(decision(Outcome::Defer, Some(morning))),
            now,
        )
        .expect("decided");
        assert!(!effects.holds_lane, "deferred again");
    }

    #[test]
    fn a_lane_is_a_page_and_a_person() {
        let now = at("2026-11-30T10:00:00Z");
        let a = message(Outcome::Allow, now);
        let mut other_page = message(Outcome::Allow, now);
        other_page.page_id = crate::domain::PageId::parse("2").expect("a page id");
        assert_eq!(lane(&a), lane(&message(Outcome::Allow, now)));
        assert_ne!(lane(&a), lane(&other_page));
    }

    #[test]
    fn erasing_a_waiting_message_cancels_it_and_a_settled_one_keeps_its_status() {
        let now = at("2026-11-30T10:00:00Z");
        let mut waiting = message(Outcome::Allow, now);
        let effects = erase(&mut waiting, now);
        assert_eq!(
            (waiting.status, effects.outbox),
            (MessageStatus::Cancelled, OutboxChange::Remove)
        );
        assert_eq!(
            waiting.content,
            Content::Message(serde_json::json!({"erased": true}))
        );
        let mut denied = message(Outcome::Deny, now);
        let effects = erase(&mut denied, now);
        assert_eq!(
            (denied.status, effects.outbox, effects.audit.len()),
            (MessageStatus::Denied, OutboxChange::Keep, 0)
        );
    }

    #[test]
    fn a_queued_message_in_the_workers_hands_is_shown_as_sending() {
        assert_eq!(
            shown_status(MessageStatus::Queued, true),
            MessageStatus::Sending
        );
        assert_eq!(
            shown_status(MessageStatus::Queued, false),
            MessageStatus::Queued
        );
        assert_eq!(shown_status(MessageStatus::Sent, true), MessageStatus::Sent);
    }

    fn failed_for_good(now: DateTime<Utc>) -> Attempt {
        Attempt {
            http_status: Some(400),
            graph_error: Some(GraphErrorRecord {
                code: 551,
                subcode: Some(1545041),
                message: None,
            }),
            error: Some("unreachable: This person isn't available right now.".into()),
            ..Attempt::messenger(now, AttemptOutcome::Failed)
        }
    }

    fn fallback(outcome: Outcome) -> Decision {
        Decision {
            rule: "policies/default.toml#fallback.email".into(),
            trace: vec![TraceStep {
                rule: "policies/default.toml#fallback.email".into(),
                result: crate::domain::decision::StepResult::Pass,
                detail: "Messenger cannot take it: 551".into(),
            }],
            ..decision(outcome, None)
        }
    }

    #[test]
    fn a_message_messenger_cannot_take_goes_by_email_once_and_is_sent_without_receipts() {
        let now = at("2026-11-30T10:00:00Z");
        let mut m = message(Outcome::Allow, now);
        accepted(&mut m);
        let event = Event::FallBack {
            attempt: Some(failed_for_good(now)),
            decision: fallback(Outcome::Allow),
        };
        let effects = apply(&mut m, event, now).expect("falls back");
        assert_eq!(
            (m.status, m.channel),
            (MessageStatus::Queued, Channel::Email)
        );
        assert_eq!(effects.outbox, OutboxChange::Schedule(now), "due at once");
        assert!(
            effects.holds_lane,
            "the person's later messages wait for it"
        );
        let kinds: Vec<_> = effects.audit.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [AuditKind::Attempt, AuditKind::Decision]);
        assert_eq!(effects.audit[1].channel.as_deref(), Some("email"));
        assert_eq!(
            effects.audit[1].detail.as_deref(),
            Some("Messenger cannot take it: 551"),
            "the deciding step's words"
        );
        assert!(m.fallback.is_some());
        let again = Event::FallBack {
            attempt: None,
            decision: fallback(Outcome::Allow),
        };
        assert!(
            apply(&mut m, again, now).is_err(),
            "once on email, it stays"
        );
        assert!(
            apply(
                &mut m,
                Event::Sent {
                    graph_message_id: "m_1".into()
                },
                now
            )
            .is_err(),
            "on email, it no longer goes through Messenger"
        );

        let mut m = message(Outcome::Allow, now);
        accepted(&mut m);
        let event = Event::FallBack {
            attempt: None,
            decision: fallback(Outcome::Allow),
        };
        apply(&mut m, event, now).expect("falls back");
        let emailed = Event::Emailed {
            attempt: Attempt {
                reply: Some("250 2.0.0 Ok: queued as 4F2A1".into()),
                ..Attempt::by(Channel::Email, now, AttemptOutcome::Sent)
            },
            to: "ada@example.com".into(),
        };
        let effects = apply(&mut m, emailed, now).expect("emailed");
        assert_eq!(m.status, MessageStatus::Sent);
        assert_eq!(effects.outbox, OutboxChange::Remove);
        let attempt = &effects.audit[0];
        assert_eq!(
            attempt.detail.as_deref(),
            Some("250 2.0.0 Ok: queued as 4F2A1")
        );
        assert_eq!(
            attempt.personal.as_ref().and_then(|p| p.email.as_deref()),
            Some("ada@example.com"),
            "the address is among the erasable values"
        );
        assert_eq!(effects.audit[1].channel.as_deref(), Some("email"));
        let read = Event::Receipt(Receipt {
            status: MessageStatus::Read,
            mids: Vec::new(),
            watermark: now + Duration::hours(1),
        });
        assert!(
            apply(&mut m, read, now).is_err(),
            "a Messenger read receipt says nothing of an email"
        );
    }

    #[test]
    fn a_refused_fallback_fails_the_message_and_says_why_before_the_status() {
        let now = at("2026-11-30T10:00:00Z");
        let mut m = message(Outcome::Allow, now);
        accepted(&mut m);
        let event = Event::NoFallback {
            attempt: failed_for_good(now),
            decision: fallback(Outcome::Deny),
        };
        let effects = apply(&mut m, event, now).expect("fails");
        assert_eq!(
            (m.status, m.channel),
            (MessageStatus::Failed, Channel::Messenger)
        );
        let kinds: Vec<_> = effects.audit.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [AuditKind::Attempt, AuditKind::Decision, AuditKind::Status]
        );
        assert_eq!(effects.audit[1].outcome.as_deref(), Some("deny"));
        assert_eq!(m.fallback.as_ref().map(|d| d.outcome), Some(Outcome::Deny));
    }

    #[test]
    fn only_a_message_to_a_user_ref_has_its_graph_id_indexed_and_only_when_it_gets_it() {
        let now = at("2026-11-25T12:00:00Z");
        let mut to_psid = message(Outcome::Allow, now);
        to_psid.graph_message_id = Some("m_1".into());
        assert_eq!(graph_id_to_index(None, &to_psid), None, "found by its PSID");
        let mut to_user_ref = to_psid.clone();
        to_user_ref.recipient = Recipient::UserRef("cart-7781".into());
        assert_eq!(graph_id_to_index(None, &to_user_ref), Some("m_1"));
        assert_eq!(
            graph_id_to_index(Some("m_1"), &to_user_ref),
            None,
            "indexed when it got it, not again at every receipt"
        );
        to_user_ref.graph_message_id = None;
        assert_eq!(graph_id_to_index(None, &to_user_ref), None);
    }
}
