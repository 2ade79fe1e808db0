//! The real binary, killed with SIGKILL while messages are in flight.

use herald::clock::SystemClock;
use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald::auth::JwtKeys;
use herald::domain::Role;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{
    policy_dir, start_sandbox, APP_SECRET, AUDIENCE, ISSUER, JWT_SECRET, PAGE_ID, PAGE_TOKEN,
    SIGNING_KEY, VERIFY_TOKEN,
};

struct Gateway {
    child: Child,
    base: String,
}

impl Drop for Gateway {
    /// A failing test must not leave a gateway running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, sandbox_url: &str) -> std::path::PathBuf {
    let path = dir.join("herald.toml");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[storage]
path = "{store}"
[audit]
signing_key = "{SIGNING_KEY}"
[auth]
jwt_secret = "{JWT_SECRET}"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
[messenger]
graph_base_url = "{sandbox_url}"
app_secret = "{APP_SECRET}"
verify_token = "{VERIFY_TOKEN}"
[messenger.pages."{PAGE_ID}"]
access_token = "{PAGE_TOKEN}"
region = "EU"
[policy]
dir = "{policy}"
[delivery]
retry_base_ms = 100
retry_max_ms = 200
max_attempts = 1000
"#,
        store = dir.join("store").display(),
        policy = policy_dir().display(),
    );
    File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("config");
    path
}

/// Starts `herald serve` and waits for the port it logs.
async fn start(config: &Path, log: &Path) -> Gateway {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    // Only this run's log lines count: the log is shared with the previous run.
    let start_len = std::fs::metadata(log).map_or(0, |m| m.len() as usize);
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "debug,sled=info")
        .stdout(Stdio::from(out.try_clone().expect("log")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn herald");
    // From here on, Drop kills the child whatever happens.
    let mut gateway = Gateway {
        child,
        base: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let fresh = &text[start_len.min(text.len())..];
        if let Some(port) = fresh
            .rmatch_indices("port=")
            .next()
            .map(|(i, _)| {
                fresh[i + 5..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .filter(|p| !p.is_empty())
        {
            gateway.base = format!("http://127.0.0.1:{port}");
            if reqwest::get(format!("{}/readyz", gateway.base))
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return gateway;
            }
        }
        assert!(Instant::now() < deadline, "herald did not start:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sigkill(gateway: &mut Gateway) {
    // std's Child::kill sends SIGKILL on Unix: no shutdown code runs.
    gateway.child.kill().expect("kill -9");
    let _ = gateway.child.wait();
}

#[tokio::test]
async fn kill_dash_nine_with_messages_in_flight_loses_nothing_and_leaks_no_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let sandbox_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    // The gateway runs as its own process on the wall clock; the stand-in reads the same.
    let sandbox = start_sandbox(sandbox_listener, None, SystemClock::shared()).await;
    let http = reqwest::Client::new();
    let config = write_config(dir.path(), &sandbox.base_url());
    let log = dir.path().join("herald.log");
    let mut gateway = start(&config, &log).await;
    let keys = JwtKeys::new(
        &SecretString::from(JWT_SECRET),
        Some(ISSUER.into()),
        Some(AUDIENCE.into()),
    );
    let token = keys
        .issue("shop", Role::Backend, Duration::from_secs(600))
        .expect("token");

    // Every attempt fails with a transient error until the faults are cleared, so the outbox is
    // full of messages being retried when the process dies.
    const N: usize = 30;
    http.post(format!("{}/sandbox/faults", sandbox.base_url()))
        .json(&json!({"code": 1200, "subcode": 2018024, "count": 1_000_000}))
        .send()
        .await
        .expect("faults");
    let mut ids = Vec::new();
    for i in 0..N {
        let psid = format!("9{i:04}");
        http.post(format!("{}/sandbox/users", sandbox.base_url()))
            .json(&json!({"psid": psid}))
            .send()
            .await
            .expect("user");
        let consent = http
            .post(format!("{}/v1/consents", gateway.base))
            .bearer_auth(&token)
            .json(&json!({"recipient": {"psid": psid}, "scope": "transactional", "source": "checkout", "evidence": "order form"}))
            .send()
            .await
            .expect("consent");
        assert_eq!(consent.status().as_u16(), 201);
        let r = http
            .post(format!("{}/v1/shipping-updates", gateway.base))
            .bearer_auth(&token)
            .json(&json!({"recipient": {"psid": psid}, "order_number": format!("K-{i}"), "status": "shipped"}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 202);
        let body: Value = r.json().await.expect("json");
        ids.push((psid, body["id"].as_str().expect("id").to_owned()));
    }
    // Wait until the worker has tried (and failed) at least once, then kill it mid-retry.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox.stats().injected_faults < N as u64 {
        assert!(Instant::now() < deadline, "the worker never tried to send");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigkill(&mut gateway);
    assert_eq!(
        sandbox.stats().accepted,
        0,
        "nothing went out before the kill"
    );
    let cleared = http
        .delete(format!("{}/sandbox/faults", sandbox.base_url()))
        .send()
        .await
        .expect("clear faults");
    assert_eq!(cleared.status().as_u16(), 200);

    let gateway = start(&config, &log).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for (psid, id) in &ids {
        loop {
            let m: Value = http
                .get(format!("{}/v1/messages/{id}", gateway.base))
                .bearer_auth(&token)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            if m["status"] == "sent" {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never went out: {m}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let inbox = sandbox.inbox(psid);
        assert!(!inbox.is_empty(), "{psid} received its update");
    }
    assert_eq!(
        sandbox.stats().rejected,
        0,
        "{:?}",
        sandbox.stats().rejections
    );

    let mut gateway = gateway;
    sigkill(&mut gateway);
    let logs = std::fs::read_to_string(&log).expect("log");
    assert!(logs.contains("herald is serving"), "the log was captured");
    for secret in [
        JWT_SECRET,
        APP_SECRET,
        PAGE_TOKEN,
        VERIFY_TOKEN,
        token.as_str(),
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
    }
}
