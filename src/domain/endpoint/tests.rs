use super::*;

fn record() -> EndpointRecord {
    EndpointRecord::example("ep_1")
}

#[test]
fn a_secret_is_32_random_bytes_in_base64_behind_whsec() {
    let (a, b) = (new_secret(), new_secret());
    assert_ne!(a, b);
    let key = BASE64
        .decode(a.strip_prefix(SECRET_PREFIX).expect("prefix"))
        .expect("base64");
    assert_eq!(key.len(), 32);
}

#[test]
fn the_signature_is_the_standard_webhooks_example() {
    // The example of the Standard Webhooks specification (and of its libraries' tests).
    let mut r = record();
    r.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into();
    let body = br#"{"test": 2432232314}"#;
    assert_eq!(
        r.signature(Utc::now(), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn a_rotated_out_secret_signs_beside_the_new_one_for_a_day() {
    let mut r = record();
    let now = Utc::now();
    let old = r.secret.clone();
    let fresh = r.rotate_secret(now);
    assert_ne!(old, fresh);
    let both = r.signature(now + Duration::hours(23), "evt_0_1_0", 1, b"{}");
    let parts: Vec<&str> = both.split(' ').collect();
    assert_eq!(parts.len(), 2, "{both}");
    assert_eq!(
        parts[1],
        sign_v1(&old, "evt_0_1_0", 1, b"{}").expect("sign")
    );
    let one = r.signature(now + Duration::hours(24), "evt_0_1_0", 1, b"{}");
    assert_eq!(one, sign_v1(&fresh, "evt_0_1_0", 1, b"{}").expect("sign"));
}

#[test]
fn retries_follow_the_schedule_never_sooner_and_then_stop() {
    for (i, step) in RETRY_SCHEDULE_SECONDS.iter().enumerate() {
        let d = retry_delay(i as u32 + 1)
            .expect("a retry")
            .num_milliseconds();
        assert!(
            d >= step * 1000 && d <= step * 1250,
            "attempt {}: {d}",
            i + 1
        );
    }
    assert_eq!(retry_delay(8), None);
    assert_eq!(retry_delay(0), None);
}

#[test]
fn a_messenger_endpoint_gets_the_post_as_messenger_sent_it_once() {
    use crate::domain::audit::Personal;
    let raw = r#"{"object":"page","entry":[{"id":"1","messaging":[]}]}"#;
    let entry = AuditEntry {
        seq: 41,
        kind: AuditKind::Inbound,
        outcome: Some("message".into()),
        personal: Some(Personal {
            event: Some(serde_json::json!({
                "raw": raw, "signature": "sha256=abc", "post_types": ["inbound.message"]
            })),
            ..Personal::default()
        }),
        ..AuditEntry::default()
    };
    let mut r = record();
    r.format = EndpointFormat::Messenger;
    r.events = TypeFilter::parse(vec!["inbound.*".into()]).expect("filter");
    let out = r.events_in(&entry);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].body, raw.as_bytes());
    assert_eq!(out[0].id, "evt_0_41_0");
    let headers = r.headers(Utc::now(), &out[0]);
    assert!(headers.contains(&("x-hub-signature-256", "sha256=abc".to_owned())));
    assert!(!headers.iter().any(|(n, _)| *n == "webhook-signature"));
    r.events = TypeFilter::parse(vec!["inbound.postback".into()]).expect("filter");
    assert!(r.events_in(&entry).is_empty());
}

#[test]
fn five_days_of_failing_disables() {
    let mut r = record();
    let now = Utc::now();
    assert!(!r.gives_up(now));
    r.failing_since = Some(now - Duration::days(5) + Duration::seconds(1));
    assert!(!r.gives_up(now));
    r.failing_since = Some(now - Duration::days(5));
    assert!(r.gives_up(now));
}

#[test]
fn internal_addresses_are_refused_and_public_ones_pass() {
    let refused = [
        "127.0.0.1",
        "127.8.9.1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "100.64.0.1",
        "100.127.1.1",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
    ];
    for text in refused {
        let ip: IpAddr = text.parse().expect("ip");
        assert!(forbidden_address(ip), "{text} must be refused");
    }
    for text in [
        "93.184.216.34",
        "8.8.8.8",
        "100.128.0.1",
        "172.32.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
    ] {
        let ip: IpAddr = text.parse().expect("ip");
        assert!(!forbidden_address(ip), "{text} must pass");
    }
}

#[test]
fn only_http_urls_without_credentials_pass() {
    assert!(check_url("https://example.com/hook").is_ok());
    assert!(check_url("http://example.com:8080/").is_ok());
    assert_eq!(check_url("ftp://example.com/"), Err(UrlError::NotHttp));
    assert_eq!(check_url("example.com/hook"), Err(UrlError::NotHttp));
    assert_eq!(
        check_url("https://u:p@example.com/"),
        Err(UrlError::Credentials)
    );
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
    assert_eq!(check_url(&long), Err(UrlError::TooLong));
    let url = check_url("http://[::1]:80/").expect("url");
    assert_eq!(literal_address(&url), Some("::1".parse().expect("ip")));
}
