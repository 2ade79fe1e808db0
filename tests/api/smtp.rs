//! The email fallback's SMTP client against an SMTP server Herald's authors did not write:
//! `aiosmtpd` from PyPI (pinned in tests/clients/smtp, installed into target/ by the first test
//! that needs it), run by tests/clients/smtp/server.py with STARTTLS and AUTH required, a
//! certificate from a throwaway authority (`trustme`), and recipients that it refuses.
//!
//! `SmtpServer` is for any test that needs a mail server: the fallback's tests start one, give
//! Herald `settings()`, and read what arrived with `wait_for`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use herald::clients::{Mailer, SmtpFailure};
use herald::configuration::EmailSettings;
use herald::email::OutgoingEmail;
use mail_parser::{MessageParser, MimeHeaders};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// How long the server may take to start (the first run installs aiosmtpd) or to act on a
/// command.
const SERVER_ANSWER: Duration = Duration::from_secs(120);

/// One email the server took, as a mail client would read it.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedEmail {
    /// The id the server gave it in its 250 reply (`queued as …`).
    pub queue_id: String,
    /// Whether the session had gone through STARTTLS before the email.
    pub tls: bool,
    /// The user the session logged in as.
    pub user: Option<String>,
    /// The envelope's sender (`MAIL FROM`).
    pub from: String,
    /// The envelope's recipients (`RCPT TO`) the server took.
    pub to: Vec<String>,
    /// The address in the `From:` header.
    pub header_from: Option<String>,
    pub subject: Option<String>,
    /// Without its angle brackets.
    pub message_id: Option<String>,
    /// The top-level `Content-Type`, such as `multipart/alternative` or `text/plain`.
    pub content_type: Option<String>,
    /// The text/plain part, decoded, without trailing line breaks: where a body ends is the
    /// transfer's business (a message that is one part ends with the CRLF before DATA's end).
    pub text: Option<String>,
    /// The text/html part, decoded and trimmed the same way; `None` when there is none (not
    /// text made into HTML).
    pub html: Option<String>,
    /// The message as it came over DATA.
    pub raw: String,
}

fn body(text: &str) -> String {
    text.trim_end_matches(['\r', '\n']).to_owned()
}

/// A line of the server's messages file.
#[derive(Deserialize)]
struct Record {
    queue_id: String,
    tls: bool,
    user: Option<String>,
    mail_from: String,
    rcpt_tos: Vec<String>,
    data: String,
}

impl ReceivedEmail {
    fn parse(record: Record) -> ReceivedEmail {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&record.data)
            .expect("base64 data");
        let message = MessageParser::default()
            .parse(&raw)
            .unwrap_or_else(|| panic!("not a message: {}", String::from_utf8_lossy(&raw)));
        let content_type = message
            .root_part()
            .content_type()
            .map(|t| format!("{}/{}", t.ctype(), t.subtype().unwrap_or_default()));
        // mail-parser offers a text part as HTML when there is no HTML: keep only real parts.
        let text = message
            .text_bodies()
            .find(|part| part.is_text() && !part.is_text_html())
            .and_then(|part| part.text_contents().map(body));
        let html = message
            .html_bodies()
            .find(|part| part.is_text_html())
            .and_then(|part| part.text_contents().map(body));
        ReceivedEmail {
            queue_id: record.queue_id,
            tls: record.tls,
            user: record.user,
            from: record.mail_from,
            to: record.rcpt_tos,
            header_from: message
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_owned),
            subject: message.subject().map(str::to_owned),
            message_id: message.message_id().map(str::to_owned),
            content_type,
            text,
            html,
            raw: String::from_utf8_lossy(&raw).into_owned(),
        }
    }
}

/// aiosmtpd on 127.0.0.1, a port of its own: STARTTLS required, then AUTH (PLAIN or LOGIN) as
/// `user()` with `password()`; its certificate (for `localhost` and `127.0.0.1`) chains to the
/// authority in `ca_file()`. RCPT to `reject@…` is answered `550 5.1.1 No such user`, to
/// `busy@…` `451 4.3.0 Try again later`; every other email is taken with
/// `250 2.0.0 Ok: queued as <queue id>`. Killed when dropped.
pub(crate) struct SmtpServer {
    child: Child,
    stdin: std::sync::Mutex<ChildStdin>,
    /// The server's stdout, a line at a time: acknowledgements of `close` and `open`.
    lines: tokio::sync::Mutex<UnboundedReceiver<String>>,
    port: u16,
    user: String,
    password: String,
    /// ca.pem, messages.jsonl and the server's stderr (server.log).
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Installs aiosmtpd if it is missing, starts the server and waits until it listens.
    pub(crate) async fn start() -> SmtpServer {
        let python = tokio::task::spawn_blocking(|| {
            crate::clients::python_venv("smtp", "tests/clients/smtp/requirements.txt")
        })
        .await
        .expect("install aiosmtpd");
        let dir = tempfile::tempdir().expect("temporary directory");
        let user = "herald@shop.example".to_owned();
        // Characters a URL must escape, so that the settings prove the decoding end to end;
        // different each run, so that a test finding it in an error is not finding a constant.
        let password = format!("p@ss:w/rd%{:08x}+ é", rand::random::<u32>());
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/smtp/server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(dir.path().join("ca.pem"))
            .arg(dir.path().join("messages.jsonl"))
            .arg(&user)
            .arg(&password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(dir.path().join("server.log")).expect("server.log"))
            .spawn()
            .expect("start server.py");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = unbounded_channel();
        // A thread, not a task: reading a pipe blocks, and the tests' runtime may have one
        // thread. It ends when the server's stdout closes.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = SmtpServer {
            child,
            stdin: std::sync::Mutex::new(stdin),
            lines: tokio::sync::Mutex::new(rx),
            port: 0,
            user,
            password,
            dir,
        };
        let first = server.next_line("start").await;
        server.port = first["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("the first line names no port: {first}"));
        server
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The PEM of the authority that signed the server's certificate.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    pub(crate) fn password(&self) -> &str {
        &self.password
    }

    /// `[email]` for this server: `smtp://user:password@localhost:{port}` (STARTTLS when
    /// offered, as a relay is usually configured), its authority as `ca_file`, and `from` as
    /// the sender.
    pub(crate) fn settings(&self, from: &str) -> EmailSettings {
        EmailSettings {
            smtp_url: SecretString::from(format!(
                "smtp://{}:{}@localhost:{}",
                utf8_percent_encode(&self.user, NON_ALPHANUMERIC),
                utf8_percent_encode(&self.password, NON_ALPHANUMERIC),
                self.port
            )),
            from: from.to_owned(),
            ca_file: Some(self.ca_file()),
            templates: None,
            timeout_ms: 10_000,
        }
    }

    /// Every email taken so far, in the order taken. The server writes each down before it
    /// answers 250, so an email whose send returned `Ok` is here.
    pub(crate) fn received(&self) -> Vec<ReceivedEmail> {
        let text =
            std::fs::read_to_string(self.dir.path().join("messages.jsonl")).unwrap_or_default();
        // Only whole lines: the last may be half written.
        text.split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .map(|line| {
                let record = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("messages.jsonl: {e}: {line}"));
                ReceivedEmail::parse(record)
            })
            .collect()
    }

    /// Waits until at least `n` emails were taken and returns them all; fails with what did
    /// arrive when `timeout` passes first.
    pub(crate) async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedEmail> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {n} emails; {} arrived: {received:#?}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The server goes down: it stops listening (a connection is refused) and cuts the
    /// connections it has. Its port stays reserved for `open`.
    pub(crate) async fn close(&self) {
        self.command("close", "closed").await;
    }

    /// The server comes back on the same port.
    pub(crate) async fn open(&self) {
        self.command("open", "opened").await;
    }

    async fn command(&self, command: &str, acknowledgement: &str) {
        {
            let mut stdin = self.stdin.lock().expect("stdin");
            writeln!(stdin, "{command}").expect("write to server.py");
            stdin.flush().expect("flush to server.py");
        }
        let answer = self.next_line(command).await;
        assert_eq!(
            answer[acknowledgement].as_u64(),
            Some(u64::from(self.port)),
            "server.py answered {command} with {answer}"
        );
    }

    /// The next JSON line the server prints; on silence or exit, fails with its stderr.
    async fn next_line(&self, waiting_for: &str) -> serde_json::Value {
        let line = tokio::time::timeout(SERVER_ANSWER, async {
            self.lines.lock().await.recv().await
        })
        .await;
        match line {
            Ok(Some(line)) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("server.py printed {line:?}: {e}")),
            _ => panic!(
                "server.py gave no answer to {waiting_for}; its stderr:\n{}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            ),
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn email(to: &str, message_id: &str) -> OutgoingEmail {
    OutgoingEmail {
        to: to.to_owned(),
        subject: "Your teapot ships today ☕".to_owned(),
        text: "Hello Ann,\r\nyour teapot ships today. Grüße!".to_owned(),
        html: Some("<p>Hello Ann, your teapot <b>ships</b> today. Grüße!</p>".to_owned()),
        message_id: message_id.to_owned(),
    }
}

const FROM: &str = "Shop <orders@shop.example>";
const WAIT: Duration = Duration::from_secs(10);

async fn failure(mailer: &Mailer, email: &OutgoingEmail) -> SmtpFailure {
    match mailer.send(email).await {
        Ok(accepted) => panic!("taken: {accepted:?}"),
        Err(failure) => failure,
    }
}

#[tokio::test]
async fn text_and_html_arrive_through_starttls_and_auth_with_subject_and_message_id() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::new(&server.settings(FROM)).expect("mailer");

    let sent = email("ann@example.com", "msg_01JTEAPOT@herald.test");
    let accepted = mailer.send(&sent).await.expect("taken");

    let received = server.wait_for(1, WAIT).await;
    let got = &received[0];
    assert_eq!(
        accepted.reply,
        format!("250 2.0.0 Ok: queued as {}", got.queue_id),
        "the reply is the server's whole line, with the queue id it gave"
    );
    assert!(got.tls, "{got:#?}");
    assert_eq!(got.user.as_deref(), Some(server.user()));
    assert_eq!(
        (got.from.as_str(), got.to.as_slice()),
        ("orders@shop.example", &["ann@example.com".to_owned()][..])
    );
    assert_eq!(got.header_from.as_deref(), Some("orders@shop.example"));
    assert_eq!(got.subject.as_deref(), Some(sent.subject.as_str()));
    assert_eq!(got.message_id.as_deref(), Some("msg_01JTEAPOT@herald.test"));
    assert!(
        got.raw
            .contains("Message-ID: <msg_01JTEAPOT@herald.test>\r\n"),
        "{}",
        got.raw
    );
    assert_eq!(
        got.content_type.as_deref(),
        Some("multipart/alternative"),
        "{got:#?}"
    );
    assert_eq!(got.text.as_deref(), Some(sent.text.as_str()), "{got:#?}");
    assert_eq!(got.html.as_deref(), sent.html.as_deref(), "{got:#?}");

    // A second email without HTML, over the pooled connection: plain UTF-8 text.
    let plain = OutgoingEmail {
        html: None,
        ..email("bob@example.com", "msg_01JKETTLE@herald.test")
    };
    mailer.send(&plain).await.expect("taken");
    let received = server.wait_for(2, WAIT).await;
    let got = &received[1];
    assert_eq!(got.to, ["bob@example.com"]);
    assert_eq!(got.content_type.as_deref(), Some("text/plain"), "{got:#?}");
    assert!(
        got.raw.contains("Content-Type: text/plain; charset=utf-8"),
        "{}",
        got.raw
    );
    assert_eq!(
        got.text.as_deref(),
        Some(plain.text.as_str()),
        "{}",
        got.raw
    );
    assert_eq!(got.html, None);
    assert_eq!(got.message_id.as_deref(), Some("msg_01JKETTLE@herald.test"));
}

#[tokio::test]
async fn tls_required_is_met_by_starttls() {
    let server = SmtpServer::start().await;
    let mut settings = server.settings(FROM);
    let url = format!(
        "{}?tls=required",
        secrecy::ExposeSecret::expose_secret(&settings.smtp_url)
    );
    settings.smtp_url = SecretString::from(url);
    let mailer = Mailer::new(&settings).expect("mailer");

    mailer
        .send(&email("ann@example.com", "msg_01JREQ@herald.test"))
        .await
        .expect("taken");
    assert!(server.wait_for(1, WAIT).await[0].tls);
}

#[tokio::test]
async fn a_recipient_refused_with_550_is_a_permanent_failure_with_its_code() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::new(&server.settings(FROM)).expect("mailer");

    let failure = failure(&mailer, &email("reject@example.com", "msg_1@herald.test")).await;

    assert!(!failure.transient, "{failure:?}");
    assert_eq!(failure.code, Some(550), "{failure:?}");
    assert!(failure.detail.contains("5.1.1 No such user"), "{failure:?}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_recipient_put_off_with_451_is_a_transient_failure_with_its_code() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::new(&server.settings(FROM)).expect("mailer");

    let failure = failure(&mailer, &email("busy@example.com", "msg_1@herald.test")).await;

    assert!(failure.transient, "{failure:?}");
    assert_eq!(failure.code, Some(451), "{failure:?}");
    assert!(
        failure.detail.contains("4.3.0 Try again later"),
        "{failure:?}"
    );
    assert!(server.received().is_empty());

    // The connection the 451 came on is not handed to the next email in a broken state.
    mailer
        .send(&email("ann@example.com", "msg_2@herald.test"))
        .await
        .expect("taken");
    assert_eq!(server.wait_for(1, WAIT).await[0].to, ["ann@example.com"]);
}

#[tokio::test]
async fn a_server_that_is_down_is_transient_and_the_same_email_arrives_once_it_is_back() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::new(&server.settings(FROM)).expect("mailer");
    // One email first, so that the pool holds a connection the server's fall will cut.
    mailer
        .send(&email("ann@example.com", "msg_before@herald.test"))
        .await
        .expect("taken");

    server.close().await;
    let retried = email("bob@example.com", "msg_retried@herald.test");
    let failure = failure(&mailer, &retried).await;
    assert!(failure.transient, "{failure:?}");
    assert_eq!(failure.code, None, "{failure:?}");
    assert!(
        failure.detail.to_lowercase().contains("refused"),
        "{failure:?}"
    );
    assert_eq!(server.received().len(), 1);

    server.open().await;
    mailer.send(&retried).await.expect("taken once it is back");
    let received = server.wait_for(2, WAIT).await;
    assert_eq!(received.len(), 2, "{received:#?}");
    assert_eq!(
        received[1].message_id.as_deref(),
        Some("msg_retried@herald.test")
    );
}

/// Transient: see `herald::clients::smtp` — the configuration or the relay is at fault and is
/// mended without touching the email.
#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_is_a_transient_failure_that_says_tls() {
    let server = SmtpServer::start().await;
    let mut settings = server.settings(FROM);
    settings.ca_file = None;
    let mailer = Mailer::new(&settings).expect("mailer");

    let failure = failure(&mailer, &email("ann@example.com", "msg_1@herald.test")).await;

    assert!(failure.transient, "{failure:?}");
    assert_eq!(failure.code, None, "{failure:?}");
    assert!(failure.detail.starts_with("TLS"), "{failure:?}");
    assert!(failure.detail.contains("certificate"), "{failure:?}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_recipient_that_is_not_an_address_is_permanent_and_nothing_is_sent() {
    let server = SmtpServer::start().await;
    let mailer = Mailer::new(&server.settings(FROM)).expect("mailer");

    let failure = failure(&mailer, &email("ann at example", "msg_1@herald.test")).await;

    assert!(!failure.transient, "{failure:?}");
    assert_eq!(failure.code, None, "{failure:?}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_wrong_password_is_a_transient_failure_with_535_mended_in_the_settings() {
    let server = SmtpServer::start().await;
    let mut settings = server.settings(FROM);
    settings.smtp_url = SecretString::from(format!(
        "smtp://{}:not-the-password@localhost:{}",
        utf8_percent_encode(server.user(), NON_ALPHANUMERIC),
        server.port()
    ));
    let mailer = Mailer::new(&settings).expect("mailer");

    let failure = failure(&mailer, &email("ann@example.com", "msg_1@herald.test")).await;

    assert!(failure.transient, "{failure:?}");
    assert_eq!(failure.code, Some(535), "{failure:?}");
    assert!(!failure.detail.contains("not-the-password"), "{failure:?}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn the_password_is_in_no_failure_and_not_in_the_settings_debug() {
    let server = SmtpServer::start().await;
    let settings = server.settings(FROM);
    let encoded = utf8_percent_encode(server.password(), NON_ALPHANUMERIC).to_string();
    let leaks = |text: &str| text.contains(server.password()) || text.contains(&encoded);
    let debug = format!("{settings:?}");
    assert!(!leaks(&debug), "{debug}");

    let mailer = Mailer::new(&settings).expect("mailer");
    assert!(!leaks(&format!("{mailer:?}")));
    let mut untrusted = settings.clone();
    untrusted.ca_file = None;
    let untrusted = Mailer::new(&untrusted).expect("mailer");

    let mut failures = vec![
        failure(&mailer, &email("reject@example.com", "msg_1@herald.test")).await,
        failure(&mailer, &email("busy@example.com", "msg_2@herald.test")).await,
        failure(&mailer, &email("not an address", "msg_3@herald.test")).await,
        failure(&untrusted, &email("ann@example.com", "msg_4@herald.test")).await,
    ];
    server.close().await;
    failures.push(failure(&mailer, &email("ann@example.com", "msg_5@herald.test")).await);

    for failure in failures {
        let debug = format!("{failure:?}");
        assert!(!leaks(&debug), "{debug}");
    }
}

#[tokio::test]
async fn mailer_new_with_a_ca_file_that_is_not_there_names_email_ca_file() {
    let server = SmtpServer::start().await;
    let mut settings = server.settings(FROM);
    settings.ca_file = Some(Path::new("/nonexistent/herald-ca.pem").to_owned());

    let error = format!("{:#}", Mailer::new(&settings).expect_err("refused"));

    assert!(error.contains("email.ca_file"), "{error}");
    assert!(error.contains("/nonexistent/herald-ca.pem"), "{error}");
    assert!(!error.contains(server.password()), "{error}");
}
