//! Consents and opt-outs recorded by clients, and the recipient view.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::{CommandError, Herald};
use crate::domain::recipient::{self, Change};
use crate::domain::Client;
use crate::domain::{bounds, Category};
use crate::domain::{
    Attribution, ConsentAction, ConsentEvent, ConsentScope, ConsentSource, MessageId,
    MessageStatus, Psid, Recipient, TokenStatus,
};
use crate::store::{SeenMid, StoreError};

/// `POST /v1/consents`, parsed: a consent a client records with its evidence.
#[derive(Debug, Clone)]
pub struct ConsentCommand {
    pub recipient: Recipient,
    pub scope: ConsentScope,
    /// Where the consent was given (e.g. `checkout_checkbox`).
    pub source: String,
    /// What proves it: a non-empty string or object.
    pub evidence: Value,
    pub email: Option<String>,
    /// An IANA time zone, already checked.
    pub timezone: Option<String>,
    pub locale: Option<String>,
}

/// Which consents an opt-out withdraws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutScope {
    Transactional,
    Marketing,
    All,
}

impl OptOutScope {
    fn scopes(self) -> &'static [ConsentScope] {
        match self {
            OptOutScope::Transactional => &[ConsentScope::Transactional],
            OptOutScope::Marketing => &[ConsentScope::Marketing],
            OptOutScope::All => &[ConsentScope::Transactional, ConsentScope::Marketing],
        }
    }
}

/// The consent as recorded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    pub recipient: Recipient,
    pub scope: ConsentScope,
    pub action: ConsentAction,
    pub source: String,
    pub evidence: Value,
    pub email: Option<String>,
    pub timezone: Option<String>,
    pub locale: Option<String>,
    pub client: String,
    pub at: DateTime<Utc>,
}

/// Everything Herald knows about a recipient (`GET /v1/recipients/{psid}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecipientView {
    pub psid: Psid,
    pub consents: Vec<ConsentEvent>,
    /// A grant on record with no opt-out after it, per scope.
    pub consent: ScopeFlags,
    /// The latest event is an opt-out, per scope.
    pub opt_outs: ScopeFlags,
    pub marketing_token: Option<TokenView>,
    pub window: WindowView,
    pub timezone: Option<String>,
    pub locale: Option<String>,
    pub unreachable_since: Option<DateTime<Utc>>,
    pub attributions: Vec<Attribution>,
    pub last_messages: Vec<RecentMessage>,
    /// The last decisions about them, newest first, each naming the consent that permitted it.
    pub last_decisions: Vec<super::DecisionSummary>,
    /// Their personal data was erased then; consents before it no longer count.
    pub erased_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct ScopeFlags {
    pub transactional: bool,
    pub marketing: bool,
}

/// A Marketing Messages token, without the token itself (its last four characters only).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    pub status: TokenStatus,
    pub frequency: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub page_id: String,
    pub token_hint: String,
    pub active: bool,
}

/// Messenger's window for this recipient, as of the moment asked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WindowView {
    pub last_user_interaction_at: Option<DateTime<Utc>>,
    pub open_until: Option<DateTime<Utc>>,
    pub open: bool,
    pub human_agent_until: Option<DateTime<Utc>>,
}

/// One of the last messages allowed to the recipient.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecentMessage {
    pub id: MessageId,
    pub category: Category,
    pub status: MessageStatus,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// How many of the last messages the recipient view shows.
const LAST_MESSAGES: usize = 10;

impl Herald {
    /// Changes what Herald knows about a person by `change` (see `domain::recipient`), with
    /// the audit entries it produces, in one durable transaction. With `seen`, a webhook event
    /// applied before changes nothing and `false` is returned.
    pub(crate) async fn change_recipient(
        &self,
        change: Change,
        seen: Option<SeenMid<'_>>,
    ) -> Result<bool, StoreError> {
        let key = change.key.clone();
        self.store
            .recipients
            .update_recipient(&key, seen, Box::new(move |r| change.apply(r)))
            .await
    }

    /// Records a consent given through the API.
    pub async fn record_consent(
        &self,
        client: &Client,
        cmd: ConsentCommand,
    ) -> Result<ConsentView, CommandError> {
        let now = self.clock.now();
        let key = cmd.recipient.key();
        let event = ConsentEvent {
            id: ConsentEvent::new_id(),
            scope: cmd.scope,
            action: ConsentAction::Grant,
            source: ConsentSource::Api,
            evidence: json!({"source": cmd.source, "evidence": cmd.evidence}),
            at: now,
            client: Some(client.name.clone()),
        };
        let granted = recipient::Event::Granted {
            consent: event,
            timezone: cmd.timezone.clone(),
            locale: cmd.locale.clone(),
            email: cmd.email.clone(),
        };
        self.change_recipient(Change::of(key, now, granted), None)
            .await?;
        Ok(ConsentView {
            recipient: cmd.recipient,
            scope: cmd.scope,
            action: ConsentAction::Grant,
            source: cmd.source,
            evidence: cmd.evidence,
            email: cmd.email,
            timezone: cmd.timezone,
            locale: cmd.locale,
            client: client.name.clone(),
            at: now,
        })
    }

    /// Records opt-outs; history is kept, never deleted.
    pub async fn opt_out(
        &self,
        client: &Client,
        psid: &Psid,
        scope: OptOutScope,
    ) -> Result<RecipientView, CommandError> {
        let now = self.clock.now();
        let consents = scope
            .scopes()
            .iter()
            .map(|s| ConsentEvent {
                id: ConsentEvent::new_id(),
                scope: *s,
                action: ConsentAction::OptOut,
                source: ConsentSource::Api,
                evidence: json!({"request": "DELETE /v1/consents"}),
                at: now,
                client: Some(client.name.clone()),
            })
            .collect();
        let change = Change::of(psid.as_str(), now, recipient::Event::OptedOut(consents));
        self.change_recipient(change, None).await?;
        self.recipient(psid).await
    }

    /// What Herald knows about `psid`, as of now.
    pub async fn recipient(&self, psid: &Psid) -> Result<RecipientView, CommandError> {
        let key = psid.as_str();
        let record = self
            .store
            .recipients
            .recipient(key)
            .await?
            .ok_or_else(|| CommandError::NotFound(format!("no recipient {psid}")))?;
        let mut last_messages = Vec::new();
        for id in self
            .store
            .recipients
            .recent_message_ids(key, LAST_MESSAGES)
            .await?
        {
            if let Some(m) = self.store.messages.message(&id).await? {
                last_messages.push(RecentMessage {
                    id: m.id,
                    category: m.category,
                    status: m.status,
                    created_at: m.created_at,
                    sent_at: m.sent_at,
                });
            }
        }
        let last_decisions = self.last_decisions(key).await?;
        let policy = self.policy();
        let last = record.last_user_interaction_at;
        // Checked: a far date stored before webhooks were bounded must not fail the read.
        let open_until = last.map(|t| bounds::later(t, policy.standard_window()));
        let now = self.clock.now();
        Ok(RecipientView {
            psid: psid.clone(),
            consent: ScopeFlags {
                transactional: record.has_consent(ConsentScope::Transactional),
                marketing: record.has_consent(ConsentScope::Marketing),
            },
            opt_outs: ScopeFlags {
                transactional: record.opted_out(ConsentScope::Transactional),
                marketing: record.opted_out(ConsentScope::Marketing),
            },
            marketing_token: record.marketing_token.as_ref().map(|t| TokenView {
                status: t.status,
                frequency: t.frequency.clone(),
                expires_at: t.expires_at,
                last_sent_at: t.last_sent_at,
                page_id: t.page_id.clone(),
                token_hint: last_chars(&t.token, 4),
                active: t.status == TokenStatus::Active,
            }),
            window: WindowView {
                last_user_interaction_at: last,
                open_until,
                open: open_until.is_some_and(|t| t > now),
                human_agent_until: last.map(|t| bounds::later(t, policy.human_agent_window())),
            },
            consents: record.consents,
            timezone: record.timezone,
            locale: record.locale,
            unreachable_since: record.unreachable_since,
            attributions: record.attributions,
            last_messages,
            last_decisions,
            erased_at: record.erased.map(|e| e.at),
        })
    }
}

fn last_chars(s: &str, n: usize) -> String {
    let count = s.chars().count();
    s.chars().skip(count.saturating_sub(n)).collect()
}
