//! The SMTP client behind the email fallback (lettre): STARTTLS or implicit TLS, the password
//! from `[email] smtp_url`, and what the server answered.
//!
//! ```text
//!   [email] smtp_url ──read once──▶ host, port, TLS mode, user + password
//!   [email] ca_file  ──read once──▶ extra roots beside webpki's
//!                                        │
//!   OutgoingEmail ──▶ lettre Message ──▶ pool ──▶ EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA
//!                                                   │
//!                        250 … ──▶ SmtpAccepted { reply }
//!                        4xx, no answer, TLS, login ──▶ SmtpFailure { transient: true }
//!                        other 5xx, not an address ──▶ SmtpFailure { transient: false }
//! ```
//!
//! A TLS failure (an untrusted or expired certificate, a server that does not offer STARTTLS
//! when `?tls=required` asks for it) is transient: it is the relay's or the configuration's
//! fault, never the message's, and it is mended without touching the message — so the message
//! should still go once it is, and another try costs one refused handshake. Its detail starts
//! with "TLS" so that an operator tells it from an outage. A refused login (530, 534, 535, 538)
//! is transient for the same reason: a wrong password is mended in the settings, and every
//! fallback email failing for good meanwhile would lose them all.

use std::borrow::Cow;
use std::error::Error as _;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use secrecy::{ExposeSecret, SecretString};

use crate::configuration::{ConfigError, EmailSettings};
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

impl SmtpFailure {
    /// A failure no other try of the same email can mend.
    fn permanent(detail: impl Into<String>) -> SmtpFailure {
        SmtpFailure {
            transient: false,
            code: None,
            detail: detail.into(),
        }
    }
}

/// Sends email through the configured server.
///
/// Connections are pooled (lettre's pool): a burst of fallback emails shares one TLS
/// handshake and one AUTH. Each conversation runs on a task of its own, so a caller that stops
/// waiting (shutdown, a timeout around `send`) does not leave a connection cut off between a
/// command and its reply for the pool to hand to the next email, which would then read the
/// previous email's replies as its own. Such an email may still be taken after its caller
/// gave up; its next try carries the same `Message-ID`, so the mail system can tell.
pub struct Mailer {
    from: Mailbox,
    server: String,
    port: u16,
    security: Security,
    builder: AsyncSmtpTransportBuilder,
    /// Built on the first send rather than in `new`: building starts the pool's clean-up task,
    /// which needs the Tokio runtime, and `new` runs at start-up, maybe before there is one.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
    /// Kept to strike it from any failure's detail, should a server ever echo it.
    password: Option<SecretString>,
}

impl Mailer {
    /// Built from the settings; an error names the setting and never repeats the URL.
    ///
    /// The URL and the CA file are read here, once, so that a mistake in them stops start-up
    /// instead of failing every email. Nothing is sent: the server may be down at start-up.
    /// `timeout_ms` bounds the connection and each wait for a reply (lettre's timeout), so a
    /// server that stops answering mid-conversation fails the try instead of holding it.
    pub fn new(settings: &EmailSettings) -> Result<Mailer, anyhow::Error> {
        let url = SmtpUrl::read(settings.smtp_url.expose_secret())?;
        let from: Mailbox = settings.from.parse().map_err(|_| {
            key_error(
                "email.from",
                "must be an address, such as \"Shop <orders@shop.example>\"",
            )
        })?;
        let tls = tls_parameters(&url.host, settings.ca_file.as_deref())?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&url.host)
            .port(url.port)
            .timeout(Some(settings.timeout()))
            .tls(match url.security {
                Security::StartTlsIfOffered => Tls::Opportunistic(tls),
                Security::StartTlsRequired => Tls::Required(tls),
                Security::ImplicitTls => Tls::Wrapper(tls),
            });
        if let Some(user) = &url.user {
            let password = url
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Mailer {
            from,
            server: url.host,
            port: url.port,
            security: url.security,
            builder,
            transport: OnceLock::new(),
            password: url.password,
        })
    }

    /// One try at handing `email` to the server: `Ok` once it answered 250 to the end of DATA.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<SmtpAccepted, SmtpFailure> {
        let message = self.message(email)?;
        let transport = self
            .transport
            .get_or_init(|| self.builder.clone().build())
            .clone();
        let conversation = tokio::spawn(async move { transport.send(message).await });
        match conversation.await {
            Ok(Ok(response)) => Ok(SmtpAccepted {
                reply: one_line(&response),
            }),
            Ok(Err(e)) => Err(self.redacted(classify(&e))),
            Err(stopped) => Err(self.redacted(SmtpFailure {
                transient: true,
                code: None,
                detail: format!("the SMTP conversation stopped without an answer: {stopped}"),
            })),
        }
    }

    /// The email as lettre sends it: multipart/alternative when there is HTML, else plain text
    /// (UTF-8; lettre picks a transfer encoding that any server takes).
    fn message(&self, email: &OutgoingEmail) -> Result<Message, SmtpFailure> {
        let to: Mailbox = email.to.parse().map_err(|_| {
            SmtpFailure::permanent("the recipient's address is not an email address")
        })?;
        if !is_message_id(&email.message_id) {
            return Err(SmtpFailure::permanent(
                "the Message-ID must read left@right, printable ASCII with no spaces or <>",
            ));
        }
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.as_str())
            .message_id(Some(format!("<{}>", email.message_id)));
        let built = match &email.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(SinglePart::plain(email.text.clone())),
        };
        built.map_err(|e| SmtpFailure::permanent(format!("the email cannot be written: {e}")))
    }

    fn redacted(&self, mut failure: SmtpFailure) -> SmtpFailure {
        if let Some(password) = &self.password {
            let password = password.expose_secret();
            if !password.is_empty() && failure.detail.contains(password) {
                failure.detail = failure.detail.replace(password, "[redacted]");
            }
        }
        failure
    }
}

impl fmt::Debug for Mailer {
    /// The server and sender; never the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Drop for Mailer {
    /// lettre's pool spawns a task when it is dropped, which panics outside the runtime (a
    /// Mailer dropped after the runtime has gone, at exit): there its connections are left to
    /// the process's end instead.
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            if let Some(transport) = self.transport.take() {
                std::mem::forget(transport);
            }
        }
    }
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// `smtp://`: STARTTLS when the server offers it, else in the clear.
    StartTlsIfOffered,
    /// `smtp://…?tls=required`: STARTTLS, or no conversation at all.
    StartTlsRequired,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
}

/// What `[email] smtp_url` says.
struct SmtpUrl {
    host: String,
    port: u16,
    security: Security,
    /// Percent-decoded; `None` when the URL names no user (no AUTH).
    user: Option<String>,
    /// Percent-decoded.
    password: Option<SecretString>,
}

impl SmtpUrl {
    /// Reads the URL in full; an error says what is wrong and never repeats any of it.
    fn read(raw: &str) -> Result<SmtpUrl, ConfigError> {
        let bad = |message: &str| key_error("email.smtp_url", message);
        let url = url::Url::parse(raw)
            .map_err(|_| bad("must be a URL such as smtp://user:password@smtp.example.com:587"))?;
        let (mut security, default_port) =
            match url.scheme() {
                "smtp" => (Security::StartTlsIfOffered, 587),
                "smtps" => (Security::ImplicitTls, 465),
                _ => return Err(bad(
                    "must be smtp://host[:port] (STARTTLS) or smtps://host[:port] (implicit TLS)",
                )),
            };
        let host = match url.host() {
            Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("names no host")),
        };
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(bad(
                "has a path or a fragment; only ?tls=required may follow the port",
            ));
        }
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref(), security) {
                ("tls", "required", Security::StartTlsIfOffered) => {
                    security = Security::StartTlsRequired;
                }
                ("tls", _, Security::ImplicitTls) => {
                    return Err(bad("smtps:// is always TLS: it takes no tls= parameter"));
                }
                ("tls", _, _) => return Err(bad("tls= may only be required")),
                _ => return Err(bad("reads no query parameter but tls=required")),
            }
        }
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(Cow::into_owned)
                .map_err(|_| bad("the user or password is not UTF-8 once percent-decoded"))
        };
        let user = decode(url.username())?;
        let password = url.password().map(decode).transpose()?;
        if user.is_empty() && password.is_some() {
            return Err(bad("has a password but no user"));
        }
        Ok(SmtpUrl {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            user: (!user.is_empty()).then_some(user),
            password: password.map(SecretString::from),
        })
    }
}

/// The roots the server's certificate must chain to: webpki's (the public authorities, the same
/// on every machine, unlike the system store) and every certificate in `ca_file`.
fn tls_parameters(host: &str, ca_file: Option<&Path>) -> Result<TlsParameters, ConfigError> {
    let mut builder =
        TlsParameters::builder(host.to_owned()).certificate_store(CertificateStore::WebpkiRoots);
    if let Some(path) = ca_file {
        let bad = |message: String| key_error("email.ca_file", message);
        let pem =
            std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
        let mut found = 0;
        for der in CertificateDer::pem_slice_iter(&pem) {
            let der = der.map_err(|e| bad(format!("{} is not PEM: {e}", path.display())))?;
            let certificate = Certificate::from_der(der.to_vec())
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
            builder = builder.add_root_certificate(certificate);
            found += 1;
        }
        if found == 0 {
            return Err(bad(format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            )));
        }
        // Building is where rustls reads each root: a certificate it cannot use fails here.
        return builder.build_rustls().map_err(|e| {
            bad(format!(
                "{} holds a certificate that cannot be a root: {e}",
                path.display()
            ))
        });
    }
    builder
        .build_rustls()
        .map_err(|e| key_error("email.smtp_url", format!("TLS cannot be set up: {e}")))
}

fn key_error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// RFC 5322's `id-left "@" id-right`, loosely: what fits between `<` and `>` without breaking
/// the header.
fn is_message_id(id: &str) -> bool {
    id.split_once('@')
        .is_some_and(|(left, right)| !left.is_empty() && !right.is_empty())
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// A reply on one line, code first: `250 2.0.0 Ok: queued as 4F2A1`.
fn one_line(response: &Response) -> String {
    let code = u16::from(response.code());
    let text = response.message().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        code.to_string()
    } else {
        format!("{code} {text}")
    }
}

/// The replies that refuse the login (RFC 4954): the settings' fault, not the email's.
const LOGIN_REFUSED: [u16; 4] = [530, 534, 535, 538];

/// Classified once: a reply code decides when there is one (4xx transient, 5xx permanent);
/// without one, the fault is in the connection, TLS or the configuration — all mended without
/// changing the email — so another try is worth it.
fn classify(e: &lettre::transport::smtp::Error) -> SmtpFailure {
    if let Some(code) = e.status() {
        let code = u16::from(code);
        let text = e.source().map(ToString::to_string).unwrap_or_default();
        return SmtpFailure {
            transient: !e.is_permanent() || LOGIN_REFUSED.contains(&code),
            code: Some(code),
            detail: format!("the server answered {code} {text}")
                .trim_end()
                .to_owned(),
        };
    }
    let cause = innermost(e);
    let what = if e.is_tls() || is_tls_failure(e) {
        "TLS with the server failed"
    } else if e.is_timeout() {
        "the server did not answer in time"
    } else if e.is_client() || e.is_response() {
        "the SMTP conversation failed"
    } else {
        "the connection to the server failed"
    };
    SmtpFailure {
        transient: true,
        code: None,
        detail: format!("{what}: {cause}"),
    }
}

/// lettre reports a failed handshake as a connection error around an I/O error around
/// rustls's: look for rustls's. (`io::Error::source` skips the error it wraps, so look inside
/// with `get_ref`.)
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        next = err.source();
    }
    false
}

/// The last error in the chain: the one that says what happened ("Connection refused"),
/// without lettre's wrappers repeating "Connection error".
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests;
