//! Random identifiers in the shapes Messenger uses.

use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;

/// A message id, `m_` followed by a ULID so ids sort by creation.
pub(crate) fn message_id() -> String {
    format!("m_{}", ulid::Ulid::new())
}

/// The id the SMTP stand-in queues an email as: a ULID, so ids sort by arrival.
pub(crate) fn mail_id() -> String {
    ulid::Ulid::new().to_string()
}

/// A page-scoped id: 16 digits, never starting with 0.
pub(crate) fn psid() -> String {
    rand::thread_rng()
        .gen_range(1_000_000_000_000_000_u64..10_000_000_000_000_000)
        .to_string()
}

/// A Marketing Messages (Recurring Notification) token.
pub(crate) fn notification_messages_token() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 40)
}

/// A checkbox plugin `user_ref`.
pub(crate) fn user_ref() -> String {
    format!(
        "uref_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 24)
    )
}

/// The `fbtrace_id` every Graph error carries.
pub(crate) fn fbtrace_id() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 11)
}
