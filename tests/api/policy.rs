//! The policy decides, and nothing else does: dated rules at the moment of the decision, which
//! role may send what, and the page's pace — each changed only by the policy files.

use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{at, policy_copy, spawn_app_with, write_policy, TestApp, TestOptions};

/// Ada wrote to the page three days ago and consented to receipts at checkout: the window is
/// shut.
async fn customer_without_window(app: &TestApp, psid: &str) {
    let three_days_ago = app.now() - chrono::Duration::days(3);
    app.user_writes(psid, "do you have green tea?", Some(three_days_ago))
        .await;
    app.consent(psid, "transactional", None).await;
}

#[tokio::test]
async fn a_receipt_goes_as_the_rules_in_force_on_its_day_say() {
    // Before 2026-04-27 a receipt outside the window carried POST_PURCHASE_UPDATE …
    let before = spawn_app_with(TestOptions {
        at: Some(at("2026-03-01T12:00:00Z")),
        ..TestOptions::default()
    })
    .await;
    customer_without_window(&before, "7001").await;
    let (status, body) = before.receipt("7001", "A-7001").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["decision"]["messaging_type"], "MESSAGE_TAG", "{body}");
    assert_eq!(body["decision"]["tag"], "POST_PURCHASE_UPDATE", "{body}");
    before.drain().await;
    let id = body["id"].as_str().expect("id");
    let message = before.message(id).await;
    assert_eq!(message["status"], "sent", "{message} {:?}", before.stats());
    let sent = &before.inbox("7001")[0].body;
    assert_eq!(
        sent["tag"], "POST_PURCHASE_UPDATE",
        "Messenger took the tag then: {sent}"
    );

    // … from that day on the tag is refused and the utility template takes its place.
    let after = spawn_app_with(TestOptions {
        at: Some(at("2026-05-01T12:00:00Z")),
        ..TestOptions::default()
    })
    .await;
    customer_without_window(&after, "7001").await;
    let (status, body) = after.receipt("7001", "A-7001").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["decision"]["messaging_type"], "UTILITY", "{body}");
    after.drain().await;
    let sent = &after.inbox("7001")[0].body;
    assert_eq!(sent["messaging_type"], "UTILITY", "{sent}");
    assert!(sent.get("tag").is_none(), "no retired tag goes out: {sent}");
}

#[tokio::test]
async fn which_role_may_send_what_is_changed_in_the_policy_file_alone() {
    let receipt = json!({"recipient": {"psid": "7002"}, "order": {
        "order_number": "A-7002", "currency": "EUR", "payment_method": "Visa", "recipient_name": "Ada",
        "summary": {"total_cost": 5}, "elements": [{"title": "Tea", "price": 5}]}});

    let strict = spawn_app_with(TestOptions::default()).await;
    strict.user_writes("7002", "hi", None).await;
    let (status, body) = strict
        .call(Role::Marketer, "/v1/receipts", receipt.clone())
        .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("role_forbidden")),
        "{body}"
    );

    let dir = policy_copy(|text| {
        text.replace(
            "marketer = [\"marketing\"]",
            "marketer = [\"marketing\", \"receipt\"]",
        )
    });
    let lenient = spawn_app_with(TestOptions {
        policy_dir: Some(dir.path().to_path_buf()),
        ..TestOptions::default()
    })
    .await;
    lenient.user_writes("7002", "hi", None).await;
    let (status, body) = lenient.call(Role::Marketer, "/v1/receipts", receipt).await;
    assert_eq!(
        status, 202,
        "the policy lets marketers send receipts now: {body}"
    );
    lenient.drain().await;
    assert_eq!(lenient.inbox("7002").len(), 1);
}

async fn reload(app: &TestApp) -> Value {
    let (status, body) = app.call(Role::Admin, "/v1/policy/reload", json!({})).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_page_send_rate_follows_a_policy_reload() {
    let dir = policy_copy(str::to_owned);
    let app = spawn_app_with(TestOptions {
        policy_dir: Some(dir.path().to_path_buf()),
        ..TestOptions::default()
    })
    .await;
    let before = app.handle().herald.policy().version().to_owned();
    write_policy(dir.path(), |text| {
        text.replace("[send_rate]\nper_page = 300", "[send_rate]\nper_page = 5")
    });
    let after = reload(&app).await;
    assert_ne!(
        after["policy_version"],
        json!(before),
        "the edited file is in force"
    );
    for psid in ["7101", "7102", "7103", "7104", "7105", "7106"] {
        app.user_writes(psid, "hi", None).await;
        let (status, body) = app.respond(psid, "paced").await;
        assert_eq!(status, 202, "{body}");
    }
    app.drain().await;
    let mut arrivals: Vec<_> = ["7101", "7102", "7103", "7104", "7105", "7106"]
        .iter()
        .map(|psid| app.inbox(psid)[0].received_at)
        .collect();
    arrivals.sort();
    let span = *arrivals.last().expect("last") - arrivals[0];
    // 5 per second in bursts of one: six sends take a second at the least.
    assert!(
        span >= chrono::Duration::milliseconds(900),
        "six sends at 5/s took only {span}"
    );
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text.find(needle).expect("needle in text");
    text[..at].matches('\n').count() + 1
}

/// `line:column` of the value of the `key = value` line `needle` (the column in characters).
fn value_at(text: &str, needle: &str) -> String {
    let at = text.find(needle).expect("needle in text");
    let value = at + needle.find("= ").expect("a key = value line") + 2;
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..value].chars().count() + 1;
    format!("{}:{column}", line_of(text, needle))
}

/// Edits of `default.toml` that the gateway once took badly, each with the key its refusal
/// names: a date with a character across its tenth byte (the reader panicked slicing through
/// it) and a frequency period so long that every marketing decision overflowed.
const HOSTILE_EDITS: [(&str, &str, &str); 2] = [
    (
        "until          = 2026-04-27",
        "until          = \"2026-04-2ä7\"",
        "`until`",
    ),
    (
        "per           = \"48h\"",
        "per           = \"99999999999d\"",
        "`marketing.frequency.per`",
    ),
];

#[test]
fn policy_check_and_test_refuse_a_hostile_date_or_duration_with_exit_1_and_the_file_and_line() {
    for (from, to, key) in HOSTILE_EDITS {
        let dir = policy_copy(|text| text.replacen(from, to, 1));
        std::fs::create_dir(dir.path().join("tests")).expect("tests dir");
        std::fs::copy(
            crate::helpers::policy_dir().join("tests/default.toml"),
            dir.path().join("tests/default.toml"),
        )
        .expect("copy the cases");
        let text = std::fs::read_to_string(dir.path().join("default.toml")).expect("read");
        let at = format!(
            "{}:{}: {key}",
            dir.path().join("default.toml").display(),
            value_at(&text, to)
        );
        for command in ["check", "test"] {
            let out = crate::cli::herald(
                &["policy", command, "--dir", &dir.path().to_string_lossy()],
                &[],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "policy {command} with {to}: {stderr}"
            );
            assert!(
                stderr.contains(&at),
                "policy {command} names {at}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn a_reload_of_a_hostile_policy_answers_400_with_the_errors_and_keeps_the_old_policy() {
    let dir = policy_copy(str::to_owned);
    let app = spawn_app_with(TestOptions {
        policy_dir: Some(dir.path().to_path_buf()),
        ..TestOptions::default()
    })
    .await;
    let version = app.handle().herald.policy().version().to_owned();
    for (from, to, key) in HOSTILE_EDITS {
        write_policy(dir.path(), |text| text.replacen(from, to, 1));
        let text = std::fs::read_to_string(dir.path().join("default.toml")).expect("read");
        let (status, body) = app.call(Role::Admin, "/v1/policy/reload", json!({})).await;
        assert_eq!(status, 400, "{to}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(&format!("default.toml:{}: {key}", value_at(&text, to))),
            "{to}: the answer names the file, line, column and key: {body}"
        );
        let r = app
            .get("/v1/policy", Some(&app.token(Role::Compliance)))
            .await;
        let policy: Value = r.json().await.expect("policy");
        assert_eq!(policy["version"], json!(version), "the old policy stays");
    }

    // And it still decides marketing, which the long frequency period would have broken.
    app.user_writes("7201", "hi", None).await;
    app.consent("7201", "marketing", None).await;
    let (status, body) = app
        .call(
            Role::Marketer,
            "/v1/policy/evaluate",
            json!({"recipient": {"psid": "7201"}, "category": "marketing", "message": {"text": "tea"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["policy_version"], json!(version), "{body}");
}

/// The banner's line that starts with `label` (`gateway`, `policy`), without the label.
fn banner_line<'a>(banner: &'a [String], label: &str) -> &'a str {
    banner
        .iter()
        .find_map(|l| l.trim().strip_prefix(label))
        .map_or("", str::trim)
}

/// A `herald serve --sandbox` started in `cwd` with no configuration file.
struct Sandbox {
    child: std::process::Child,
    banner: Vec<String>,
    log: tempfile::NamedTempFile,
    gateway: String,
    admin: String,
}

impl Sandbox {
    async fn start(cwd: &std::path::Path) -> Sandbox {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let log = tempfile::NamedTempFile::new().expect("log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["serve", "--sandbox"])
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .env("HERALD_SERVER__LISTEN", "127.0.0.1:0")
            .env_remove("HERALD_POLICY__DIR")
            .env_remove("HERALD_STORAGE__PATH")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.reopen().expect("log")))
            .spawn()
            .expect("start herald serve --sandbox");
        let stdout = child.stdout.take().expect("stdout");
        let banner = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let banner: Vec<String> = lines
                .by_ref()
                .map_while(Result::ok)
                .take_while(|l| !l.starts_with("Tokens"))
                .collect();
            // The rest is read too, as a terminal would.
            std::thread::spawn(move || lines.for_each(drop));
            banner
        })
        .await
        .expect("read banner");
        let gateway = banner_line(&banner, "gateway").to_owned();
        let admin = banner
            .iter()
            .find_map(|l| l.split_once("#token=").map(|(_, t)| t.trim().to_owned()))
            .unwrap_or_default();
        Sandbox {
            child,
            banner,
            log,
            gateway,
            admin,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Waits for `/readyz` to answer 200, then reads `GET /v1/policy`.
    async fn policy(&self) -> Value {
        assert!(
            self.gateway.starts_with("http://") && !self.admin.is_empty(),
            "no gateway or token in the banner: {:#?}\nlog:\n{}",
            self.banner,
            self.log()
        );
        let http = reqwest::Client::new();
        let mut ready = false;
        // Generous: the rest of the suite shares the two cores.
        for _ in 0..400 {
            let r = http.get(format!("{}/readyz", self.gateway)).send().await;
            if r.is_ok_and(|r| r.status() == 200) {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(ready, "/readyz never answered 200; log:\n{}", self.log());
        http.get(format!("{}/v1/policy", self.gateway))
            .bearer_auth(&self.admin)
            .send()
            .await
            .expect("policy")
            .json()
            .await
            .expect("json")
    }

    async fn reload(&self) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/policy/reload", self.gateway))
            .bearer_auth(&self.admin)
            .json(&json!({}))
            .send()
            .await
            .expect("reload");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn version_of(dir: &std::path::Path) -> String {
    herald::policy::PolicySet::load_dir(dir)
        .expect("a valid policy")
        .version()
        .to_owned()
}

#[tokio::test]
async fn the_sandbox_run_outside_a_checkout_serves_the_default_policy_built_into_the_binary() {
    // An empty working directory: no ./policies, no herald.toml.
    let cwd = tempfile::tempdir().expect("cwd");
    let sandbox = Sandbox::start(cwd.path()).await;
    let check = async {
        assert!(
            banner_line(&sandbox.banner, "policy")
                .starts_with("the default policy built into herald"),
            "the banner says which policy runs: {:#?}",
            sandbox.banner
        );
        let shipped = version_of(&crate::helpers::policy_dir());
        let policy = sandbox.policy().await;
        assert_eq!(
            policy["version"],
            json!(shipped),
            "the shipped policy's version"
        );
        // A reload reads the built-in policy again.
        let (status, body) = sandbox.reload().await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["policy_version"], json!(shipped), "{body}");
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), check)
        .await
        .expect("the sandbox answered in time");
}

#[tokio::test]
async fn a_sandbox_started_beside_a_policies_directory_runs_that_policy_not_the_built_in_one() {
    let cwd = tempfile::tempdir().expect("cwd");
    let own = cwd.path().join("policies");
    std::fs::create_dir(&own).expect("policies");
    write_policy(&own, |text| {
        text.replace("[send_rate]\nper_page = 300", "[send_rate]\nper_page = 5")
    });
    let sandbox = Sandbox::start(cwd.path()).await;
    let check = async {
        assert_eq!(
            banner_line(&sandbox.banner, "policy"),
            "./policies",
            "{:#?}",
            sandbox.banner
        );
        let policy = sandbox.policy().await;
        assert_eq!(policy["version"], json!(version_of(&own)));
        assert_ne!(
            policy["version"],
            json!(version_of(&crate::helpers::policy_dir()))
        );
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), check)
        .await
        .expect("the sandbox answered in time");
}
