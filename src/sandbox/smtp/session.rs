//! One conversation's state: the commands in the order SMTP allows them (HELO/EHLO, MAIL, RCPT,
//! DATA), each answered with the code a relay would give.

use super::mailbox::{read_email, MailStore};
use super::wire::Data;
use super::{ids, Limits, HOSTNAME};
use crate::clock::SharedClock;

/// What the connection does after a command.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    Reply(String),
    /// Answer 354 and read the message.
    Data,
    Close(String),
}

/// The sender and recipients of the message being given.
#[derive(Debug, Clone)]
pub(super) struct Envelope {
    pub(super) from: String,
    pub(super) to: Vec<String>,
    /// `MAIL … SMTPUTF8`: the addresses may be UTF-8.
    utf8: bool,
}

/// One connection's SMTP state, without I/O: a command line in, what to answer out.
#[derive(Debug)]
pub(super) struct Session {
    limits: Limits,
    /// The client's name from EHLO or HELO; nothing but them and RSET, NOOP, VRFY, QUIT
    /// before it.
    client: Option<String>,
    envelope: Option<Envelope>,
    /// Bad commands in a row.
    errors: usize,
}

impl Session {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            limits,
            client: None,
            envelope: None,
            errors: 0,
        }
    }

    /// A bad command; the connection is dropped after too many in a row.
    pub(super) fn error(&mut self, reply: &str) -> Next {
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
    pub(super) fn command(&mut self, line: &[u8]) -> Next {
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
    pub(super) fn end_data(
        &mut self,
        data: Data,
        store: &MailStore,
        clock: &SharedClock,
    ) -> String {
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
