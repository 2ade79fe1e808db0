//! What the stand-in keeps: each email as `GET /sandbox/mail` shows it (its envelope, the
//! headers a test asks about, the text and HTML bodies), in a store bounded by count and size.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use mail_parser::{Address, MessageParser, PartType};
use serde::{Deserialize, Serialize};

use super::session::Envelope;
use super::{KEPT_BYTES, KEPT_EMAILS};

/// An email the stand-in received, as `GET /sandbox/mail` shows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReceivedEmail {
    /// The id the stand-in answered the end of DATA with (`queued as <id>`); ids sort by arrival.
    pub id: String,
    /// When it was received, by the sandbox's clock.
    pub received_at: DateTime<Utc>,
    /// The envelope's sender (`MAIL FROM`); empty for a bounce (`MAIL FROM:<>`).
    pub from: String,
    /// The envelope's recipients (`RCPT TO`): who the email was delivered to, which the
    /// headers need not say.
    pub to: Vec<String>,
    /// The `From:` header, `Name <address>` or a bare address.
    pub header_from: Option<String>,
    /// The `To:` header's addresses.
    pub header_to: Vec<String>,
    /// The `Subject:` header, decoded.
    pub subject: Option<String>,
    /// The `Message-ID:` header without its angle brackets.
    pub message_id: Option<String>,
    /// The first `text/plain` part, decoded, with `\n` line ends; none without one.
    pub text: Option<String>,
    /// The first `text/html` part, decoded, with `\n` line ends; none without one.
    pub html: Option<String>,
}

impl ReceivedEmail {
    fn size(&self) -> usize {
        self.text.as_ref().map_or(0, String::len) + self.html.as_ref().map_or(0, String::len)
    }

    fn is_for(&self, address: &str) -> bool {
        self.to.iter().any(|to| to.eq_ignore_ascii_case(address))
    }
}

/// The emails received, oldest first, bounded by count and by size.
#[derive(Debug)]
pub(crate) struct MailStore {
    emails: Mutex<VecDeque<ReceivedEmail>>,
    max_emails: usize,
    max_bytes: usize,
}

impl Default for MailStore {
    fn default() -> Self {
        Self::new(KEPT_EMAILS, KEPT_BYTES)
    }
}

impl MailStore {
    pub(super) fn new(max_emails: usize, max_bytes: usize) -> Self {
        Self {
            emails: Mutex::new(VecDeque::new()),
            max_emails,
            max_bytes,
        }
    }

    /// A panic while the lock was held cannot leave a list of emails half-changed in a way
    /// that matters, so poisoning is ignored (as for the sandbox's state).
    fn lock(&self) -> MutexGuard<'_, VecDeque<ReceivedEmail>> {
        self.emails.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn push(&self, email: ReceivedEmail) {
        let mut emails = self.lock();
        emails.push_back(email);
        let mut bytes: usize = emails.iter().map(ReceivedEmail::size).sum();
        while emails.len() > self.max_emails || (bytes > self.max_bytes && emails.len() > 1) {
            if let Some(dropped) = emails.pop_front() {
                bytes -= dropped.size();
            }
        }
    }

    /// The emails kept, oldest first; with `to`, only those whose envelope names that
    /// recipient (compared without regard to case).
    pub fn list(&self, to: Option<&str>) -> Vec<ReceivedEmail> {
        self.lock()
            .iter()
            .filter(|email| to.is_none_or(|address| email.is_for(address)))
            .cloned()
            .collect()
    }
}

/// What the stand-in keeps of a message: its envelope, the headers a test asks about and
/// the text and HTML bodies.
pub(super) fn read_email(
    id: &str,
    received_at: DateTime<Utc>,
    envelope: Envelope,
    message: &[u8],
) -> ReceivedEmail {
    let parsed = MessageParser::default().parse(message);
    let parsed = parsed.as_ref();
    let text = parsed.and_then(|m| {
        m.text_bodies().find_map(|part| match &part.body {
            PartType::Text(text) => Some(unix_lines(text)),
            _ => None,
        })
    });
    let html = parsed.and_then(|m| {
        m.html_bodies().find_map(|part| match &part.body {
            PartType::Html(html) => Some(unix_lines(html)),
            _ => None,
        })
    });
    ReceivedEmail {
        id: id.to_owned(),
        received_at,
        from: envelope.from,
        to: envelope.to,
        header_from: parsed
            .and_then(|m| m.from())
            .and_then(|a| addresses(a).into_iter().next()),
        header_to: parsed
            .and_then(|m| m.to())
            .map(addresses)
            .unwrap_or_default(),
        subject: parsed.and_then(|m| m.subject()).map(str::to_owned),
        message_id: parsed.and_then(|m| m.message_id()).map(str::to_owned),
        text,
        html,
    }
}

fn addresses(address: &Address<'_>) -> Vec<String> {
    address
        .iter()
        .filter_map(|a| match (a.name(), a.address()) {
            (Some(name), Some(address)) => Some(format!("{name} <{address}>")),
            (None, Some(address)) => Some(address.to_owned()),
            (Some(name), None) => Some(name.to_owned()),
            (None, None) => None,
        })
        .collect()
}

/// Bodies as a reader (and a test) compares them: SMTP's CRLF line ends are the wire's.
fn unix_lines(text: &str) -> String {
    text.replace("\r\n", "\n")
}
