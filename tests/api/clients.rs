//! Existing Messenger client libraries, unchanged but for their base URL, sending through
//! Herald's Graph-compatible endpoint: `messaging-api-messenger` (Node), installed from the
//! npm registry by `npm ci` in tests/clients/node, and `pymessenger` (Python), installed from
//! PyPI into a virtual environment under target/. Each test installs its library when it is
//! missing; `.ci/run` installs Node.js when the machine has none.

use std::path::PathBuf;
use std::process::Command;

use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

/// Runs a client script to the end (off the runtime's threads: the app under test answers it)
/// and reads the one JSON line it prints.
async fn run_client(mut script: Command) -> Value {
    let out = tokio::task::spawn_blocking(move || script.output().expect("run the client"))
        .await
        .expect("client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node")
}

/// Installs the pinned library (package-lock.json) unless it is there already.
fn install_node_client() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "Node.js is needed for the client-library test: apt-get install nodejs npm (.ci/run does)"
    );
    if node_dir()
        .join("node_modules/messaging-api-messenger")
        .exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(node_dir())
        .status()
        .expect("run npm ci");
    assert!(status.success(), "npm ci in tests/clients/node failed");
}

#[tokio::test]
async fn messaging_api_messenger_sends_through_herald_by_changing_its_origin() {
    tokio::task::spawn_blocking(install_node_client)
        .await
        .expect("install");
    let app = spawn_app().await;
    app.user_writes("9601", "is my teapot on its way?", None)
        .await;
    app.create_user("9602").await;
    app.consent("9602", "transactional", None).await;

    let (origin, token) = (format!("{}/graph", app.address), app.token(Role::Backend));
    let mut node = Command::new("node");
    node.arg(node_dir().join("drop_in.js"))
        .env("HERALD_ORIGIN", origin)
        .env("HERALD_TOKEN", token)
        .env("OPEN_PSID", "9601")
        .env("CLOSED_PSID", "9602");
    let result = run_client(node).await;

    // The library got Messenger's answer shape, with Herald's message id in it.
    let id = result["sent"]["messageId"].as_str().expect("messageId");
    assert!(id.starts_with("msg_"), "{result}");
    assert_eq!(result["sent"]["recipientId"], "9601", "{result}");
    app.drain().await;
    assert_eq!(app.message(id).await["status"], "sent");
    let inbox = app.inbox("9601");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].body["message"]["text"], "Your teapot ships today.");

    // And Messenger's own error for the closed window, which the library raises as it would.
    let refused = &result["refused"];
    assert_eq!(
        (
            refused["error"]["code"].as_i64(),
            refused["error"]["errorSubcode"].as_i64()
        ),
        (Some(10), Some(2018278)),
        "{result}"
    );
    assert!(app.inbox("9602").is_empty());
    assert_eq!(json!(refused["status"]), json!(400), "{result}");
}

/// A virtual environment under target/ with the pinned pymessenger, made once.
fn install_python_client() -> PathBuf {
    python_venv("python", "tests/clients/python/requirements.txt")
}

/// One venv is made at a time in this process: two tests must not race to make the same one.
static VENVS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A virtual environment `target/client-venvs/{name}` with the pinned packages of
/// `requirements` (a path from the repository's root), made once; its Python.
pub(crate) fn python_venv(name: &str, requirements: &str) -> PathBuf {
    let _one = VENVS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/client-venvs").join(name);
    let python = venv.join("bin/python");
    if python.exists() && venv.join("installed").exists() {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv (Python 3 is needed for the client-library tests)");
    assert!(made.success(), "python3 -m venv failed");
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(root.join(requirements))
        .status()
        .expect("pip install");
    assert!(installed.success(), "pip install -r {requirements} failed");
    std::fs::write(venv.join("installed"), b"").expect("mark the venv ready");
    python
}

#[tokio::test]
async fn pymessenger_sends_through_herald_by_changing_its_graph_url() {
    let python = tokio::task::spawn_blocking(install_python_client)
        .await
        .expect("install");
    let app = spawn_app().await;
    app.user_writes("9611", "is my teapot on its way?", None)
        .await;
    app.create_user("9612").await;
    app.consent("9612", "transactional", None).await;

    let (url, token) = (
        format!("{}/graph/v2.6", app.address),
        app.token(Role::Backend),
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python/drop_in.py");
    let mut python = Command::new(python);
    python
        .arg(script)
        .env("HERALD_GRAPH_URL", url)
        .env("HERALD_TOKEN", token)
        .env("OPEN_PSID", "9611")
        .env("CLOSED_PSID", "9612");
    let result = run_client(python).await;

    // pymessenger sends no messaging_type: Herald reads a plain reply as a response.
    let id = result["sent"]["message_id"].as_str().expect("message_id");
    assert!(id.starts_with("msg_"), "{result}");
    app.drain().await;
    assert_eq!(app.message(id).await["status"], "sent");
    assert_eq!(app.inbox("9611").len(), 1);
    assert_eq!(
        (
            result["refused"]["error"]["code"].as_i64(),
            result["refused"]["error"]["error_subcode"].as_i64()
        ),
        (Some(10), Some(2018278)),
        "{result}"
    );
    assert!(app.inbox("9612").is_empty());
}
