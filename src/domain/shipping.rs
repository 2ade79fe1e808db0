use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{required_text, text};
use super::receipt::check_url;
use super::{ShippingUpdateRequest, Violations};

/// Where a shipment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShippingStatus {
    Shipped,
    InTransit,
    OutForDelivery,
    Delivered,
    Delayed,
    Returned,
}

impl ShippingStatus {
    const ALL: [(ShippingStatus, &'static str, &'static str); 6] = [
        (ShippingStatus::Shipped, "shipped", "has shipped"),
        (ShippingStatus::InTransit, "in_transit", "is on its way"),
        (
            ShippingStatus::OutForDelivery,
            "out_for_delivery",
            "is out for delivery",
        ),
        (ShippingStatus::Delivered, "delivered", "has been delivered"),
        (ShippingStatus::Delayed, "delayed", "is delayed"),
        (ShippingStatus::Returned, "returned", "has been returned"),
    ];

    fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n, _)| *n == s)
            .map(|(st, _, _)| *st)
    }

    /// How the status reads in a sentence: "Your order A-1 {phrase}."
    pub fn phrase(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(st, _, _)| *st == self)
            .map_or("", |(_, _, p)| p)
    }
}

/// A shipment status change, rendered as text plus a tracking button when a URL is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShippingUpdate {
    pub order_number: String,
    pub status: ShippingStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_delivery: Option<String>,
}

impl ShippingUpdate {
    /// Parses the body of `POST /v1/shipping-updates` (all but the fields every send has).
    pub fn parse(body: &ShippingUpdateRequest, v: &mut Violations) -> Option<ShippingUpdate> {
        let before = v.is_empty();
        let status = match &body.status {
            None => {
                v.push("status", "is required");
                None
            }
            Some(s) => {
                let parsed = s.as_str().and_then(ShippingStatus::parse);
                if parsed.is_none() {
                    v.push(
                        "status",
                        "must be one of shipped, in_transit, out_for_delivery, delivered, delayed, returned",
                    );
                }
                parsed
            }
        };
        let optional = |value: &Option<Value>, path: &str, max: usize, v: &mut Violations| {
            value.as_ref().and_then(|value| text(value, path, max, v))
        };
        let update = ShippingUpdate {
            order_number: required_text(body.order_number.as_ref(), "order_number", 80, v),
            status: status.unwrap_or(ShippingStatus::Shipped),
            carrier: optional(&body.carrier, "carrier", 80, v),
            tracking_number: optional(&body.tracking_number, "tracking_number", 80, v),
            tracking_url: optional(&body.tracking_url, "tracking_url", 2000, v),
            estimated_delivery: optional(&body.estimated_delivery, "estimated_delivery", 40, v),
        };
        if let Some(url) = &update.tracking_url {
            check_url(v, "tracking_url", url);
        }
        (before && v.is_empty()).then_some(update)
    }
}
