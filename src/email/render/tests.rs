use serde_json::{json, Value as Json};

use super::super::context::format_money;
use super::*;
use crate::domain::{Receipt, ShippingUpdate, Violations};

fn templates() -> EmailTemplates {
    EmailTemplates::load(None).expect("the built-in templates load")
}

fn render(content: &Content, category: Category) -> RenderedEmail {
    templates()
        .render(&EmailContext {
            content,
            category,
            message_id: "msg_01TEST",
            sender_name: Some("Shop"),
        })
        .expect("renders")
}

fn order() -> Json {
    json!({
        "order_number": "A-1001", "currency": "EUR", "payment_method": "Visa 2345",
        "recipient_name": "Ada Lovelace",
        "summary": {"subtotal": 55, "shipping_cost": 4.9, "total_tax": "9.56", "total_cost": 59.9},
        "elements": [
            {"title": "Teapot", "quantity": 2, "price": 40},
            {"title": "Tea towel", "price": "15"}
        ]
    })
}

fn receipt(order: &Json) -> Content {
    let mut violations = Violations::default();
    let receipt = Receipt::parse(order, "order", &mut violations).expect("a valid order");
    Content::Receipt(Box::new(receipt))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write a template");
}

#[test]
fn a_receipt_shows_its_order_number_lines_and_totals_in_text_and_html() {
    let email = render(&receipt(&order()), Category::Receipt);
    assert_eq!(email.subject, "Your receipt for order A-1001");
    let html = email.html.expect("an HTML part");
    for part in [&email.text, &html] {
        for expected in [
            "A-1001",
            "Teapot",
            "Tea towel",
            "40.00 EUR",
            "15.00 EUR",
            "55.00 EUR",
            "4.90 EUR",
            "9.56 EUR",
            "59.90 EUR",
            "Visa 2345",
        ] {
            assert!(
                part.contains(expected),
                "{expected:?} missing from:\n{part}"
            );
        }
    }
    assert!(
        email.text.contains("2 × Teapot: 40.00 EUR"),
        "{}",
        email.text
    );
    assert!(
        email.text.contains("1 × Tea towel: 15.00 EUR"),
        "{}",
        email.text
    );
    assert!(email.text.contains("Total: 59.90 EUR"), "{}", email.text);
    assert!(
        email.text.contains("Reference: msg_01TEST"),
        "{}",
        email.text
    );
}

#[test]
fn html_escapes_what_the_order_says_and_text_keeps_it_as_written() {
    let mut order = order();
    order["elements"][0]["title"] = json!("<script>alert(1)</script> & more");
    let email = render(&receipt(&order), Category::Receipt);
    let html = email.html.expect("an HTML part");
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
        "{html}"
    );
    assert!(
        email.text.contains("<script>alert(1)</script> & more"),
        "{}",
        email.text
    );
}

#[test]
fn a_shipping_update_shows_its_status_and_tracking() {
    let update = Content::ShippingUpdate(ShippingUpdate {
        order_number: "A-1001".into(),
        status: crate::domain::ShippingStatus::OutForDelivery,
        carrier: Some("DHL".into()),
        tracking_number: Some("0034043416".into()),
        tracking_url: Some("https://track.example/0034043416?a=1&b=2".into()),
        estimated_delivery: None,
    });
    let email = render(&update, Category::ShippingUpdate);
    assert_eq!(email.subject, "Your order A-1001 is out for delivery");
    let html = email.html.expect("an HTML part");
    assert!(
        email
            .text
            .contains("Track your package: https://track.example/0034043416?a=1&b=2"),
        "{}",
        email.text
    );
    assert!(
        email.text.contains("Tracking number: 0034043416"),
        "{}",
        email.text
    );
    assert!(
        html.contains(r#"href="https://track.example/0034043416?a=1&amp;b=2""#),
        "{html}"
    );
    assert!(html.contains("0034043416"), "{html}");
}

#[test]
fn a_messenger_receipt_template_renders_as_a_receipt() {
    let mut payload = order();
    payload["template_type"] = json!("receipt");
    let message = Content::Message(json!({"attachment": {"type": "template", "payload": payload}}));
    let from_message = render(&message, Category::Receipt);
    let from_receipt = render(&receipt(&order()), Category::Receipt);
    assert_eq!(from_message, from_receipt);
}

#[test]
fn a_text_message_reads_as_written_under_the_senders_name() {
    let message = Content::Message(json!({
        "text": "Your password was changed.\nNot you? Write to us.",
        "quick_replies": [{"content_type": "text", "title": "Thanks", "payload": "THANKS"}]
    }));
    let email = render(&message, Category::AccountUpdate);
    assert_eq!(email.subject, "A message from Shop");
    assert!(
        email
            .text
            .starts_with("Your password was changed.\nNot you? Write to us.\n"),
        "{}",
        email.text
    );
    assert!(
        !email.text.contains("Thanks"),
        "quick replies are left out: {}",
        email.text
    );
    let html = email.html.expect("an HTML part");
    assert!(html.contains("Your password was changed."), "{html}");
}

#[test]
fn a_message_without_a_sender_name_gets_a_generic_subject() {
    let message = Content::Message(json!({"text": "hi"}));
    let email = templates()
        .render(&EmailContext {
            content: &message,
            category: Category::Response,
            message_id: "msg_1",
            sender_name: None,
        })
        .expect("renders");
    assert_eq!(email.subject, "A new message for you");
}

#[test]
fn button_links_are_kept_and_other_schemes_dropped() {
    let message = Content::Message(json!({"attachment": {"type": "template", "payload": {
    "template_type": "button", "text": "Your booking is confirmed.",
    "buttons": [
        {"type": "web_url", "url": "https://shop.example/b/1", "title": "See your booking"},
        {"type": "web_url", "url": "javascript:alert(1)", "title": "Evil"},
        {"type": "postback", "payload": "CANCEL", "title": "Cancel it"}
    ]}}}));
    let email = render(&message, Category::EventUpdate);
    assert!(
        email.text.contains("Your booking is confirmed."),
        "{}",
        email.text
    );
    assert!(
        email
            .text
            .contains("See your booking: https://shop.example/b/1"),
        "{}",
        email.text
    );
    let html = email.html.expect("an HTML part");
    assert!(
        html.contains(r#"<a href="https://shop.example/b/1""#),
        "{html}"
    );
    for part in [&email.text, &html] {
        assert!(!part.contains("javascript:"), "{part}");
        assert!(!part.contains("Cancel it"), "{part}");
    }
}

#[test]
fn a_utility_template_names_itself_and_its_parameters() {
    let message = Content::Message(json!({"template": {
        "name": "order_ready", "language": "en_US", "parameters": ["A-1001", 3]}}));
    let email = render(&message, Category::AccountUpdate);
    for expected in ["order_ready", "A-1001", "3"] {
        assert!(
            email.text.contains(expected),
            "{expected:?} missing from:\n{}",
            email.text
        );
    }
}

#[test]
fn money_has_the_currencys_decimals() {
    let cases = [
        (json!(59.9), "EUR", "59.90 EUR"),
        (json!(40), "USD", "40.00 USD"),
        (json!(-5), "EUR", "-5.00 EUR"),
        (json!(-0.001), "EUR", "0.00 EUR"),
        (json!(0.005), "EUR", "0.01 EUR"),
        (json!(1500), "JPY", "1500 JPY"),
        (json!(12.5), "KWD", "12.500 KWD"),
        (json!(1_000_000_000_000_u64), "EUR", "1000000000000.00 EUR"),
    ];
    for (amount, currency, expected) in cases {
        let Json::Number(number) = &amount else {
            panic!("{amount} is a number");
        };
        assert_eq!(
            format_money(number, currency),
            expected,
            "{amount} {currency}"
        );
    }
}

#[test]
fn a_template_in_the_folder_replaces_the_built_in_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "receipt.subject.txt",
        "Order {{ order_number }}: {{ total_cost }}\n",
    );
    write(dir.path(), "receipt.html", "");
    write(dir.path(), "notes.md", "not a template, ignored");
    let templates = EmailTemplates::load(Some(dir.path())).expect("loads");
    let email = templates
        .render(&EmailContext {
            content: &receipt(&order()),
            category: Category::Receipt,
            message_id: "msg_1",
            sender_name: None,
        })
        .expect("renders");
    assert_eq!(email.subject, "Order A-1001: 59.90 EUR");
    assert_eq!(
        email.html, None,
        "an empty HTML template makes a text-only email"
    );
    assert!(
        email.text.contains("Total: 59.90 EUR"),
        "the built-in text stays: {}",
        email.text
    );
}

#[test]
fn an_absent_value_prints_as_nothing_and_a_subject_is_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "shipping_update.subject.txt",
        "Order {{ order_number }}\n{{ status_phrase }}\n",
    );
    write(
        dir.path(),
        "shipping_update.txt",
        "Carrier: [{{ carrier }}]",
    );
    write(
        dir.path(),
        "shipping_update.html",
        "<p>Carrier: [{{ carrier }}]</p>",
    );
    let templates = EmailTemplates::load(Some(dir.path())).expect("loads");
    let update = Content::ShippingUpdate(ShippingUpdate {
        order_number: "A-1001".into(),
        status: crate::domain::ShippingStatus::Delivered,
        carrier: None,
        tracking_number: None,
        tracking_url: None,
        estimated_delivery: None,
    });
    let email = templates
        .render(&EmailContext {
            content: &update,
            category: Category::ShippingUpdate,
            message_id: "msg_1",
            sender_name: None,
        })
        .expect("renders");
    assert_eq!(email.subject, "Order A-1001 has been delivered");
    assert_eq!(email.text, "Carrier: []\n");
    assert_eq!(email.html.as_deref(), Some("<p>Carrier: []</p>"));
}

#[test]
fn an_unknown_template_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "reciept.txt", "Order {{ order_number }}");
    let error = EmailTemplates::load(Some(dir.path())).expect_err("a typo is refused");
    assert!(error.file().ends_with("reciept.txt"), "{error}");
    let shown = error.to_string();
    assert!(shown.contains("did you mean receipt.txt?"), "{shown}");
}

#[test]
fn a_syntax_error_names_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "shipping_update.txt",
        "Your order\n{{ order_number }\nis on its way\n",
    );
    let error = EmailTemplates::load(Some(dir.path())).expect_err("does not parse");
    assert!(error.file().ends_with("shipping_update.txt"), "{error}");
    assert_eq!(error.line(), Some(2), "{error}");
    let shown = error.to_string();
    assert!(
        shown.contains("shipping_update.txt, line 2: syntax error"),
        "{shown}"
    );
}

#[test]
fn an_unknown_filter_or_variable_fails_at_load_not_at_the_first_fallback() {
    for (text, expected) in [
        ("{{ order_number | shout }}", "unknown filter"),
        ("{{ order_numbr }}", "undefined"),
        (
            "{% for line in lines %}{{ line.sku }}{% endfor %}",
            "undefined",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "receipt.txt", text);
        let error = EmailTemplates::load(Some(dir.path())).expect_err(text);
        assert!(error.file().ends_with("receipt.txt"), "{text}: {error}");
        assert_eq!(error.line(), Some(1), "{text}: {error}");
        assert!(error.to_string().contains(expected), "{text}: {error}");
    }
}

#[test]
fn loaded_templates_can_be_shared_by_the_delivery_tasks() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<EmailTemplates>();
}

#[test]
fn a_missing_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let error = EmailTemplates::load(Some(&missing)).expect_err("no folder");
    assert!(error.file().ends_with("nope"), "{error}");
}
