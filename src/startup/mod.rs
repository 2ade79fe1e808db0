//! Building and running the application: store → policy → service → worker → HTTP server.
//! Shutdown runs the other way: stop intake, let in-flight sends finish, flush the store.
//! SIGTERM or Ctrl-C shut down; SIGHUP reloads the policy.
//!
//! This file builds the core and the HTTP server and runs them; `tasks.rs` holds the
//! background tasks beside them.

mod tasks;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

pub use self::tasks::SIGHUP_CLIENT;
use self::tasks::{reload_on_sighup, spawn_background};
use crate::app::{AuditConfig, CoreParts, EmailSetup, Herald, Pages};
use crate::auth::JwtKeys;
use crate::clients::Mailer;
use crate::clock::{SharedClock, SystemClock};
use crate::configuration::{Backend, Settings};
use crate::delivery::{EventDispatcher, GraphClient, WebhookClient, Worker};
use crate::domain::audit::Pseudonyms;
use crate::email::EmailTemplates;
use crate::metrics::Metrics;
use crate::policy::PolicySet;
use crate::routes::openapi::{ApiDoc, ApiDocument};
use crate::routes::{self, AppState};
use crate::store::{LeaseSettings, PgOptions, PgStore, SledStore, Stores};

/// A built application: bound to its port, store open, worker ready.
pub struct Application {
    port: u16,
    server: Server,
    handle: AppHandle,
    /// The background tasks: the worker, upkeep, campaigns, the event dispatcher, and the
    /// store's own upkeep (PostgreSQL's lease rounds) when it needs any.
    tasks: Vec<JoinHandle<()>>,
}

/// What tests and the CLI may hold on to while the server runs.
#[derive(Clone)]
pub struct AppHandle {
    pub herald: Arc<Herald>,
    pub worker: Arc<Worker>,
    /// Delivers events to the business's endpoints.
    pub events: Arc<EventDispatcher>,
    stop: CancellationToken,
    server: actix_web::dev::ServerHandle,
}

impl AppHandle {
    /// Stops intake, lets in-flight sends finish and flushes the store.
    pub async fn shutdown(&self) {
        self.server.stop(true).await;
        self.stop.cancel();
    }
}

/// What an embedding program or a test may hand the application in place of the defaults:
/// the wall clock and the sled store at `storage.path`.
#[derive(Default)]
pub struct Dependencies {
    /// The clock every part of the gateway reads.
    pub clock: Option<SharedClock>,
    /// The store, already open.
    pub store: Option<OpenedStore>,
}

/// A store as opened: its interfaces, and the engine's own metrics (commit and flush
/// latencies), which `GET /metrics` exports. The metrics travel beside the interfaces, not
/// through them, so that a wrapper around the interfaces cannot lose them.
pub struct OpenedStore {
    pub store: Stores,
    pub metrics: Vec<Box<dyn prometheus::core::Collector>>,
}

impl Application {
    /// Opens the store, loads the policy and binds `settings.server.listen` (port 0: any).
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&settings.server.listen)
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        Self::build_with_listener(settings, listener).await
    }

    pub async fn build_with_listener(
        settings: &Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        Self::build_with(settings, listener, Dependencies::default()).await
    }

    /// Builds the application on `listener` with `deps` in place of the defaults.
    pub async fn build_with(
        settings: &Settings,
        listener: TcpListener,
        deps: Dependencies,
    ) -> anyhow::Result<Application> {
        let (herald, worker, dispatcher) = build_core(settings, deps).await?;
        let port = listener.local_addr()?.port();
        let server = http_server(settings, &herald, listener)?;
        let stop = CancellationToken::new();
        herald
            .join_cluster()
            .await
            .context("cannot read the policy the other instances run")?;
        let tasks = spawn_background(&herald, &worker, &dispatcher, &stop);
        let handle = AppHandle {
            herald,
            worker,
            events: dispatcher,
            stop,
            server: server.handle(),
        };
        Ok(Application {
            port,
            server,
            handle,
            tasks,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> AppHandle {
        self.handle.clone()
    }

    /// Serves until the server stops (Ctrl-C, SIGTERM or [`AppHandle::shutdown`]), then shuts
    /// down in order.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.handle.clone();
        let signals = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: no new requests, finishing in-flight sends");
            handle.shutdown().await;
        });
        let reloads = reload_on_sighup(&self.handle.herald, &self.handle.stop);
        self.server.await?;
        signals.abort();
        self.handle.stop.cancel();
        if let Some(reloads) = reloads {
            let _ = reloads.await;
        }
        for task in self.tasks {
            let _ = task.await;
        }
        // The worker's loop waits for its sends when it stops; a loop that was waiting to be
        // restarted did not, so wait here (each send ends within the request timeout).
        self.handle.worker.wait_idle().await;
        self.handle.herald.store.engine.close().await?;
        tracing::info!("store flushed; bye");
        Ok(())
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// How the program gives the memory its allocator keeps for reuse back to the system: set by
/// the binary, which chose the allocator (`main.rs`); nothing by default.
static RELEASE_MEMORY: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets how memory is given back to the system once the store is open (the first call wins).
/// Opening a sled store replays its log: on a million audit entries what the replay allocated
/// and freed would otherwise stay in the gateway's resident set, ~40 MB of it (BENCHMARKS.md).
pub fn release_memory_with(release: fn()) {
    let _ = RELEASE_MEMORY.set(release);
}

fn release_memory() {
    if let Some(release) = RELEASE_MEMORY.get() {
        release();
    }
}

/// Opens the store `settings.storage` names: sled at `storage.path`, or PostgreSQL at
/// `storage.url`. A gateway (`gateway`) takes part in running the outbox — on PostgreSQL it
/// takes a share of the partitions of pages; a command-line tool only reads and writes.
pub async fn open_store(
    settings: &Settings,
    pseudonyms: Pseudonyms,
    gateway: bool,
) -> anyhow::Result<OpenedStore> {
    let storage = &settings.storage;
    match storage.backend {
        Backend::Sled => {
            let store = SledStore::open(&storage.path, pseudonyms)
                .with_context(|| format!("cannot open the store at {}", storage.path.display()))?;
            Ok(OpenedStore {
                metrics: store.collectors(),
                store: Stores::of(store),
            })
        }
        Backend::Postgres => {
            let options = pg_options(settings, gateway)?;
            // The error names `storage.url` with the password hidden, in one line.
            let store = PgStore::open(&options, pseudonyms)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(OpenedStore {
                metrics: store.collectors(),
                store: Stores::of(store),
            })
        }
    }
}

/// The PostgreSQL options `settings.storage` gives.
pub fn pg_options(settings: &Settings, gateway: bool) -> anyhow::Result<PgOptions> {
    let storage = &settings.storage;
    Ok(PgOptions {
        url: storage
            .url
            .clone()
            .context("storage.url is required with backend = \"postgres\"")?,
        ca_file: storage.ca_file.clone(),
        pool_size: storage.pool_size,
        partitions: storage.partitions,
        leases: gateway.then(|| LeaseSettings {
            lease: storage.lease(),
        }),
    })
}

/// The audit log's pseudonym key, which every store must be opened with.
pub fn pseudonyms(settings: &Settings) -> anyhow::Result<Pseudonyms> {
    settings.audit.pseudonyms()?.context(
        "audit.signing_key or audit.pseudonym_key is required: the audit log names recipients by a keyed pseudonym",
    )
}

/// The email fallback's parts, when `[email]` is configured: the templates (read and tried
/// now, so that a broken template stops start-up rather than the first fallback) and the SMTP
/// client.
fn email_channel(settings: &Settings) -> anyhow::Result<(Option<EmailSetup>, Option<Mailer>)> {
    let Some(email) = &settings.email else {
        return Ok((None, None));
    };
    let templates = EmailTemplates::load(email.templates.as_deref())
        .map_err(|e| anyhow::anyhow!("email.templates: {e}"))?;
    let sender_name = email
        .from
        .parse::<lettre::message::Mailbox>()
        .ok()
        .and_then(|m| m.name)
        .filter(|n| !n.trim().is_empty());
    let mailer = Mailer::new(email)?;
    Ok((
        Some(EmailSetup {
            templates,
            sender_name,
        }),
        Some(mailer),
    ))
}

/// The core and the tasks that send: the policy, the store, the clients and the clock the
/// settings (or a test's `deps`) name.
async fn build_core(
    settings: &Settings,
    deps: Dependencies,
) -> anyhow::Result<(Arc<Herald>, Arc<Worker>, Arc<EventDispatcher>)> {
    let policy = PolicySet::load_dir(&settings.policy.dir).map_err(|errors| {
        anyhow::anyhow!(
            "the policy in {} is invalid:\n{errors}",
            settings.policy.dir.display()
        )
    })?;
    let audit = AuditConfig {
        signer: settings.audit.signer()?,
        retention: settings.audit.retention(),
    };
    let OpenedStore { store, metrics } = match deps.store {
        Some(opened) => opened,
        None => open_store(settings, pseudonyms(settings)?, true).await?,
    };
    release_memory();
    let clock = deps.clock.unwrap_or_else(SystemClock::shared);
    let metrics = Arc::new(Metrics::new(metrics).context("cannot build the metrics")?);
    let pages = Pages::from_settings(&settings.messenger);
    let graph = GraphClient::new(
        &settings.messenger.graph_base_url,
        &settings.messenger.graph_version,
        settings.delivery.request_timeout(),
    )
    .context("cannot build the HTTP client")?;
    let webhooks = WebhookClient::new(settings.events.allow_private_networks)
        .context("cannot build the HTTP client for event endpoints")?;
    let (email, mailer) = email_channel(settings)?;
    let herald = Arc::new(Herald::new(
        store,
        clock,
        policy,
        CoreParts {
            policy_dir: settings.policy.dir.clone(),
            pages,
            ttl: settings.delivery.ttl.clone(),
            graph: graph.clone(),
            audit,
            metrics,
            webhooks,
            email,
        },
    ));
    let worker = Worker::new(
        Arc::clone(&herald),
        graph,
        mailer,
        settings.delivery.clone(),
    );
    let dispatcher = EventDispatcher::new(Arc::clone(&herald), &settings.events);
    Ok((herald, worker, dispatcher))
}

/// The HTTP server on `listener`: every route, with the state, keys and API document they read.
fn http_server(
    settings: &Settings,
    herald: &Arc<Herald>,
    listener: TcpListener,
) -> anyhow::Result<Server> {
    let secret = |s: &Option<SecretString>| s.clone().unwrap_or_else(|| SecretString::from(""));
    let keys = Arc::new(JwtKeys::new(
        &settings
            .auth
            .jwt_secret
            .clone()
            .context("auth.jwt_secret is required")?,
        settings.auth.issuer.clone(),
        settings.auth.audience.clone(),
    ));
    let state = web::Data::new(AppState::new(
        Arc::clone(herald),
        secret(&settings.messenger.app_secret),
        secret(&settings.messenger.verify_token),
        settings.server.client_requests_per_second,
    ));
    let keys = web::Data::new(keys);
    // The document is what registering the routes collected (see `routes::configure`).
    let (_, spec) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::configure)
        .split_for_parts();
    let document = web::Data::new(ApiDocument(
        spec.to_json()
            .context("cannot write the OpenAPI document")?,
    ));
    let max_body = settings.server.max_body_bytes;
    let server = HttpServer::new(move || {
        App::new()
            .into_utoipa_app()
            .configure(routes::configure)
            .into_app()
            .app_data(state.clone())
            .app_data(keys.clone())
            .app_data(document.clone())
            // Bodies past the limit are refused (413) before they are read whole.
            .app_data(web::PayloadConfig::new(max_body))
            .wrap(actix_web::middleware::Compress::default())
            .wrap(from_fn(crate::telemetry::around_request))
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .disable_signals()
    .run();
    Ok(server)
}
