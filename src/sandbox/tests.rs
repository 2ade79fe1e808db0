use lettre::message::MultiPart;
use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::*;
use crate::clock::SystemClock;

async fn sandbox() -> Sandbox {
    let config = SandboxConfig {
        app_secret: "secret".into(),
        pages: vec![SandboxPage {
            id: "1001".into(),
            access_token: "token".into(),
            region: None,
        }],
        webhook_url: None,
        auto_receipts: false,
        rate_per_page_per_second: DEFAULT_RATE_PER_PAGE_PER_SECOND,
        clock: SystemClock::shared(),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    Sandbox::start(config, listener)
        .await
        .expect("the sandbox starts")
}

async fn get(url: String) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.expect("the sandbox answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn mail_sent_to_the_smtp_stand_in_shows_at_get_sandbox_mail() {
    let mut sandbox = sandbox().await;
    assert_eq!(sandbox.smtp_addr(), None);
    let (status, body) = get(format!("{}/sandbox/mail", sandbox.base_url())).await;
    assert_eq!(
        (status, body),
        (200, json!({"data": []})),
        "empty before it starts"
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = sandbox.start_smtp(listener).expect("the stand-in starts");
    assert_eq!(sandbox.smtp_addr(), Some(address));
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(address.port())
        .tls(Tls::None)
        .build();
    for to in ["ada@example.com", "bob@example.com"] {
        let email = Message::builder()
            .from("Shop <orders@shop.example>".parse().expect("from"))
            .to(to.parse().expect("to"))
            .subject(format!("For {to}"))
            .multipart(MultiPart::alternative_plain_html(
                "text".to_owned(),
                "<p>html</p>".to_owned(),
            ))
            .expect("an email");
        mailer.send(email).await.expect("taken");
    }

    let (status, all) = get(format!("{}/sandbox/mail", sandbox.base_url())).await;
    assert_eq!(status, 200);
    let subjects: Vec<&str> = all["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|email| email["subject"].as_str())
        .collect();
    assert_eq!(
        subjects,
        ["For ada@example.com", "For bob@example.com"],
        "oldest first"
    );
    let first = &all["data"][0];
    assert_eq!(first["from"], "orders@shop.example");
    assert_eq!(first["to"], json!(["ada@example.com"]));
    assert_eq!(first["header_from"], "Shop <orders@shop.example>");
    assert_eq!(first["text"], "text");
    assert_eq!(first["html"], "<p>html</p>");
    assert!(first["received_at"].is_string(), "{first}");

    let (status, bob) = get(format!(
        "{}/sandbox/mail?to=Bob@Example.com",
        sandbox.base_url()
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(bob["data"].as_array().map(Vec::len), Some(1), "{bob}");
    assert_eq!(bob["data"][0]["subject"], "For bob@example.com");
    assert_eq!(sandbox.mail(Some("bob@example.com")).len(), 1);

    let (status, _) = get(format!("{}/sandbox/mail?from=x", sandbox.base_url())).await;
    assert_eq!(status, 400, "an unknown filter is refused, not ignored");
    let second = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    assert!(
        sandbox.start_smtp(second).is_err(),
        "one stand-in per sandbox"
    );
    sandbox.stop().await;
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "the stand-in stops with the sandbox"
    );
}
