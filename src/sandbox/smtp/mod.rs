//! The sandbox's SMTP stand-in: where the email fallback's mail goes under `serve --sandbox`
//! and in tests. It keeps what it receives in memory, for `GET /sandbox/mail`.
//!
//! A real SMTP server (RFC 5321), small but strict, so that a client that works against it
//! works against a mail relay: plain TCP on loopback — no STARTTLS offered, so a client on
//! opportunistic TLS goes on in plain text — and no AUTH.
//!
//! ```text
//!   client                               stand-in
//!     │ ◀──────────────────────────────── 220 greeting
//!     │ EHLO host ──────────────────────▶ 250 PIPELINING 8BITMIME SMTPUTF8 ENHANCEDSTATUSCODES SIZE
//!     │ MAIL FROM:<a> [SIZE= BODY= SMTPUTF8] ▶ 250      (RSET, NOOP, VRFY at any time)
//!     │ RCPT TO:<b> (up to 100) ────────▶ 250
//!     │ DATA ───────────────────────────▶ 354
//!     │ lines, dot-stuffed, "." ────────▶ 250 2.0.0 Ok: queued as <id>  → MailStore
//!     │ QUIT ───────────────────────────▶ 221
//! ```
//!
//! What a relay would refuse, it refuses with the codes a relay uses: commands out of order
//! (503), a line over the RFC's limits (500), a message over `SIZE` (552), a non-ASCII address
//! without `SMTPUTF8` (553). Data ends only at `<CRLF>.<CRLF>`, never at a bare `<LF>.<LF>`:
//! the difference SMTP smuggling exploits.
//!
//! This file serves the connections; `wire.rs` reads a line and a message's data, `session.rs`
//! answers the commands in order, `mailbox.rs` keeps what was received.

mod mailbox;
mod session;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::ids;
use crate::clock::SharedClock;

pub(crate) use self::mailbox::MailStore;
pub use self::mailbox::ReceivedEmail;
use self::session::{Next, Session};
use self::wire::{read_data, read_line, Line};

/// How many received emails are kept (the newest).
pub const KEPT_EMAILS: usize = 1000;

/// How many bytes of bodies are kept at most, however few emails that is: a thousand
/// 10 MiB emails would not fit a laptop.
const KEPT_BYTES: usize = 64 * 1024 * 1024;

/// The name the stand-in gives itself in its replies.
const HOSTNAME: &str = "herald-sandbox";

/// What one connection may send.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// A command line with its CRLF: RFC 5321's 512 octets, plus room for the `MAIL`
    /// parameters of the extensions offered.
    command_line: usize,
    /// A line of the message with its CRLF (RFC 5321 4.5.3.1.6).
    text_line: usize,
    /// The message, after dot-unstuffing; offered as `SIZE`.
    message: usize,
    /// Recipients per message: the minimum RFC 5321 asks a server to take.
    recipients: usize,
    /// Silence before the stand-in hangs up (RFC 5321 4.5.3.2.7: at least 5 minutes).
    idle: Duration,
    /// Bad commands in a row before it hangs up: something that is not an SMTP client.
    errors: usize,
}

const LIMITS: Limits = Limits {
    command_line: 1024,
    text_line: 1000,
    message: 10 * 1024 * 1024,
    recipients: 100,
    idle: Duration::from_secs(300),
    errors: 10,
};

/// Serves SMTP on `listener` until `shutdown`, each connection in its own task; what it
/// receives goes to `store`, stamped by `clock`.
pub(crate) async fn serve(
    listener: TcpListener,
    store: Arc<MailStore>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    serve_with(listener, store, clock, shutdown, LIMITS).await;
}

async fn serve_with(
    listener: TcpListener,
    store: Arc<MailStore>,
    clock: SharedClock,
    shutdown: CancellationToken,
    limits: Limits,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let store = Arc::clone(&store);
                let clock = clock.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        result = converse(stream, &store, &clock, limits) => {
                            if let Err(error) = result {
                                tracing::debug!(%error, "sandbox SMTP connection ended");
                            }
                        }
                    }
                });
            }
            Err(error) => {
                // Out of file descriptors, say: wait a moment rather than spin; still stoppable.
                tracing::warn!(%error, "sandbox SMTP cannot accept a connection");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// One connection, from greeting to QUIT (or hang-up).
async fn converse(
    stream: TcpStream,
    store: &MailStore,
    clock: &SharedClock,
    limits: Limits,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut session = Session::new(limits);
    let mut line = Vec::new();
    reply(
        &mut write,
        &format!("220 {HOSTNAME} ESMTP Herald sandbox: mail is kept, never delivered"),
    )
    .await?;
    loop {
        let Some(read) = read_or_hang_up(&mut reader, &mut write, &mut line, limits).await? else {
            return Ok(());
        };
        let next = match read {
            Line::TooLong => session.error("500 5.5.2 Line too long"),
            Line::Complete => session.command(&line),
        };
        match next {
            Next::Reply(text) => reply(&mut write, &text).await?,
            Next::Close(text) => return reply(&mut write, &text).await,
            Next::Data => {
                reply(&mut write, "354 End data with <CR><LF>.<CR><LF>").await?;
                let data = match read_data(&mut reader, &mut line, limits).await {
                    Ok(data) => data,
                    Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                        return reply(&mut write, &timeout_reply()).await;
                    }
                    Err(error) => return Err(error),
                };
                let text = session.end_data(data, store, clock);
                reply(&mut write, &text).await?;
            }
        }
    }
}

/// The next line, or `None` when the client hung up or was silent too long (then told so).
async fn read_or_hang_up<R, W>(
    reader: &mut R,
    writer: &mut W,
    line: &mut Vec<u8>,
    limits: Limits,
) -> std::io::Result<Option<Line>>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match tokio::time::timeout(limits.idle, read_line(reader, line, limits.command_line)).await {
        Ok(Ok(Line::Complete)) if line.is_empty() => Ok(None),
        Ok(read) => read.map(Some),
        Err(_) => {
            reply(writer, &timeout_reply()).await?;
            Ok(None)
        }
    }
}

fn timeout_reply() -> String {
    format!("421 4.4.2 {HOSTNAME} Timeout, closing the connection")
}

/// Writes one reply (its lines already joined with CRLF) and flushes it: with PIPELINING
/// the client may be waiting for it before it sends more.
async fn reply<W: AsyncWrite + Unpin>(writer: &mut W, text: &str) -> std::io::Result<()> {
    writer.write_all(text.as_bytes()).await?;
    writer.write_all(b"\r\n").await?;
    writer.flush().await
}

#[cfg(test)]
mod tests;
