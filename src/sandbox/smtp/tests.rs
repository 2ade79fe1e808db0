use std::net::SocketAddr;

use chrono::{DateTime, TimeZone, Utc};
use lettre::message::{header::ContentType, Mailbox, MultiPart};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
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
    let ids =
        |store: &MailStore| -> Vec<String> { store.list(None).into_iter().map(|e| e.id).collect() };
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
