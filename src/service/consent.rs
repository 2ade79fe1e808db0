//! Consents and opt-outs recorded by clients, and the recipient view.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Herald;
use crate::auth::Client;
use crate::domain::{
    parse_recipient, ConsentScope, ConsentSource, FieldError, Psid, Recipient, Violations,
};
use crate::error::ApiError;
use crate::store::{
    AuditEntry, AuditKind, ConsentAction, ConsentEvent, RecipientRecord, TokenStatus,
};

/// `POST /v1/consents`, validated.
#[derive(Debug)]
pub struct ConsentRequest {
    pub recipient: Recipient,
    pub scope: ConsentScope,
    pub source: String,
    pub evidence: Value,
    pub email: Option<String>,
    pub timezone: Option<String>,
    pub locale: Option<String>,
}

/// Which consents a `DELETE /v1/consents/{psid}` withdraws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutScope {
    Transactional,
    Marketing,
    All,
}

impl OptOutScope {
    pub fn parse(s: Option<&str>) -> Result<OptOutScope, ApiError> {
        match s.unwrap_or("all") {
            "transactional" => Ok(OptOutScope::Transactional),
            "marketing" => Ok(OptOutScope::Marketing),
            "all" => Ok(OptOutScope::All),
            _ => Err(ApiError::Invalid(vec![FieldError::new(
                "scope",
                "must be marketing, transactional or all",
            )])),
        }
    }

    fn scopes(self) -> &'static [ConsentScope] {
        match self {
            OptOutScope::Transactional => &[ConsentScope::Transactional],
            OptOutScope::Marketing => &[ConsentScope::Marketing],
            OptOutScope::All => &[ConsentScope::Transactional, ConsentScope::Marketing],
        }
    }
}

impl ConsentRequest {
    pub fn parse(body: &Value) -> Result<ConsentRequest, ApiError> {
        let mut v = Violations::default();
        let Some(obj) = body.as_object() else {
            return Err(ApiError::Invalid(vec![FieldError::new(
                "",
                "must be an object",
            )]));
        };
        for key in obj.keys() {
            if ![
                "recipient",
                "scope",
                "source",
                "evidence",
                "email",
                "timezone",
                "locale",
            ]
            .contains(&key.as_str())
            {
                v.push(key.clone(), "is not a known field");
            }
        }
        let recipient = match body.get("recipient") {
            Some(r) => parse_recipient(r, "recipient", &mut v),
            None => {
                v.push("recipient", "is required");
                None
            }
        };
        let scope = match body.get("scope").and_then(Value::as_str) {
            Some("transactional") => Some(ConsentScope::Transactional),
            Some("marketing") => Some(ConsentScope::Marketing),
            _ => {
                v.push("scope", "must be transactional or marketing");
                None
            }
        };
        let source = match body.get("source").and_then(Value::as_str) {
            Some(s) if !s.trim().is_empty() && s.len() <= 200 => s.to_owned(),
            _ => {
                v.push(
                    "source",
                    "is required: where the consent was given (e.g. checkout_checkbox)",
                );
                String::new()
            }
        };
        let evidence = match body.get("evidence") {
            Some(Value::String(s)) if !s.trim().is_empty() => Value::String(s.clone()),
            Some(e @ Value::Object(m)) if !m.is_empty() => e.clone(),
            _ => {
                v.push(
                    "evidence",
                    "is required: a non-empty string or object proving the consent",
                );
                Value::Null
            }
        };
        let text = |name: &str, v: &mut Violations| match body.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 320 => Some(s.clone()),
            Some(_) => {
                v.push(name, "must be a non-empty string");
                None
            }
        };
        let email = text("email", &mut v);
        if email.as_deref().is_some_and(|e| !e.contains('@')) {
            v.push("email", "must be an email address");
        }
        let timezone = text("timezone", &mut v);
        if timezone
            .as_deref()
            .is_some_and(|tz| tz.parse::<chrono_tz::Tz>().is_err())
        {
            v.push(
                "timezone",
                "must be an IANA time zone such as Europe/Berlin",
            );
        }
        let locale = text("locale", &mut v);
        match (recipient, scope) {
            (Some(recipient), Some(scope)) if v.is_empty() => Ok(ConsentRequest {
                recipient,
                scope,
                source,
                evidence,
                email,
                timezone,
                locale,
            }),
            _ => Err(ApiError::Invalid(v.into_inner())),
        }
    }
}

/// The audit entry for a consent event.
pub fn consent_entry(recipient: &str, event: &ConsentEvent, page_id: Option<&str>) -> AuditEntry {
    AuditEntry {
        at: event.at,
        kind: AuditKind::Consent,
        recipient: Some(recipient.to_owned()),
        page_id: page_id.map(str::to_owned),
        client: event.client.clone(),
        outcome: Some(
            match event.action {
                ConsentAction::Grant => "grant",
                ConsentAction::OptOut => "opt_out",
            }
            .to_owned(),
        ),
        reason: Some(event.scope.as_str().to_owned()),
        detail: Some(
            serde_json::to_value(&event.source)
                .ok()
                .and_then(|s| s.as_str().map(str::to_owned))
                .unwrap_or_default(),
        ),
        ..AuditEntry::default()
    }
}

/// Appends `event` to `record` and returns its audit entry.
pub fn push_consent(
    record: &mut RecipientRecord,
    key: &str,
    event: ConsentEvent,
    page_id: Option<&str>,
) -> AuditEntry {
    let entry = consent_entry(key, &event, page_id);
    record.consents.push(event);
    entry
}

impl Herald {
    /// Records a consent given through the API.
    pub async fn record_consent(
        &self,
        client: &Client,
        req: ConsentRequest,
    ) -> Result<Value, ApiError> {
        let now = Utc::now();
        let key = req.recipient.key();
        let event = ConsentEvent {
            scope: req.scope,
            action: ConsentAction::Grant,
            source: ConsentSource::Api,
            evidence: json!({"source": req.source, "evidence": req.evidence}),
            at: now,
            client: Some(client.name.clone()),
        };
        self.store
            .update_recipient(&key, None, |r| {
                if req.timezone.is_some() {
                    r.timezone.clone_from(&req.timezone);
                }
                if req.locale.is_some() {
                    r.locale.clone_from(&req.locale);
                }
                if req.email.is_some() {
                    r.email.clone_from(&req.email);
                }
                if req.recipient.psid().is_none() && r.user_ref_optin_at.is_none() {
                    r.user_ref_optin_at = Some(now);
                }
                ((), vec![push_consent(r, &key, event.clone(), None)])
            })
            .await?;
        Ok(json!({
            "recipient": req.recipient,
            "scope": req.scope,
            "action": "grant",
            "source": req.source,
            "evidence": req.evidence,
            "email": req.email,
            "timezone": req.timezone,
            "locale": req.locale,
            "client": client.name,
            "at": now,
        }))
    }

    /// Records opt-outs; history is kept, never deleted.
    pub async fn opt_out(
        &self,
        client: &Client,
        psid: &Psid,
        scope: OptOutScope,
    ) -> Result<Value, ApiError> {
        let now = Utc::now();
        let key = psid.as_str().to_owned();
        self.store
            .update_recipient(&key, None, |r| {
                let entries = scope
                    .scopes()
                    .iter()
                    .map(|s| {
                        let event = ConsentEvent {
                            scope: *s,
                            action: ConsentAction::OptOut,
                            source: ConsentSource::Api,
                            evidence: json!({"request": "DELETE /v1/consents"}),
                            at: now,
                            client: Some(client.name.clone()),
                        };
                        push_consent(r, &key, event, None)
                    })
                    .collect();
                ((), entries)
            })
            .await?;
        self.recipient_view(psid)
    }

    /// `GET /v1/recipients/{psid}`.
    pub fn recipient_view(&self, psid: &Psid) -> Result<Value, ApiError> {
        let key = psid.as_str();
        let record = self
            .store
            .recipient(key)?
            .ok_or_else(|| ApiError::NotFound(format!("no recipient {psid}")))?;
        let policy = self.policy();
        let last = record.last_user_interaction_at;
        let window_end = |d: chrono::Duration| last.map(|t| t + d);
        let last_messages: Vec<Value> = self
            .store
            .recent_messages(key, 10)?
            .into_iter()
            .map(|m| {
                json!({"id": m.id, "category": m.category, "status": m.status,
                       "created_at": m.created_at, "sent_at": m.sent_at})
            })
            .collect();
        let token = record.marketing_token.as_ref().map(|t| {
            json!({
                "status": t.status,
                "frequency": t.frequency,
                "expires_at": t.expires_at,
                "last_sent_at": t.last_sent_at,
                "page_id": t.page_id,
                "token_hint": t.token.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect::<String>(),
                "active": t.status == TokenStatus::Active,
            })
        });
        let now: DateTime<Utc> = Utc::now();
        let open_until = window_end(policy.standard_window());
        Ok(json!({
            "psid": psid,
            "consents": record.consents,
            "consent": {
                "transactional": record.has_consent(ConsentScope::Transactional),
                "marketing": record.has_consent(ConsentScope::Marketing),
            },
            "opt_outs": {
                "transactional": record.opted_out(ConsentScope::Transactional),
                "marketing": record.opted_out(ConsentScope::Marketing),
            },
            "marketing_token": token,
            "window": {
                "last_user_interaction_at": last,
                "open_until": open_until,
                "open": open_until.is_some_and(|t| t > now),
                "human_agent_until": window_end(policy.human_agent_window()),
            },
            "timezone": record.timezone,
            "locale": record.locale,
            "unreachable_since": record.unreachable_since,
            "attributions": record.attributions,
            "last_messages": last_messages,
        }))
    }
}
