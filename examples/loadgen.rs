//! Herald's load generator: starts a gateway and the Messenger sandbox in this process, drives
//! them over real HTTP on loopback, and prints a table.
//!
//! ```sh
//! cargo run --release --example loadgen                   # every run below
//! cargo run --release --example loadgen -- accept         # accept path, closed loop
//! cargo run --release --example loadgen -- latency        # accept path at a fixed 5,000/s
//! cargo run --release --example loadgen -- e2e            # accepted → delivered, and the ceiling
//! cargo run --release --example loadgen -- coldstart      # start-up with 0 and 1,000,000 audit entries
//! ```
//! Options: `--clients N` (64), `--requests N` (100000), `--rate N` (5000), `--pages N` (200),
//! `--audit-entries N` (1000000).

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark tool: failing loudly is right

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::auth::JwtKeys;
use herald::configuration::{PageSettings, Settings};
use herald::domain::Role;
use herald::sandbox::{Sandbox, SandboxConfig, SandboxPage};
use herald::startup::{AppHandle, Application};
use herald::store::{AuditEntry, AuditKind, Store};
use secrecy::SecretString;
use serde_json::json;

const JWT_SECRET: &str = "loadgen-jwt-secret-0123456789";
const APP_SECRET: &str = "loadgen-app-secret-0123456789";

struct Options {
    runs: Vec<String>,
    clients: usize,
    requests: usize,
    rate: usize,
    pages: usize,
    audit_entries: usize,
}

fn options() -> Options {
    let mut o = Options {
        runs: Vec::new(),
        clients: 64,
        requests: 100_000,
        rate: 5_000,
        pages: 200,
        audit_entries: 1_000_000,
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
            run => o.runs.push(run.to_owned()),
        }
    }
    if o.runs.is_empty() {
        o.runs = ["accept", "latency", "e2e", "coldstart"]
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
    rss_mb: f64,
    note: String,
}

impl Row {
    fn print_header() {
        println!(
            "| {:<28} | {:>8} | {:>7} | {:>10} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} | note",
            "run", "count", "secs", "per sec", "p50 ms", "p90 ms", "p99 ms", "max ms", "RSS MB",
        );
        println!(
            "|{:-<30}|{:->10}|{:->9}|{:->12}|{:->9}|{:->9}|{:->9}|{:->9}|{:->9}|------",
            "", "", "", "", "", "", "", "", ""
        );
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
            "| {:<28} | {:>8} | {:>7.2} | {:>10.0} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7.1} | {}",
            self.run,
            self.count,
            self.seconds,
            self.count as f64 / self.seconds,
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(1.0),
            self.rss_mb,
            self.note
        );
    }
}

/// Resident memory of this process (gateway, sandbox and load generator together).
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
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

struct Rig {
    base: String,
    handle: AppHandle,
    sandbox: Sandbox,
    http: reqwest::Client,
    token: String,
    pages: Vec<String>,
    store_dir: tempfile::TempDir,
}

fn page_id(i: usize) -> String {
    format!("{}", 200_000_000_000_000u64 + i as u64)
}

async fn rig(pages: usize, store_dir: Option<tempfile::TempDir>) -> Rig {
    let store_dir = store_dir.unwrap_or_else(|| tempfile::tempdir().expect("dir"));
    let herald_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let sandbox_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", herald_listener.local_addr().expect("addr"));
    let sandbox_url = format!("http://{}", sandbox_listener.local_addr().expect("addr"));
    let page_ids: Vec<String> = (0..pages).map(page_id).collect();
    let mut settings = Settings::default();
    settings.storage.path = store_dir.path().join("store");
    settings.auth.jwt_secret = Some(SecretString::from(JWT_SECRET));
    settings.messenger.graph_base_url = sandbox_url;
    settings.messenger.app_secret = Some(SecretString::from(APP_SECRET));
    settings.messenger.verify_token = Some(SecretString::from("v"));
    for id in &page_ids {
        settings.messenger.pages.insert(
            id.clone(),
            PageSettings {
                access_token: SecretString::from(format!("token-{id}")),
                region: Some("EU".into()),
            },
        );
    }
    settings.policy.dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let app = Application::build_with_listener(&settings, herald_listener)
        .await
        .expect("app");
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let sandbox = Sandbox::start(
        SandboxConfig {
            app_secret: APP_SECRET.into(),
            pages: page_ids
                .iter()
                .map(|id| SandboxPage {
                    id: id.clone(),
                    access_token: format!("token-{id}"),
                    region: Some("EU".into()),
                })
                .collect(),
            webhook_url: Some(format!("{base}/webhooks/messenger")),
            auto_receipts: false,
            rate_per_page_per_second: 300,
        },
        sandbox_listener,
    )
    .await
    .expect("sandbox");
    let keys = JwtKeys::new(&SecretString::from(JWT_SECRET), None, None);
    let token = keys
        .issue("loadgen", Role::Backend, Duration::from_secs(3600))
        .expect("token");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client");
    Rig {
        base,
        handle,
        sandbox,
        http,
        token,
        pages: page_ids,
        store_dir,
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
    let (http, base, token) = (rig.http.clone(), rig.base.clone(), rig.token.clone());
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

fn shipping_job(
    rig: &Rig,
    recipients: usize,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
       + Send
       + Sync
       + 'static {
    let (http, base, token, pages) = (
        rig.http.clone(),
        rig.base.clone(),
        rig.token.clone(),
        rig.pages.clone(),
    );
    move |i| {
        let req = http
            .post(format!("{base}/v1/shipping-updates"))
            .bearer_auth(&token)
            .json(&json!({"page_id": pages[i % pages.len()], "recipient": {"psid": psid(i % recipients)},
                          "order_number": format!("L-{i}"), "status": "shipped", "carrier": "DHL",
                          "tracking_number": format!("T{i:08}")}));
        Box::pin(async move { req.send().await.is_ok_and(|r| r.status().as_u16() == 202) })
    }
}

/// Recipients needed so that no one passes the transactional cap (20 per hour).
fn recipients_for(requests: usize) -> usize {
    requests.div_ceil(18).max(1)
}

async fn accept(o: &Options, fixed_rate: bool) -> Row {
    let rig = rig(o.pages, None).await;
    let recipients = recipients_for(o.requests);
    consents(&rig, o.clients, recipients).await;
    let job = shipping_job(&rig, recipients);
    let (latencies_us, seconds) = if fixed_rate {
        open_loop(o.clients, o.requests, o.rate, job).await
    } else {
        closed_loop(o.clients, o.requests, job).await
    };
    let rss = rss_mb();
    let store = &rig.handle.herald.store;
    let disk = store.size_on_disk().unwrap_or(0) as f64;
    let note = format!(
        "{} recipients; store {:.0} MB on disk, {:.2} KB per accepted message",
        recipients,
        disk / 1e6,
        disk / (o.requests + recipients) as f64 / 1024.0
    );
    rig.handle.shutdown().await;
    drop(rig.sandbox);
    drop(rig.store_dir);
    Row {
        run: if fixed_rate {
            format!("accept @ {}/s (open loop)", o.rate)
        } else {
            format!("accept, {} clients", o.clients)
        },
        count: o.requests,
        seconds,
        latencies_us,
        rss_mb: rss,
        note,
    }
}

/// Accepted → delivered through the sandbox, then the same load posted straight to the sandbox.
async fn e2e(o: &Options) -> Vec<Row> {
    let rig = rig(o.pages, None).await;
    let recipients = recipients_for(o.requests);
    consents(&rig, o.clients, recipients).await;
    // The sandbox only knows people who exist: create them (no webhook needed for consent).
    {
        let (http, sandbox) = (rig.http.clone(), rig.sandbox.base_url());
        closed_loop(o.clients, recipients, move |i| {
            let req = http
                .post(format!("{sandbox}/sandbox/users"))
                .json(&json!({"psid": psid(i)}));
            async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await;
    }
    let before = rig.sandbox.stats().accepted as usize;
    let start = Instant::now();
    let (accept_lat, _) = closed_loop(o.clients, o.requests, shipping_job(&rig, recipients)).await;
    let mut rss = rss_mb();
    while (rig.sandbox.stats().accepted as usize) < before + o.requests {
        rss = rss.max(rss_mb());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "deliveries stalled"
        );
    }
    let e2e_secs = start.elapsed().as_secs_f64();
    let rejected = rig.sandbox.stats().rejected;
    let herald_row = Row {
        run: format!("end to end, {} pages", o.pages),
        count: o.requests,
        seconds: e2e_secs,
        latencies_us: accept_lat,
        rss_mb: rss,
        note: format!(
            "delivered by the sandbox; latencies are the accept calls; {rejected} rejected"
        ),
    };

    // The ceiling: the same generator posting Send API calls straight to the sandbox.
    let (http, sandbox, pages) = (rig.http.clone(), rig.sandbox.base_url(), rig.pages.clone());
    let (lat, secs) = closed_loop(o.clients, o.requests, move |i| {
        let page = &pages[i % pages.len()];
        let req = http
            .post(format!("{sandbox}/v21.0/{page}/messages"))
            .bearer_auth(format!("token-{page}"))
            .json(&json!({"recipient": {"id": psid(i % recipients)}, "messaging_type": "UTILITY",
                          "message": {"template": {"name": "herald_shipping_update", "language": {"code": "en_US"},
                              "components": [{"type": "body", "parameters": [{"type": "text", "text": format!("L-{i}")}]}]}}}));
        async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    let ceiling_row = Row {
        run: "ceiling: straight to sandbox".into(),
        count: o.requests,
        seconds: secs,
        latencies_us: lat,
        rss_mb: rss_mb(),
        note: String::new(),
    };
    let ratio = (o.requests as f64 / e2e_secs) / (o.requests as f64 / secs);
    let mut herald_row = herald_row;
    herald_row
        .note
        .push_str(&format!("; {:.0} % of the ceiling", ratio * 100.0));
    rig.handle.shutdown().await;
    vec![herald_row, ceiling_row]
}

/// Time from nothing to a gateway that answers /readyz, with an empty store and with
/// `entries` audit entries.
async fn coldstart(o: &Options) -> Vec<Row> {
    let mut rows = Vec::new();
    for entries in [0, o.audit_entries] {
        let dir = tempfile::tempdir().expect("dir");
        if entries > 0 {
            let store = Store::open(&dir.path().join("store")).expect("store");
            let batch = 10_000;
            for b in 0..entries.div_ceil(batch) {
                let n = batch.min(entries - b * batch);
                let list = (0..n)
                    .map(|i| AuditEntry {
                        at: chrono::Utc::now(),
                        kind: AuditKind::Decision,
                        message_id: Some(format!("msg_{}", b * batch + i)),
                        recipient: Some(psid(i)),
                        client: Some("loadgen".into()),
                        outcome: Some("allow".into()),
                        reason: Some("ok".into()),
                        rule: Some("policies/default.toml#receipt.outside_window".into()),
                        ..AuditEntry::default()
                    })
                    .collect();
                store.append_audit(list).await.expect("append");
            }
            store.close().await.expect("close");
        }
        let t = Instant::now();
        let rig = rig(1, Some(dir)).await;
        let ok = rig
            .http
            .get(format!("{}/readyz", rig.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let secs = t.elapsed().as_secs_f64();
        assert!(ok);
        rows.push(Row {
            run: format!("cold start, {entries} audit entries"),
            count: 1,
            seconds: secs,
            latencies_us: vec![(secs * 1e6) as u64],
            rss_mb: rss_mb(),
            note: format!(
                "audit head seq {}",
                rig.handle.herald.store.audit_head().seq
            ),
        });
        rig.handle.shutdown().await;
    }
    rows
}

#[tokio::main]
async fn main() {
    let o = options();
    println!(
        "Herald loadgen: {} cores, clients {}, requests {}, pages {}",
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
            "coldstart" => coldstart(&o).await,
            other => panic!("unknown run {other}: accept, latency, e2e, coldstart"),
        };
        for mut row in rows {
            row.print();
        }
    }
}
