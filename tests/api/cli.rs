//! The `herald` binary's commands, run as a user would.

use std::process::{Command, Output};

use herald::auth::JwtKeys;
use herald::domain::Role;
use secrecy::SecretString;

/// Runs the built `herald` binary with `args` and extra environment.
pub fn herald(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run herald")
}

#[test]
fn policy_check_names_the_file_and_line_of_each_error() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::copy(
        crate::helpers::policy_dir().join("default.toml"),
        dir.path().join("default.toml"),
    )
    .expect("copy");
    std::fs::write(
        dir.path().join("extra.toml"),
        "# a second file\n[window]\nstandard = \"a day\"\n",
    )
    .expect("write");
    let out = herald(
        &["policy", "check", "--dir", &dir.path().to_string_lossy()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("extra.toml:3"), "{stderr}");

    let ok = herald(
        &[
            "policy",
            "check",
            "--dir",
            &crate::helpers::policy_dir().to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let tests = herald(
        &[
            "policy",
            "test",
            "--dir",
            &crate::helpers::policy_dir().to_string_lossy(),
        ],
        &[],
    );
    assert_eq!(
        tests.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&tests.stdout)
    );
}

#[test]
fn a_bad_configuration_stops_start_up_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        "[messenger]\napp_secret = \"s3cret-app-value\"\nverify_token = \"v\"\n",
    )
    .expect("write");
    let out = herald(&["serve", "--config", &config.to_string_lossy()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("auth.jwt_secret"), "{stderr}");
    assert!(!stderr.contains("s3cret-app-value"));

    let out = herald(
        &["serve", "--config", &config.to_string_lossy()],
        &[("HERALD_SERVER__LISTEN", "not-an-address")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.listen"), "{stderr}");
}

#[test]
fn token_prints_a_jwt_signed_with_the_configured_secret() {
    let secret = "a-secret-from-the-environment";
    let out = herald(
        &[
            "token",
            "--sub",
            "shop",
            "--role",
            "backend",
            "--ttl",
            "2h",
            "--config",
            "/nonexistent.toml",
        ],
        &[("HERALD_AUTH__JWT_SECRET", secret)],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let claims = JwtKeys::new(&SecretString::from(secret), None, None)
        .verify(&token)
        .expect("valid token");
    assert_eq!((claims.sub.as_str(), claims.role), ("shop", Role::Backend));
    let bad = herald(
        &[
            "token",
            "--sub",
            "shop",
            "--role",
            "root",
            "--config",
            "/nonexistent.toml",
        ],
        &[("HERALD_AUTH__JWT_SECRET", secret)],
    );
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn the_strict_example_policy_passes_its_own_cases() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples/strict");
    let out = herald(&["policy", "test", "--dir", &dir.to_string_lossy()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("12 cases: 12 passed, 0 failed"), "{stdout}");
    // The house rules are in it, not the defaults'.
    for case in [
        "a Messenger opt-in alone is not enough for marketing",
        "a Sunday offer waits until Monday 08:00 in Berlin",
        "a sixth transactional message in an hour is refused",
    ] {
        assert!(stdout.contains(case), "{case}: {stdout}");
    }
}

#[test]
fn a_policy_with_every_day_off_is_refused_naming_the_line() {
    let dir = tempfile::tempdir().expect("dir");
    let strict = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies/examples/strict/strict.toml");
    let text = std::fs::read_to_string(strict).expect("strict policy");
    let text = text.replace(
        "days_off            = [\"sun\"]",
        "days_off            = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]",
    );
    std::fs::write(dir.path().join("strict.toml"), text).expect("write");
    let out = herald(
        &["policy", "check", "--dir", &dir.path().to_string_lossy()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strict.toml:") && stderr.contains("every day is off"),
        "{stderr}"
    );
}
