use serde_json::json;

use super::*;
use crate::auth::Client;
use crate::domain::Role;
use crate::domain::{Category, Psid};
use crate::policy::{MessagingType, PolicySet};

fn policy() -> PolicySet {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    PolicySet::load_dir(&dir).expect("the default policy loads")
}

fn command(params: Value, declared: Option<Category>) -> Result<GraphCommand, SendApiError> {
    let Value::Object(params) = params else {
        panic!("params must be an object")
    };
    let request = SendApiRequest::parse(&GraphSendRequest::read(params)?)?;
    let policy = policy();
    GraphCommand::try_from(GraphSend {
        request,
        client: Client {
            name: "shop".into(),
            role: Role::Backend,
        },
        page_id: None,
        declared,
        token_owner: Psid::parse("42").ok(),
        policy: &policy,
    })
}

fn category_of(params: Value, declared: Option<Category>) -> Category {
    match command(params.clone(), declared) {
        Ok(GraphCommand::Send(cmd)) => cmd.message.category,
        other => panic!("{params}: {other:?}"),
    }
}

#[test]
fn the_category_follows_from_the_request() {
    let text = json!({"text": "hi"});
    let receipt = json!({"attachment": {"type": "template", "payload": {
        "template_type": "receipt", "recipient_name": "Ada", "order_number": "A-1",
        "currency": "EUR", "payment_method": "Visa", "summary": {"total_cost": 1}}}});
    let utility = |name: &str| json!({"template": {"name": name, "language": {"code": "en_US"}}});
    let id = json!({"id": "123"});
    let cases = [
        (
            "HUMAN_AGENT",
            json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT", "message": text}),
            None,
            Category::AgentReply,
        ),
        (
            "token recipient",
            json!({"recipient": {"notification_messages_token": "T"}, "message": text}),
            None,
            Category::Marketing,
        ),
        (
            "receipt template",
            json!({"recipient": id, "messaging_type": "UPDATE", "message": receipt}),
            None,
            Category::Receipt,
        ),
        (
            "RESPONSE",
            json!({"recipient": id, "messaging_type": "RESPONSE", "message": text}),
            None,
            Category::Response,
        ),
        (
            "no messaging_type (pymessenger)",
            json!({"recipient": id, "message": text}),
            None,
            Category::Response,
        ),
        (
            "UPDATE",
            json!({"recipient": id, "messaging_type": "UPDATE", "message": text}),
            None,
            Category::Marketing,
        ),
        (
            "UPDATE declared",
            json!({"recipient": id, "messaging_type": "UPDATE", "message": text}),
            Some(Category::AccountUpdate),
            Category::AccountUpdate,
        ),
        (
            "UTILITY, the policy's receipt template",
            json!({"recipient": id, "messaging_type": "UTILITY", "message": utility("herald_order_receipt")}),
            None,
            Category::Receipt,
        ),
        (
            "UTILITY, the policy's shipping template",
            json!({"recipient": id, "messaging_type": "UTILITY", "message": utility("herald_shipping_update")}),
            None,
            Category::ShippingUpdate,
        ),
        (
            "UTILITY, a client template declared",
            json!({"recipient": id, "messaging_type": "UTILITY", "message": utility("password_reset")}),
            Some(Category::AccountUpdate),
            Category::AccountUpdate,
        ),
        (
            "POST_PURCHASE_UPDATE",
            json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "POST_PURCHASE_UPDATE", "message": text}),
            None,
            Category::ShippingUpdate,
        ),
        (
            "POST_PURCHASE_UPDATE with a receipt",
            json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "POST_PURCHASE_UPDATE", "message": receipt}),
            None,
            Category::Receipt,
        ),
        (
            "ACCOUNT_UPDATE",
            json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "ACCOUNT_UPDATE", "message": text}),
            None,
            Category::AccountUpdate,
        ),
        (
            "CONFIRMED_EVENT_UPDATE",
            json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "CONFIRMED_EVENT_UPDATE", "message": text}),
            None,
            Category::EventUpdate,
        ),
    ];
    for (what, params, declared, expected) in cases {
        assert_eq!(category_of(params, declared), expected, "{what}");
    }
}

#[test]
fn bad_requests_name_the_parameter() {
    let cases = [
        (json!({"message": {"text": "hi"}}), "recipient"),
        (
            json!({"recipient": {"id": "1", "user_ref": "u"}, "message": {"text": "hi"}}),
            "recipient",
        ),
        (
            json!({"recipient": {"id": "1"}, "message": {"text": "x".repeat(2000)}}),
            "message[text]",
        ),
        (
            json!({"recipient": {"id": "1"}, "messaging_type": "SOMETIMES", "message": {"text": "hi"}}),
            "messaging_type",
        ),
        (
            json!({"recipient": {"id": "1"}, "messaging_type": "MESSAGE_TAG", "message": {"text": "hi"}}),
            "tag",
        ),
        (
            json!({"recipient": {"id": "1"}, "message": {"text": "hi"}, "sender_action": "typing_on"}),
            "sender_action",
        ),
        (
            json!({"recipient": {"id": "1"}, "message": {"attachment": {"type": "image", "payload": {"url": "https://x.example/a.png", "is_reusable": true}}}}),
            "message[attachment][payload][is_reusable]",
        ),
        (
            json!({"recipient": {"id": "1"}, "messaging_type": "UTILITY", "message": {"template": {"name": "nobody_knows", "language": {"code": "en_US"}}}}),
            "message[template][name]",
        ),
        (
            json!({"recipient": {"comment_id": "1"}, "message": {"text": "hi"}}),
            "recipient[comment_id]",
        ),
        (
            json!({"recipient": {"id": "1"}, "message": {"text": "hi"}, "persona_id": "9"}),
            "persona_id",
        ),
    ];
    for (params, field) in cases {
        match command(params.clone(), None) {
            Err(e) => assert_eq!(e.field, field, "{params}: {e}"),
            Ok(cmd) => panic!("{params} was taken: {cmd:?}"),
        }
    }
}

#[test]
fn form_fields_holding_json_decode_as_json() {
    let body = b"recipient=%7B%27id%27%3A%27123%27%7D&message=%7B%22text%22%3A%22hi%22%7D&messaging_type=RESPONSE";
    let params = decode_params(
        "access_token=t&appsecret_proof=p",
        Some("application/x-www-form-urlencoded"),
        body,
    )
    .expect("decodes");
    assert_eq!(params.recipient, Some(json!({"id": "123"})));
    assert_eq!(params.message, Some(json!({"text": "hi"})));
    assert_eq!(params.access_token, Some(json!("t")));
    let request = SendApiRequest::parse(&params).expect("parses");
    assert_eq!(request.messaging_type, Some(MessagingType::Response));
}

#[test]
fn graph_paths_use_brackets() {
    assert_eq!(graph_path("message.text"), "message[text]");
    assert_eq!(
        graph_path("message.quick_replies[0].title"),
        "message[quick_replies][0][title]"
    );
    assert_eq!(graph_path("message"), "message");
}
