//! Herald's load generator: runs the gateway in its own process (`herald serve` with a
//! generated configuration), the Messenger sandbox in this one, drives them over real HTTP on
//! loopback, and prints a table.
//!
//! ```sh
//! cargo run --release --example loadgen                   # every run below
//! cargo run --release --example loadgen -- accept         # accept path, closed loop
//! cargo run --release --example loadgen -- latency        # accept path at a fixed 5,000/s
//! cargo run --release --example loadgen -- e2e            # accepted → delivered, and the ceiling
//! cargo run --release --example loadgen -- floors         # what any gateway costs on this machine
//! cargo run --release --example loadgen -- coldstart      # start-up with 0 and 1,000,000 audit entries
//! cargo run --release --example loadgen -- campaign       # a CSV audience of 10,000 and of 1,000,000
//! cargo run --release --example loadgen -- audit          # query, export, verify on 1,000,000 entries
//! cargo run --release --example loadgen -- events         # events to an endpoint, against posting them directly
//! ```
//! Options: `--clients N` (64), `--requests N` (100000), `--rate N` (5000), `--pages N` (200),
//! `--audit-entries N` (1000000), `--audience N` (1000000, the campaign run's larger audience).
//!
//! The gateway, the floors and the relay run as child processes of this program (it starts
//! itself again with `gateway …`, `floor …` or `relay …`), so their resident memory is their
//! own.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark tool: failing loudly is right

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use herald::auth::JwtKeys;
use herald::clock::SystemClock;
use herald::domain::audit::{AuditEntry, AuditKind, Personal};
use herald::domain::Role;
use herald::sandbox::{Sandbox, SandboxConfig, SandboxPage};
use herald::store::{AuditLog, Engine, SledStore};
use secrecy::SecretString;
use serde_json::json;

/// jemalloc, as the `herald` binary has: this program runs the gateway itself (`loadgen
/// gateway …`), and the figures in BENCHMARKS.md were measured with it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// What the binary does with its allocator, the same file.
#[path = "../src/allocator.rs"]
mod allocator;

const JWT_SECRET: &str = "loadgen-jwt-secret-0123456789";
const APP_SECRET: &str = "loadgen-app-secret-0123456789";
/// The audit log's checkpoint key (an Ed25519 seed, base64); pseudonyms are derived from it.
const SIGNING_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The pseudonyms a gateway configured with [`SIGNING_KEY`] uses, for stores built here.
fn pseudonyms() -> herald::domain::audit::Pseudonyms {
    let signer = herald::domain::checkpoint::CheckpointSigner::from_base64(SIGNING_KEY)
        .expect("signing key");
    herald::domain::audit::Pseudonyms::new(&signer.pseudonym_key())
}

struct Options {
    runs: Vec<String>,
    clients: usize,
    requests: usize,
    rate: usize,
    pages: usize,
    audit_entries: usize,
    audience: usize,
}

fn options() -> Options {
    let mut o = Options {
        runs: Vec::new(),
        clients: 64,
        requests: 100_000,
        rate: 5_000,
        pages: 200,
        audit_entries: 1_000_000,
        audience: 1_000_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match a.as_str() {
            "--clients" => o.clients = num(),
            "--requests" => o.requests = num(),
            "--rate" => o.rate = num(),
            "--pages" => o.pages = num(),
            "--audit-entries" => o.audit_entries = num(),
            "--audience" => o.audience = num(),
            run => o.runs.push(run.to_owned()),
        }
    }
    if o.runs.is_empty() {
        o.runs = ["accept", "latency", "e2e", "floors", "coldstart"]
            .map(String::from)
            .to_vec();
    }
    o
}

/// One row of the result table.
struct Row {
    run: String,
    count: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
    /// Peak resident memory of the process under test, if one was.
    rss_mb: Option<f64>,
    note: String,
}

impl Row {
    fn print_header() {
        println!(
            "| {:<34} | {:>8} | {:>7} | {:>10} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | note",
            "run", "count", "secs", "per sec", "p50 ms", "p90 ms", "p99 ms", "max ms", "RSS MB",
        );
        println!(
            "|{:-<36}|{:->10}|{:->9}|{:->12}|{:->9}|{:->9}|{:->9}|{:->9}|{:->9}|------",
            "", "", "", "", "", "", "", "", ""
        );
    }

    fn per_second(&self) -> f64 {
        self.count as f64 / self.seconds
    }

    fn print(&mut self) {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| -> String {
            if self.latencies_us.is_empty() {
                return "-".into();
            }
            let i = ((self.latencies_us.len() as f64 * p).ceil() as usize)
                .clamp(1, self.latencies_us.len())
                - 1;
            format!("{:.2}", self.latencies_us[i] as f64 / 1000.0)
        };
        println!(
            "| {:<34} | {:>8} | {:>7.2} | {:>10.0} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | {}",
            self.run,
            self.count,
            self.seconds,
            self.per_second(),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(1.0),
            self.rss_mb.map_or("-".into(), |r| format!("{r:.1}")),
            self.note
        );
    }
}

/// Resident memory of process `pid`, in MB.
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A child process under test: its base URL, and the peak of its resident memory, sampled
/// every 20 ms until it is dropped (which kills it).
struct Process {
    child: Child,
    base: String,
    peak_kb: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Process {
    /// Starts this program again with `args`; waits for the `port=N` it reports on `stderr`.
    fn spawn(args: &[String]) -> Process {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .args(args)
            // The gateway's request log off; its start-up line (with the port) on.
            .env("RUST_LOG", "warn,herald::cli=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the child process");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("the child process ended before it listened")
                .expect("read the child's output");
            if let Some(port) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("port="))
            {
                break port.trim_matches('"').parse::<u16>().expect("a port");
            }
            eprintln!("[child] {line}");
        };
        // Keep draining its output (a full pipe would stall it), showing what went wrong.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("[child] {line}");
            }
        });
        let pid = child.id();
        let peak_kb = Arc::new(AtomicU64::new(0));
        let peak = Arc::clone(&peak_kb);
        let sampler = tokio::spawn(async move {
            loop {
                peak.fetch_max((rss_mb(pid) * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Process {
            child,
            base: format!("http://127.0.0.1:{port}"),
            peak_kb,
            sampler,
        }
    }

    fn peak_rss_mb(&self) -> f64 {
        self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }

    /// Forgets the peak so far (after the set-up phase).
    fn reset_peak(&self) {
        self.peak_kb.store(0, Ordering::Relaxed);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.sampler.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn page_id(i: usize) -> String {
    format!("{}", 200_000_000_000_000u64 + i as u64)
}

fn page_ids(pages: usize) -> Vec<String> {
    (0..pages).map(page_id).collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client")
}

fn token() -> String {
    JwtKeys::new(&SecretString::from(JWT_SECRET), None, None)
        .issue("loadgen", Role::Backend, Duration::from_secs(3600))
        .expect("token")
}

async fn start_sandbox(pages: &[String], webhook_url: Option<String>) -> Sandbox {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    Sandbox::start(
        SandboxConfig {
            app_secret: APP_SECRET.into(),
            pages: pages
                .iter()
                .map(|id| SandboxPage {
                    id: id.clone(),
                    access_token: format!("token-{id}"),
                    region: Some("EU".into()),
                })
                .collect(),
            webhook_url,
            auto_receipts: false,
            rate_per_page_per_second: 300,
            clock: SystemClock::shared(),
        },
        listener,
    )
    .await
    .expect("sandbox")
}

/// A copy of the repository's policy files in `dir`, without marketing's quiet hours: the runs
/// go by the wall clock, and a campaign run after 21:00 UTC would otherwise wait for the morning.
fn policies_at_any_hour(dir: &Path) -> std::path::PathBuf {
    let to = dir.join("policies");
    std::fs::create_dir_all(&to).expect("policy dir");
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&from).expect("policies") {
        let path = entry.expect("policy file").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("policy");
            let text = match text.find("[marketing.quiet_hours]") {
                Some(start) => {
                    let end = text[start..].find("\n\n").map_or(text.len(), |n| start + n);
                    format!("{}{}", &text[..start], &text[end..])
                }
                None => text,
            };
            std::fs::write(to.join(path.file_name().expect("name")), text).expect("copy");
        }
    }
    to
}

/// The gateway's configuration file, as an operator would write it.
fn write_config(dir: &Path, graph_base_url: &str, pages: &[String]) -> std::path::PathBuf {
    write_config_on(dir, graph_base_url, pages, None)
}

/// The configuration, on the PostgreSQL database at `database` when given.
fn write_config_on(
    dir: &Path,
    graph_base_url: &str,
    pages: &[String],
    database: Option<&str>,
) -> std::path::PathBuf {
    let storage = database.map_or(String::new(), |url| {
        format!("backend = \"postgres\"\nurl = \"{url}\"\n")
    });
    let mut toml = format!(
        r#"[server]
listen = "127.0.0.1:0"

[storage]
path = "{store}"
{storage}

[audit]
signing_key = "{SIGNING_KEY}"

[auth]
jwt_secret = "{JWT_SECRET}"

[messenger]
graph_base_url = "{graph_base_url}"
app_secret = "{APP_SECRET}"
verify_token = "loadgen-verify-token"

[policy]
dir = "{policies}"

[events]
allow_private_networks = true
"#,
        store = dir.join("store").display(),
        policies = policies_at_any_hour(dir).display(),
    );
    for id in pages {
        toml.push_str(&format!(
            "\n[messenger.pages.\"{id}\"]\naccess_token = \"token-{id}\"\nregion = \"EU\"\n"
        ));
    }
    let path = dir.join("herald.toml");
    std::fs::write(&path, toml).expect("write the configuration");
    path
}

/// Bytes under `dir`, recursively.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => disk_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// A gateway process with its sandbox, pages, store and a backend token.
struct Rig {
    gateway: Process,
    sandbox: Sandbox,
    http: reqwest::Client,
    token: String,
    pages: Vec<String>,
    store_dir: tempfile::TempDir,
}

impl Rig {
    async fn start(pages: usize, store_dir: Option<tempfile::TempDir>) -> Rig {
        let store_dir = store_dir.unwrap_or_else(|| tempfile::tempdir().expect("dir"));
        let pages = page_ids(pages);
        // The sandbox first: the gateway's configuration names it as the Graph API. It needs
        // no webhook URL: the runs record consent through the API, and receipts are off.
        let sandbox = start_sandbox(&pages, None).await;
        let config = write_config(store_dir.path(), &sandbox.base_url(), &pages);
        let gateway = Process::spawn(&[
            "gateway".into(),
            "serve".into(),
            "--config".into(),
            config.display().to_string(),
        ]);
        Rig {
            gateway,
            sandbox,
            http: client(),
            token: token(),
            pages,
            store_dir,
        }
    }

    fn base(&self) -> &str {
        &self.gateway.base
    }
}

/// Runs `total` jobs over `clients` tasks, closed loop; returns latencies and wall time.
async fn closed_loop<F, Fut>(clients: usize, total: usize, job: F) -> (Vec<u64>, f64)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let job = Arc::new(job);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let next = Arc::clone(&next);
        let job = Arc::clone(&job);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return lat;
                }
                let t = Instant::now();
                assert!(job(i).await, "request {i} failed");
                lat.push(t.elapsed().as_micros() as u64);
            }
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    (all, start.elapsed().as_secs_f64())
}

/// Runs `total` jobs at a fixed `rate`, open loop: latency counts from the scheduled moment, so
/// a slow answer cannot hide the requests queued behind it.
async fn open_loop<F, Fut>(clients: usize, total: usize, rate: usize, job: F) -> (Vec<u64>, f64)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let job = Arc::new(job);
    let start = Instant::now() + Duration::from_millis(50);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let job = Arc::clone(&job);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c;
            while i < total {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                assert!(job(i).await, "request {i} failed");
                lat.push(due.elapsed().as_micros() as u64);
                i += clients;
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    (all, start.elapsed().as_secs_f64())
}

fn psid(i: usize) -> String {
    format!("{}", 7_000_000_000u64 + i as u64)
}

/// Records transactional consents for `n` recipients (so shipping updates are allowed: as
/// UTILITY templates, since none of them has written).
async fn consents(rig: &Rig, clients: usize, n: usize) {
    let (http, base, token) = (rig.http.clone(), rig.base().to_owned(), rig.token.clone());
    closed_loop(clients, n, move |i| {
        let req = http
            .post(format!("{base}/v1/consents"))
            .bearer_auth(&token)
            .json(
                &json!({"recipient": {"psid": psid(i)}, "scope": "transactional",
                          "source": "loadgen", "evidence": "generated"}),
            );
        async move { req.send().await.is_ok_and(|r| r.status().as_u16() == 201) }
    })
    .await;
}

/// The sandbox only knows people who exist: creates `n` of them.
async fn sandbox_users(sandbox: &Sandbox, http: &reqwest::Client, clients: usize, n: usize) {
    let (http, sandbox) = (http.clone(), sandbox.base_url());
    closed_loop(clients, n, move |i| {
        let req = http
            .post(format!("{sandbox}/sandbox/users"))
            .json(&json!({"psid": psid(i)}));
        async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
}

type Job = Box<
    dyn Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
        + Send
        + Sync,
>;

/// `POST /v1/shipping-updates` to `base`, request `i` to recipient `i % recipients` on page
/// `i % pages`; success is a 202.
fn shipping_job(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    pages: &[String],
    recipients: usize,
) -> Job {
    let (http, base, token, pages) = (
        http.clone(),
        base.to_owned(),
        token.to_owned(),
        pages.to_vec(),
    );
    Box::new(move |i| {
        let req = http
            .post(format!("{base}/v1/shipping-updates"))
            .bearer_auth(&token)
            .json(&json!({"page_id": pages[i % pages.len()], "recipient": {"psid": psid(i % recipients)},
                          "order_number": format!("L-{i}"), "status": "shipped", "carrier": "DHL",
                          "tracking_number": format!("T{i:08}")}));
        Box::pin(async move {
            match req.send().await {
                Ok(r) if r.status().as_u16() == 202 => true,
                Ok(r) => {
                    let status = r.status();
                    eprintln!(
                        "accept {i}: {status} {}",
                        r.text().await.unwrap_or_default()
                    );
                    false
                }
                Err(e) => {
                    eprintln!("accept {i}: {e}");
                    false
                }
            }
        })
    })
}

/// A Send API call as Herald renders a shipping update outside the window.
fn send_api_body(psid: &str, order: &str) -> serde_json::Value {
    json!({"recipient": {"id": psid}, "messaging_type": "UTILITY",
           "message": {"template": {"name": "herald_shipping_update", "language": {"code": "en_US"},
               "components": [{"type": "body", "parameters": [{"type": "text", "text": order}]}]}}})
}

/// Recipients needed so that no one passes the transactional cap (20 per hour).
fn recipients_for(requests: usize) -> usize {
    requests.div_ceil(18).max(1)
}

/// Accept runs use one page, as a shop has: delivery runs alongside at that page's pace
/// (300/s), and the accept path takes the rest of the machine.
async fn accept(o: &Options, fixed_rate: bool) -> Row {
    let rig = Rig::start(1, None).await;
    let recipients = recipients_for(o.requests);
    consents(&rig, o.clients, recipients).await;
    sandbox_users(&rig.sandbox, &rig.http, o.clients, recipients).await;
    rig.gateway.reset_peak();
    let job = shipping_job(&rig.http, rig.base(), &rig.token, &rig.pages, recipients);
    let (latencies_us, seconds) = if fixed_rate {
        open_loop(o.clients, o.requests, o.rate, job).await
    } else {
        closed_loop(o.clients, o.requests, job).await
    };
    let disk = disk_bytes(rig.store_dir.path()) as f64;
    let note = format!(
        "1 page; {} recipients; store {:.0} MB on disk, {:.2} KB per accepted message",
        recipients,
        disk / 1e6,
        disk / (o.requests + recipients) as f64 / 1024.0
    );
    Row {
        run: if fixed_rate {
            format!("accept @ {}/s (open loop)", o.rate)
        } else {
            format!("accept, {} clients", o.clients)
        },
        count: o.requests,
        seconds,
        latencies_us,
        rss_mb: Some(rig.gateway.peak_rss_mb()),
        note,
    }
}

/// Sends straight to the sandbox with the same generator: the ceiling.
async fn ceiling(o: &Options, sandbox: &Sandbox, pages: &[String], recipients: usize) -> Row {
    let (http, base, pages) = (client(), sandbox.base_url(), pages.to_vec());
    let (latencies_us, seconds) = closed_loop(o.clients, o.requests, move |i| {
        let page = &pages[i % pages.len()];
        let req = http
            .post(format!("{base}/v21.0/{page}/messages"))
            .bearer_auth(format!("token-{page}"))
            .json(&send_api_body(&psid(i % recipients), &format!("L-{i}")));
        async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    Row {
        run: "ceiling: straight to sandbox".into(),
        count: o.requests,
        seconds,
        latencies_us,
        rss_mb: None,
        note: "the same generator, one Send API call per message".into(),
    }
}

/// Waits until the sandbox has accepted `target` messages; returns the seconds since `start`.
async fn delivered(sandbox: &Sandbox, target: usize, start: Instant) -> f64 {
    while (sandbox.stats().accepted as usize) < target {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "deliveries stalled"
        );
    }
    start.elapsed().as_secs_f64()
}

fn ratio_note(row: &Row, ceiling: &Row) -> String {
    format!(
        "{:.0} % of the ceiling",
        100.0 * row.per_second() / ceiling.per_second()
    )
}

/// Accepted → delivered through the sandbox, then the same load posted straight to the sandbox.
async fn e2e(o: &Options) -> Vec<Row> {
    let rig = Rig::start(o.pages, None).await;
    let recipients = recipients_for(o.requests);
    consents(&rig, o.clients, recipients).await;
    sandbox_users(&rig.sandbox, &rig.http, o.clients, recipients).await;
    rig.gateway.reset_peak();
    let before = rig.sandbox.stats().accepted as usize;
    let start = Instant::now();
    let job = shipping_job(&rig.http, rig.base(), &rig.token, &rig.pages, recipients);
    let (accept_lat, _) = closed_loop(o.clients, o.requests, job).await;
    let seconds = delivered(&rig.sandbox, before + o.requests, start).await;
    let rejected = rig.sandbox.stats().rejected;
    let rss_mb = rig.gateway.peak_rss_mb();
    // Issue 18 counts the store once the run has settled: the worker has recorded each send
    // (the sandbox answers before the gateway writes that it did).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let disk = disk_bytes(rig.store_dir.path()) as f64;
    let mut herald = Row {
        run: format!("end to end, {} pages", o.pages),
        count: o.requests,
        seconds,
        latencies_us: accept_lat,
        rss_mb: Some(rss_mb),
        note: format!(
            "delivered by the sandbox; latencies are the accept calls; {rejected} rejected; \
             store {:.0} MB, {:.2} KB per delivered message",
            disk / 1e6,
            disk / o.requests as f64 / 1024.0
        ),
    };
    drop(rig.gateway);
    let ceiling = ceiling(o, &rig.sandbox, &rig.pages, recipients).await;
    herald.note = format!("{}; {}", ratio_note(&herald, &ceiling), herald.note);
    vec![herald, ceiling]
}

/// Issue 19: events to a business's endpoint. (1) The ceiling: event-sized bodies posted
/// straight to a fast local receiver by the same generator. (2) End to end without an
/// endpoint, then (3) with one endpoint subscribed to `message.*` at that receiver: its events
/// per second (two a message: queued, sent) against the ceiling, and end to end against (2).
/// (4) The same with a second endpoint that answers in 2 s: the first one's rate beside it.
async fn events(o: &Options) -> Vec<Row> {
    let mut rows = Vec::new();
    let fast = Process::spawn(&["receiver".into(), "0".into()]);
    let http = client();
    let body = json!({"id": "evt_0_123456_0", "type": "message.sent", "at": "2026-12-03T12:00:00Z",
        "data": {"id": "msg_01JE4Y7Q0ZC5M9K3T8W2N6B1XR", "status": "sent", "channel": "messenger",
                 "recipient": {"id": "7000000001"}, "page_id": page_id(0), "category": "shipping_update",
                 "graph_message_id": "m_0123456789abcdef0123456789abcdef", "client": "loadgen"}})
    .to_string();
    let url = format!("{}/hook", fast.base);
    let (h2, u2, b2) = (http.clone(), url.clone(), body.clone());
    let (lat, seconds) = closed_loop(o.clients, o.requests, move |i| {
        let req = h2
            .post(&u2)
            .header("content-type", "application/json")
            .header("webhook-id", format!("evt_ceiling_{i}"))
            .body(b2.clone());
        async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    let ceiling = Row {
        run: "events ceiling: POST to the receiver".into(),
        count: o.requests,
        seconds,
        latencies_us: lat,
        rss_mb: Some(fast.peak_rss_mb()),
        note: "the most events any sender delivers to this receiver here".into(),
    };
    drop(fast);

    let plain = e2e_with_endpoints(o, &[]).await;
    let mut with = e2e_with_endpoints(o, &[0]).await;
    let mut beside_slow = e2e_with_endpoints(o, &[0, 2000]).await;
    for row in [&mut with[1], &mut beside_slow[1]] {
        row.note = format!("{}; {}", ratio_note(row, &ceiling), row.note);
    }
    with[0].note = format!(
        "{:.0} % of end to end without an endpoint; {}",
        100.0 * with[0].per_second() / plain[0].per_second(),
        with[0].note
    );
    beside_slow[1].note = format!(
        "{:.0} % of the rate without the slow endpoint; {}",
        100.0 * beside_slow[1].per_second() / with[1].per_second(),
        beside_slow[1].note
    );
    rows.push(ceiling);
    rows.extend(plain);
    rows.extend(with);
    rows.extend(beside_slow);
    rows
}

/// End to end with an endpoint for each of `delays_ms` (a receiver answering after that long)
/// subscribed to `message.*`; returns the end-to-end row and, with endpoints, the first
/// endpoint's events row (every message's `queued` and `sent`, counted by distinct ids).
async fn e2e_with_endpoints(o: &Options, delays_ms: &[u64]) -> Vec<Row> {
    let rig = Rig::start(o.pages, None).await;
    let recipients = recipients_for(o.requests);
    consents(&rig, o.clients, recipients).await;
    sandbox_users(&rig.sandbox, &rig.http, o.clients, recipients).await;
    let admin = JwtKeys::new(&SecretString::from(JWT_SECRET), None, None)
        .issue("loadgen-admin", Role::Admin, Duration::from_secs(3600))
        .expect("token");
    let receivers: Vec<Process> = delays_ms
        .iter()
        .map(|d| Process::spawn(&["receiver".into(), d.to_string()]))
        .collect();
    for r in &receivers {
        let made = rig
            .http
            .post(format!("{}/v1/event-endpoints", rig.base()))
            .bearer_auth(&admin)
            .json(&json!({"url": format!("{}/hook", r.base), "events": ["message.*"]}))
            .send()
            .await
            .expect("create an endpoint");
        assert_eq!(made.status().as_u16(), 201, "create an endpoint");
    }
    rig.gateway.reset_peak();
    let before = rig.sandbox.stats().accepted as usize;
    let start = Instant::now();
    let job = shipping_job(&rig.http, rig.base(), &rig.token, &rig.pages, recipients);
    let (accept_lat, _) = closed_loop(o.clients, o.requests, job).await;
    let seconds = delivered(&rig.sandbox, before + o.requests, start).await;
    let mut rows = vec![Row {
        run: format!("end to end, {} endpoint(s)", delays_ms.len()),
        count: o.requests,
        seconds,
        latencies_us: accept_lat,
        rss_mb: Some(rig.gateway.peak_rss_mb()),
        note: format!("{} pages; delivered by the sandbox", o.pages),
    }];
    if let Some(first) = receivers.first() {
        let expected = 2 * o.requests;
        let count = |base: String| {
            let http = rig.http.clone();
            async move {
                let c: serde_json::Value = http
                    .get(format!("{base}/count"))
                    .send()
                    .await
                    .expect("count")
                    .json()
                    .await
                    .expect("count");
                (
                    c["ids"].as_u64().unwrap_or(0) as usize,
                    c["posts"].as_u64().unwrap_or(0) as usize,
                )
            }
        };
        let (ids, posts) = loop {
            let (ids, posts) = count(first.base.clone()).await;
            if ids >= expected {
                break (ids, posts);
            }
            assert!(
                start.elapsed() < Duration::from_secs(900),
                "events stalled at {ids} of {expected}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let seconds = start.elapsed().as_secs_f64();
        rows.push(Row {
            run: format!("events to an endpoint, {} beside", delays_ms.len() - 1),
            count: ids,
            seconds,
            latencies_us: Vec::new(),
            rss_mb: None,
            note: format!(
                "message.queued and .sent, from the first accept; {} posts for {ids} ids",
                posts
            ),
        });
    }
    rows
}

/// What any gateway costs on this machine, whatever it does: the same generator against
/// (1) a server that checks the JWT, parses the body and answers 202, storing nothing; and
/// (2) a relay that also makes the Send API call to the sandbox before answering — the two
/// HTTP exchanges per message every gateway needs end to end — next to the ceiling.
async fn floors(o: &Options) -> Vec<Row> {
    let pages = page_ids(o.pages);
    let recipients = recipients_for(o.requests);
    let sandbox = start_sandbox(&pages, None).await;
    let http = client();
    sandbox_users(&sandbox, &http, o.clients, recipients).await;
    let token = token();

    let floor = Process::spawn(&["floor".into()]);
    let job = shipping_job(&http, &floor.base, &token, &pages, recipients);
    let (lat, seconds) = closed_loop(o.clients, o.requests, job).await;
    let accept_floor = Row {
        run: "floor: JWT + JSON, nothing stored".into(),
        count: o.requests,
        seconds,
        latencies_us: lat,
        rss_mb: Some(floor.peak_rss_mb()),
        note: "the most any gateway accepts here".into(),
    };
    drop(floor);

    let relay = Process::spawn(&["relay".into(), sandbox.base_url()]);
    let before = sandbox.stats().accepted as usize;
    let start = Instant::now();
    let job = shipping_job(&http, &relay.base, &token, &pages, recipients);
    let (lat, _) = closed_loop(o.clients, o.requests, job).await;
    let seconds = delivered(&sandbox, before + o.requests, start).await;
    let mut relay_row = Row {
        run: "floor: relay, nothing stored".into(),
        count: o.requests,
        seconds,
        latencies_us: lat,
        rss_mb: Some(relay.peak_rss_mb()),
        note: "delivered by the sandbox".into(),
    };
    drop(relay);
    let ceiling = ceiling(o, &sandbox, &pages, recipients).await;
    relay_row.note = format!("{}; {}", ratio_note(&relay_row, &ceiling), relay_row.note);
    vec![accept_floor, relay_row, ceiling]
}

/// Issue 12: the sled store (one instance), then PostgreSQL with 1, 2 and 3 instances on one
/// database of the server at `HERALD_BENCH_POSTGRES_URL`, all on this machine. Each run accepts
/// `--requests` shipping updates spread over the instances and `--pages` pages, and times until
/// the sandbox has them all; CPU is every instance's, accept and delivery together.
async fn cluster(o: &Options) -> Vec<Row> {
    let server = std::env::var("HERALD_BENCH_POSTGRES_URL")
        .expect("HERALD_BENCH_POSTGRES_URL: a PostgreSQL server whose user may create databases");
    let mut rows = Vec::new();
    for (database, instances) in [(false, 1), (true, 1), (true, 2), (true, 3)] {
        let url = if database {
            Some(fresh_database(&server).await)
        } else {
            None
        };
        rows.extend(cluster_run(o, url.as_deref(), instances).await);
    }
    rows
}

async fn fresh_database(server: &str) -> String {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("connect to HERALD_BENCH_POSTGRES_URL");
    tokio::spawn(connection);
    let name = format!(
        "herald_bench_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a database");
    let mut url = url::Url::parse(server).expect("a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

async fn cluster_run(o: &Options, database: Option<&str>, instances: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().expect("dir");
    let pages = page_ids(o.pages);
    let sandbox = start_sandbox(&pages, None).await;
    let config = write_config_on(dir.path(), &sandbox.base_url(), &pages, database);
    let gateways: Vec<Process> = (0..instances)
        .map(|_| {
            Process::spawn(&[
                "gateway".into(),
                "serve".into(),
                "--config".into(),
                config.display().to_string(),
            ])
        })
        .collect();
    if instances > 1 {
        // Two lease rounds (a third of 10 s each) to share the partitions out.
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    let http = client();
    let token = token();
    let recipients = recipients_for(o.requests);
    let (h, base, t) = (http.clone(), gateways[0].base.clone(), token.clone());
    closed_loop(o.clients, recipients, move |i| {
        let req = h.post(format!("{base}/v1/consents")).bearer_auth(&t).json(
            &json!({"recipient": {"psid": psid(i)}, "scope": "transactional",
                          "source": "loadgen", "evidence": "generated"}),
        );
        async move { req.send().await.is_ok_and(|r| r.status().as_u16() == 201) }
    })
    .await;
    sandbox_users(&sandbox, &http, o.clients, recipients).await;
    let jobs: Vec<Job> = gateways
        .iter()
        .map(|g| shipping_job(&http, &g.base, &token, &pages, recipients))
        .collect();
    let cpu = |gs: &[Process]| -> f64 { gs.iter().map(|g| cpu_seconds(g.child.id())).sum() };
    // The database before the messages (its catalogue, the recipients and their consents), so
    // that what one message costs is told apart from what any database holds.
    let size_before = match database {
        Some(url) => database_bytes(url).await,
        None => 0.0,
    };
    let cpu_before = cpu(&gateways);
    let db_before = postgres_cpu_seconds();
    let before = sandbox.stats().accepted as usize;
    let start = Instant::now();
    let n = jobs.len();
    let (latencies_us, accept_seconds) =
        closed_loop(o.clients, o.requests, move |i| jobs[i % n](i)).await;
    let e2e_seconds = delivered(&sandbox, before + o.requests, start).await;
    let cpu_us = (cpu(&gateways) - cpu_before) * 1e6 / o.requests as f64;
    let db_us = (postgres_cpu_seconds() - db_before) * 1e6 / o.requests as f64;
    let name = match database {
        Some(_) => format!("postgres x {instances}"),
        None => "sled x 1".to_owned(),
    };
    let rejected = sandbox.stats().rejected;
    let size = match database {
        Some(url) => {
            let bytes = database_bytes(url).await;
            format!(
                "; database {:.0} MB, {:.2} KB per delivered message, {:.2} KB of it grown by the run",
                bytes / 1e6,
                bytes / 1e3 / o.requests as f64,
                (bytes - size_before) / 1e3 / o.requests as f64
            )
        }
        None => String::new(),
    };
    vec![
        Row {
            run: format!("{name}: accept"),
            count: o.requests,
            seconds: accept_seconds,
            latencies_us,
            rss_mb: Some(
                gateways
                    .iter()
                    .map(Process::peak_rss_mb)
                    .fold(0.0, f64::max),
            ),
            note: format!(
                "{} pages; CPU per message: {:.0} µs in the instances (accept and delivery), {:.0} µs in PostgreSQL",
                o.pages, cpu_us, db_us
            ),
        },
        Row {
            run: format!("{name}: end to end"),
            count: o.requests,
            seconds: e2e_seconds,
            latencies_us: Vec::new(),
            rss_mb: None,
            note: format!("until the sandbox had every message; {rejected} rejected{size}"),
        },
    ]
}

/// The size of the database at `url` on disk (its tables and indexes, not the server's WAL),
/// after a `VACUUM`, as autovacuum would run it: the space of the rows a send replaced becomes
/// reusable (it stays in the files, as the sled store's dead pages stay in its segments).
async fn database_bytes(url: &str) -> f64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the bench database");
    tokio::spawn(connection);
    client.batch_execute("VACUUM").await.expect("VACUUM");
    let row = client
        .query_one("SELECT pg_database_size(current_database())::float8", &[])
        .await
        .expect("the database's size");
    row.get(0)
}

/// CPU time of the PostgreSQL server processes on this machine (the database's share; a
/// backend that exits during the run takes its time with it).
fn postgres_cpu_seconds() -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_seconds)
        .sum()
}

/// CPU time (user + system) process `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A campaign to a CSV audience of 10,000 and of `--audience` PSIDs, uploaded as a stream: how
/// long the upload takes, when the first message reaches Messenger, the gateway's peak memory,
/// and the CPU the scheduler spends per recipient it hands to the policy, next to the CPU of a
/// plain accept over HTTP. The first 100 recipients opted in and wrote today; the rest never
/// opted in, so the policy refuses them (each refusal is a decision written, as a send is).
async fn campaign(o: &Options) -> Vec<Row> {
    let mut rows = Vec::new();
    let marketer = JwtKeys::new(&SecretString::from(JWT_SECRET), None, None)
        .issue(
            "loadgen-marketing",
            Role::Marketer,
            Duration::from_secs(3600),
        )
        .expect("token");
    for audience in [10_000, o.audience] {
        let rig = Rig::start(1, None).await;
        let opted_in = 100.min(audience);
        sandbox_users(&rig.sandbox, &rig.http, o.clients, opted_in).await;
        let (http, base, token) = (rig.http.clone(), rig.base().to_owned(), rig.token.clone());
        let sandbox = rig.sandbox.base_url();
        closed_loop(o.clients, opted_in, move |i| {
            // Messenger (the sandbox) sees the person write, and so does Herald: the sandbox
            // here posts no webhooks, so the generator posts the one Messenger would.
            let wrote = http
                .post(format!("{sandbox}/sandbox/users/{}/messages", psid(i)))
                .json(&json!({"text": "hi"}));
            let consent = http
                .post(format!("{base}/v1/consents"))
                .bearer_auth(&token)
                .json(&json!({"recipient": {"psid": psid(i)}, "scope": "marketing",
                              "source": "loadgen", "evidence": "generated"}));
            let now = chrono::Utc::now().timestamp_millis();
            let event = json!({"object": "page", "entry": [{"id": page_id(0), "time": now,
                "messaging": [{"sender": {"id": psid(i)}, "recipient": {"id": page_id(0)},
                               "timestamp": now, "message": {"mid": format!("m_lg_{i}"), "text": "hi"}}]}]});
            let body = serde_json::to_vec(&event).expect("json");
            let webhook = http
                .post(format!("{base}/webhooks/messenger"))
                .header("content-type", "application/json")
                .header(
                    "X-Hub-Signature-256",
                    herald::messenger::sign(APP_SECRET.as_bytes(), &body),
                )
                .body(body);
            async move {
                wrote.send().await.is_ok_and(|r| r.status().is_success())
                    && consent.send().await.is_ok_and(|r| r.status().as_u16() == 201)
                    && webhook.send().await.is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        rig.gateway.reset_peak();
        let mut csv = String::with_capacity(audience * 12);
        csv.push_str("psid\n");
        for i in 0..audience {
            csv.push_str(&psid(i));
            csv.push('\n');
        }
        let pid = rig.gateway.child.id();
        let start = Instant::now();
        let created: serde_json::Value = rig
            .http
            .post(format!(
                "{}/v1/campaigns?name=loadgen&message=%7B%22text%22%3A%22Winter%20teas%22%7D&rate_per_second=300",
                rig.base()
            ))
            .bearer_auth(&marketer)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .expect("upload")
            .json()
            .await
            .expect("json");
        let uploaded = start.elapsed().as_secs_f64();
        assert_eq!(created["counts"]["audience"], audience, "{created}");
        let first = delivered(&rig.sandbox, 1, start).await;
        // The scheduler's own cost: ten seconds of handing recipients to the policy.
        let id = created["id"].as_str().expect("id").to_owned();
        let handed = |c: &serde_json::Value| {
            let n = |k: &str| c["counts"][k].as_u64().unwrap_or(0);
            (audience as u64).saturating_sub(n("pending"))
        };
        let read = |http: reqwest::Client, base: String, id: String, token: String| async move {
            http.get(format!("{base}/v1/campaigns/{id}"))
                .bearer_auth(token)
                .send()
                .await
                .expect("get")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        };
        let before = read(
            rig.http.clone(),
            rig.base().to_owned(),
            id.clone(),
            marketer.clone(),
        )
        .await;
        let cpu_before = cpu_seconds(pid);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = read(
            rig.http.clone(),
            rig.base().to_owned(),
            id.clone(),
            marketer.clone(),
        )
        .await;
        let cpu = cpu_seconds(pid) - cpu_before;
        let recipients = handed(&after).saturating_sub(handed(&before));
        rows.push(Row {
            run: format!("campaign, CSV audience {audience}"),
            count: audience,
            seconds: uploaded,
            latencies_us: Vec::new(),
            rss_mb: Some(rig.gateway.peak_rss_mb()),
            note: format!(
                "upload {uploaded:.2} s; first send {first:.2} s after the upload began; \
                 scheduler {:.0} µs CPU per recipient ({recipients} in 10 s)",
                cpu * 1e6 / recipients.max(1) as f64
            ),
        });
    }
    // The accept path's CPU per message, for comparison.
    let rig = Rig::start(1, None).await;
    let recipients = recipients_for(20_000);
    consents(&rig, o.clients, recipients).await;
    sandbox_users(&rig.sandbox, &rig.http, o.clients, recipients).await;
    let pid = rig.gateway.child.id();
    let cpu_before = cpu_seconds(pid);
    let job = shipping_job(&rig.http, rig.base(), &rig.token, &rig.pages, recipients);
    let (latencies_us, seconds) = closed_loop(o.clients, 20_000, job).await;
    let cpu = cpu_seconds(pid) - cpu_before;
    rows.push(Row {
        run: "accept over HTTP, for comparison".into(),
        count: 20_000,
        seconds,
        latencies_us,
        rss_mb: Some(rig.gateway.peak_rss_mb()),
        note: format!(
            "{:.0} µs gateway CPU per accepted message (HTTP, JWT, JSON, decision, write; delivery alongside)",
            cpu * 1e6 / 20_000.0
        ),
    });
    rows
}

/// Time from nothing to a gateway that answers /readyz, with an empty store and with
/// `entries` audit entries.
async fn coldstart(o: &Options) -> Vec<Row> {
    let mut rows = Vec::new();
    for entries in [0, o.audit_entries] {
        let dir = tempfile::tempdir().expect("dir");
        if entries > 0 {
            let store = SledStore::open(&dir.path().join("store"), pseudonyms()).expect("store");
            let batch = 10_000;
            for b in 0..entries.div_ceil(batch) {
                let n = batch.min(entries - b * batch);
                let list = (0..n)
                    .map(|i| AuditEntry {
                        at: chrono::Utc::now(),
                        kind: AuditKind::Decision,
                        message_id: Some(format!("msg_{}", b * batch + i)),
                        personal: Some(Personal::of(psid(i))),
                        client: Some("loadgen".into()),
                        outcome: Some("allow".into()),
                        reason: Some("ok".into()),
                        rule: Some("policies/default.toml#receipt.outside_window".into()),
                        ..AuditEntry::default()
                    })
                    .collect();
                store.append(list).await.expect("append");
            }
            store.close().await.expect("close");
        }
        let t = Instant::now();
        let rig = Rig::start(1, Some(dir)).await;
        let ready = loop {
            match rig.http.get(format!("{}/readyz", rig.base())).send().await {
                Ok(r) if r.status().is_success() => break r,
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        };
        let secs = t.elapsed().as_secs_f64();
        drop(ready);
        rows.push(Row {
            run: format!("cold start, {entries} audit entries"),
            count: 1,
            seconds: secs,
            latencies_us: vec![(secs * 1e6) as u64],
            rss_mb: Some(rss_mb(rig.gateway.child.id())),
            note: "process start to /readyz, the sandbox started first".into(),
        });
    }
    rows
}

/// Issue 8 on a log of `audit_entries` entries about 10,000 recipients (~100 each): cold
/// start; a recipient's history (`GET /v1/audit?recipient=`, 100 entries) one request at a
/// time; a JSONL export of the whole log, streamed, with the gateway's RSS sampled against its
/// idle RSS; `GET /v1/audit/verify`.
async fn audit(o: &Options) -> Vec<Row> {
    const RECIPIENTS: usize = 10_000;
    let dir = tempfile::tempdir().expect("dir");
    let filled = Instant::now();
    {
        let store = SledStore::open(&dir.path().join("store"), pseudonyms()).expect("store");
        let batch = 10_000;
        for b in 0..o.audit_entries.div_ceil(batch) {
            let n = batch.min(o.audit_entries - b * batch);
            let list = (0..n)
                .map(|i| AuditEntry {
                    at: chrono::Utc::now(),
                    kind: AuditKind::Decision,
                    message_id: Some(format!("msg_{}", b * batch + i)),
                    page_id: Some("100000000000001".into()),
                    client: Some("loadgen".into()),
                    category: Some(herald::domain::Category::Receipt),
                    outcome: Some("allow".into()),
                    reason: Some("ok".into()),
                    rule: Some("policies/default.toml#receipt.outside_window".into()),
                    policy_version: Some("0".repeat(64)),
                    content_sha256: Some("1".repeat(64)),
                    consent_id: Some("cns_01M8P0SXNDD51HY019ZD4QFVSE".into()),
                    consent_source: Some("api".into()),
                    personal: Some(Personal::of(psid((b * batch + i) % RECIPIENTS))),
                    ..AuditEntry::default()
                })
                .collect();
            store.append(list).await.expect("append");
        }
        store.close().await.expect("close");
    }
    eprintln!(
        "filled {} entries in {:.1}s",
        o.audit_entries,
        filled.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    let t = Instant::now();
    let rig = Rig::start(1, Some(dir)).await;
    while !matches!(rig.http.get(format!("{}/readyz", rig.base())).send().await, Ok(r) if r.status().is_success())
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cold = t.elapsed().as_secs_f64();
    let pid = rig.gateway.child.id();
    rows.push(Row {
        run: format!("audit: cold start, {} entries", o.audit_entries),
        count: 1,
        seconds: cold,
        latencies_us: vec![(cold * 1e6) as u64],
        rss_mb: Some(rss_mb(pid)),
        note: "process start to /readyz".into(),
    });
    let token = JwtKeys::new(&SecretString::from(JWT_SECRET), None, None)
        .issue("loadgen", Role::Compliance, Duration::from_secs(3600))
        .expect("token");
    let get = |path: String| {
        rig.http
            .get(format!("{}{path}", rig.base()))
            .bearer_auth(&token)
            .send()
    };

    let queries = 2_000;
    let mut latencies = Vec::with_capacity(queries);
    let t = Instant::now();
    for q in 0..queries {
        let one = Instant::now();
        let r = get(format!(
            "/v1/audit?recipient={}&limit=100",
            psid(q * 7 % RECIPIENTS)
        ))
        .await
        .expect("query");
        assert!(r.status().is_success());
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["entries"].as_array().map(Vec::len), Some(100));
        latencies.push(one.elapsed().as_micros() as u64);
    }
    rows.push(Row {
        run: "audit: a recipient's 100 entries".into(),
        count: queries,
        seconds: t.elapsed().as_secs_f64(),
        latencies_us: latencies,
        rss_mb: Some(rss_mb(pid)),
        note: "GET /v1/audit?recipient=…&limit=100, one at a time, over HTTP".into(),
    });

    let idle = rss_mb(pid);
    let peak = Arc::new(std::sync::Mutex::new(idle));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak), Arc::clone(&sampling));
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let now = rss_mb(pid);
                let mut p = peak.lock().unwrap();
                *p = p.max(now);
                drop(p);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t = Instant::now();
    let mut r = get("/v1/audit/export?format=jsonl".into())
        .await
        .expect("export");
    let mut lines = 0usize;
    while let Some(chunk) = r.chunk().await.expect("chunk") {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let secs = t.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak = *peak.lock().unwrap();
    rows.push(Row {
        run: "audit: export, JSONL".into(),
        count: lines,
        seconds: secs,
        latencies_us: Vec::new(),
        rss_mb: Some(peak),
        note: format!(
            "streamed; gateway RSS idle {idle:.1} MB, peak {peak:.1} MB (+{:.1})",
            peak - idle
        ),
    });

    let t = Instant::now();
    let v: serde_json::Value = get("/v1/audit/verify".into())
        .await
        .expect("verify")
        .json()
        .await
        .expect("json");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(v["ok"], true, "{v}");
    rows.push(Row {
        run: "audit: verify".into(),
        count: v["entries"].as_u64().unwrap_or(0) as usize,
        seconds: secs,
        latencies_us: Vec::new(),
        rss_mb: Some(rss_mb(pid)),
        note: "GET /v1/audit/verify, the whole chain".into(),
    });
    drop(rig);
    rows
}

/// The child process of the floors: one route that does what every gateway must (check the
/// JWT, parse the JSON) and, as a relay, makes the Send API call before answering.
/// An event endpoint as fast as this machine allows: answers each POST with 204 after `delay`,
/// counting the deliveries and the distinct `webhook-id`s (`GET /count` → `{"posts", "ids"}`).
async fn receiver_server(delay: Duration) {
    #[derive(Default)]
    struct Seen {
        posts: AtomicU64,
        ids: std::sync::Mutex<std::collections::HashSet<String>>,
    }
    let seen = web::Data::new(Seen::default());
    async fn post(
        req: HttpRequest,
        seen: web::Data<Seen>,
        delay: web::Data<Duration>,
    ) -> HttpResponse {
        if !delay.is_zero() {
            tokio::time::sleep(**delay).await;
        }
        seen.posts.fetch_add(1, Ordering::Relaxed);
        if let Some(id) = req
            .headers()
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
        {
            seen.ids.lock().unwrap().insert(id.to_owned());
        }
        HttpResponse::NoContent().finish()
    }
    async fn count(seen: web::Data<Seen>) -> HttpResponse {
        let ids = seen.ids.lock().unwrap().len();
        HttpResponse::Ok().json(json!({"posts": seen.posts.load(Ordering::Relaxed), "ids": ids}))
    }
    let delay = web::Data::new(delay);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    eprintln!("port={}", listener.local_addr().expect("addr").port());
    HttpServer::new(move || {
        App::new()
            .app_data(seen.clone())
            .app_data(delay.clone())
            .route("/count", web::get().to(count))
            .route("/{tail:.*}", web::post().to(post))
    })
    .listen(listener)
    .expect("listen")
    .run()
    .await
    .expect("serve");
}

async fn floor_server(relay_to: Option<String>) {
    let keys = web::Data::new(JwtKeys::new(&SecretString::from(JWT_SECRET), None, None));
    let relay = web::Data::new(relay_to.map(|base| (client(), base)));
    async fn handle(
        req: HttpRequest,
        body: web::Bytes,
        keys: web::Data<JwtKeys>,
        relay: web::Data<Option<(reqwest::Client, String)>>,
    ) -> HttpResponse {
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if token.is_none_or(|t| keys.verify(t).is_err()) {
            return HttpResponse::Unauthorized().finish();
        }
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return HttpResponse::BadRequest().finish();
        };
        if let Some((http, base)) = relay.as_ref() {
            let page = body["page_id"].as_str().unwrap_or_default();
            let psid = body["recipient"]["psid"].as_str().unwrap_or_default();
            let order = body["order_number"].as_str().unwrap_or_default();
            let sent = http
                .post(format!("{base}/v21.0/{page}/messages"))
                .bearer_auth(format!("token-{page}"))
                .json(&send_api_body(psid, order))
                .send()
                .await;
            if !sent.is_ok_and(|r| r.status().is_success()) {
                return HttpResponse::BadGateway().finish();
            }
        }
        HttpResponse::Accepted()
            .json(json!({"id": ulid::Ulid::new().to_string(), "status": "queued"}))
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    eprintln!("port={}", listener.local_addr().expect("addr").port());
    HttpServer::new(move || {
        App::new()
            .app_data(keys.clone())
            .app_data(relay.clone())
            .route("/v1/shipping-updates", web::post().to(handle))
    })
    .listen(listener)
    .expect("listen")
    .run()
    .await
    .expect("serve");
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        // The gateway, exactly as `herald <args>` runs it.
        Some("gateway") => {
            let herald_args = std::iter::once("herald".to_owned()).chain(args[2..].iter().cloned());
            herald::startup::release_memory_with(allocator::release_unused_memory);
            return herald::cli::main_with(herald_args).await;
        }
        Some("floor") => {
            floor_server(None).await;
            return std::process::ExitCode::SUCCESS;
        }
        Some("relay") => {
            floor_server(args.get(2).cloned()).await;
            return std::process::ExitCode::SUCCESS;
        }
        Some("receiver") => {
            let delay = args.get(2).and_then(|d| d.parse().ok()).unwrap_or(0);
            receiver_server(Duration::from_millis(delay)).await;
            return std::process::ExitCode::SUCCESS;
        }
        _ => {}
    }
    let o = options();
    println!(
        "Herald loadgen: {} cores, clients {}, requests {}, pages {} (end to end)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        o.clients,
        o.requests,
        o.pages
    );
    Row::print_header();
    for run in o.runs.clone() {
        let rows = match run.as_str() {
            "accept" => vec![accept(&o, false).await],
            "latency" => vec![accept(&o, true).await],
            "e2e" => e2e(&o).await,
            "floors" => floors(&o).await,
            "coldstart" => coldstart(&o).await,
            "campaign" => campaign(&o).await,
            "audit" => audit(&o).await,
            "cluster" => cluster(&o).await,
            "events" => events(&o).await,
            other => panic!(
                "unknown run {other}: accept, latency, e2e, floors, coldstart, campaign, audit, cluster, events"
            ),
        };
        for mut row in rows {
            row.print();
        }
    }
    std::process::ExitCode::SUCCESS
}
