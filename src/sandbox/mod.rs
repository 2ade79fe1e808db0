//! The embedded Messenger stand-in behind `herald serve --sandbox` and the integration tests.
//!
//! One HTTP server plays both sides of Messenger:
//!
//! ```text
//!   Herald ── POST /{version}/{me|page_id}/messages ──▶ graph.rs ─┐   (Send API, Graph errors)
//!                                                                 ├─▶ state.rs ◀─ rules.rs
//!   test / demo ── POST /sandbox/users/{psid}/… ──────▶ control/ ──┘   (people, tokens, inboxes)
//!                                                          │
//!   Herald ◀── POST webhook_url (signed, webhooks.rs) ─────┘
//! ```
//!
//! The Send API answers as Messenger does (MESSENGER.md §1, §5, §10): the same request shapes,
//! the same error codes, the same window, tag and token rules. The control API plays the
//! person: each action updates the sandbox's state, then posts the webhook Messenger would
//! send and reports Herald's answer. Rules take an explicit `now` (see `rules.rs`), and events
//! take an `at`, so tests can place a person's last message 25 hours or 8 days in the past.
//!
//! With [`Sandbox::start_smtp`] it also stands in for the business's mail relay (`smtp/`):
//! the email fallback's mail is kept, and `GET /sandbox/mail` shows it.

mod control;
mod error;
mod graph;
mod ids;
mod rules;
mod smtp;
mod state;
mod validate;
mod webhooks;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::error::{GraphError, Problem};
use self::smtp::MailStore;
use self::state::State;
use self::webhooks::WebhookClient;
use crate::clock::SharedClock;

pub use self::smtp::{ReceivedEmail, KEPT_EMAILS};

/// Messenger's Send API limit for text messages: 300 calls per second per page (§6).
pub const DEFAULT_RATE_PER_PAGE_PER_SECOND: u32 = 300;

/// HTTP workers; the sandbox never blocks, so two are plenty.
const WORKERS: usize = 2;

/// How long in-flight requests may take to finish on a graceful stop.
const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// With `auto_receipts`, how long after a send its delivery webhook goes out, and how long
/// after that its read webhook. Long enough for Herald to store the send's result first.
const AUTO_RECEIPT_DELAY: Duration = Duration::from_secs(1);

/// A page the sandbox hosts.
#[derive(Clone)]
pub struct SandboxPage {
    /// The page id, used in paths (`/{page_id}/messages`) and webhooks.
    pub id: String,
    /// The page access token the Send API accepts for this page.
    pub access_token: String,
    /// Decides whether Marketing Messages tokens still work (AU, EU, JP, KR, UK).
    pub region: Option<String>,
}

impl fmt::Debug for SandboxPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxPage")
            .field("id", &self.id)
            .field("access_token", &"[redacted]")
            .field("region", &self.region)
            .finish()
    }
}

/// How the sandbox is set up.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Signs webhooks sent to Herald (`X-Hub-Signature-256`) and checks `appsecret_proof`.
    pub app_secret: String,
    /// The pages; the first is the default `page_id` of control calls. At least one.
    pub pages: Vec<SandboxPage>,
    /// Herald's `POST /webhooks/messenger` URL; `None` sends no webhooks.
    pub webhook_url: Option<String>,
    /// After each accepted send to a PSID, post a delivery and then a read webhook for it
    /// (demo mode). Tests leave it off and drive receipts through the control API.
    pub auto_receipts: bool,
    /// Sends per page per second before answering 613; Messenger's is
    /// [`DEFAULT_RATE_PER_PAGE_PER_SECOND`].
    pub rate_per_page_per_second: u32,
    /// What "now" is for Messenger's rules and the events the sandbox sends: the same clock as
    /// Herald's, so that a test set at another moment sees both sides agree.
    pub clock: SharedClock,
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("app_secret", &"[redacted]")
            .field("pages", &self.pages)
            .field("webhook_url", &self.webhook_url)
            .field("auto_receipts", &self.auto_receipts)
            .field("rate_per_page_per_second", &self.rate_per_page_per_second)
            .field("clock_now", &self.clock.now())
            .finish()
    }
}

impl SandboxConfig {
    fn validate(&self) -> io::Result<NonZeroU32> {
        let invalid =
            |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("sandbox: {what}"));
        if self.pages.is_empty() {
            return Err(invalid("at least one page is required"));
        }
        let mut ids = HashSet::new();
        for page in &self.pages {
            if page.id.trim().is_empty() || page.access_token.trim().is_empty() {
                return Err(invalid("every page needs an id and an access token"));
            }
            if page.id == "me" || !ids.insert(page.id.as_str()) {
                return Err(invalid(&format!(
                    "page id {:?} is reserved or repeated",
                    page.id
                )));
            }
        }
        NonZeroU32::new(self.rate_per_page_per_second)
            .ok_or_else(|| invalid("rate_per_page_per_second must be at least 1"))
    }
}

/// What the Send API did, as `GET /sandbox/stats` reports it.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SandboxStats {
    /// Sends Messenger would have accepted (sender actions included).
    pub accepted: u64,
    /// Sends refused by Messenger's rules: token, pacing, shape, recipient, window, tag.
    pub rejected: u64,
    /// Sends failed on purpose by faults from `POST /sandbox/faults`; not in `rejected`.
    pub injected_faults: u64,
    /// The most recent rule rejections (the last 1000), oldest first.
    pub rejections: Vec<Rejection>,
}

/// One send the sandbox refused by Messenger's rules.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Rejection {
    /// Graph `error.code`.
    pub code: u32,
    /// Graph `error.error_subcode`.
    pub subcode: Option<u32>,
    /// Graph `error.message`.
    pub message: String,
    /// The recipient, when the request named one (PSID, or `user_ref` for checkbox sends).
    pub psid: Option<String>,
}

/// A message the page sent and Messenger accepted.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ReceivedMessage {
    /// The `message_id` the Send API answered.
    pub message_id: String,
    /// The page that sent it.
    pub page_id: String,
    /// The Send API request's parameters as received (query and body; JSON, or form fields
    /// decoded), without `access_token` and `appsecret_proof`.
    pub body: serde_json::Value,
    /// When the sandbox accepted it.
    pub received_at: DateTime<Utc>,
}

/// What the HTTP handlers share.
pub(crate) struct Shared {
    config: SandboxConfig,
    state: Mutex<State>,
    limiter: DefaultKeyedRateLimiter<String>,
    webhooks: WebhookClient,
    /// What the SMTP stand-in received; empty unless it was started.
    mail: Arc<MailStore>,
    /// Cancelled on stop, ending pending auto-receipt tasks and the SMTP stand-in.
    shutdown: CancellationToken,
    /// The runtime that started the sandbox, for background tasks.
    runtime: Handle,
}

impl Shared {
    /// Now, by the sandbox's clock.
    fn now(&self) -> DateTime<Utc> {
        self.config.clock.now()
    }

    /// The state, for one short, synchronous step. A panic while it was held cannot leave
    /// it half-changed in a way that matters to a stand-in, so poisoning is ignored.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a rule rejection and answers it.
    fn reject(
        &self,
        error: &GraphError,
        page_id: Option<&str>,
        psid: Option<&str>,
    ) -> HttpResponse {
        self.state().record_rejection(error, psid);
        error.to_response(page_id)
    }

    /// Demo mode: a delivery webhook for `mid`, then a read webhook, unless the sandbox stops.
    fn spawn_receipts(self: Arc<Self>, psid: String, page_id: String, mid: String) {
        let shutdown = self.shutdown.clone();
        self.runtime.clone().spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = self.send_receipts(&psid, &page_id, mid) => {}
            }
        });
    }

    async fn send_receipts(&self, psid: &str, page_id: &str, mid: String) {
        tokio::time::sleep(AUTO_RECEIPT_DELAY).await;
        let delivered_at = self.now();
        self.state().deliver_until(psid, page_id, delivered_at);
        let watermark = delivered_at.timestamp_millis();
        let delivery = json!({ "mids": [mid], "watermark": watermark });
        let event = webhooks::from_person(psid, page_id, delivered_at, "delivery", delivery);
        self.webhooks.post(page_id, vec![event]).await;
        tokio::time::sleep(AUTO_RECEIPT_DELAY).await;
        let read_at = self.now();
        let read = json!({ "watermark": read_at.timestamp_millis() });
        let event = webhooks::from_person(psid, page_id, read_at, "read", read);
        self.webhooks.post(page_id, vec![event]).await;
    }
}

/// A running sandbox. Dropping it stops the server without waiting; [`Sandbox::stop`] waits.
pub struct Sandbox {
    base_url: String,
    shared: Arc<Shared>,
    server: ServerHandle,
    task: JoinHandle<io::Result<()>>,
    /// The SMTP stand-in's address and task, once started.
    smtp: Option<(SocketAddr, JoinHandle<()>)>,
}

impl Sandbox {
    /// Starts the stand-in on an already-bound listener; returns once it accepts connections.
    ///
    /// Must be called inside a Tokio runtime; webhooks and auto receipts run on it.
    pub async fn start(
        config: SandboxConfig,
        listener: std::net::TcpListener,
    ) -> io::Result<Sandbox> {
        let rate = config.validate()?;
        let address = listener.local_addr()?;
        let runtime = Handle::current();
        let webhooks = WebhookClient::new(
            config.webhook_url.clone(),
            config.app_secret.clone(),
            runtime.clone(),
            config.clock.clone(),
        )?;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            limiter: RateLimiter::keyed(Quota::per_second(rate)),
            webhooks,
            mail: Arc::default(),
            shutdown: CancellationToken::new(),
            runtime,
        });
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(control::configure)
                .configure(graph::configure)
                .default_service(web::to(unknown_route))
        })
        .workers(WORKERS)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        tracing::info!(%address, "Messenger sandbox listening");
        Ok(Sandbox {
            base_url: format!("http://{address}"),
            shared,
            server: handle,
            task,
            smtp: None,
        })
    }

    /// Starts the SMTP stand-in on an already-bound listener (loopback: it speaks plain text
    /// and takes mail from anyone) and returns its address. Mail sent to it is kept, never
    /// delivered, and shown by `GET /sandbox/mail` and [`Sandbox::mail`]. It stops with the
    /// sandbox.
    ///
    /// The listener is bound by the caller so that its port can go into Herald's `[email]`
    /// settings before the gateway, and so the sandbox, is started.
    pub fn start_smtp(&mut self, listener: std::net::TcpListener) -> io::Result<SocketAddr> {
        if self.smtp.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "sandbox: the SMTP stand-in is already running",
            ));
        }
        let address = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        // Registering with the reactor needs the runtime the sandbox runs on.
        let _runtime = self.shared.runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let task = self.shared.runtime.spawn(smtp::serve(
            listener,
            Arc::clone(&self.shared.mail),
            self.shared.config.clock.clone(),
            self.shared.shutdown.clone(),
        ));
        tracing::info!(%address, "sandbox SMTP stand-in listening");
        self.smtp = Some((address, task));
        Ok(address)
    }

    /// Where the SMTP stand-in listens, once started.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().map(|(address, _)| *address)
    }

    /// The same data as `GET /sandbox/mail[?to=address]`: the emails received, oldest first
    /// (the last [`KEPT_EMAILS`]).
    pub fn mail(&self, to: Option<&str>) -> Vec<ReceivedEmail> {
        self.shared.mail.list(to)
    }

    /// Where Herald should send Graph calls, e.g. `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The same data as `GET /sandbox/stats`.
    pub fn stats(&self) -> SandboxStats {
        self.shared.state().stats()
    }

    /// What the recipient (a PSID, or a checkbox `user_ref`) received, oldest first.
    pub fn inbox(&self, psid: &str) -> Vec<ReceivedMessage> {
        self.shared.state().inbox(psid)
    }

    /// Stops accepting connections, lets in-flight requests finish, and cancels pending
    /// auto receipts and SMTP conversations.
    pub async fn stop(mut self) {
        self.shared.shutdown.cancel();
        self.server.stop(true).await;
        if let Some((_, smtp)) = self.smtp.take() {
            if let Err(error) = smtp.await {
                tracing::warn!(error = %error, "sandbox SMTP task failed");
            }
        }
        match (&mut self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "Messenger sandbox stopped with an error")
            }
            Err(error) => tracing::warn!(error = %error, "Messenger sandbox task failed"),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        // Sends the stop command now; the returned future only waits for it to finish.
        drop(self.server.stop(false));
    }
}

/// Unknown control paths get a problem; anything else what Graph says for an unknown path.
async fn unknown_route(request: HttpRequest) -> HttpResponse {
    if request.path().starts_with("/sandbox") {
        actix_web::ResponseError::error_response(&Problem::not_found(
            "unknown_route",
            format!("no sandbox route {} {}", request.method(), request.path()),
        ))
    } else {
        graph::unknown_path(request.path())
    }
}

#[cfg(test)]
mod tests;
