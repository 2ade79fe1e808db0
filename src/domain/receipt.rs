use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use super::fields::Fields;
use super::Violations;

/// An order confirmation, rendered as Messenger's receipt template (MESSENGER.md §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    pub order_number: String,
    pub currency: String,
    pub payment_method: String,
    pub recipient_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<ReceiptAddress>,
    pub summary: ReceiptSummary,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<ReceiptAdjustment>,
    #[serde(default)]
    pub elements: Vec<ReceiptElement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiptAddress {
    pub street_1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub state: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiptSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub subtotal: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub shipping_cost: Option<Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub total_tax: Option<Number>,
    #[schema(value_type = f64)]
    pub total_cost: Number,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiptAdjustment {
    pub name: String,
    #[schema(value_type = f64)]
    pub amount: Number,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiptElement {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    #[schema(value_type = f64)]
    pub price: Number,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

/// Messenger renders at most this many line items.
pub const MAX_ELEMENTS: usize = 100;
const SHORT: usize = 80;
/// 9999-12-31T23:59:59Z: the last moment a receipt's `timestamp` can name.
const LAST_TIMESTAMP: u64 = 253_402_300_799;
const LONG: usize = 640;

impl Receipt {
    /// Parses `value` (the `order` object at `path`), recording every bad field in `v`.
    pub fn parse(value: &Value, path: &str, v: &mut Violations) -> Option<Receipt> {
        let before = v.is_empty();
        let f = Fields::of(value, path, v);
        let currency = f.req_str("currency", 8, v);
        if !currency.is_empty() && !is_currency_code(&currency) {
            v.push(
                f.path("currency"),
                "must be a three-letter ISO 4217 code such as USD",
            );
        }
        let receipt = Receipt {
            order_number: f.req_str("order_number", SHORT, v),
            currency,
            payment_method: f.req_str("payment_method", SHORT, v),
            recipient_name: f.req_str("recipient_name", SHORT, v),
            merchant_name: f.opt_str("merchant_name", SHORT, v),
            order_url: f.opt_str("order_url", 2000, v),
            timestamp: timestamp(&f, v),
            address: f
                .get("address")
                .and_then(|a| address(a, &f.path("address"), v)),
            summary: summary(&f, v),
            adjustments: adjustments(&f, v),
            elements: elements(&f, v),
        };
        if let Some(url) = &receipt.order_url {
            check_url(v, &f.path("order_url"), url);
        }
        (before && v.is_empty()).then_some(receipt)
    }
}

fn timestamp(f: &Fields<'_>, v: &mut Violations) -> Option<String> {
    let value = f.get("timestamp")?;
    let seconds = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    }
    .filter(|s| *s <= LAST_TIMESTAMP);
    if seconds.is_none() {
        v.push(
            f.path("timestamp"),
            "must be the order time in Unix seconds, before the year 10000",
        );
    }
    seconds.map(|s| s.to_string())
}

fn address(value: &Value, path: &str, v: &mut Violations) -> Option<ReceiptAddress> {
    let f = Fields::of(value, path, v);
    let country = f.req_str("country", 2, v);
    Some(ReceiptAddress {
        street_1: f.req_str("street_1", SHORT, v),
        street_2: f.opt_str("street_2", SHORT, v),
        city: f.req_str("city", SHORT, v),
        postal_code: f.req_str("postal_code", SHORT, v),
        state: f.req_str("state", SHORT, v),
        country,
    })
}

fn summary(f: &Fields<'_>, v: &mut Violations) -> ReceiptSummary {
    let Some(value) = f.get("summary") else {
        v.push(f.path("summary"), "is required");
        v.push(f.path("summary.total_cost"), "is required");
        return ReceiptSummary {
            subtotal: None,
            shipping_cost: None,
            total_tax: None,
            total_cost: Number::from(0),
        };
    };
    let s = Fields::of(value, &f.path("summary"), v);
    ReceiptSummary {
        subtotal: s.opt_amount("subtotal", v),
        shipping_cost: s.opt_amount("shipping_cost", v),
        total_tax: s.opt_amount("total_tax", v),
        total_cost: s.req_amount("total_cost", v),
    }
}

fn adjustments(f: &Fields<'_>, v: &mut Violations) -> Vec<ReceiptAdjustment> {
    let Some(items) = f.opt_array("adjustments", MAX_ELEMENTS, v) else {
        return Vec::new();
    };
    let path = f.path("adjustments");
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let a = Fields::of(item, &format!("{path}[{i}]"), v);
            ReceiptAdjustment {
                name: a.req_str("name", SHORT, v),
                amount: a.req_amount("amount", v),
            }
        })
        .collect()
}

fn elements(f: &Fields<'_>, v: &mut Violations) -> Vec<ReceiptElement> {
    let Some(items) = f.opt_array("elements", MAX_ELEMENTS, v) else {
        return Vec::new();
    };
    let path = f.path("elements");
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let e = Fields::of(item, &format!("{path}[{i}]"), v);
            let element = ReceiptElement {
                title: e.req_str("title", SHORT, v),
                subtitle: e.opt_str("subtitle", LONG, v),
                quantity: e.opt_u32("quantity", v),
                price: e.req_amount("price", v),
                currency: e.opt_str("currency", 3, v),
                image_url: e.opt_str("image_url", 2000, v),
            };
            if let Some(url) = &element.image_url {
                check_url(v, &e.path("image_url"), url);
            }
            element
        })
        .collect()
}

fn is_currency_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Messenger fetches these URLs itself: only absolute http(s) URLs make sense.
pub(crate) fn check_url(v: &mut Violations, field: &str, value: &str) {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => v.push(field, "must be an absolute http or https URL"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order() -> Value {
        json!({
            "order_number": "A-1001", "currency": "EUR", "payment_method": "Visa 2345",
            "recipient_name": "Ada Lovelace",
            "summary": {"subtotal": 40, "total_cost": "42.50"},
            "elements": [{"title": "Teapot", "price": 40, "quantity": 1}]
        })
    }

    fn errors(value: &Value) -> Vec<String> {
        let mut v = Violations::default();
        Receipt::parse(value, "order", &mut v);
        let mut fields: Vec<String> = v.into_inner().into_iter().map(|e| e.field).collect();
        fields.sort();
        fields
    }

    #[test]
    fn a_complete_order_parses() {
        let mut v = Violations::default();
        let r = Receipt::parse(&order(), "order", &mut v);
        assert!(v.is_empty(), "{v:?}");
        let r = r.expect("parsed");
        assert_eq!(r.summary.total_cost.as_f64(), Some(42.5));
        assert_eq!(r.elements.len(), 1);
    }

    #[test]
    fn every_missing_field_is_named() {
        let mut o = order();
        o["summary"].as_object_mut().map(|s| s.remove("total_cost"));
        o["elements"][0].as_object_mut().map(|e| e.remove("price"));
        o.as_object_mut().map(|m| m.remove("currency"));
        assert_eq!(
            errors(&o),
            [
                "order.currency",
                "order.elements[0].price",
                "order.summary.total_cost"
            ]
        );
    }

    #[test]
    fn more_than_a_hundred_elements_is_refused() {
        let mut o = order();
        o["elements"] = Value::Array(vec![json!({"title": "x", "price": 1}); 101]);
        assert_eq!(errors(&o), ["order.elements"]);
    }

    #[test]
    fn amounts_beyond_a_decimal_are_refused_and_the_rest_render_as_plain_digits() {
        for (amount, refused) in [
            (json!(1e29), true),
            (json!("1e29"), true),
            (json!("NaN"), true),
            (json!("inf"), true),
            (json!(u64::MAX), true),
            (json!(i64::MIN), true),
            (json!(-1e308), true),
            (json!(1_000_000_000_001_u64), true),
            (json!(1e12), false),
            (json!(-1e12), false),
            (json!("42.50"), false),
            (json!(0.000_000_1), false),
        ] {
            let mut o = order();
            o["summary"]["total_cost"] = amount.clone();
            let got = errors(&o);
            assert_eq!(!got.is_empty(), refused, "{amount}: {got:?}");
            if !refused {
                let mut v = Violations::default();
                let r = Receipt::parse(&o, "order", &mut v).expect("parsed");
                let shown = serde_json::to_string(&r.summary.total_cost).expect("json");
                assert!(!shown.contains(['e', 'E']), "{amount} renders as {shown}");
            }
        }
    }

    #[test]
    fn a_timestamp_past_the_year_9999_is_refused() {
        let mut o = order();
        o["timestamp"] = json!("253402300799");
        assert!(errors(&o).is_empty());
        o["timestamp"] = json!(253_402_300_800_u64);
        assert_eq!(errors(&o), ["order.timestamp"]);
    }

    #[test]
    fn bad_values_are_named() {
        let mut o = order();
        o["currency"] = json!("euro");
        o["elements"][0]["price"] = json!("free");
        o["order_url"] = json!("javascript:alert(1)");
        assert_eq!(
            errors(&o),
            [
                "order.currency",
                "order.elements[0].price",
                "order.order_url"
            ]
        );
    }
}
