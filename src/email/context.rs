//! The message as a template sees it, for each kind of email.
//!
//! What a template is given: the names a business writes its email templates against.
//!
//! Businesses write templates against these names, so they are a contract: add to them, never
//! rename or remove one. `templates/email/README.md` says the same for the people who write
//! templates. Optional values are `none` when absent: `{% if x %}` is false and `{{ x }}`
//! prints nothing. A name not in this list fails the sample render at start-up. Money is
//! already formatted (`"59.90 EUR"`: two decimals, or the currency's own number of them).
//! URLs are only ever `http(s)` (`tel:` for phone buttons); any other is left out.
//!
//! Every kind:
//! - `kind`: `"receipt"`, `"shipping_update"` or `"message"`
//! - `category`: the message's category (`"receipt"`, `"account_update"`, …)
//! - `message_id`: Herald's id of the message (`msg_…`), for the reader to quote
//! - `sender_name`: the display name of `[email] from`, or none
//!
//! `receipt`:
//! - `order_number`, `currency`, `payment_method`, `recipient_name`
//! - `merchant_name`, `order_url`: or none
//! - `ordered_at`: the order's `timestamp` as `"2026-03-01 12:00 UTC"`, or none
//! - `address`: `{street_1, street_2, city, postal_code, state, country}` (`street_2` and
//!   `state` may be none or empty), or none
//! - `lines`: `[{title, subtitle, quantity, price, image_url}]`; `quantity` is 1 when the
//!   order did not say; `subtitle` and `image_url` may be none
//! - `adjustments`: `[{name, amount}]`
//! - `subtotal`, `shipping_cost`, `total_tax`: money, or none; `total_cost`: money
//!
//! `shipping_update`:
//! - `order_number`
//! - `status`: `"shipped"`, `"in_transit"`, `"out_for_delivery"`, `"delivered"`, `"delayed"`
//!   or `"returned"`
//! - `status_phrase`: how the status reads after "Your order A-1001": `"has shipped"`
//! - `carrier`, `tracking_number`, `tracking_url`, `estimated_delivery`: or none
//!
//! `message`:
//! - `text`: the message's text (or a button template's), or none
//! - `buttons`: `[{title, url}]`, the buttons that open a link; postbacks do nothing by email
//! - `cards`: `[{title, subtitle, image_url, url, buttons}]`, a generic template's elements
//! - `attachment`: `{type, url}` for an image, audio, video or file (`url` none when it was
//!   sent by `attachment_id`), or none
//! - `template`: `{name, language, parameters}` for a utility template, which has no text of
//!   its own, or none

use chrono::DateTime;
use minijinja::{context, Value};
use serde_json::{json, Number, Value as Json};

use super::render::{EmailContext, Kind};
use crate::domain::{Category, Content, Receipt, ReceiptElement, ShippingUpdate, Violations};

/// Which templates render the message, and what they are given (see the top of this file).
pub(super) fn template_context(message: &EmailContext<'_>) -> (Kind, Value) {
    let (kind, fields) = match message.content {
        Content::Receipt(receipt) => (Kind::Receipt, receipt_fields(receipt)),
        Content::ShippingUpdate(update) => (Kind::ShippingUpdate, shipping_fields(update)),
        Content::Message(body) => match receipt_template(body) {
            Some(receipt) => (Kind::Receipt, receipt_fields(&receipt)),
            None => (Kind::Message, message_fields(body)),
        },
    };
    let context = context! {
        kind => kind.as_str(),
        category => message.category.as_str(),
        message_id => message.message_id,
        sender_name => message.sender_name,
        ..fields
    };
    (kind, context)
}

/// A Messenger receipt template, read as the API reads one (amounts may be strings); a
/// payload that does not read as a receipt renders as a plain message instead.
fn receipt_template(body: &Json) -> Option<Receipt> {
    let payload = body.pointer("/attachment/payload")?;
    if payload.get("template_type").and_then(Json::as_str) != Some("receipt") {
        return None;
    }
    let mut violations = Violations::default();
    Receipt::parse(payload, "payload", &mut violations)
        .or_else(|| serde_json::from_value(payload.clone()).ok())
}

fn receipt_fields(receipt: &Receipt) -> Value {
    let money = |amount: &Number| format_money(amount, &receipt.currency);
    let summary = &receipt.summary;
    context! {
        order_number => &receipt.order_number,
        currency => &receipt.currency,
        payment_method => &receipt.payment_method,
        recipient_name => &receipt.recipient_name,
        merchant_name => &receipt.merchant_name,
        order_url => receipt.order_url.as_deref().and_then(link),
        ordered_at => receipt.timestamp.as_deref().and_then(format_timestamp),
        address => receipt.address.as_ref().map(|a| context! {
            street_1 => &a.street_1,
            street_2 => &a.street_2,
            city => &a.city,
            postal_code => &a.postal_code,
            state => &a.state,
            country => &a.country,
        }),
        lines => receipt
            .elements
            .iter()
            .map(|element| line(element, &receipt.currency))
            .collect::<Vec<_>>(),
        adjustments => receipt
            .adjustments
            .iter()
            .map(|a| context! { name => &a.name, amount => money(&a.amount) })
            .collect::<Vec<_>>(),
        subtotal => summary.subtotal.as_ref().map(money),
        shipping_cost => summary.shipping_cost.as_ref().map(money),
        total_tax => summary.total_tax.as_ref().map(money),
        total_cost => money(&summary.total_cost),
    }
}

fn line(element: &ReceiptElement, currency: &str) -> Value {
    let currency = element.currency.as_deref().unwrap_or(currency);
    context! {
        title => &element.title,
        subtitle => &element.subtitle,
        quantity => element.quantity.unwrap_or(1),
        price => format_money(&element.price, currency),
        image_url => element.image_url.as_deref().and_then(link),
    }
}

fn shipping_fields(update: &ShippingUpdate) -> Value {
    // The status's name as the API spells it: serde's is the one spelling.
    let status = serde_json::to_value(update.status)
        .ok()
        .and_then(|s| s.as_str().map(str::to_owned));
    context! {
        order_number => &update.order_number,
        status => status,
        status_phrase => update.status.phrase(),
        carrier => &update.carrier,
        tracking_number => &update.tracking_number,
        tracking_url => update.tracking_url.as_deref().and_then(link),
        estimated_delivery => &update.estimated_delivery,
    }
}

/// A Messenger message object: its text and links, so nothing the reader could act on is lost.
/// Quick replies are left out: they are answers to send back on Messenger.
fn message_fields(body: &Json) -> Value {
    let attachment = body.get("attachment");
    let kind = attachment
        .and_then(|a| a.get("type"))
        .and_then(Json::as_str);
    let payload = attachment.and_then(|a| a.get("payload"));
    let field = |name: &str| payload.and_then(|p| p.get(name));
    let text = body
        .get("text")
        .or_else(|| field("text"))
        .and_then(Json::as_str);
    let cards: Vec<Value> = field("elements")
        .and_then(Json::as_array)
        .map(|elements| elements.iter().map(card).collect())
        .unwrap_or_default();
    let media = kind.filter(|k| *k != "template").map(|k| {
        context! {
            type => k,
            url => field("url").and_then(Json::as_str).and_then(link),
        }
    });
    context! {
        text => text,
        buttons => buttons(field("buttons")),
        cards => cards,
        attachment => media,
        template => body.get("template").map(utility_template),
    }
}

/// A generic (or media) template's element.
fn card(element: &Json) -> Value {
    let text = |name: &str| element.get(name).and_then(Json::as_str);
    let url = element
        .pointer("/default_action/url")
        .or_else(|| element.get("url"))
        .and_then(Json::as_str)
        .and_then(link);
    context! {
        title => text("title"),
        subtitle => text("subtitle"),
        image_url => text("image_url").and_then(link),
        url => url,
        buttons => buttons(element.get("buttons")),
    }
}

/// The buttons that lead somewhere by email: links and phone numbers.
fn buttons(buttons: Option<&Json>) -> Vec<Value> {
    let Some(buttons) = buttons.and_then(Json::as_array) else {
        return Vec::new();
    };
    buttons
        .iter()
        .filter_map(|button| {
            let text = |name: &str| button.get(name).and_then(Json::as_str);
            let url = match text("type") {
                Some("phone_number") => text("payload").map(|number| format!("tel:{number}")),
                _ => text("url").and_then(link),
            }?;
            let title = text("title").unwrap_or(&url).to_owned();
            Some(context! { title => title, url => url })
        })
        .collect()
}

/// A utility template (`message.template`): its name and parameters, as the API takes them
/// (`parameters`, strings or numbers) or as the Send API does (`components[].parameters[].text`).
fn utility_template(template: &Json) -> Value {
    let language = template
        .get("language")
        .and_then(|l| l.as_str().or_else(|| l.get("code").and_then(Json::as_str)));
    let parameter = |p: &Json| match p {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        other => other.get("text").and_then(Json::as_str).map(str::to_owned),
    };
    let listed = template.get("parameters").and_then(Json::as_array);
    let in_components = template
        .get("components")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("parameters").and_then(Json::as_array))
        .flatten();
    let parameters: Vec<String> = listed
        .into_iter()
        .flatten()
        .chain(in_components)
        .filter_map(parameter)
        .collect();
    context! {
        name => template.get("name").and_then(Json::as_str).unwrap_or("message"),
        language => language,
        parameters => parameters,
    }
}

/// A URL a reader may follow from an email: http(s) only, so a `javascript:` link in a
/// client's payload never becomes one.
fn link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| url.to_owned())
}

/// `59.9` and `EUR` → `"59.90 EUR"`: two decimals, or as many as the currency has
/// (`1500 JPY`, `12.500 KWD`).
pub(super) fn format_money(amount: &Number, currency: &str) -> String {
    let decimals = minor_units(currency);
    let Some(value) = amount.as_f64() else {
        return format!("{amount} {currency}");
    };
    let shown = format!("{value:.decimals$}");
    // -0.001 rounds to "-0.00", which reads as a debt of nothing.
    let shown = match shown.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_owned(),
        _ => shown,
    };
    format!("{shown} {currency}")
}

/// Decimal places of an ISO 4217 currency: most have two.
fn minor_units(currency: &str) -> usize {
    const NONE: [&str; 17] = [
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    if NONE.contains(&currency) {
        0
    } else if THREE.contains(&currency) {
        3
    } else {
        2
    }
}

/// A receipt's `timestamp` (Unix seconds) as a reader reads it; in UTC, as the receipt gives
/// no time zone.
fn format_timestamp(seconds: &str) -> Option<String> {
    let at = DateTime::from_timestamp(seconds.parse().ok()?, 0)?;
    Some(at.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// Messages that exercise every branch of the built-in templates: with every optional value
/// and with none, of each kind.
pub(super) fn samples() -> Vec<(&'static str, Content, Category)> {
    let mut all = order_samples();
    all.extend(message_samples());
    all
}

/// Receipts and shipping updates, each with every optional value and with none. (Longer than
/// the house's 80 lines: it is data, the orders written out as JSON.)
fn order_samples() -> Vec<(&'static str, Content, Category)> {
    let full_receipt = json!({
        "order_number": "A-1001", "currency": "EUR", "payment_method": "Visa 2345",
        "recipient_name": "Ada Lovelace", "merchant_name": "Shop",
        "order_url": "https://shop.example/orders/A-1001", "timestamp": "1772366400",
        "address": {"street_1": "1 Main Street", "street_2": "Flat 2", "city": "Berlin",
                    "postal_code": "10115", "state": "BE", "country": "DE"},
        "summary": {"subtotal": 50, "shipping_cost": 4.9, "total_tax": 9.5, "total_cost": 59.9},
        "adjustments": [{"name": "Welcome discount", "amount": -5}],
        "elements": [{"title": "Teapot", "subtitle": "Blue", "quantity": 2, "price": 40,
                      "currency": "EUR", "image_url": "https://shop.example/teapot.png"}]
    });
    let bare_receipt = json!({
        "order_number": "A-1002", "currency": "EUR", "payment_method": "Visa 2345",
        "recipient_name": "Ada Lovelace", "summary": {"total_cost": 10}, "elements": []
    });
    let receipt = |value: Json| -> Content {
        let mut violations = Violations::default();
        match Receipt::parse(&value, "order", &mut violations) {
            Some(receipt) => Content::Receipt(Box::new(receipt)),
            None => Content::Message(json!({ "text": "unreadable sample receipt" })),
        }
    };
    let shipping = |tracking: bool| {
        let text = |s: &str| tracking.then(|| s.to_owned());
        Content::ShippingUpdate(ShippingUpdate {
            order_number: "A-1001".into(),
            status: crate::domain::ShippingStatus::Shipped,
            carrier: text("DHL"),
            tracking_number: text("00340434161094042557"),
            tracking_url: text("https://track.example/00340434161094042557"),
            estimated_delivery: text("2026-03-05"),
        })
    };
    vec![
        (
            "a receipt with every field",
            receipt(full_receipt),
            Category::Receipt,
        ),
        (
            "a receipt with no optional field",
            receipt(bare_receipt),
            Category::Receipt,
        ),
        (
            "a shipping update with tracking",
            shipping(true),
            Category::ShippingUpdate,
        ),
        (
            "a shipping update without tracking",
            shipping(false),
            Category::ShippingUpdate,
        ),
    ]
}

/// Messenger messages as a client sends them: text, templates, attachments, utility templates.
fn message_samples() -> Vec<(&'static str, Content, Category)> {
    let message = |body: Json| Content::Message(body);
    vec![
        (
            "a text message",
            message(json!({"text": "Your password was changed."})),
            Category::AccountUpdate,
        ),
        (
            "a button template",
            message(json!({"attachment": {"type": "template", "payload": {
                "template_type": "button", "text": "Your booking is confirmed.",
                "buttons": [{"type": "web_url", "url": "https://shop.example/b/1", "title": "See it"},
                            {"type": "phone_number", "payload": "+4930123456", "title": "Call us"}]}}})),
            Category::EventUpdate,
        ),
        (
            "a generic template",
            message(json!({"attachment": {"type": "template", "payload": {
                "template_type": "generic", "elements": [
                    {"title": "Teapot", "subtitle": "Blue", "image_url": "https://shop.example/t.png",
                     "default_action": {"type": "web_url", "url": "https://shop.example/t"},
                     "buttons": [{"type": "web_url", "url": "https://shop.example/t", "title": "View"}]},
                    {"title": "Cup"}]}}})),
            Category::Response,
        ),
        (
            "an image",
            message(
                json!({"attachment": {"type": "image", "payload": {"url": "https://shop.example/i.png"}}}),
            ),
            Category::Response,
        ),
        (
            "a file sent by attachment id",
            message(json!({"attachment": {"type": "file", "payload": {"attachment_id": "1234"}}})),
            Category::Response,
        ),
        (
            "a utility template",
            message(
                json!({"template": {"name": "order_ready", "language": "en_US",
                                        "parameters": ["A-1001", "Friday"]}}),
            ),
            Category::AccountUpdate,
        ),
        (
            "a utility template without parameters",
            message(json!({"template": {"name": "order_ready", "language": "en_US"}})),
            Category::AccountUpdate,
        ),
    ]
}
