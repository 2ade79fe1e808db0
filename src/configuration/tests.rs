//! The settings' tests: files, the environment, secrets and the messages that name a key.

use std::io::Write;

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f
}

const COMPLETE: &str = r#"
[audit]
signing_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[auth]
jwt_secret = "0123456789abcdef0123"
[messenger]
app_secret = "app-secret-value"
verify_token = "verify"
[messenger.pages."1001"]
access_token = "page-token"
region = "EU"
"#;

#[test]
fn environment_overrides_the_file() {
    let f = file(COMPLETE);
    let env = vec![
        (
            "HERALD_SERVER__LISTEN".to_owned(),
            "127.0.0.1:9999".to_owned(),
        ),
        (
            "HERALD_MESSENGER__PAGES__1001__REGION".to_owned(),
            "UK".to_owned(),
        ),
        ("PATH".to_owned(), "/bin".to_owned()),
    ];
    let s = Settings::load(f.path(), true, env, Mode::Production).expect("valid");
    assert_eq!(s.server.listen, "127.0.0.1:9999");
    assert_eq!(s.messenger.pages["1001"].region.as_deref(), Some("UK"));
}

#[test]
fn a_secret_of_digits_given_through_the_environment_loads_as_that_text() {
    let f = file("[audit]\nsigning_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n");
    let env: Vec<(String, String)> = [
        ("HERALD_AUTH__JWT_SECRET", "0012345678901234567"),
        (
            "HERALD_MESSENGER__APP_SECRET",
            "98765432109876543210987654321",
        ),
        ("HERALD_MESSENGER__VERIFY_TOKEN", "4711"),
        ("HERALD_MESSENGER__PAGES__1001__ACCESS_TOKEN", "000777"),
        ("HERALD_AUDIT__PSEUDONYM_KEY", "1234567890123456"),
        // One level: the command line's and the logger's, not settings.
        ("HERALD_TOKEN", "x"),
        ("HERALD_LOG_FORMAT", "json"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let s = Settings::load(f.path(), true, env, Mode::Production).expect("valid");
    let shown =
        |secret: &Option<SecretString>| secret.as_ref().map(|s| s.expose_secret().to_owned());
    assert_eq!(
        shown(&s.auth.jwt_secret).as_deref(),
        Some("0012345678901234567")
    );
    assert_eq!(
        shown(&s.messenger.app_secret).as_deref(),
        Some("98765432109876543210987654321")
    );
    assert_eq!(shown(&s.messenger.verify_token).as_deref(), Some("4711"));
    assert_eq!(
        shown(&s.audit.pseudonym_key).as_deref(),
        Some("1234567890123456")
    );
    assert_eq!(
        s.messenger.pages["1001"].access_token.expose_secret(),
        "000777"
    );
    let debug = format!("{s:?}");
    for secret in [
        "0012345678901234567",
        "98765432109876543210987654321",
        "000777",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
}

#[test]
fn a_number_from_the_environment_must_read_as_the_number_its_setting_is() {
    let env = vec![("HERALD_DELIVERY__MAX_ATTEMPTS".to_owned(), "7".to_owned())];
    let s = Settings::load(file("").path(), true, env, Mode::Sandbox).expect("valid");
    assert_eq!(s.delivery.max_attempts, 7);
    let env = vec![(
        "HERALD_DELIVERY__MAX_ATTEMPTS".to_owned(),
        "many".to_owned(),
    )];
    let err = Settings::load(file("").path(), true, env, Mode::Sandbox)
        .expect_err("not a number")
        .to_string();
    assert!(err.contains("delivery.max_attempts"), "{err}");
}

#[test]
fn a_secret_of_the_wrong_type_is_named_but_not_repeated() {
    let f = file("[auth]\njwt_secret = 8675309867530986753\n");
    let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
        .expect_err("a number is not a secret string in the file")
        .to_string();
    assert!(err.contains("auth.jwt_secret"), "{err}");
    assert!(!err.contains("8675309867530986753"), "{err}");
}

#[test]
fn the_database_url_comes_from_the_environment_and_never_prints() {
    let f = file("[storage]\nbackend = \"postgres\"\n");
    let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
        .expect_err("postgres needs a URL")
        .to_string();
    assert!(err.contains("storage.url"), "{err}");
    let env = vec![(
        "HERALD_STORAGE__URL".to_owned(),
        "postgres://herald:pw-4711-secret@db:5432/herald".to_owned(),
    )];
    let s = Settings::load(f.path(), true, env, Mode::Sandbox).expect("valid");
    assert_eq!(s.storage.backend, Backend::Postgres);
    assert_eq!(
        s.storage.url.as_ref().map(|u| u.expose_secret().to_owned()),
        Some("postgres://herald:pw-4711-secret@db:5432/herald".to_owned())
    );
    assert!(!format!("{s:?}").contains("pw-4711-secret"));
}

#[test]
fn a_missing_secret_names_its_key() {
    let f = file("[messenger]\napp_secret = \"x\"\n");
    let err = Settings::load(f.path(), true, vec![], Mode::Production)
        .expect_err("incomplete")
        .to_string();
    assert!(err.contains("auth.jwt_secret"), "{err}");
    assert!(err.contains("HERALD_AUTH__JWT_SECRET"), "{err}");
}

#[test]
fn a_duration_setting_past_its_range_is_refused_naming_the_key() {
    for (text, key) in [
        ("[audit]\nretain_days = 4000000000\n", "audit.retain_days"),
        (
            "[delivery]\nretry_max_ms = 100000000000\n",
            "delivery.retry_max_ms",
        ),
        (
            "[delivery]\nretry_base_ms = 5000\nretry_max_ms = 1000\n",
            "delivery.retry_base_ms",
        ),
        (
            "[delivery]\nrequest_timeout_ms = 99999999999\n",
            "delivery.request_timeout_ms",
        ),
        ("[storage]\nlease_ms = 99999999999\n", "storage.lease_ms"),
        (
            "[delivery.ttl]\nmarketing = \"1000000y\"\n",
            "delivery.ttl.marketing",
        ),
    ] {
        let f = file(text);
        let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
            .expect_err(key)
            .to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
    let f = file("[audit]\nretain_days = 3650\n[delivery.ttl]\nreceipt = \"30d\"\n");
    assert!(Settings::load(f.path(), true, vec![], Mode::Sandbox).is_ok());
}

#[test]
fn an_unknown_or_mistyped_key_is_named() {
    let f = file("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
    let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
        .expect_err("unknown key")
        .to_string();
    assert!(err.contains("lisen"), "{err}");
    let f = file("[delivery]\nmax_attempts = \"many\"\n");
    let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
        .expect_err("bad type")
        .to_string();
    assert!(err.contains("delivery.max_attempts"), "{err}");
}

#[test]
fn a_bad_audit_key_is_named() {
    let f = file(&COMPLETE.replace("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "short"));
    let err = Settings::load(f.path(), true, vec![], Mode::Production)
        .expect_err("bad key")
        .to_string();
    assert!(err.contains("audit.signing_key"), "{err}");
    let env = vec![("HERALD_AUDIT__PSEUDONYM_KEY".to_owned(), "tiny".to_owned())];
    let err = Settings::load(file(COMPLETE).path(), true, env, Mode::Production)
        .expect_err("short key")
        .to_string();
    assert!(err.contains("audit.pseudonym_key"), "{err}");
    let f = file(&COMPLETE.replace(
        "[audit]\nsigning_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n",
        "",
    ));
    let err = Settings::load(f.path(), true, vec![], Mode::Production)
        .expect_err("no audit key")
        .to_string();
    assert!(err.contains("audit.signing_key"), "{err}");
    let env = vec![("HERALD_AUDIT__RETAIN_DAYS".to_owned(), "30".to_owned())];
    let s = Settings::load(file(COMPLETE).path(), true, env, Mode::Production).expect("ok");
    assert_eq!(s.audit.retain_days, 30);
}

#[test]
fn secrets_do_not_print() {
    let f = file(COMPLETE);
    let s = Settings::load(f.path(), true, vec![], Mode::Production).expect("valid");
    let shown = format!("{s:?}");
    for secret in [
        "0123456789abcdef0123",
        "app-secret-value",
        "page-token",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
}

#[test]
fn a_missing_required_file_is_an_error_and_an_optional_one_is_not() {
    let path = Path::new("/nonexistent/herald.toml");
    assert!(Settings::load(path, true, vec![], Mode::Sandbox).is_err());
    assert!(Settings::load(path, false, vec![], Mode::Sandbox).is_ok());
}
