use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::auth::JwtKeys;
use crate::configuration::{Mode, Settings};
use crate::domain::Role;

/// `herald token`: prints a JWT signed with the configured secret.
pub fn run(sub: &str, role: &str, ttl: &str, config: &Path) -> anyhow::Result<ExitCode> {
    let role: Role = role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let ttl =
        humantime::parse_duration(ttl).context("--ttl must be a duration such as 1h or 30d")?;
    let settings = Settings::load(config, false, std::env::vars(), Mode::Sandbox)?;
    let secret = settings.auth.jwt_secret.context(
        "auth.jwt_secret is required to sign tokens (config file or HERALD_AUTH__JWT_SECRET)",
    )?;
    let keys = JwtKeys::new(&secret, settings.auth.issuer, settings.auth.audience);
    println!("{}", keys.issue(sub, role, ttl)?);
    Ok(ExitCode::SUCCESS)
}
