//! The fixed sample values a case's message is made of: the recipient's PSID and the contents
//! a case names by kind (`content = "receipt"`), as described in the header of
//! `policies/tests/default.toml`.

use serde_json::json;

use crate::domain::{Content, Receipt, ShippingUpdate};

/// The contents a case may name, in the order a refusal lists them.
pub(super) const CONTENTS: [&str; 5] = [
    "text",
    "receipt",
    "receipt_template",
    "shipping_update",
    "shipping_update_without_tracking",
];

/// The PSID every case's recipient has.
pub(super) const TEST_PSID: &str = "1000000000000001";

/// The content a case's `content` names, with fixed sample values (see the test file's header).
pub(super) fn content_of(kind: &str) -> Option<Content> {
    let order = json!({
        "order_number": "A-1001",
        "currency": "EUR",
        "payment_method": "Visa 2345",
        "recipient_name": "Ada Lovelace",
        "summary": { "subtotal": 40.0, "shipping_cost": 2.5, "total_cost": 42.5 },
        "elements": [ { "title": "Teapot", "quantity": 1, "price": 40.0 } ]
    });
    let shipment = json!({
        "order_number": "A-1001",
        "status": "in_transit",
        "carrier": "DHL",
        "tracking_number": "JD014600003828",
    });
    match kind {
        "text" => Some(Content::Message(
            json!({ "text": "Hello from the policy tests" }),
        )),
        "receipt" => serde_json::from_value::<Receipt>(order)
            .ok()
            .map(|r| Content::Receipt(Box::new(r))),
        "receipt_template" => {
            let mut payload = order;
            payload["template_type"] = json!("receipt");
            Some(Content::Message(json!({
                "attachment": { "type": "template", "payload": payload }
            })))
        }
        "shipping_update" => serde_json::from_value::<ShippingUpdate>(shipment)
            .ok()
            .map(Content::ShippingUpdate),
        "shipping_update_without_tracking" => {
            let mut s = shipment;
            if let Some(m) = s.as_object_mut() {
                m.remove("tracking_number");
            }
            serde_json::from_value::<ShippingUpdate>(s)
                .ok()
                .map(Content::ShippingUpdate)
        }
        _ => None,
    }
}
