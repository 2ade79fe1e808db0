//! `herald migrate`: applies the schema's migrations to the PostgreSQL database the
//! configuration names. The gateway applies them at start too; this runs them ahead of a
//! rolling upgrade, or checks that a database is reachable and current.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::configuration::{Backend, Mode, Settings};

pub async fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(
        config,
        config != Path::new("herald.toml"),
        std::env::vars(),
        Mode::Sandbox,
    )?;
    if settings.storage.backend != Backend::Postgres {
        anyhow::bail!("storage.backend is not \"postgres\": the sled store needs no migrations");
    }
    let options = crate::startup::pg_options(&settings, false)?;
    let applied = crate::store::migrate(&options)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("migrating the database")?;
    if applied.is_empty() {
        println!("the database is up to date");
    } else {
        let list: Vec<String> = applied.iter().map(ToString::to_string).collect();
        println!("applied migrations: {}", list.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
