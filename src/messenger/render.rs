//! Turning an accepted message and its decision into the Send API request body.

use serde_json::{json, Map, Value};

use crate::domain::decision::{Decision, MessagingType};
use crate::domain::{Content, Receipt, Recipient, ShippingUpdate, UtilityTemplate};

/// Who the Send API call addresses.
#[derive(Debug, Clone, Copy)]
pub enum RenderTarget<'a> {
    Recipient(&'a Recipient),
    /// A Marketing Messages token in place of the PSID.
    MarketingToken(&'a str),
}

/// The Send API body for `content` as `decision` says it must go.
pub fn render(content: &Content, decision: &Decision, target: RenderTarget<'_>) -> Value {
    let mut body = Map::new();
    body.insert(
        "recipient".into(),
        match target {
            RenderTarget::Recipient(Recipient::Psid(p)) => json!({"id": p.as_str()}),
            RenderTarget::Recipient(Recipient::UserRef(r)) => json!({"user_ref": r}),
            RenderTarget::MarketingToken(t) => json!({"notification_messages_token": t}),
        },
    );
    if let Some(kind) = decision.messaging_type {
        body.insert("messaging_type".into(), json!(kind.as_str()));
    }
    if let Some(tag) = decision.tag {
        body.insert("tag".into(), json!(tag.as_str()));
    }
    let message = match (&decision.utility_template, decision.messaging_type) {
        (Some(template), Some(MessagingType::Utility)) => utility(template),
        _ => match content {
            Content::Message(m) => m.clone(),
            Content::Receipt(r) => receipt(r),
            Content::ShippingUpdate(s) => shipping(s),
        },
    };
    body.insert("message".into(), message);
    Value::Object(body)
}

/// `message.template` of a utility message (MESSENGER.md §1.4).
fn utility(t: &UtilityTemplate) -> Value {
    let parameters: Vec<Value> = t
        .parameters
        .iter()
        .map(|p| json!({"type": "text", "text": p}))
        .collect();
    let mut components = Vec::new();
    if !parameters.is_empty() {
        components.push(json!({"type": "body", "parameters": parameters}));
    }
    json!({"template": {"name": t.name, "language": {"code": t.language}, "components": components}})
}

fn receipt(r: &Receipt) -> Value {
    let mut payload = match serde_json::to_value(r) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    payload.insert("template_type".into(), json!("receipt"));
    json!({"attachment": {"type": "template", "payload": Value::Object(payload)}})
}

/// The sentence a shipping update reads as.
pub fn shipping_text(s: &ShippingUpdate) -> String {
    let mut text = format!("Your order {} {}.", s.order_number, s.status.phrase());
    match (&s.carrier, &s.tracking_number) {
        (Some(c), Some(n)) => text.push_str(&format!(" {c} tracking number: {n}.")),
        (None, Some(n)) => text.push_str(&format!(" Tracking number: {n}.")),
        (Some(c), None) => text.push_str(&format!(" Carrier: {c}.")),
        (None, None) => {}
    }
    if let Some(eta) = &s.estimated_delivery {
        text.push_str(&format!(" Estimated delivery: {eta}."));
    }
    text
}

fn shipping(s: &ShippingUpdate) -> Value {
    let text = shipping_text(s);
    match &s.tracking_url {
        Some(url) => json!({"attachment": {"type": "template", "payload": {
            "template_type": "button",
            "text": text,
            "buttons": [{"type": "web_url", "url": url, "title": "Track package"}]
        }}}),
        None => json!({ "text": text }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decision::{Outcome, Reason, Tag, Via};
    use crate::domain::{Psid, ShippingStatus};

    fn decision(kind: MessagingType, template: Option<UtilityTemplate>) -> Decision {
        Decision {
            outcome: Outcome::Allow,
            reason: Reason::Ok,
            rule: "r".into(),
            policy_version: "v".into(),
            messaging_type: Some(kind),
            tag: (kind == MessagingType::MessageTag).then_some(Tag::PostPurchaseUpdate),
            utility_template: template,
            via: Via::Recipient,
            not_before: None,
            consent: None,
            trace: vec![],
        }
    }

    fn update(url: Option<&str>) -> Content {
        Content::ShippingUpdate(ShippingUpdate {
            order_number: "A-1".into(),
            status: ShippingStatus::OutForDelivery,
            carrier: Some("DHL".into()),
            tracking_number: Some("123".into()),
            tracking_url: url.map(Into::into),
            estimated_delivery: None,
        })
    }

    #[test]
    fn a_shipping_update_with_a_url_gets_a_tracking_button() {
        let to = Recipient::Psid(Psid::parse("7").expect("psid"));
        let body = render(
            &update(Some("https://t.example/123")),
            &decision(MessagingType::Update, None),
            RenderTarget::Recipient(&to),
        );
        assert_eq!(body["recipient"]["id"], "7");
        assert_eq!(body["messaging_type"], "UPDATE");
        let payload = &body["message"]["attachment"]["payload"];
        assert_eq!(payload["buttons"][0]["url"], "https://t.example/123");
        assert_eq!(
            payload["text"],
            "Your order A-1 is out for delivery. DHL tracking number: 123."
        );
        let plain = render(
            &update(None),
            &decision(MessagingType::Update, None),
            RenderTarget::Recipient(&to),
        );
        assert!(plain["message"]["text"].is_string());
    }

    #[test]
    fn a_utility_decision_sends_the_template_not_the_content() {
        let to = Recipient::Psid(Psid::parse("7").expect("psid"));
        let template = UtilityTemplate {
            name: "shipping_update_v1".into(),
            language: "en_US".into(),
            parameters: vec!["A-1".into(), "out for delivery".into()],
        };
        let body = render(
            &update(None),
            &decision(MessagingType::Utility, Some(template)),
            RenderTarget::Recipient(&to),
        );
        assert_eq!(body["messaging_type"], "UTILITY");
        assert!(body.get("tag").is_none());
        let t = &body["message"]["template"];
        assert_eq!(t["name"], "shipping_update_v1");
        assert_eq!(t["language"]["code"], "en_US");
        assert_eq!(
            t["components"][0]["parameters"][1]["text"],
            "out for delivery"
        );
    }
}
