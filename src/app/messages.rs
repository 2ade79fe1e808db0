//! Reading a message, and cancelling one.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{CommandError, Herald};
use crate::domain::lifecycle::{self, Event, MessageStatus};
use crate::domain::Client;
use crate::domain::{
    Attempt, Category, Channel, MessageId, MessageRecord, Recipient, Role, StatusChange,
};
use crate::policy::Decision;

/// A message as its sender, a compliance officer or an admin sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: MessageId,
    pub status: MessageStatus,
    pub category: Category,
    pub page_id: String,
    pub recipient: Recipient,
    pub created_at: DateTime<Utc>,
    /// When a waiting message will be looked at next.
    pub not_before: Option<DateTime<Utc>>,
    /// Not sent by then, it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// The latest decision, with its trace.
    pub decision: Decision,
    /// The way it goes (or went): `messenger`, or `email` when Messenger could not take it.
    pub channel: Channel,
    /// The email fallback's decision, with its trace, when Messenger could not take the
    /// message and `[email]` is configured: `allow` (it goes by email) or `deny` (why not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Decision>,
    pub attempts: Vec<Attempt>,
    pub graph_message_id: Option<String>,
    pub history: Vec<StatusChange>,
}

/// How long a cancel holds a message against the worker; it needs only one write.
const CANCEL_LEASE_SECONDS: i64 = 30;

impl Herald {
    /// The message `id`, if `client` may see it: senders see their own, compliance and admin
    /// see all; anyone else is told it does not exist.
    pub async fn message(&self, client: &Client, id: &str) -> Result<MessageView, CommandError> {
        let (id, record) = self.visible(client, id).await?;
        let in_flight = self.store.outbox.is_claimed(&id, self.clock.now()).await?;
        self.view(record, in_flight).await
    }

    /// Cancels a message that is still queued or deferred: it will never be sent. A message
    /// that is being sent, was sent or has settled cannot be cancelled.
    pub async fn cancel(&self, client: &Client, id: &str) -> Result<MessageView, CommandError> {
        let (id, record) = self.visible(client, id).await?;
        if client.role == Role::Compliance {
            return Err(CommandError::Forbidden(
                "compliance reads messages and changes none".into(),
            ));
        }
        let now = self.clock.now();
        // Holding the message keeps the worker from starting to send it while it is cancelled;
        // if the worker holds it already, it is being sent.
        if !self
            .store
            .outbox
            .try_claim(&id, now, Duration::seconds(CANCEL_LEASE_SECONDS))
            .await?
        {
            return Err(CommandError::NotCancellable {
                id,
                status: lifecycle::shown_status(record.status, true),
            });
        }
        let cancelled = self
            .store
            .messages
            .update_message(
                &id,
                Box::new(move |r| lifecycle::apply(r, Event::Cancel, now).ok()),
            )
            .await;
        self.store.outbox.release(&id).await?;
        match cancelled? {
            Some(record) => self.view(record, false).await,
            None => {
                let status = self
                    .store
                    .messages
                    .message(&id)
                    .await?
                    .map_or(record.status, |r| r.status);
                Err(CommandError::NotCancellable { id, status })
            }
        }
    }

    async fn visible(
        &self,
        client: &Client,
        id: &str,
    ) -> Result<(MessageId, MessageRecord), CommandError> {
        let not_found = || CommandError::NotFound(format!("no message {id}"));
        let id = MessageId::parse(id).ok_or_else(not_found)?;
        let record = self
            .store
            .messages
            .message(&id)
            .await?
            .ok_or_else(not_found)?;
        let own = record.client == client.name;
        if !own && !matches!(client.role, Role::Compliance | Role::Admin) {
            return Err(not_found());
        }
        Ok((id, record))
    }

    async fn view(
        &self,
        record: MessageRecord,
        in_flight: bool,
    ) -> Result<MessageView, CommandError> {
        let mut decision = record.decision.clone();
        decision.trace = self.store.messages.trace(&record).await?;
        Ok(MessageView {
            status: lifecycle::shown_status(record.status, in_flight),
            not_before: record.not_before.filter(|_| record.status.is_pending()),
            id: record.id,
            category: record.category,
            page_id: record.page_id.into(),
            recipient: record.recipient,
            created_at: record.created_at,
            expires_at: record.expires_at,
            decision,
            channel: record.channel,
            fallback: record.fallback,
            attempts: record.attempts,
            graph_message_id: record.graph_message_id,
            history: record.history,
        })
    }
}
