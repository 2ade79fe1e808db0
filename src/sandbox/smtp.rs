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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mail_parser::{Address, MessageParser, PartType};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::ids;
use crate::clock::SharedClock;

/// How many received emails are kept (the newest).
pub const KEPT_EMAILS: usize = 1000;

/// How many bytes of bodies are kept at most, however few emails that is: a thousand
/// 10 MiB emails would not fit a laptop.
const KEPT_BYTES: usize = 64 * 1024 * 1024;

/// The name the stand-in gives itself in its replies.
const HOSTNAME: &str = "herald-sandbox";

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
    fn new(max_emails: usize, max_bytes: usize) -> Self {
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

    fn push(&self, email: ReceivedEmail) {
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

/// How a line was read.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// In the buffer, with its line end; an empty buffer is the end of the stream.
    Complete,
    /// Longer than allowed: read to its end and dropped, so the next line is in step.
    TooLong,
}

/// Reads one line ending in LF into `line`, at most `max` bytes with its line end. Never
/// holds more than `max` bytes of it, however long the line is.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    line.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            // The stream ended; a partial last line is no command.
            line.clear();
            return Ok(Line::Complete);
        }
        let (taken, ended) = match memchr::memchr(b'\n', available) {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        if !too_long && line.len() + taken.len() > max {
            too_long = true;
            line.clear();
        }
        if !too_long {
            line.extend_from_slice(taken);
        }
        let consumed = taken.len();
        reader.consume(consumed);
        if ended {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

/// The message a client sent after DATA, or why it cannot be taken.
#[derive(Debug, PartialEq, Eq)]
enum Data {
    Message(Vec<u8>),
    LineTooLong,
    TooBig,
}

/// Reads the message up to `<CRLF>.<CRLF>`, undoing dot-stuffing. Once a limit is passed
/// the rest is still read (to stay in step with the client) but not kept.
async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limits: Limits,
) -> std::io::Result<Data> {
    let mut message = Vec::new();
    let mut refused = None;
    // The CRLF of the DATA command itself precedes the first line.
    let mut after_crlf = true;
    loop {
        let read = tokio::time::timeout(limits.idle, read_line(reader, line, limits.text_line))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle in DATA"))??;
        match read {
            Line::Complete if line.is_empty() => {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Line::Complete if after_crlf && line.as_slice() == b".\r\n" => {
                return Ok(refused.unwrap_or(Data::Message(message)));
            }
            Line::Complete => {
                // A line starts after a CRLF; a dot after a bare LF is data, not stuffing.
                let unstuffed = match line.strip_prefix(b".") {
                    Some(rest) if after_crlf => rest,
                    _ => line.as_slice(),
                };
                after_crlf = line.ends_with(b"\r\n");
                if refused.is_none() && message.len() + unstuffed.len() > limits.message {
                    refused = Some(Data::TooBig);
                }
                if refused.is_none() {
                    message.extend_from_slice(unstuffed);
                }
            }
            Line::TooLong => {
                // Read to its LF; whether a CR came before it no longer matters: the
                // message is refused either way.
                after_crlf = true;
                refused.get_or_insert(Data::LineTooLong);
            }
        }
    }
}

/// What the connection does after a command.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Reply(String),
    /// Answer 354 and read the message.
    Data,
    Close(String),
}

/// The sender and recipients of the message being given.
#[derive(Debug, Clone)]
struct Envelope {
    from: String,
    to: Vec<String>,
    /// `MAIL … SMTPUTF8`: the addresses may be UTF-8.
    utf8: bool,
}

/// One connection's SMTP state, without I/O: a command line in, what to answer out.
#[derive(Debug)]
struct Session {
    limits: Limits,
    /// The client's name from EHLO or HELO; nothing but them and RSET, NOOP, VRFY, QUIT
    /// before it.
    client: Option<String>,
    envelope: Option<Envelope>,
    /// Bad commands in a row.
    errors: usize,
}

impl Session {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            client: None,
            envelope: None,
            errors: 0,
        }
    }

    /// A bad command; the connection is dropped after too many in a row.
    fn error(&mut self, reply: &str) -> Next {
        self.errors += 1;
        if self.errors >= self.limits.errors {
            return Next::Close(format!("421 4.7.0 {HOSTNAME} Too many errors, closing"));
        }
        Next::Reply(reply.to_owned())
    }

    fn ok(&mut self, reply: impl Into<String>) -> Next {
        self.errors = 0;
        Next::Reply(reply.into())
    }

    /// One command line, with its line end.
    fn command(&mut self, line: &[u8]) -> Next {
        let line = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            return self.error("500 5.5.2 Syntax error: the command is not UTF-8");
        };
        let (verb, args) = line.split_once(' ').unwrap_or((line, ""));
        let args = args.trim();
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.hello(args, true),
            "HELO" => self.hello(args, false),
            "MAIL" => self.mail(args),
            "RCPT" => self.rcpt(args),
            "DATA" => self.data(args),
            "RSET" => {
                self.envelope = None;
                self.ok("250 2.0.0 Ok")
            }
            "NOOP" => self.ok("250 2.0.0 Ok"),
            "VRFY" => self.ok("252 2.5.2 Cannot VRFY the user, but will take mail for it"),
            "QUIT" => Next::Close(format!("221 2.0.0 {HOSTNAME} Bye")),
            // Known, but not offered by EHLO, so no client should send them.
            "STARTTLS" | "AUTH" | "BDAT" | "EXPN" | "HELP" | "TURN" | "ETRN" => {
                self.error("502 5.5.1 Command not implemented")
            }
            _ => self.error("500 5.5.2 Command not recognized"),
        }
    }

    fn hello(&mut self, client: &str, extended: bool) -> Next {
        // The name is echoed in the reply: a control character in it could fake a reply line.
        if client.is_empty() || client.chars().any(char::is_control) {
            let verb = if extended { "EHLO" } else { "HELO" };
            return self.error(&format!("501 5.5.4 Syntax: {verb} your-host-name"));
        }
        // A new greeting starts over (RFC 5321 4.1.4).
        self.envelope = None;
        self.client = Some(client.to_owned());
        if !extended {
            return self.ok(format!("250 {HOSTNAME}"));
        }
        let size = self.limits.message;
        self.ok(format!(
            "250-{HOSTNAME} Hello {client}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
             250-ENHANCEDSTATUSCODES\r\n250 SIZE {size}"
        ))
    }

    fn mail(&mut self, args: &str) -> Next {
        if self.client.is_none() {
            return self.error("503 5.5.1 Send EHLO or HELO first");
        }
        if self.envelope.is_some() {
            return self.error("503 5.5.1 Nested MAIL command");
        }
        let Some((from, parameters)) = path(args, "FROM:") else {
            return self.error("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        let mut utf8 = false;
        for parameter in parameters.split_whitespace() {
            let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            match (key.to_ascii_uppercase().as_str(), value) {
                ("SIZE", size) => match size.parse::<usize>() {
                    Ok(size) if size > self.limits.message => {
                        return self.error("552 5.3.4 Message size exceeds the fixed limit");
                    }
                    Ok(_) => {}
                    Err(_) => return self.error("501 5.5.4 Syntax: SIZE=<octets>"),
                },
                ("BODY", body) if body.eq_ignore_ascii_case("8BITMIME") => {}
                ("BODY", body) if body.eq_ignore_ascii_case("7BIT") => {}
                ("SMTPUTF8", "") => utf8 = true,
                _ => return self.error("555 5.5.4 MAIL parameter not recognized"),
            }
        }
        if !utf8 && !from.is_ascii() {
            return self.error("553 5.6.7 A non-ASCII address needs MAIL … SMTPUTF8");
        }
        self.envelope = Some(Envelope {
            from: from.to_owned(),
            to: Vec::new(),
            utf8,
        });
        self.ok("250 2.1.0 Ok")
    }

    fn rcpt(&mut self, args: &str) -> Next {
        let Some(envelope) = &self.envelope else {
            return self.error("503 5.5.1 Need MAIL before RCPT");
        };
        let Some((to, parameters)) = path(args, "TO:") else {
            return self.error("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        if !parameters.is_empty() {
            return self.error("555 5.5.4 RCPT parameters not recognized");
        }
        if !to.contains('@') && !to.eq_ignore_ascii_case("postmaster") {
            return self.error("501 5.1.3 Bad recipient address syntax");
        }
        if !envelope.utf8 && !to.is_ascii() {
            return self.error("553 5.6.7 A non-ASCII address needs MAIL … SMTPUTF8");
        }
        if envelope.to.len() >= self.limits.recipients {
            return self.error("452 4.5.3 Too many recipients");
        }
        let to = to.to_owned();
        if let Some(envelope) = &mut self.envelope {
            envelope.to.push(to);
        }
        self.ok("250 2.1.5 Ok")
    }

    fn data(&mut self, args: &str) -> Next {
        if !args.is_empty() {
            return self.error("501 5.5.4 Syntax: DATA");
        }
        match &self.envelope {
            Some(envelope) if !envelope.to.is_empty() => {
                self.errors = 0;
                Next::Data
            }
            Some(_) => self.error("503 5.5.1 Need RCPT before DATA"),
            None => self.error("503 5.5.1 Need MAIL before DATA"),
        }
    }

    /// The message after DATA: kept, or refused; either way the transaction is over.
    fn end_data(&mut self, data: Data, store: &MailStore, clock: &SharedClock) -> String {
        let envelope = self.envelope.take();
        match (data, envelope) {
            (Data::Message(message), Some(envelope)) => {
                let id = ids::mail_id();
                store.push(read_email(&id, clock.now(), envelope, &message));
                format!("250 2.0.0 Ok: queued as {id}")
            }
            (Data::Message(_), None) => "503 5.5.1 Need MAIL before DATA".to_owned(),
            (Data::LineTooLong, _) => format!(
                "500 5.5.2 Line too long: at most {} octets with CRLF (RFC 5321 4.5.3.1.6)",
                self.limits.text_line
            ),
            (Data::TooBig, _) => "552 5.3.4 Message size exceeds the fixed limit".to_owned(),
        }
    }
}

/// `FROM:<a@b.example> SIZE=12` → `("a@b.example", "SIZE=12")`. Takes a space after the
/// colon, as many clients send one, and drops an old source route (`<@relay:a@b>`).
fn path<'a>(args: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = args.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = args.get(keyword.len()..)?.trim_start();
    let rest = rest.strip_prefix('<')?;
    let (address, parameters) = rest.split_once('>')?;
    let address = match address.strip_prefix('@') {
        Some(routed) => routed.split_once(':')?.1,
        None => address,
    };
    Some((address, parameters.trim()))
}

/// What the stand-in keeps of a message: its envelope, the headers a test asks about and
/// the text and HTML bodies.
fn read_email(
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use chrono::TimeZone;
    use lettre::message::{header::ContentType, Mailbox, MultiPart};
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    use tokio::io::AsyncReadExt;
    use tokio::net::tcp::OwnedReadHalf;

    use super::*;
    use crate::clock::ManualClock;

    fn moment() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("a valid moment")
    }

    /// A stand-in on a free loopback port, until the token is cancelled.
    async fn start(limits: Limits) -> (SocketAddr, Arc<MailStore>, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let store = Arc::new(MailStore::default());
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_with(
            listener,
            Arc::clone(&store),
            ManualClock::at(moment()),
            shutdown.clone(),
            limits,
        ));
        (address, store, shutdown)
    }

    /// A raw SMTP client, to send what lettre never would.
    struct Raw {
        reader: BufReader<OwnedReadHalf>,
        writer: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Raw {
        async fn connect(address: SocketAddr) -> Raw {
            let stream = TcpStream::connect(address).await.expect("connect");
            let (read, writer) = stream.into_split();
            let mut raw = Raw {
                reader: BufReader::new(read),
                writer,
            };
            raw.expect("220").await;
            raw
        }

        async fn send(&mut self, bytes: &str) {
            self.writer
                .write_all(bytes.as_bytes())
                .await
                .expect("write");
        }

        /// Reads one reply (all its lines) and checks it starts with `code`.
        async fn expect(&mut self, code: &str) -> String {
            let mut reply = String::new();
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).await.expect("read");
                assert!(!line.is_empty(), "connection closed; expected {code}");
                reply.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    break;
                }
            }
            assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
            reply
        }

        async fn closed(&mut self) -> bool {
            let mut rest = Vec::new();
            matches!(self.reader.read_to_end(&mut rest).await, Ok(0))
        }
    }

    #[tokio::test]
    async fn lettre_sends_a_multipart_email_that_is_kept_with_its_envelope_headers_and_bodies() {
        let (address, store, shutdown) = start(LIMITS).await;
        let tls = TlsParameters::new("localhost".into()).expect("tls parameters");
        // What the email fallback uses for an smtp:// URL: STARTTLS when offered, which the
        // stand-in does not, so the conversation stays plain.
        let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(address.port())
            .tls(Tls::Opportunistic(tls))
            .build();
        let from: Mailbox = "Shop <orders@shop.example>".parse().expect("from");
        let email = |to: &str, subject: &str, id: &str| {
            Message::builder()
                .from(from.clone())
                .to(to.parse().expect("to"))
                .subject(subject)
                .message_id(Some(format!("<{id}>")))
                .multipart(MultiPart::alternative_plain_html(
                    "Grüße, Ada!\n.A line that starts with a dot.\nTotal: 59.90 €\n".to_owned(),
                    "<p>Grüße, <b>Ada</b>!</p>".to_owned(),
                ))
                .expect("an email")
        };
        let first = mailer
            .send(email(
                "Ada <ada@example.com>",
                "Ihre Bestellung A-1001 — versandt",
                "msg_1@herald.example",
            ))
            .await
            .expect("the stand-in takes it");
        // The same pooled connection again: lettre checks it with NOOP or starts over.
        mailer
            .send(email("bob@example.com", "Second", "msg_2@herald.example"))
            .await
            .expect("the stand-in takes a second one");

        let kept = store.list(None);
        assert_eq!(kept.len(), 2, "{kept:#?}");
        let answer = first.message().collect::<Vec<_>>().join(" ");
        assert_eq!(answer, format!("2.0.0 Ok: queued as {}", kept[0].id));
        assert_eq!(
            kept[0],
            ReceivedEmail {
                id: kept[0].id.clone(),
                received_at: kept[0].received_at,
                from: "orders@shop.example".into(),
                to: vec!["ada@example.com".into()],
                header_from: Some("Shop <orders@shop.example>".into()),
                header_to: vec!["Ada <ada@example.com>".into()],
                subject: Some("Ihre Bestellung A-1001 — versandt".into()),
                message_id: Some("msg_1@herald.example".into()),
                text: Some("Grüße, Ada!\n.A line that starts with a dot.\nTotal: 59.90 €\n".into()),
                html: Some("<p>Grüße, <b>Ada</b>!</p>".into()),
            }
        );
        assert!(
            kept[0].received_at >= moment(),
            "stamped by the sandbox's clock"
        );
        assert_eq!(kept[1].subject.as_deref(), Some("Second"));
        assert!(kept[0].id < kept[1].id, "ids sort by arrival");
        assert_eq!(store.list(Some("BOB@example.com")), vec![kept[1].clone()]);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_text_only_email_has_no_html() {
        let (address, store, shutdown) = start(LIMITS).await;
        let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(address.port())
            .tls(Tls::None)
            .build();
        let email = Message::builder()
            .from("orders@shop.example".parse().expect("from"))
            .to("ada@example.com".parse().expect("to"))
            .subject("Plain")
            .header(ContentType::TEXT_PLAIN)
            .body("Just text.".to_owned())
            .expect("an email");
        mailer.send(email).await.expect("taken");
        let kept = store.list(None);
        assert_eq!(kept[0].text.as_deref(), Some("Just text.\n"));
        assert_eq!(
            kept[0].html, None,
            "mail-parser's HTML made from the text is not kept"
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn pipelined_commands_are_answered_in_order_and_data_ends_only_at_crlf_dot_crlf() {
        let (address, store, shutdown) = start(LIMITS).await;
        let mut smtp = Raw::connect(address).await;
        smtp.send("EHLO client.example\r\n").await;
        let ehlo = smtp.expect("250").await;
        for extension in [
            "PIPELINING",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "SIZE 10485760",
        ] {
            assert!(
                ehlo.contains(&format!("250-{extension}\r\n"))
                    || ehlo.contains(&format!("250 {extension}\r\n")),
                "{ehlo}"
            );
        }
        assert!(
            !ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
            "{ehlo}"
        );
        smtp.send("MAIL FROM:<a@shop.example> BODY=8BITMIME\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n").await;
        smtp.expect("250 2.1.0").await;
        smtp.expect("250 2.1.5").await;
        smtp.expect("250 2.1.5").await;
        smtp.expect("354").await;
        // A dot after a bare LF is data, kept as sent; a dot-stuffed line loses its first dot.
        smtp.send("Subject: framing\r\n\r\nline\n.\nstill data\n.\r\nmore\r\n..stuffed\r\n.\r\n")
            .await;
        let queued = smtp.expect("250 2.0.0 Ok: queued as ").await;
        smtp.send("QUIT\r\n").await;
        smtp.expect("221").await;
        assert!(smtp.closed().await);

        let kept = store.list(None);
        assert_eq!(kept.len(), 1);
        assert!(queued.contains(&kept[0].id), "{queued}");
        assert_eq!(kept[0].from, "a@shop.example");
        assert_eq!(kept[0].to, ["b@example.com", "c@example.com"]);
        assert_eq!(kept[0].subject.as_deref(), Some("framing"));
        assert_eq!(
            kept[0].text.as_deref(),
            Some("line\n.\nstill data\n.\nmore\n.stuffed\n")
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_message_over_a_limit_is_refused_and_the_connection_stays_in_step() {
        let limits = Limits {
            message: 100,
            text_line: 40,
            command_line: 64,
            ..LIMITS
        };
        let (address, store, shutdown) = start(limits).await;
        let mut smtp = Raw::connect(address).await;
        smtp.send("HELO client.example\r\n").await;
        smtp.expect("250").await;
        smtp.send(&format!("MAIL FROM:<{}@shop.example>\r\n", "a".repeat(80)))
            .await;
        smtp.expect("500 5.5.2 Line too long").await;
        smtp.send("MAIL FROM:<a@shop.example> SIZE=101\r\n").await;
        smtp.expect("552 5.3.4").await;

        let transaction = "MAIL FROM:<a@shop.example>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n";
        for (body, refusal) in [
            (
                format!("{}\r\n.\r\n", "x".repeat(60)),
                "500 5.5.2 Line too long",
            ),
            (format!("{}.\r\n", "x\r\n".repeat(51)), "552 5.3.4"),
        ] {
            smtp.send(transaction).await;
            smtp.expect("250").await;
            smtp.expect("250").await;
            smtp.expect("354").await;
            smtp.send(&body).await;
            smtp.expect(refusal).await;
        }
        // Still in step: the next message goes through.
        smtp.send(transaction).await;
        smtp.expect("250").await;
        smtp.expect("250").await;
        smtp.expect("354").await;
        smtp.send("Subject: fits\r\n\r\nok\r\n.\r\n").await;
        smtp.expect("250 2.0.0").await;
        let kept = store.list(None);
        assert_eq!(kept.len(), 1, "only the last message is kept: {kept:#?}");
        assert_eq!(kept[0].subject.as_deref(), Some("fits"));
        shutdown.cancel();
    }

    #[test]
    fn commands_out_of_order_or_malformed_get_the_replies_a_relay_gives() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "MAIL before EHLO",
                &[("MAIL FROM:<a@b.example>", "503 5.5.1")],
            ),
            (
                "RCPT before MAIL",
                &[("EHLO c", "250"), ("RCPT TO:<a@b.example>", "503 5.5.1")],
            ),
            (
                "DATA before RCPT",
                &[
                    ("EHLO c", "250"),
                    ("MAIL FROM:<a@b.example>", "250"),
                    ("DATA", "503 5.5.1"),
                ],
            ),
            (
                "nested MAIL",
                &[
                    ("EHLO c", "250"),
                    ("MAIL FROM:<a@b.example>", "250"),
                    ("MAIL FROM:<a@b.example>", "503 5.5.1"),
                ],
            ),
            (
                "RSET ends the transaction",
                &[
                    ("EHLO c", "250"),
                    ("MAIL FROM:<a@b.example>", "250"),
                    ("RSET", "250 2.0.0"),
                    ("RCPT TO:<a@b.example>", "503"),
                ],
            ),
            ("EHLO without a name", &[("EHLO", "501 5.5.4")]),
            (
                "EHLO with a control character",
                &[("EHLO a\rb", "501 5.5.4")],
            ),
            (
                "MAIL without brackets",
                &[("HELO c", "250"), ("MAIL FROM:a@b.example", "501 5.5.4")],
            ),
            (
                "MAIL with a space and a null sender",
                &[("HELO c", "250"), ("mail from: <>", "250 2.1.0")],
            ),
            (
                "a source route is dropped",
                &[
                    ("HELO c", "250"),
                    ("MAIL FROM:<a@b.example>", "250"),
                    ("RCPT TO:<@relay.example:d@e.example>", "250 2.1.5"),
                ],
            ),
            (
                "an unknown MAIL parameter",
                &[
                    ("HELO c", "250"),
                    ("MAIL FROM:<a@b.example> RET=FULL", "555 5.5.4"),
                ],
            ),
            (
                "a recipient that is no address",
                &[
                    ("HELO c", "250"),
                    ("MAIL FROM:<a@b.example>", "250"),
                    ("RCPT TO:<nobody>", "501 5.1.3"),
                ],
            ),
            (
                "UTF-8 without SMTPUTF8",
                &[
                    ("HELO c", "250"),
                    ("MAIL FROM:<a@b.example>", "250"),
                    ("RCPT TO:<jörg@example.com>", "553 5.6.7"),
                ],
            ),
            (
                "UTF-8 with SMTPUTF8",
                &[
                    ("HELO c", "250"),
                    ("MAIL FROM:<a@b.example> SMTPUTF8", "250"),
                    ("RCPT TO:<jörg@example.com>", "250"),
                ],
            ),
            ("DATA with an argument", &[("DATA now", "501 5.5.4")]),
            (
                "not offered",
                &[("STARTTLS", "502 5.5.1"), ("AUTH PLAIN", "502 5.5.1")],
            ),
            ("unknown", &[("HELLO", "500 5.5.2"), ("", "500 5.5.2")]),
            (
                "always answered",
                &[
                    ("NOOP", "250 2.0.0"),
                    ("VRFY ada", "252"),
                    ("QUIT", "221 2.0.0"),
                ],
            ),
        ];
        for (what, steps) in cases {
            let mut session = Session::new(LIMITS);
            for (command, expected) in *steps {
                let next = session.command(format!("{command}\r\n").as_bytes());
                let text = match &next {
                    Next::Reply(text) | Next::Close(text) => text.as_str(),
                    Next::Data => "354",
                };
                assert!(
                    text.starts_with(expected),
                    "{what}: {command:?} → {text:?}, expected {expected}"
                );
            }
        }
    }

    #[test]
    fn a_hundred_recipients_are_taken_and_the_next_is_deferred() {
        let mut session = Session::new(LIMITS);
        session.command(b"EHLO c\r\n");
        session.command(b"MAIL FROM:<a@b.example>\r\n");
        for i in 0..100 {
            let next = session.command(format!("RCPT TO:<r{i}@example.com>\r\n").as_bytes());
            assert_eq!(next, Next::Reply("250 2.1.5 Ok".into()), "recipient {i}");
        }
        let next = session.command(b"RCPT TO:<r100@example.com>\r\n");
        assert_eq!(next, Next::Reply("452 4.5.3 Too many recipients".into()));
    }

    #[test]
    fn ten_bad_commands_in_a_row_end_the_conversation() {
        let mut session = Session::new(LIMITS);
        for _ in 0..9 {
            assert!(matches!(
                session.command(b"GET / HTTP/1.1\r\n"),
                Next::Reply(_)
            ));
        }
        assert!(
            matches!(session.command(b"GET / HTTP/1.1\r\n"), Next::Close(text) if text.starts_with("421"))
        );
    }

    #[test]
    fn the_store_keeps_the_newest_by_count_and_by_size() {
        let email = |id: &str, text: &str| ReceivedEmail {
            id: id.into(),
            received_at: moment(),
            from: "a@b.example".into(),
            to: vec!["c@d.example".into()],
            header_from: None,
            header_to: Vec::new(),
            subject: None,
            message_id: None,
            text: Some(text.into()),
            html: None,
        };
        let ids = |store: &MailStore| -> Vec<String> {
            store.list(None).into_iter().map(|e| e.id).collect()
        };
        let by_count = MailStore::new(2, 1_000);
        for id in ["1", "2", "3"] {
            by_count.push(email(id, "x"));
        }
        assert_eq!(ids(&by_count), ["2", "3"]);
        let by_size = MailStore::new(10, 10);
        by_size.push(email("1", "12345"));
        by_size.push(email("2", "12345"));
        by_size.push(email("3", "123"));
        assert_eq!(ids(&by_size), ["2", "3"]);
        by_size.push(email("4", &"x".repeat(50)));
        assert_eq!(
            ids(&by_size),
            ["4"],
            "the newest is kept even when it alone is too big"
        );
    }
}
