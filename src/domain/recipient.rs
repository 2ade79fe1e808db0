//! Who a message goes to, and a person's life in one place: everything that changes what Herald
//! knows about a recipient — their consents and opt-outs, their window, their Marketing Messages
//! token, whether Messenger can reach them, their erasure — is an [`Event`] applied by
//! [`Change::apply`], which returns the audit entries it produces. Pure: no I/O and no clock (the
//! moment is given), as `lifecycle.rs` is for messages. The webhook, the consent API, the
//! delivery of a message and erasure all change a person through it.
//!
//! ```text
//!   webhook ── Inbound, Acted, StopKeyword, ResumeKeyword, Attributed,
//!              CheckboxOptin, MarketingOptin, Notifications ────────────────┐
//!   consent API ── Granted, OptedOut ───────────────────────────────────────┤
//!   delivery ── TokenUsed, TokenStopped, Unreachable ───────────────────────┼─► Change::apply
//!   erasure ── Erased ──────────────────────────────────────────────────────┘    │
//!                                         RecipientRecord (changed) + audit entries
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::audit::{AuditEntry, AuditKind, Personal};
use super::{
    Attribution, ConsentAction, ConsentEvent, ConsentScope, ConsentSource, GraphErrorRecord, Psid,
    RecipientRecord, TokenRecord, TokenStatus,
};

/// Who a message goes to: a PSID, or a checkbox-plugin `user_ref` before the user has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Psid(Psid),
    UserRef(String),
}

impl Recipient {
    /// The key under which facts about this recipient are kept: the PSID, or `user_ref:<ref>`.
    pub fn key(&self) -> String {
        match self {
            Recipient::Psid(p) => p.as_str().to_owned(),
            Recipient::UserRef(r) => format!("user_ref:{r}"),
        }
    }

    pub fn psid(&self) -> Option<&Psid> {
        match self {
            Recipient::Psid(p) => Some(p),
            Recipient::UserRef(_) => None,
        }
    }
}

/// Something that happens to a person.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// They acted in Messenger — wrote, tapped a button, reacted, came by a link, used a
    /// plugin: the window opens at Messenger's moment (a late event never moves it back), they
    /// can be reached again, and a first contact counts as transactional consent from `source`
    /// (`what` they did is its evidence) unless they opted out.
    Acted {
        source: ConsentSource,
        what: &'static str,
    },
    /// They wrote one of the policy's stop keywords: marketing opt-out.
    StopKeyword { text: String, mid: Option<String> },
    /// They wrote a resume keyword: lifts an opt-out made by a stop keyword, and only that (it
    /// does not invent a marketing consent never given).
    ResumeKeyword { text: String, mid: Option<String> },
    /// They came from an m.me link, an ad or a Messenger code.
    Attributed(Attribution),
    /// A checkbox-plugin opt-in (the recipient is a `user_ref`): transactional consent.
    CheckboxOptin { evidence: Value },
    /// A Marketing Messages opt-in: marketing consent, and its token (for the page the change
    /// came through) when Messenger sent one.
    MarketingOptin {
        token: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        frequency: Option<String>,
        /// An IANA time zone; one that does not parse is left out.
        timezone: Option<String>,
        evidence: Value,
    },
    /// "Stop notifications" (`stop`) or "Resume notifications" on their token.
    Notifications {
        stop: bool,
        timezone: Option<String>,
        evidence: Value,
    },
    /// A consent recorded through the API, with what the client knows of the person.
    Granted {
        consent: ConsentEvent,
        timezone: Option<String>,
        locale: Option<String>,
        email: Option<String>,
    },
    /// Opt-outs recorded through the API (one per scope).
    OptedOut(Vec<ConsentEvent>),
    /// A message went out on their Marketing Messages token.
    TokenUsed,
    /// Messenger refused their token: they stopped notifications (10/1893015).
    TokenStopped { evidence: Value },
    /// Messenger cannot reach them (551, 200/1545041: they blocked the page, or their account
    /// is deactivated or held back by Meta; Meta does not say which), as `error` said when a
    /// send to them failed. The first time (they were reachable until then) it is recorded:
    /// an entry of kind `recipient`, outcome `unreachable` (the `recipient.unreachable` event).
    Unreachable { error: Option<GraphErrorRecord> },
    /// Messenger told Herald of something they did: a message, a postback, a reaction, a
    /// referral. Recorded as it came (an entry of kind `inbound`, outcome `what`; `carried` —
    /// its `mid`, text, payload, `ref` — is an erasable value of the entry); what it changes
    /// for them is told by the other events of the change ([`Event::Acted`]…).
    Inbound { what: InboundKind, carried: Value },
    /// Their personal data was erased by `client`.
    Erased { client: String },
}

/// What a person did that Messenger told of, as the audit entry's outcome names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundKind {
    Message,
    Postback,
    Reaction,
    Referral,
}

impl InboundKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InboundKind::Message => "message",
            InboundKind::Postback => "postback",
            InboundKind::Reaction => "reaction",
            InboundKind::Referral => "referral",
        }
    }
}

/// Events that happen to one person at one moment, as one change of their record.
#[derive(Debug, Clone)]
pub struct Change {
    /// The recipient's key ([`Recipient::key`]).
    pub key: String,
    /// The page the events came through, for the audit entries (webhook events).
    pub page: Option<String>,
    pub at: DateTime<Utc>,
    pub events: Vec<Event>,
}

impl Change {
    pub fn new(key: impl Into<String>, at: DateTime<Utc>) -> Change {
        Change {
            key: key.into(),
            page: None,
            at,
            events: Vec::new(),
        }
    }

    /// One event.
    pub fn of(key: impl Into<String>, at: DateTime<Utc>, event: Event) -> Change {
        Change::new(key, at).with(event)
    }

    pub fn on_page(mut self, page: Option<String>) -> Change {
        self.page = page;
        self
    }

    pub fn with(mut self, event: Event) -> Change {
        self.events.push(event);
        self
    }

    /// Applies the events in order; returns the audit entries they produce.
    pub fn apply(self, r: &mut RecipientRecord) -> Vec<AuditEntry> {
        let mut entries = Vec::new();
        let cx = Cx {
            key: &self.key,
            page: self.page.as_deref(),
            at: self.at,
        };
        for event in self.events {
            cx.apply(r, event, &mut entries);
        }
        entries
    }
}

struct Cx<'a> {
    key: &'a str,
    page: Option<&'a str>,
    at: DateTime<Utc>,
}

impl Cx<'_> {
    /// One arm per event, each a line or a call: the table of what changes a person. (Longer
    /// than the house's 80 lines because there are seventeen kinds of change.)
    fn apply(&self, r: &mut RecipientRecord, event: Event, entries: &mut Vec<AuditEntry>) {
        use ConsentScope::{Marketing, Transactional};
        let at = self.at;
        match event {
            Event::Acted { source, what } => entries.extend(self.acted(r, source, what)),
            Event::StopKeyword { text, mid } => {
                let said = json!({"keyword": text.trim(), "mid": mid});
                let (action, source) = (ConsentAction::OptOut, ConsentSource::StopKeyword);
                let e = consent_event(Marketing, action, source, said, at);
                entries.push(self.consent(r, e));
            }
            Event::ResumeKeyword { text, mid } => entries.extend(self.resumed(r, &text, mid)),
            Event::Attributed(attribution) => r.attributions.push(attribution),
            Event::CheckboxOptin { evidence } => {
                r.user_ref_optin_at = Some(r.user_ref_optin_at.map_or(at, |t| t.max(at)));
                let e = grant(Transactional, ConsentSource::Plugin, evidence, at);
                entries.push(self.consent(r, e));
            }
            Event::MarketingOptin {
                token,
                expires_at,
                frequency,
                timezone,
                evidence,
            } => {
                set_timezone(r, timezone);
                if let Some(token) = token {
                    r.marketing_token = Some(self.token(token, expires_at, frequency));
                }
                let e = grant(Marketing, ConsentSource::MarketingOptin, evidence, at);
                entries.push(self.consent(r, e));
            }
            Event::Notifications {
                stop,
                timezone,
                evidence,
            } => {
                set_timezone(r, timezone);
                entries.push(self.notifications(r, stop, evidence));
            }
            Event::Granted {
                consent,
                timezone,
                locale,
                email,
            } => {
                // What the client gave beside the consent; what it left out stays as it was.
                r.timezone = timezone.or(r.timezone.take());
                r.locale = locale.or(r.locale.take());
                r.email = email.or(r.email.take());
                // A consent for a `user_ref` is the checkbox's opt-in recorded by the client.
                if self.key.starts_with("user_ref:") && r.user_ref_optin_at.is_none() {
                    r.user_ref_optin_at = Some(at);
                }
                entries.push(self.consent(r, consent));
            }
            Event::OptedOut(consents) => {
                for e in consents {
                    entries.push(self.consent(r, e));
                }
            }
            Event::TokenUsed => {
                if let Some(t) = r.marketing_token.as_mut() {
                    t.last_sent_at = Some(at);
                }
            }
            Event::TokenStopped { evidence } => {
                if let Some(t) = r.marketing_token.as_mut() {
                    t.status = TokenStatus::Stopped;
                }
                let source = ConsentSource::NotificationSettings;
                let action = ConsentAction::OptOut;
                let e = consent_event(Marketing, action, source, evidence, at);
                entries.push(self.consent(r, e));
            }
            Event::Unreachable { error } => {
                if r.unreachable_since.is_none() {
                    entries.push(self.unreachable(error));
                }
                r.unreachable_since = Some(at);
            }
            Event::Inbound { what, carried } => entries.push(self.inbound(what, carried)),
            Event::Erased { client } => {
                r.erase(at);
                entries.push(self.erased(client));
            }
        }
    }

    /// The person wrote, tapped, reacted or came by a link: the window opens, they are
    /// reachable again, and a first such act is a transactional consent.
    fn acted(
        &self,
        r: &mut RecipientRecord,
        source: ConsentSource,
        what: &'static str,
    ) -> Option<AuditEntry> {
        let at = self.at;
        r.last_user_interaction_at = Some(r.last_user_interaction_at.map_or(at, |t| t.max(at)));
        r.unreachable_since = None;
        let transactional = ConsentScope::Transactional;
        if r.has_consent(transactional) || r.opted_out(transactional) {
            return None;
        }
        let e = grant(transactional, source, json!({ "event": what }), at);
        Some(self.consent(r, e))
    }

    /// "Stop notifications" (`stop`) or "Resume notifications": the token and the consent.
    fn notifications(&self, r: &mut RecipientRecord, stop: bool, evidence: Value) -> AuditEntry {
        let (status, action) = if stop {
            (TokenStatus::Stopped, ConsentAction::OptOut)
        } else {
            (TokenStatus::Active, ConsentAction::Grant)
        };
        if let Some(t) = r.marketing_token.as_mut() {
            t.status = status;
        }
        let source = ConsentSource::NotificationSettings;
        let e = consent_event(ConsentScope::Marketing, action, source, evidence, self.at);
        self.consent(r, e)
    }

    /// What the person did (a message, a postback, a reaction, a referral), with what it carried
    /// among the entry's erasable values.
    fn inbound(&self, what: InboundKind, carried: Value) -> AuditEntry {
        let entry = AuditEntry {
            page_id: self.page.map(str::to_owned),
            outcome: Some(what.as_str().to_owned()),
            personal: Some(Personal {
                event: Some(carried),
                ..Personal::of(self.key)
            }),
            ..AuditEntry::default()
        };
        self.entry(AuditKind::Inbound, entry)
    }

    /// The person's data was erased by `client`.
    fn erased(&self, client: String) -> AuditEntry {
        let entry = AuditEntry {
            client: Some(client),
            detail: Some("personal data erased".into()),
            ..AuditEntry::default()
        };
        self.entry(AuditKind::Erasure, entry)
    }

    /// `entry` as an entry of `kind` about this person, now (the person's key among its
    /// erasable values unless it brings its own).
    fn entry(&self, kind: AuditKind, entry: AuditEntry) -> AuditEntry {
        AuditEntry {
            at: self.at,
            kind,
            personal: entry.personal.or_else(|| Some(Personal::of(self.key))),
            ..entry
        }
    }

    /// A resume keyword lifts a marketing opt-out that a stop keyword made, if the person had
    /// granted marketing before.
    fn resumed(
        &self,
        r: &mut RecipientRecord,
        text: &str,
        mid: Option<String>,
    ) -> Option<AuditEntry> {
        let stopped_by_keyword = r
            .consents
            .iter()
            .rev()
            .find(|c| c.scope == ConsentScope::Marketing)
            .is_some_and(|c| {
                c.action == ConsentAction::OptOut && c.source == ConsentSource::StopKeyword
            });
        if !(stopped_by_keyword && r.ever_granted(ConsentScope::Marketing)) {
            return None;
        }
        let e = grant(
            ConsentScope::Marketing,
            ConsentSource::StopKeyword,
            json!({"resume_keyword": text.trim(), "mid": mid}),
            self.at,
        );
        Some(self.consent(r, e))
    }

    /// A Marketing Messages token Messenger gave now, for this page.
    fn token(
        &self,
        token: String,
        expires_at: Option<DateTime<Utc>>,
        frequency: Option<String>,
    ) -> TokenRecord {
        TokenRecord {
            token,
            status: TokenStatus::Active,
            page_id: self.page.unwrap_or_default().to_owned(),
            created_at: self.at,
            expires_at,
            frequency,
            last_sent_at: None,
        }
    }

    /// The entry for a person Messenger says it cannot reach, with the error that said so.
    fn unreachable(&self, error: Option<GraphErrorRecord>) -> AuditEntry {
        let detail = match &error {
            Some(e) => match e.subcode {
                Some(sub) => format!("Messenger error {}/{sub}", e.code),
                None => format!("Messenger error {}", e.code),
            },
            None => "Messenger cannot reach them".into(),
        };
        AuditEntry {
            at: self.at,
            kind: AuditKind::Recipient,
            page_id: self.page.map(str::to_owned),
            outcome: Some("unreachable".into()),
            detail: Some(detail),
            graph_error: error,
            personal: Some(Personal::of(self.key)),
            ..AuditEntry::default()
        }
    }

    /// Appends `event` to the record and returns its audit entry.
    fn consent(&self, r: &mut RecipientRecord, event: ConsentEvent) -> AuditEntry {
        let entry = consent_entry(self.key, &event, self.page);
        r.consents.push(event);
        entry
    }
}

/// A time zone from Messenger, kept only if it is one Herald can use.
fn set_timezone(r: &mut RecipientRecord, timezone: Option<String>) {
    if let Some(tz) = timezone.filter(|tz| tz.parse::<chrono_tz::Tz>().is_ok()) {
        r.timezone = Some(tz);
    }
}

/// A fresh grant of `scope`.
pub fn grant(
    scope: ConsentScope,
    source: ConsentSource,
    evidence: Value,
    at: DateTime<Utc>,
) -> ConsentEvent {
    consent_event(scope, ConsentAction::Grant, source, evidence, at)
}

/// A fresh consent event (a grant or an opt-out), with a new id and no client.
pub fn consent_event(
    scope: ConsentScope,
    action: ConsentAction,
    source: ConsentSource,
    evidence: Value,
    at: DateTime<Utc>,
) -> ConsentEvent {
    ConsentEvent {
        id: ConsentEvent::new_id(),
        scope,
        action,
        source,
        evidence,
        at,
        client: None,
    }
}

/// The audit entry for a consent event.
pub fn consent_entry(recipient: &str, event: &ConsentEvent, page_id: Option<&str>) -> AuditEntry {
    AuditEntry {
        at: event.at,
        kind: AuditKind::Consent,
        page_id: page_id.map(str::to_owned),
        consent_id: Some(event.id.clone()),
        consent_source: Some(event.source.as_str().to_owned()),
        personal: Some(Personal {
            consent_evidence: Some(event.evidence.clone()),
            ..Personal::of(recipient)
        }),
        client: event.client.clone(),
        outcome: Some(
            match event.action {
                ConsentAction::Grant => "grant",
                ConsentAction::OptOut => "opt_out",
            }
            .to_owned(),
        ),
        reason: Some(event.scope.as_str().to_owned()),
        detail: Some(event.source.as_str().to_owned()),
        ..AuditEntry::default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0)
            .single()
            .expect("a moment")
            + Duration::minutes(minutes)
    }

    fn happen(r: &mut RecipientRecord, minutes: i64, event: Event) -> Vec<AuditEntry> {
        Change::of("4242", at(minutes), event)
            .on_page(Some("P1".into()))
            .apply(r)
    }

    fn wrote() -> Event {
        Event::Acted {
            source: ConsentSource::UserMessage,
            what: "message",
        }
    }

    fn api_consent(scope: ConsentScope, minutes: i64) -> Event {
        Event::Granted {
            consent: ConsentEvent {
                client: Some("shop".into()),
                ..grant(scope, ConsentSource::Api, json!("checkout"), at(minutes))
            },
            timezone: Some("Europe/Berlin".into()),
            locale: None,
            email: Some("a@example.com".into()),
        }
    }

    fn api_opt_out(scope: ConsentScope, minutes: i64) -> Event {
        let source = ConsentSource::Api;
        let out = consent_event(scope, ConsentAction::OptOut, source, json!(1), at(minutes));
        Event::OptedOut(vec![out])
    }

    #[test]
    fn a_first_message_opens_the_window_and_counts_as_transactional_consent_once() {
        let mut r = RecipientRecord::default();
        let entries = happen(&mut r, 0, wrote());
        assert_eq!(r.last_user_interaction_at, Some(at(0)));
        assert!(r.has_consent(ConsentScope::Transactional));
        assert_eq!(entries.len(), 1, "one consent entry");
        assert_eq!(entries[0].kind, AuditKind::Consent);
        assert_eq!(entries[0].page_id.as_deref(), Some("P1"));
        assert_eq!(entries[0].consent_source.as_deref(), Some("user_message"));
        assert!(happen(&mut r, 5, wrote()).is_empty(), "no second consent");
        assert_eq!(r.last_user_interaction_at, Some(at(5)));
    }

    #[test]
    fn a_late_event_never_moves_the_window_back_and_acting_makes_them_reachable() {
        let mut r = RecipientRecord::default();
        happen(&mut r, 10, wrote());
        happen(&mut r, 20, Event::Unreachable { error: None });
        assert_eq!(r.unreachable_since, Some(at(20)));
        happen(&mut r, 0, wrote());
        assert_eq!(r.last_user_interaction_at, Some(at(10)));
        assert_eq!(r.unreachable_since, None);
    }

    #[test]
    fn acting_after_an_opt_out_grants_nothing() {
        let mut r = RecipientRecord::default();
        happen(&mut r, 0, api_opt_out(ConsentScope::Transactional, 0));
        assert!(happen(&mut r, 1, wrote()).is_empty());
        assert!(r.opted_out(ConsentScope::Transactional));
    }

    #[test]
    fn a_resume_keyword_lifts_only_a_keyword_opt_out_of_a_consent_once_given() {
        let stop = || Event::StopKeyword {
            text: " STOP ".into(),
            mid: Some("m1".into()),
        };
        let resume = || Event::ResumeKeyword {
            text: "START".into(),
            mid: Some("m2".into()),
        };
        // Never granted: a resume keyword invents nothing.
        let mut r = RecipientRecord::default();
        happen(&mut r, 0, stop());
        assert!(happen(&mut r, 1, resume()).is_empty());
        assert!(r.opted_out(ConsentScope::Marketing));
        // Granted, then stopped by keyword: resumed.
        let mut r = RecipientRecord::default();
        happen(&mut r, 0, api_consent(ConsentScope::Marketing, 0));
        let entries = happen(&mut r, 1, stop());
        assert_eq!(entries[0].outcome.as_deref(), Some("opt_out"));
        assert_eq!(
            r.consents.last().map(|c| c.evidence.clone()),
            Some(json!({"keyword": "STOP", "mid": "m1"}))
        );
        assert_eq!(happen(&mut r, 2, resume()).len(), 1);
        assert!(r.has_consent(ConsentScope::Marketing));
        // An opt-out through the API is not lifted by a keyword.
        happen(&mut r, 3, api_opt_out(ConsentScope::Marketing, 3));
        assert!(happen(&mut r, 4, resume()).is_empty());
        assert!(r.opted_out(ConsentScope::Marketing));
    }

    #[test]
    fn a_marketing_optin_keeps_its_token_for_the_page_and_its_notifications_switch_it() {
        let mut r = RecipientRecord::default();
        let optin = Event::MarketingOptin {
            token: Some("tok".into()),
            expires_at: Some(at(60)),
            frequency: Some("DAILY".into()),
            timezone: Some("Not/AZone".into()),
            evidence: json!({"title": "Deals"}),
        };
        happen(&mut r, 0, optin);
        let token = r.marketing_token.clone().expect("a token");
        assert_eq!(
            (token.page_id.as_str(), token.created_at, token.status),
            ("P1", at(0), TokenStatus::Active)
        );
        assert_eq!(r.timezone, None, "a zone that does not parse is left out");
        assert!(r.has_consent(ConsentScope::Marketing));
        let switch = |stop| Event::Notifications {
            stop,
            timezone: Some("Asia/Tokyo".into()),
            evidence: json!({}),
        };
        happen(&mut r, 1, switch(true));
        assert_eq!(
            r.marketing_token.as_ref().map(|t| t.status),
            Some(TokenStatus::Stopped)
        );
        assert!(r.opted_out(ConsentScope::Marketing));
        assert_eq!(r.timezone.as_deref(), Some("Asia/Tokyo"));
        happen(&mut r, 2, switch(false));
        assert!(r.has_consent(ConsentScope::Marketing));
        happen(&mut r, 3, Event::TokenUsed);
        assert_eq!(
            r.marketing_token.as_ref().and_then(|t| t.last_sent_at),
            Some(at(3))
        );
        let entries = happen(
            &mut r,
            4,
            Event::TokenStopped {
                evidence: json!({}),
            },
        );
        assert_eq!(
            entries[0].consent_source.as_deref(),
            Some("notification_settings")
        );
        assert!(r.opted_out(ConsentScope::Marketing));
    }

    #[test]
    fn a_consent_through_the_api_keeps_what_the_client_knows_and_a_checkbox_its_moment() {
        let mut r = RecipientRecord::default();
        let entries = happen(&mut r, 0, api_consent(ConsentScope::Transactional, 0));
        assert_eq!(entries[0].client.as_deref(), Some("shop"));
        assert_eq!(r.email.as_deref(), Some("a@example.com"));
        assert_eq!(r.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(r.user_ref_optin_at, None, "a PSID is not a checkbox opt-in");
        let mut by_ref = RecipientRecord::default();
        Change::of(
            "user_ref:u1",
            at(5),
            api_consent(ConsentScope::Transactional, 5),
        )
        .apply(&mut by_ref);
        assert_eq!(by_ref.user_ref_optin_at, Some(at(5)));
        let mut checkbox = RecipientRecord::default();
        let evidence = json!({"ref": "cart"});
        Change::of("user_ref:u2", at(7), Event::CheckboxOptin { evidence }).apply(&mut checkbox);
        assert_eq!(checkbox.user_ref_optin_at, Some(at(7)));
        assert!(checkbox.has_consent(ConsentScope::Transactional));
    }

    #[test]
    fn erasure_keeps_the_history_without_evidence_and_nothing_counts_afterwards() {
        let mut r = RecipientRecord::default();
        happen(&mut r, 0, api_consent(ConsentScope::Marketing, 0));
        let entries = happen(
            &mut r,
            1,
            Event::Erased {
                client: "admin".into(),
            },
        );
        assert_eq!(entries[0].kind, AuditKind::Erasure);
        assert_eq!(
            entries[0]
                .personal
                .as_ref()
                .and_then(|p| p.recipient.as_deref()),
            Some("4242")
        );
        assert_eq!(r.consents.len(), 1);
        assert_eq!(r.consents[0].evidence, Value::Null);
        assert!(!r.has_consent(ConsentScope::Marketing));
        assert_eq!(r.email, None);
    }

    #[test]
    fn what_a_person_did_is_recorded_with_what_it_carried_as_an_erasable_value() {
        let mut r = RecipientRecord::default();
        let carried = json!({"mid": "m1", "text": "where is my parcel?"});
        let entries = happen(
            &mut r,
            0,
            Event::Inbound {
                what: InboundKind::Message,
                carried: carried.clone(),
            },
        );
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.kind, AuditKind::Inbound);
        assert_eq!(e.outcome.as_deref(), Some("message"));
        assert_eq!(e.page_id.as_deref(), Some("P1"));
        assert_eq!(e.at, at(0));
        let personal = e.personal.as_ref().expect("personal values");
        assert_eq!(personal.recipient.as_deref(), Some("4242"));
        assert_eq!(personal.event.as_ref(), Some(&carried));
        assert_eq!(
            r,
            RecipientRecord::default(),
            "the record itself is unchanged"
        );
    }

    #[test]
    fn becoming_unreachable_is_recorded_once_until_they_act_again() {
        let mut r = RecipientRecord::default();
        let unreachable = || Event::Unreachable {
            error: Some(GraphErrorRecord {
                code: 551,
                subcode: Some(1_545_041),
                message: None,
            }),
        };
        let entries = happen(&mut r, 0, unreachable());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].kind, AuditKind::Recipient);
        assert_eq!(entries[0].outcome.as_deref(), Some("unreachable"));
        assert_eq!(
            entries[0].detail.as_deref(),
            Some("Messenger error 551/1545041")
        );
        assert_eq!(entries[0].graph_error.as_ref().map(|g| g.code), Some(551));
        assert_eq!(entries[0].recipient(), Some("4242"));
        assert!(
            happen(&mut r, 1, unreachable()).is_empty(),
            "already unreachable"
        );
        happen(&mut r, 2, wrote());
        assert_eq!(
            happen(&mut r, 3, unreachable()).len(),
            1,
            "reachable again, then not"
        );
    }

    #[test]
    fn events_of_one_change_apply_in_order() {
        let mut r = RecipientRecord::default();
        let change = Change::new("4242", at(0))
            .with(wrote())
            .with(Event::Attributed(Attribution {
                reference: Some("summer".into()),
                source: None,
                ad_id: None,
                at: at(0),
            }));
        assert_eq!(change.apply(&mut r).len(), 1);
        assert_eq!(r.attributions.len(), 1);
        assert!(r.has_consent(ConsentScope::Transactional));
    }
}
