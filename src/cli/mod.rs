//! The `herald` command line (API.md §1).

mod audit;
mod campaign;
mod events;
mod migrate;
mod policy;
mod serve;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "A policy-enforcing outbound messaging gateway for Facebook Messenger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The configuration file.
        #[arg(long, default_value = "herald.toml")]
        config: PathBuf,
        /// Run against an embedded Messenger sandbox, with a fresh secret and ready-made tokens.
        #[arg(long)]
        sandbox: bool,
    },
    /// Print a signed JWT for a client.
    Token {
        /// The client's name (`sub`), recorded in the audit log.
        #[arg(long)]
        sub: String,
        /// backend, marketer, compliance or admin.
        #[arg(long)]
        role: String,
        /// How long the token is valid, e.g. 1h, 30d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[arg(long, default_value = "herald.toml")]
        config: PathBuf,
    },
    /// Check or test the policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Follow campaigns.
    Campaign {
        #[command(subcommand)]
        command: CampaignCommand,
    },
    /// Apply the database schema's migrations (PostgreSQL; the gateway also does at start).
    Migrate {
        #[arg(long, default_value = "herald.toml")]
        config: PathBuf,
    },
    /// Verify, export or checkpoint the audit log, offline.
    Audit {
        #[command(subcommand)]
        command: Box<audit::AuditCommand>,
    },
    /// Watch a running gateway's events (through its HTTP API).
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
}

#[derive(Subcommand)]
enum CampaignCommand {
    /// Follow a campaign live: a progress bar with its counts, until it ends.
    Watch {
        /// The campaign's id (`cmp_…`).
        id: String,
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// A marketer's or admin's token.
        #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Parse and validate the policy files; exit 1 with file:line errors.
    Check {
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
    },
    /// Run the policy test cases under <dir>/tests; exit 1 on any failure.
    Test {
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
    },
}

/// Parses the command line and runs it.
pub async fn main() -> ExitCode {
    main_with(std::env::args_os()).await
}

/// Runs `args` as a command line (the first is the program's name); the load generator runs
/// the gateway in its own process this way.
pub async fn main_with<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let result = match cli.command {
        Command::Serve { config, sandbox } => {
            crate::telemetry::init();
            serve::run(&config, sandbox).await
        }
        Command::Token {
            sub,
            role,
            ttl,
            config,
        } => token::run(&sub, &role, &ttl, &config),
        Command::Policy { command } => match command {
            PolicyCommand::Check { dir } => policy::check(&dir),
            PolicyCommand::Test { dir } => policy::test(&dir),
        },
        Command::Campaign { command } => match command {
            CampaignCommand::Watch { id, url, token } => campaign::watch(&id, &url, &token).await,
        },
        Command::Audit { command } => audit::run(*command).await,
        Command::Events { command } => events::run(command).await,
        Command::Migrate { config } => migrate::run(&config).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("herald: {e:#}");
            ExitCode::FAILURE
        }
    }
}
