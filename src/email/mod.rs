//! Email, the fallback channel for transactional messages (docs/api.md §7, "Email fallback"): how a
//! message reads as an email (`render.rs`, from templates the business can change, given what
//! `context.rs` makes of the message). Sending it
//! is the SMTP client's (`clients::smtp`); when to send it is the policy's `[fallback]` and the
//! core's (`app/deliver.rs`).

mod context;
mod render;

pub use render::{EmailContext, EmailTemplates, TemplateError};

/// An email ready to hand to the SMTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The person's address (from their consent).
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The `Message-ID` without its angle brackets, the same on every try of one message, so
    /// that a mail system that got it twice (a crash between the server's answer and Herald's
    /// record of it) can tell.
    pub message_id: String,
}

/// A message rendered as an email, before it is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}
