//! `herald serve` and `herald serve --sandbox`.

use crate::clock::SystemClock;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use rand::distributions::{Alphanumeric, DistString};
use secrecy::SecretString;

use crate::auth::JwtKeys;
use crate::configuration::{EmailSettings, Mode, PageSettings, PolicySettings, Settings};
use crate::domain::checkpoint::CheckpointSigner;
use crate::domain::Role;
use crate::policy::DEFAULT_POLICY;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxPage};
use crate::startup::Application;

/// The page the sandbox plays.
pub const SANDBOX_PAGE_ID: &str = "100000000000001";

/// The sender of the email fallback's mail when the sandbox's SMTP stand-in takes it.
pub const SANDBOX_MAIL_FROM: &str = "Herald Sandbox <sandbox@herald.example>";

fn random_secret() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 40)
}

pub async fn run(config: &Path, sandbox: bool) -> anyhow::Result<ExitCode> {
    if sandbox {
        return run_sandbox(config).await;
    }
    let settings = Settings::load(
        config,
        config != Path::new("herald.toml"),
        std::env::vars(),
        Mode::Production,
    )?;
    let app = Application::build(&settings).await?;
    tracing::info!(
        listen = %settings.server.listen,
        port = app.port(),
        store = %settings.storage.path.display(),
        pages = settings.messenger.pages.len(),
        "herald is serving"
    );
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

/// Fills in everything the sandbox needs: fresh secrets, one page, a throwaway store unless
/// one is configured, and the embedded Messenger stand-in as the Graph API.
async fn run_sandbox(config: &Path) -> anyhow::Result<ExitCode> {
    let mut settings = Settings::load(config, false, std::env::vars(), Mode::Sandbox)?;
    // The sandbox's receivers are on this machine.
    settings.events.allow_private_networks = true;
    let jwt_secret = random_secret();
    let app_secret = random_secret();
    let page_token = random_secret();
    settings.auth.jwt_secret = Some(SecretString::from(jwt_secret.clone()));
    settings.messenger.app_secret = Some(SecretString::from(app_secret.clone()));
    settings.messenger.verify_token = Some(SecretString::from(random_secret()));
    if settings.audit.signing_key.is_none() {
        // Kept for this run only, like the store: a configured key (and store) outlives it.
        let (_, seed) = CheckpointSigner::generate();
        settings.audit.signing_key = Some(SecretString::from(seed));
    }
    settings.messenger.pages.clear();
    settings.messenger.pages.insert(
        SANDBOX_PAGE_ID.into(),
        PageSettings {
            access_token: SecretString::from(page_token.clone()),
            region: Some("EU".into()),
        },
    );
    let (_policy_scratch, policy_note) = built_in_policy(&mut settings)?;
    // A store is configured by a configuration file or by `HERALD_STORAGE__PATH`.
    let configured = config.exists() || std::env::var_os("HERALD_STORAGE__PATH").is_some();
    let _scratch = if configured {
        None
    } else {
        let dir = tempfile::Builder::new()
            .prefix("herald-sandbox-")
            .tempdir()?;
        settings.storage.path = dir.path().join("store");
        Some(dir)
    };

    let sandbox_listener = TcpListener::bind("127.0.0.1:0").context("cannot bind the sandbox")?;
    let sandbox_port = sandbox_listener.local_addr()?.port();
    settings.messenger.graph_base_url = format!("http://127.0.0.1:{sandbox_port}");
    let smtp_listener = sandbox_mail(&mut settings)?;
    let app = Application::build(&settings).await?;
    let herald_url = format!("http://127.0.0.1:{}", app.port());
    let mut sandbox = Sandbox::start(
        SandboxConfig {
            app_secret,
            pages: vec![SandboxPage {
                id: SANDBOX_PAGE_ID.into(),
                access_token: page_token,
                region: Some("EU".into()),
            }],
            webhook_url: Some(format!("{herald_url}/webhooks/messenger")),
            auto_receipts: true,
            rate_per_page_per_second: 300,
            clock: SystemClock::shared(),
        },
        sandbox_listener,
    )
    .await
    .context("cannot start the sandbox")?;
    let smtp = smtp_listener
        .map(|listener| sandbox.start_smtp(listener))
        .transpose()
        .context("cannot start the sandbox's SMTP stand-in")?;

    let keys = JwtKeys::new(
        &SecretString::from(jwt_secret),
        settings.auth.issuer.clone(),
        settings.auth.audience.clone(),
    );
    print_banner(
        &herald_url,
        &sandbox.base_url(),
        smtp,
        &keys,
        &settings,
        &policy_note,
    )?;
    app.run_until_stopped().await?;
    sandbox.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Unless the configuration names a mail server (`[email]`), the email fallback's mail goes to
/// the sandbox's SMTP stand-in, to be read at `GET /sandbox/mail`. Binds its listener now so
/// that the gateway, built before the sandbox starts, has its address; returns it to hand to
/// [`Sandbox::start_smtp`], or `None` when `[email]` is the user's own.
fn sandbox_mail(settings: &mut Settings) -> anyhow::Result<Option<TcpListener>> {
    if settings.email.is_some() {
        return Ok(None);
    }
    let listener =
        TcpListener::bind("127.0.0.1:0").context("cannot bind the sandbox's SMTP stand-in")?;
    let port = listener.local_addr()?.port();
    settings.email = Some(EmailSettings {
        smtp_url: SecretString::from(format!("smtp://127.0.0.1:{port}")),
        from: SANDBOX_MAIL_FROM.into(),
        ca_file: None,
        templates: None,
        // `[email] timeout_ms`'s default.
        timeout_ms: 15_000,
    });
    Ok(Some(listener))
}

/// The sandbox run outside a checkout has no `./policies`: unless a policy directory was
/// configured, it writes the default policy built into the binary to a throwaway directory and
/// runs with that (the same files, so the same version; a reload reads them again). Returns the
/// directory to keep for the run, and the banner's line about the policy.
fn built_in_policy(settings: &mut Settings) -> anyhow::Result<(Option<tempfile::TempDir>, String)> {
    let dir = &settings.policy.dir;
    if *dir != PolicySettings::default().dir || dir.exists() {
        return Ok((None, dir.display().to_string()));
    }
    let scratch = tempfile::Builder::new()
        .prefix("herald-sandbox-policy-")
        .tempdir()?;
    for (name, text) in DEFAULT_POLICY {
        let path = scratch.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write the built-in policy to {}", path.display()))?;
    }
    settings.policy.dir = scratch.path().to_path_buf();
    tracing::info!(
        dir = %scratch.path().display(),
        "no ./policies here: the sandbox runs with the default policy built into the binary"
    );
    let note = format!(
        "the default policy built into herald (no ./policies here), written to {}",
        scratch.path().display()
    );
    Ok((Some(scratch), note))
}

fn print_banner(
    herald: &str,
    sandbox: &str,
    smtp: Option<SocketAddr>,
    keys: &JwtKeys,
    settings: &Settings,
    policy: &str,
) -> anyhow::Result<()> {
    let day = Duration::from_secs(24 * 3600);
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, keys.issue(&format!("sandbox-{role}"), role, day)?));
    }
    let mut out = String::new();
    write_addresses(&mut out, herald, sandbox, smtp, settings, policy);
    write_tokens(&mut out, herald, &tokens);
    let backend = &tokens[0].1;
    write_try_it(&mut out, herald, sandbox, smtp, backend);
    // Written at once, and a closed stdout (`herald serve --sandbox | head`) is no reason to
    // stop the gateway.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(())
}

/// Where the gateway, the stand-ins, the store and the policy are.
fn write_addresses(
    out: &mut String,
    herald: &str,
    sandbox: &str,
    smtp: Option<SocketAddr>,
    settings: &Settings,
    policy: &str,
) {
    let _ = writeln!(out, "Herald sandbox is running.");
    let _ = writeln!(out);
    let _ = writeln!(out, "  gateway   {herald}");
    let _ = writeln!(
        out,
        "  sandbox   {sandbox}   (Messenger stand-in: play a user under /sandbox)"
    );
    match smtp {
        Some(smtp) => {
            let _ = writeln!(
                out,
                "  mail      smtp://{smtp}   (SMTP stand-in: the email fallback's mail, from {SANDBOX_MAIL_FROM}, kept at /sandbox/mail)"
            );
        }
        None => {
            let _ = writeln!(out, "  mail      the [email] server of your configuration");
        }
    }
    let _ = writeln!(out, "  page      {SANDBOX_PAGE_ID} (region EU)");
    let _ = writeln!(out, "  store     {}", settings.storage.path.display());
    let _ = writeln!(out, "  policy    {policy}");
    let _ = writeln!(out);
}

/// The console's address, signed in as admin, and a token per role.
fn write_tokens(out: &mut String, herald: &str, tokens: &[(Role, String)]) {
    let admin = tokens
        .iter()
        .find(|(role, _)| *role == Role::Admin)
        .or(tokens.first())
        .map_or("", |(_, token)| token.as_str());
    // The token rides in the fragment, which the browser never sends to a server; the console
    // keeps it in the tab's sessionStorage and takes it out of the address bar.
    let _ = writeln!(
        out,
        "Console (signs in as admin; paste another role's token to see the console as it):"
    );
    let _ = writeln!(out, "  {herald}/console#token={admin}");
    let _ = writeln!(out);
    let _ = writeln!(out, "Tokens (valid 24 h, this run only):");
    for (role, token) in tokens {
        let _ = writeln!(out, "  {:<10} {token}", role.as_str());
    }
    let _ = writeln!(out);
}

/// A first message through the sandbox, as commands to paste.
fn write_try_it(
    out: &mut String,
    herald: &str,
    sandbox: &str,
    smtp: Option<SocketAddr>,
    backend: &str,
) {
    let _ = writeln!(out, "Try it:");
    let _ = writeln!(
        out,
        "  export HERALD={herald} SANDBOX={sandbox} TOKEN={backend}"
    );
    let _ = writeln!(
        out,
        "  curl -s -X POST $SANDBOX/sandbox/users -d '{{\"psid\":\"4242\"}}' -H 'content-type: application/json'");
    let _ = writeln!(
        out,
        "  curl -s -X POST $SANDBOX/sandbox/users/4242/messages -d '{{\"text\":\"hi\"}}' -H 'content-type: application/json'");
    let _ = writeln!(
        out,
        "  curl -s -X POST $HERALD/v1/messages -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\");
    let _ = writeln!(
        out,
        "       -d '{{\"recipient\":{{\"psid\":\"4242\"}},\"category\":\"response\",\"message\":{{\"text\":\"Hello from Herald\"}}}}'");
    let _ = writeln!(out, "  curl -s $SANDBOX/sandbox/users/4242/inbox");
    if smtp.is_some() {
        let _ = writeln!(out, "  curl -s $SANDBOX/sandbox/mail");
    }
    let _ = writeln!(out);
}
