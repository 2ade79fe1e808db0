use serde_json::json;

use super::*;

fn parse(body: Value) -> Result<SendRequest, (u32, Option<u32>)> {
    let Value::Object(params) = body else {
        panic!("test bodies are objects");
    };
    parse_send_request(&params).map_err(|error| (error.code, error.subcode))
}

fn text_to(psid: &str) -> Value {
    json!({"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": {"text": "hi"}})
}

fn receipt() -> Value {
    json!({
        "template_type": "receipt", "recipient_name": "Ada", "order_number": "A1",
        "currency": "EUR", "payment_method": "Visa 1234", "summary": {"total_cost": 12.5},
        "elements": [{"title": "Tea", "price": 12.5}]
    })
}

fn with_receipt(payload: Value) -> Value {
    json!({"recipient": {"id": "1"}, "messaging_type": "UPDATE",
           "message": {"attachment": {"type": "template", "payload": payload}}})
}

#[test]
fn a_plain_text_response_parses() {
    let request = parse(text_to("123")).expect("valid");
    assert_eq!(request.recipient, Recipient::Psid("123".to_owned()));
    assert_eq!(request.purpose, Purpose::Standard);
    assert_eq!(request.content, Content::Message);
}

#[test]
fn shape_errors_answer_code_100_with_messengers_subcodes() {
    let long_text = "x".repeat(2000);
    let replies: Vec<Value> = (0..14)
        .map(|i| json!({"content_type": "text", "title": "t", "payload": i.to_string()}))
        .collect();
    let cases = [
        (
            "no recipient",
            json!({"message": {"text": "hi"}}),
            (100, None),
        ),
        (
            "two recipient forms",
            json!({"recipient": {"id": "1", "user_ref": "u"}, "message": {"text": "hi"}}),
            (100, None),
        ),
        (
            "message and sender_action",
            json!({"recipient": {"id": "1"}, "message": {"text": "hi"}, "sender_action": "typing_on"}),
            (100, Some(2018014)),
        ),
        ("neither", json!({"recipient": {"id": "1"}}), (100, None)),
        (
            "empty message",
            json!({"recipient": {"id": "1"}, "message": {}}),
            (100, Some(2018034)),
        ),
        (
            "text and attachment",
            json!({"recipient": {"id": "1"}, "message": {"text": "hi",
                "attachment": {"type": "image", "payload": {"url": "https://x"}}}}),
            (100, None),
        ),
        (
            "text of 2000 characters",
            json!({"recipient": {"id": "1"}, "message": {"text": long_text}}),
            (100, None),
        ),
        (
            "metadata of 1000 characters",
            json!({"recipient": {"id": "1"}, "message": {"text": "hi", "metadata": "m".repeat(1000)}}),
            (100, None),
        ),
        (
            "14 quick replies",
            json!({"recipient": {"id": "1"}, "message": {"text": "hi", "quick_replies": replies}}),
            (100, None),
        ),
        (
            "unknown messaging_type",
            json!({"recipient": {"id": "1"}, "messaging_type": "PROMO", "message": {"text": "hi"}}),
            (100, None),
        ),
        (
            "tag without MESSAGE_TAG",
            json!({"recipient": {"id": "1"}, "messaging_type": "UPDATE", "tag": "HUMAN_AGENT",
                   "message": {"text": "hi"}}),
            (100, None),
        ),
        (
            "MESSAGE_TAG without tag",
            json!({"recipient": {"id": "1"}, "messaging_type": "MESSAGE_TAG", "message": {"text": "hi"}}),
            (100, None),
        ),
        (
            "retired 2020 tag",
            json!({"recipient": {"id": "1"}, "messaging_type": "MESSAGE_TAG",
                   "tag": "SHIPPING_UPDATE", "message": {"text": "hi"}}),
            (100, None),
        ),
        (
            "UTILITY without template",
            json!({"recipient": {"id": "1"}, "messaging_type": "UTILITY", "message": {"text": "hi"}}),
            (100, None),
        ),
        (
            "template without UTILITY",
            json!({"recipient": {"id": "1"}, "messaging_type": "UPDATE",
                   "message": {"template": {"name": "t", "language": {"code": "en"}}}}),
            (100, None),
        ),
        (
            "template without language",
            json!({"recipient": {"id": "1"}, "messaging_type": "UTILITY",
                   "message": {"template": {"name": "t"}}}),
            (100, None),
        ),
    ];
    for (case, body, expected) in cases {
        assert_eq!(parse(body).err(), Some(expected), "{case}");
    }
}

#[test]
fn limits_allow_exactly_up_to_the_maximum() {
    let replies: Vec<Value> = (0..13)
        .map(|i| json!({"content_type": "text", "title": "t", "payload": i.to_string()}))
        .collect();
    let body = json!({"recipient": {"id": "1"}, "message": {
        "text": "é".repeat(1999), "metadata": "m".repeat(999), "quick_replies": replies}});
    assert!(parse(body).is_ok());
}

#[test]
fn receipts_need_their_required_fields_and_at_most_100_elements() {
    assert!(parse(with_receipt(receipt())).is_ok());
    for field in [
        "recipient_name",
        "order_number",
        "currency",
        "payment_method",
        "summary",
    ] {
        let mut payload = receipt();
        payload.as_object_mut().map(|p| p.remove(field));
        assert_eq!(
            parse(with_receipt(payload)).err(),
            Some((100, None)),
            "{field}"
        );
    }
    let mut payload = receipt();
    payload["elements"] = json!(vec![json!({"title": "Tea", "price": 1}); 101]);
    assert_eq!(
        parse(with_receipt(payload)).err(),
        Some((100, None)),
        "101 elements"
    );
    let mut payload = receipt();
    payload["elements"] = json!([{"title": "Tea"}]);
    assert_eq!(
        parse(with_receipt(payload)).err(),
        Some((100, None)),
        "element price"
    );
    let mut payload = receipt();
    payload["address"] = json!({"street_1": "1 Main St", "city": "Paris"});
    assert_eq!(
        parse(with_receipt(payload)).err(),
        Some((100, None)),
        "partial address"
    );
}

#[test]
fn utility_templates_and_tags_give_their_purpose() {
    let utility = json!({"recipient": {"id": "1"}, "messaging_type": "UTILITY", "message": {
        "template": {"name": "order_update", "language": {"code": "en_US"},
                     "components": [{"type": "body", "parameters": [{"type": "text", "text": "A1"}]}]}}});
    assert_eq!(parse(utility).map(|r| r.purpose), Ok(Purpose::Utility));
    let tagged = json!({"recipient": {"id": "1"}, "messaging_type": "MESSAGE_TAG",
                        "tag": "HUMAN_AGENT", "message": {"text": "hi"}});
    assert_eq!(
        parse(tagged).map(|r| r.purpose),
        Ok(Purpose::Tagged(Tag::HumanAgent))
    );
}

#[test]
fn recipient_forms_are_told_apart() {
    let cases = [
        (json!({"id": 42}), Recipient::Psid("42".to_owned())),
        (
            json!({"user_ref": "u1"}),
            Recipient::UserRef("u1".to_owned()),
        ),
        (
            json!({"notification_messages_token": "t1"}),
            Recipient::MarketingToken("t1".to_owned()),
        ),
        (
            json!({"post_id": "p1"}),
            Recipient::Unmodelled {
                form: "post_id",
                value: "p1".to_owned(),
            },
        ),
    ];
    for (recipient, expected) in cases {
        let body = json!({"recipient": recipient, "message": {"text": "hi"}});
        assert_eq!(parse(body).map(|r| r.recipient), Ok(expected));
    }
}

#[test]
fn form_bodies_hold_json_strings_and_plain_scalars() {
    let body = b"recipient=%7B%27id%27%3A%27123%27%7D&messaging_type=RESPONSE\
                 &message=%7B%22text%22%3A%22it%27s%20here%22%7D&access_token=tok";
    let params = decode_params("application/x-www-form-urlencoded", body).expect("decodes");
    assert_eq!(params["recipient"], json!({"id": "123"}));
    assert_eq!(params["message"], json!({"text": "it's here"}));
    assert_eq!(params["messaging_type"], json!("RESPONSE"));
    assert_eq!(params["access_token"], json!("tok"));
    assert!(parse(Value::Object(params)).is_ok());
}

#[test]
fn json_bodies_must_be_objects() {
    assert!(decode_params("application/json", b"[1]").is_err());
    assert!(decode_params("application/json", b"{").is_err());
    assert_eq!(
        decode_params("application/json", b"").map(|p| p.len()),
        Ok(0)
    );
}
