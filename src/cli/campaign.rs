//! `herald campaign watch ID`: follows a campaign live over the HTTP API, with a progress bar,
//! until it ends.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// How often the campaign is read.
const POLL: Duration = Duration::from_millis(500);

/// Watches campaign `id` on the gateway at `url` with `token` until it is completed or
/// cancelled; a paused campaign is watched on (it may be resumed).
pub async fn watch(id: &str, url: &str, token: &str) -> anyhow::Result<ExitCode> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")?;
    let address = format!("{}/v1/campaigns/{id}", url.trim_end_matches('/'));
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} {msg}")
            .context("progress bar template")?,
    );
    loop {
        let response = http
            .get(&address)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{status}: {}",
                body["detail"].as_str().unwrap_or("the gateway refused")
            );
        }
        let counts = &body["counts"];
        let n = |k: &str| counts[k].as_u64().unwrap_or(0);
        let denied: u64 = counts["denied"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let settled = n("sent")
            + n("delivered")
            + n("read")
            + n("failed")
            + n("expired")
            + n("cancelled")
            + denied;
        bar.set_length(n("audience"));
        bar.set_position(settled);
        let state = body["status"].as_str().unwrap_or("unknown");
        let line = summary(state, counts);
        bar.set_message(line.clone());
        if matches!(state, "completed" | "cancelled") {
            bar.finish_and_clear();
            println!("{} {line}", body["id"].as_str().unwrap_or(id));
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `completed · sent 3 · delivered 2 · read 1 · deferred 0 · failed 0 · denied no_consent=1`
fn summary(state: &str, counts: &Value) -> String {
    let n = |k: &str| counts[k].as_u64().unwrap_or(0);
    let mut line = format!(
        "{state} · pending {} · deferred {} · sent {} · delivered {} · read {} · failed {}",
        n("pending"),
        n("deferred"),
        n("sent"),
        n("delivered"),
        n("read"),
        n("failed"),
    );
    if let Some(denied) = counts["denied"].as_object().filter(|m| !m.is_empty()) {
        let reasons: Vec<String> = denied.iter().map(|(r, c)| format!("{r}={c}")).collect();
        line.push_str(&format!(" · denied {}", reasons.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_summary_names_every_count_and_each_denial_reason() {
        let counts = json!({"pending": 0, "deferred": 1, "sent": 2, "delivered": 1, "read": 0,
                            "failed": 0, "denied": {"no_consent": 1, "opted_out": 2}});
        assert_eq!(
            summary("completed", &counts),
            "completed · pending 0 · deferred 1 · sent 2 · delivered 1 · read 0 · failed 0 · denied no_consent=1, opted_out=2"
        );
    }
}
