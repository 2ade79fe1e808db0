use super::*;

fn read(url: &str) -> SmtpUrl {
    SmtpUrl::read(url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn settings(url: &str) -> EmailSettings {
    EmailSettings {
        smtp_url: SecretString::from(url),
        from: "Shop <orders@shop.example>".into(),
        ca_file: None,
        templates: None,
        timeout_ms: 1_000,
    }
}

#[test]
fn schemes_choose_the_tls_mode_and_the_default_port() {
    let cases = [
        ("smtp://mail.example", Security::StartTlsIfOffered, 587),
        (
            "smtp://mail.example:2525",
            Security::StartTlsIfOffered,
            2525,
        ),
        (
            "smtp://mail.example?tls=required",
            Security::StartTlsRequired,
            587,
        ),
        (
            "smtp://mail.example:25/?tls=required",
            Security::StartTlsRequired,
            25,
        ),
        ("smtps://mail.example", Security::ImplicitTls, 465),
        ("smtps://mail.example:4650", Security::ImplicitTls, 4650),
    ];
    for (url, security, port) in cases {
        let read = read(url);
        assert_eq!(
            (read.host.as_str(), read.security, read.port),
            ("mail.example", security, port),
            "{url}"
        );
    }
}

#[test]
fn ip_hosts_are_read_as_addresses() {
    assert_eq!(read("smtp://127.0.0.1:25").host, "127.0.0.1");
    assert_eq!(read("smtps://[::1]").host, "::1");
}

/// Percent-decoded, not form-decoded: `+` stays a plus.
#[test]
fn credentials_are_percent_decoded() {
    let url = read("smtp://orders%40shop.example:p%40ss%3Aw%2Frd%25+%20%C3%A9@mail.example");
    assert_eq!(url.user.as_deref(), Some("orders@shop.example"));
    assert_eq!(
        url.password.as_ref().map(|p| p.expose_secret()),
        Some("p@ss:w/rd%+ é")
    );
}

#[test]
fn no_user_means_no_auth_and_a_user_may_have_an_empty_password() {
    let none = read("smtp://mail.example");
    assert!(none.user.is_none() && none.password.is_none());
    let bare = read("smtp://relay@mail.example");
    assert_eq!(bare.user.as_deref(), Some("relay"));
    assert!(bare.password.is_none());
}

#[test]
fn bad_urls_are_refused_without_repeating_them() {
    let cases = [
        ("not a url hunter2", "must be a URL"),
        ("http://u:hunter2@mail.example", "must be smtp://"),
        (
            "smtp://u:hunter2@mail.example?tls=opportunistic",
            "tls= may only",
        ),
        ("smtp://u:hunter2@mail.example?tls=none", "tls= may only"),
        ("smtps://u:hunter2@mail.example?tls=required", "always TLS"),
        ("smtp://u:hunter2@mail.example?ehlo=x", "no query parameter"),
        ("smtp://u:hunter2@mail.example/ehlo.example", "path"),
        ("smtp://:hunter2@mail.example", "no user"),
        ("smtp://u:hunter2%FF@mail.example", "not UTF-8"),
    ];
    for (url, expected) in cases {
        let error = SmtpUrl::read(url)
            .err()
            .unwrap_or_else(|| panic!("{url} was taken"))
            .to_string();
        assert!(
            error.contains("email.smtp_url") && error.contains(expected),
            "{url}: {error}"
        );
        assert!(!error.contains("hunter2"), "{url}: {error}");
    }
}

#[test]
fn new_names_the_setting_at_fault() {
    let mut from = settings("smtp://u:hunter2@mail.example");
    from.from = "not an address".into();
    let mut ca = settings("smtp://u:hunter2@mail.example");
    ca.ca_file = Some("/nonexistent/ca.pem".into());
    let empty = tempfile::NamedTempFile::new().unwrap();
    let mut no_certs = settings("smtp://u:hunter2@mail.example");
    no_certs.ca_file = Some(empty.path().to_owned());
    let cases = [
        (settings("ftp://u:hunter2@mail.example"), "email.smtp_url"),
        (from, "email.from"),
        (ca, "email.ca_file"),
        (no_certs, "email.ca_file"),
    ];
    for (settings, key) in cases {
        let error = format!("{:#}", Mailer::new(&settings).unwrap_err());
        assert!(error.contains(key), "{key}: {error}");
        assert!(!error.contains("hunter2"), "{key}: {error}");
    }
}

#[test]
fn new_needs_no_runtime_and_its_debug_hides_the_password() {
    let mailer = Mailer::new(&settings("smtps://u:hunter2@mail.example")).unwrap();
    let debug = format!("{mailer:?}");
    assert!(debug.contains("mail.example"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[test]
fn message_ids_must_fit_in_angle_brackets() {
    for good in ["msg_01J9Z@herald.example", "a.b-c@d"] {
        assert!(is_message_id(good), "{good}");
    }
    for bad in ["", "no-at-sign", "@right", "left@", "a b@c", "<a@b>", "é@b"] {
        assert!(!is_message_id(bad), "{bad}");
    }
}

#[test]
fn a_password_echoed_by_a_server_is_struck_from_the_detail() {
    let mailer = Mailer::new(&settings("smtp://u:hunter2@mail.example")).unwrap();
    let failure = mailer.redacted(SmtpFailure {
        transient: false,
        code: Some(535),
        detail: "the server answered 535 bad password hunter2".into(),
    });
    assert_eq!(
        failure.detail,
        "the server answered 535 bad password [redacted]"
    );
}
