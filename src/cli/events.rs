//! `herald events tail`: prints the gateway's events as they happen, one JSON line each, by
//! following the events feed (`GET /v1/events`) with its cursor. It goes through the HTTP API,
//! as a running gateway holds its store.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::Value;

/// How long the tail waits after an empty page before asking again.
const POLL: Duration = Duration::from_millis(500);
/// Events asked for a page.
const PAGE: &str = "1000";

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Print events as they happen, one JSON line each (`{"id","type","at","data"}`), until
    /// Ctrl-C. Starts at the end of the log: only what happens from now on, unless
    /// --from-start.
    Tail {
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An admin's or compliance officer's token (a backend's sees its own messages'
        /// events). Better given in HERALD_TOKEN, so that it does not show in `ps`.
        #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
        token: String,
        /// Event types, comma-separated: exact (`message.sent`), a family (`message.*`), `*`.
        #[arg(long = "type")]
        types: Option<String>,
        /// Only the events about this person (a PSID).
        #[arg(long)]
        recipient: Option<String>,
        /// From the oldest event kept instead of from now.
        #[arg(long)]
        from_start: bool,
    },
}

pub async fn run(command: EventsCommand) -> anyhow::Result<ExitCode> {
    match command {
        EventsCommand::Tail {
            url,
            token,
            types,
            recipient,
            from_start,
        } => {
            let feed = Feed::new(&url, &token, types, recipient)?;
            tokio::select! {
                done = tail(&feed, from_start) => done,
                _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

/// The feed of one gateway, with the filters asked for.
struct Feed {
    http: reqwest::Client,
    address: String,
    token: String,
    filters: Vec<(&'static str, String)>,
}

impl Feed {
    fn new(
        url: &str,
        token: &str,
        types: Option<String>,
        recipient: Option<String>,
    ) -> anyhow::Result<Feed> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        let mut filters = Vec::new();
        if let Some(t) = types {
            filters.push(("type", t));
        }
        if let Some(r) = recipient {
            filters.push(("recipient", r));
        }
        Ok(Feed {
            http,
            address: format!("{}/v1/events", url.trim_end_matches('/')),
            token: token.to_owned(),
            filters,
        })
    }

    /// One page after `after`: its events and the cursor to go on from. A refusal (a bad
    /// token, a bad filter) is an error; the gateway out of reach is `Ok(None)`, to try again.
    async fn page(&self, after: Option<&str>) -> anyhow::Result<Option<(Vec<Value>, String)>> {
        let mut query = self.filters.clone();
        query.push(("limit", PAGE.to_owned()));
        if let Some(a) = after {
            query.push(("after", a.to_owned()));
        }
        let sent = self
            .http
            .get(&self.address)
            .bearer_auth(&self.token)
            .query(&query)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                eprintln!("herald: cannot reach {}: {e}; trying again", self.address);
                return Ok(None);
            }
        };
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_server_error() {
            eprintln!("herald: the gateway answered {status}; trying again");
            return Ok(None);
        }
        if !status.is_success() {
            bail!(
                "{status}: {}",
                body["detail"].as_str().unwrap_or("the gateway refused")
            );
        }
        let events = body["events"].as_array().cloned().unwrap_or_default();
        let cursor = body["next_cursor"]
            .as_str()
            .context("the gateway's page has no next_cursor")?
            .to_owned();
        Ok(Some((events, cursor)))
    }
}

/// Follows the feed from its end (or its start), printing each event as one line.
async fn tail(feed: &Feed, from_start: bool) -> anyhow::Result<ExitCode> {
    let mut cursor = if from_start {
        None
    } else {
        loop {
            match feed.page(Some("end")).await? {
                Some((_, end)) => break Some(end),
                None => tokio::time::sleep(POLL).await,
            }
        }
    };
    let stdout = std::io::stdout();
    loop {
        let Some((events, next)) = feed.page(cursor.as_deref()).await? else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let mut out = stdout.lock();
        for event in &events {
            if writeln!(out, "{event}").is_err() {
                // The reader went away (`| head`): nothing more to print to.
                return Ok(ExitCode::SUCCESS);
            }
        }
        if out.flush().is_err() {
            return Ok(ExitCode::SUCCESS);
        }
        drop(out);
        cursor = Some(next);
        if events.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
}
