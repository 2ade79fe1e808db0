//! `herald audit verify | export | checkpoint`: the audit log, offline. Each opens the store
//! directory itself, so it runs on a stopped gateway's store (sled allows one process at a
//! time: on a running gateway, use `GET /v1/audit/...`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures_util::StreamExt;

use crate::app::{export_audit, verify_audit, ExportFormat};
use crate::clock::{Clock, SystemClock};
use crate::configuration::Backend;
use crate::configuration::{Mode, Settings};
use crate::domain::audit::{AuditKind, Pseudonyms};
use crate::domain::checkpoint::{Checkpoint, CheckpointSigner};
use crate::domain::Category;
use crate::store::{AuditFilter, SledStore, Stores};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; with --checkpoint, also that the log still extends it. Exit 1 and
    /// name the first bad entry.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// A checkpoint (JSON, as `herald audit checkpoint` printed it) to check against.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Stream the audit log to stdout.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// csv or jsonl.
        #[arg(long, default_value = "jsonl")]
        format: String,
        #[command(flatten)]
        filters: Box<FilterArgs>,
    },
    /// Print a signed checkpoint of the chain's head (JSON), to keep outside Herald.
    Checkpoint {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the store is.
#[derive(Args)]
pub struct StoreArgs {
    /// The store directory (default: `storage.path` of the configuration).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The configuration file, for the store's path and the audit keys.
    #[arg(long, default_value = "herald.toml")]
    config: PathBuf,
}

/// The filters of `GET /v1/audit/export`.
#[derive(Args)]
pub struct FilterArgs {
    /// A PSID (found by its pseudonym: needs the configured audit key).
    #[arg(long)]
    recipient: Option<String>,
    #[arg(long)]
    page_id: Option<String>,
    #[arg(long)]
    category: Option<String>,
    #[arg(long)]
    outcome: Option<String>,
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    campaign: Option<String>,
    #[arg(long)]
    client: Option<String>,
    #[arg(long)]
    kind: Option<String>,
    /// RFC 3339: entries at or after.
    #[arg(long)]
    from: Option<String>,
    /// RFC 3339: entries before.
    #[arg(long)]
    to: Option<String>,
}

impl FilterArgs {
    fn filter(self) -> anyhow::Result<AuditFilter> {
        let time = |t: Option<String>, name: &str| -> anyhow::Result<_> {
            t.map(|t| {
                chrono::DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .with_context(|| format!("--{name} must be an RFC 3339 time"))
            })
            .transpose()
        };
        Ok(AuditFilter {
            recipient: self.recipient,
            page_id: self.page_id,
            category: self
                .category
                .map(|c| c.parse::<Category>())
                .transpose()
                .map_err(anyhow::Error::msg)?,
            outcome: self.outcome,
            reason: self.reason,
            campaign: self.campaign,
            client: self.client,
            kind: self
                .kind
                .map(|k| k.parse::<AuditKind>())
                .transpose()
                .map_err(anyhow::Error::msg)?,
            from: time(self.from, "from")?,
            to: time(self.to, "to")?,
        })
    }
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { store, checkpoint } => verify(store, checkpoint.as_deref()).await,
        AuditCommand::Export {
            store,
            format,
            filters,
        } => export(store, &format, filters).await,
        AuditCommand::Checkpoint { store } => checkpoint(store).await,
    }
}

/// The settings (a missing default file is fine) and the store they, or `--data`, name.
async fn open(args: &StoreArgs, need_key: bool) -> anyhow::Result<(Settings, Stores)> {
    let settings = Settings::load(
        &args.config,
        args.config != Path::new("herald.toml"),
        std::env::vars(),
        Mode::Sandbox,
    )?;
    let pseudonyms = match settings.audit.pseudonyms()? {
        Some(p) => p,
        // Verifying and signing read the chain only; no pseudonym is made or looked up.
        None if !need_key => Pseudonyms::new(&rand::random::<[u8; 32]>()),
        None => anyhow::bail!(
            "audit.signing_key or audit.pseudonym_key is required to find entries by recipient"
        ),
    };
    if settings.storage.backend == Backend::Postgres && args.data.is_none() {
        let opened = crate::startup::open_store(&settings, pseudonyms, false).await?;
        return Ok((settings, opened.store));
    }
    let path = args.data.clone().unwrap_or(settings.storage.path.clone());
    if !path.exists() {
        anyhow::bail!("no store at {}", path.display());
    }
    let store = SledStore::open(&path, pseudonyms).with_context(|| {
        format!(
            "cannot open the store at {} (is the gateway still running?)",
            path.display()
        )
    })?;
    Ok((settings, Stores::of(store)))
}

async fn verify(args: StoreArgs, checkpoint: Option<&Path>) -> anyhow::Result<ExitCode> {
    let checkpoint: Option<Checkpoint> = checkpoint
        .map(|file| {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a checkpoint", file.display()))
        })
        .transpose()?;
    let (settings, store) = open(&args, false).await?;
    if let Some(cp) = &checkpoint {
        let signed = match settings.audit.signer()? {
            Some(signer) => signer.check(cp),
            None => cp.check_signature(),
        };
        if let Err(e) = signed {
            store.engine.close().await?;
            eprintln!("herald: the checkpoint does not hold: {e}");
            return Ok(ExitCode::FAILURE);
        }
    }
    let point = checkpoint.as_ref().map(Checkpoint::point);
    let verification = verify_audit(store.audit.as_ref(), point.as_ref()).await;
    store.engine.close().await?;
    // A read error is an error, said as one — never reported as tampering.
    let verification = verification.context("the audit log could not be read")?;
    println!("{}", serde_json::to_string_pretty(&verification)?);
    if let Some(bad) = verification.first_bad_seq {
        eprintln!("herald: the audit chain breaks at entry {bad}");
    }
    Ok(if verification.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn export(
    args: StoreArgs,
    format: &str,
    filters: Box<FilterArgs>,
) -> anyhow::Result<ExitCode> {
    let format: ExportFormat = format
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--format {e}"))?;
    let filter = filters.filter()?;
    let (_, store) = open(&args, filter.recipient.is_some()).await?;
    let mut chunks = std::pin::pin!(export_audit(Arc::clone(&store.audit), filter, format));
    let mut out = std::io::stdout().lock();
    let mut result = Ok(());
    while let Some(chunk) = chunks.next().await {
        match chunk
            .map_err(anyhow::Error::from)
            .and_then(|c| out.write_all(&c).map_err(anyhow::Error::from))
        {
            Ok(()) => {}
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let flushed = out.flush();
    store.engine.close().await?;
    match result.and(flushed.map_err(anyhow::Error::from)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `herald audit export | head` closes the pipe early: that is no failure.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
    }
}

async fn checkpoint(args: StoreArgs) -> anyhow::Result<ExitCode> {
    let (settings, store) = open(&args, false).await?;
    let signer: CheckpointSigner = settings
        .audit
        .signer()?
        .context("audit.signing_key is required to sign checkpoints")?;
    let head = store.audit.head().await;
    store.engine.close().await?;
    let cp = signer.sign(&head?, SystemClock.now());
    println!("{}", serde_json::to_string_pretty(&cp)?);
    Ok(ExitCode::SUCCESS)
}
