//! The SMTP client behind the email fallback (lettre): STARTTLS or implicit TLS, the password
//! from `[email] smtp_url`, and what the server answered.

use crate::configuration::EmailSettings;
use crate::email::OutgoingEmail;

/// The server took the email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpAccepted {
    /// The server's reply to the end of DATA, such as `250 2.0.0 Ok: queued as 4F2A1`.
    pub reply: String,
}

/// The email was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpFailure {
    /// Worth another try: a 4xx reply, a connection refused or cut, a timeout, a TLS failure.
    /// A 5xx reply is permanent.
    pub transient: bool,
    /// The server's reply code, when it answered.
    pub code: Option<u16>,
    /// What went wrong, in words (never with the password).
    pub detail: String,
}

/// Sends email through the configured server.
pub struct Mailer {}

impl Mailer {
    /// Built from the settings; an error names the setting and never repeats the URL.
    pub fn new(_settings: &EmailSettings) -> Result<Mailer, anyhow::Error> {
        Ok(Mailer {})
    }

    pub async fn send(&self, _email: &OutgoingEmail) -> Result<SmtpAccepted, SmtpFailure> {
        Err(SmtpFailure {
            transient: true,
            code: None,
            detail: "not built yet".into(),
        })
    }
}
