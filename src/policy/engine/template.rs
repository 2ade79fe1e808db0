//! A utility template for a message outside the window: the policy's, filled from the order
//! or the shipment's named fields, or the one the client gave.

use std::borrow::Cow;

use serde_json::{Number, Value};

use super::Eval;
use crate::domain::{Content, Receipt, ShippingStatus, ShippingUpdate, UtilityTemplate};
use crate::policy::model::TemplateSpec;

impl<'a> Eval<'a> {
    /// The utility template for this message: the policy's, filled from the order or shipment,
    /// for structured content; otherwise the one the client gave.
    pub(super) fn template(
        &self,
        spec: Option<&TemplateSpec>,
    ) -> Option<(UtilityTemplate, Cow<'static, str>)> {
        let content = &self.message.content;
        let structured = match content {
            Content::Receipt(_) | Content::ShippingUpdate(_) => true,
            Content::Message(_) => false,
        };
        if !structured {
            if let Some(t) = &self.message.utility_template {
                let detail = format!(
                    "outside the window: UTILITY with the request's template {} ({})",
                    t.name, t.language
                );
                return Some((t.clone(), detail.into()));
            }
        }
        let spec = spec?;
        if !(structured || content.is_receipt()) {
            return None;
        }
        let parameters = spec
            .parameters
            .iter()
            .map(|p| field(content, p).unwrap_or_else(|| spec.when_missing.clone()))
            .collect();
        Some((
            UtilityTemplate {
                name: spec.name.clone(),
                language: spec.language.clone(),
                parameters,
            },
            spec.detail.clone().into(),
        ))
    }
}

/// A named field of the message's order or shipment, as template text; `None` when absent.
fn field(content: &Content, name: &str) -> Option<String> {
    let value = match content {
        Content::Receipt(r) => receipt_field(r, name),
        Content::ShippingUpdate(s) => shipping_field(s, name),
        Content::Message(m) => receipt_json_field(m.pointer("/attachment/payload")?, name),
    };
    value.filter(|v| !v.trim().is_empty())
}

fn receipt_field(r: &Receipt, name: &str) -> Option<String> {
    match name {
        "recipient_name" => Some(r.recipient_name.clone()),
        "order_number" => Some(r.order_number.clone()),
        "currency" => Some(r.currency.clone()),
        "payment_method" => Some(r.payment_method.clone()),
        "merchant_name" => r.merchant_name.clone(),
        "order_url" => r.order_url.clone(),
        "timestamp" => r.timestamp.clone(),
        "total_cost" => Some(amount(&r.summary.total_cost)),
        "subtotal" => r.summary.subtotal.as_ref().map(amount),
        "shipping_cost" => r.summary.shipping_cost.as_ref().map(amount),
        "total_tax" => r.summary.total_tax.as_ref().map(amount),
        _ => None,
    }
}

fn receipt_json_field(payload: &Value, name: &str) -> Option<String> {
    let value = match name {
        "total_cost" | "subtotal" | "shipping_cost" | "total_tax" => {
            payload.get("summary")?.get(name)?
        }
        _ => payload.get(name)?,
    };
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(amount(n)),
        _ => None,
    }
}

fn shipping_field(s: &ShippingUpdate, name: &str) -> Option<String> {
    match name {
        "order_number" => Some(s.order_number.clone()),
        "status" => Some(s.status.phrase().to_owned()),
        "status_code" => Some(status_code(s.status).to_owned()),
        "carrier" => s.carrier.clone(),
        "tracking_number" => s.tracking_number.clone(),
        "tracking_url" => s.tracking_url.clone(),
        "estimated_delivery" => s.estimated_delivery.clone(),
        _ => None,
    }
}

fn status_code(s: ShippingStatus) -> &'static str {
    match s {
        ShippingStatus::Shipped => "shipped",
        ShippingStatus::InTransit => "in_transit",
        ShippingStatus::OutForDelivery => "out_for_delivery",
        ShippingStatus::Delivered => "delivered",
        ShippingStatus::Delayed => "delayed",
        ShippingStatus::Returned => "returned",
    }
}

/// Money as people read it: `42.50` rather than `42.5`; whole numbers and finer amounts as
/// given. Works on the number's own text, so no float is rounded along the way.
fn amount(n: &Number) -> String {
    let mut s = n.to_string();
    if s.find('.').is_some_and(|dot| s.len() - dot == 2) {
        s.push('0');
    }
    s
}
