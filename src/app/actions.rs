//! Sender actions (`typing_on`, `typing_off`, `mark_seen`): shown to the person at once, never
//! queued, and only while Messenger's window with them is open.
//!
//! They are no messages: nothing is stored or audited, and no policy rule but the window and the
//! role applies. A typing indicator in a conversation that has gone quiet would be refused by
//! Messenger anyway (10/2018278), so Herald refuses it first and leaves Messenger alone.

use std::fmt;
use std::str::FromStr;

use serde_json::json;

use super::Herald;
use crate::domain::Client;
use crate::domain::{Category, FieldError, PageId, Recipient, Role};
use crate::messenger::GraphError;
use crate::policy::window_open;
use crate::store::StoreError;

/// What a sender action shows the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderAction {
    TypingOn,
    TypingOff,
    MarkSeen,
}

impl SenderAction {
    pub const ALL: [SenderAction; 3] = [
        SenderAction::TypingOn,
        SenderAction::TypingOff,
        SenderAction::MarkSeen,
    ];

    /// The Send API spelling, e.g. `typing_on`.
    pub fn as_str(self) -> &'static str {
        match self {
            SenderAction::TypingOn => "typing_on",
            SenderAction::TypingOff => "typing_off",
            SenderAction::MarkSeen => "mark_seen",
        }
    }
}

impl FromStr for SenderAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SenderAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| "must be one of typing_on, typing_off, mark_seen".to_owned())
    }
}

impl fmt::Display for SenderAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sender action, as a client asked for it.
#[derive(Debug, Clone)]
pub struct SenderActionCommand {
    pub client: Client,
    /// The page to act as; `None` means the default page.
    pub page_id: Option<PageId>,
    pub recipient: Recipient,
    pub action: SenderAction,
}

/// Why a sender action was not passed on.
#[derive(Debug, thiserror::Error)]
pub enum SenderActionError {
    /// The command has bad fields; each is named.
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    /// The client's role may not write in conversations (the policy's `[roles]` does not let it
    /// send `response`).
    #[error("the {0} role may not act in conversations")]
    RoleForbidden(Role),
    /// The window with the person is closed.
    #[error("the messaging window with this person is closed")]
    WindowClosed,
    /// Messenger refused it, or could not be reached (then without a Graph error).
    #[error("the Send API did not take the sender action: {detail}")]
    Graph {
        graph_error: Option<GraphError>,
        detail: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Herald {
    /// Passes a sender action to the Send API if the window with the person is open.
    pub async fn sender_action(&self, cmd: SenderActionCommand) -> Result<(), SenderActionError> {
        let policy = self.policy();
        // Whoever may answer a person may show that they are typing; nobody else.
        if !policy.role_may_send(cmd.client.role, Category::Response) {
            return Err(SenderActionError::RoleForbidden(cmd.client.role));
        }
        let page = self
            .page(cmd.page_id.as_ref())
            .map_err(SenderActionError::Invalid)?;
        let now = self.clock.now();
        let (facts, _) = self
            .recipient_facts(&policy, &cmd.recipient, page, cmd.client.role, now)
            .await?;
        if !window_open(&policy, &cmd.recipient, &facts) {
            return Err(SenderActionError::WindowClosed);
        }
        let recipient = match &cmd.recipient {
            Recipient::Psid(p) => json!({"id": p.as_str()}),
            Recipient::UserRef(r) => json!({"user_ref": r}),
        };
        let body = json!({"recipient": recipient, "sender_action": cmd.action.as_str()});
        self.graph
            .sender_action(page.id.as_str(), &page.access_token, &body)
            .await
            .map_err(|f| SenderActionError::Graph {
                graph_error: f.graph_error,
                detail: f.detail,
            })?;
        tracing::debug!(client = %cmd.client.name, action = %cmd.action, "sender action passed on");
        Ok(())
    }
}
