//! A message as an email: subject, plain text and HTML, from templates the business can change.
//!
//! Every message is one of three kinds, and each kind has three templates in
//! `templates/email/` (compiled in): `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`. The
//! text and HTML ones extend `layout.txt` and `layout.html` (the footer). A file of the same
//! name in `[email] templates` replaces the built-in one; HTML templates are auto-escaped, the
//! others are not.
//!
//! - `receipt`: a receipt, or a Messenger message that is a receipt template;
//! - `shipping_update`: a shipping update;
//! - `message`: everything else (text, button and generic templates, attachments, utility
//!   templates).
//!
//! # What a template is given
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::DateTime;
use minijinja::syntax::SyntaxConfig;
use minijinja::{context, AutoEscape, Environment, UndefinedBehavior, Value};
use serde_json::{json, Number, Value as Json};

use super::RenderedEmail;
use crate::domain::{Category, Content, Receipt, ReceiptElement, ShippingUpdate, Violations};

/// What a template is given.
pub struct EmailContext<'a> {
    pub content: &'a Content,
    pub category: Category,
    /// Herald's message id (`msg_…`).
    pub message_id: &'a str,
    /// The sender's display name (from `[email] from`), for greetings and signatures.
    pub sender_name: Option<&'a str>,
}

/// Declares the built-in templates from their file names: one list, so a name cannot be
/// known without its file or compiled in without being known.
macro_rules! built_in {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../templates/email/", $name)))),*]
    };
}

/// The built-in templates, by file name.
const BUILT_IN: [(&str, &str); 11] = built_in!(
    "layout.txt",
    "layout.html",
    "receipt.subject.txt",
    "receipt.txt",
    "receipt.html",
    "shipping_update.subject.txt",
    "shipping_update.txt",
    "shipping_update.html",
    "message.subject.txt",
    "message.txt",
    "message.html",
);

/// Which templates a message is rendered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Receipt,
    ShippingUpdate,
    Message,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Receipt => "receipt",
            Kind::ShippingUpdate => "shipping_update",
            Kind::Message => "message",
        }
    }
}

/// The three parts of an email, each from its own template `<kind><suffix>`.
#[derive(Debug, Clone, Copy)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    fn template(self, kind: Kind) -> String {
        let suffix = match self {
            Part::Subject => ".subject.txt",
            Part::Text => ".txt",
            Part::Html => ".html",
        };
        format!("{}{suffix}", kind.as_str())
    }
}

/// A template that cannot be read or rendered: names the file, and the line when it knows it.
#[derive(Debug)]
pub struct TemplateError {
    file: String,
    line: Option<usize>,
    detail: String,
    source: Option<std::io::Error>,
}

impl TemplateError {
    fn new(file: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            detail: detail.into(),
            source: None,
        }
    }

    fn io(path: &Path, detail: &str, source: std::io::Error) -> Self {
        Self {
            source: Some(source),
            ..Self::new(path.display().to_string(), detail)
        }
    }

    /// A minijinja error in the template `fallback` (or the one it names: an error may be in
    /// the layout a template extends), with the file it came from.
    fn template(
        error: &minijinja::Error,
        fallback: &str,
        origins: &BTreeMap<&'static str, String>,
    ) -> Self {
        let name = error.name().unwrap_or(fallback);
        let file = origins
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned());
        // Its Display ends in "(in name:line)", which this error says its own way.
        let detail = match error.detail() {
            Some(detail) => format!("{}: {detail}", error.kind()),
            None => error.kind().to_string(),
        };
        Self {
            line: error.line(),
            ..Self::new(file, detail)
        }
    }

    /// The template file: the business's path, or the built-in one's name.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line in that file, when the error is on one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "email template {}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

impl std::error::Error for TemplateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The templates in use: the built-in ones, each replaced by a file of the same name in the
/// business's folder when there is one.
pub struct EmailTemplates {
    env: Environment<'static>,
    /// Where each template came from, for errors: the business's file or the built-in one.
    origins: BTreeMap<&'static str, String>,
}

impl fmt::Debug for EmailTemplates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailTemplates")
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

impl EmailTemplates {
    /// The built-in templates, each replaced by the file of the same name in `dir`.
    ///
    /// Everything that can be wrong with a template is found here, at start-up, rather than
    /// at the first fallback: an unknown `.txt` or `.html` file in `dir` (a misspelt name
    /// would otherwise be ignored silently), a syntax error (with its line), and — by rendering
    /// every template with sample messages — an unknown filter or a misspelt variable.
    pub fn load(dir: Option<&Path>) -> Result<EmailTemplates, TemplateError> {
        let mut sources: BTreeMap<&'static str, (String, String)> = BUILT_IN
            .iter()
            .map(|(name, text)| {
                let origin = format!("{name} (built in)");
                (*name, (origin, (*text).to_owned()))
            })
            .collect();
        if let Some(dir) = dir {
            for (name, path, text) in read_folder(dir)? {
                tracing::info!(template = name, path = %path.display(), "email template replaced");
                sources.insert(name, (path.display().to_string(), text));
            }
        }
        let mut env = environment()?;
        let mut origins = BTreeMap::new();
        for (name, (origin, text)) in sources {
            origins.insert(name, origin);
            env.add_template_owned(name, text)
                .map_err(|e| TemplateError::template(&e, name, &origins))?;
        }
        let templates = EmailTemplates { env, origins };
        templates.render_samples()?;
        Ok(templates)
    }

    /// The message as an email. An HTML template that renders to nothing but whitespace
    /// makes a text-only email.
    pub fn render(&self, message: &EmailContext<'_>) -> Result<RenderedEmail, TemplateError> {
        let (kind, context) = template_context(message);
        let subject = self.render_part(kind, Part::Subject, &context)?;
        // A header is one line: a template's line breaks must not end it early.
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        if subject.is_empty() {
            let name = Part::Subject.template(kind);
            return Err(TemplateError::new(
                self.origin(&name),
                "renders an empty subject",
            ));
        }
        let text = self.render_part(kind, Part::Text, &context)?;
        let html = self.render_part(kind, Part::Html, &context)?;
        Ok(RenderedEmail {
            subject,
            text: format!("{}\n", text.trim_start_matches(['\r', '\n']).trim_end()),
            html: (!html.trim().is_empty()).then_some(html),
        })
    }

    fn render_part(
        &self,
        kind: Kind,
        part: Part,
        context: &Value,
    ) -> Result<String, TemplateError> {
        let name = part.template(kind);
        self.env
            .get_template(&name)
            .and_then(|template| template.render(context))
            .map_err(|e| TemplateError::template(&e, &name, &self.origins))
    }

    fn origin(&self, name: &str) -> String {
        self.origins
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    }

    /// Renders every template with every sample, so a template that can only fail when a
    /// message arrives fails now.
    fn render_samples(&self) -> Result<(), TemplateError> {
        for (what, content, category) in samples() {
            for sender_name in [Some("Shop"), None] {
                let message = EmailContext {
                    content: &content,
                    category,
                    message_id: "msg_01JD00000000000000000SAMPLE",
                    sender_name,
                };
                self.render(&message).map_err(|mut e| {
                    e.detail = format!("{} (rendering a sample: {what})", e.detail);
                    e
                })?;
            }
        }
        Ok(())
    }
}

/// How templates are read: blocks on their own lines leave no blank line behind, so a text
/// template reads as the email does; `{{ x }}` of an unknown name is an error (found by the
/// sample render) while `{% if x %}` still works on a value that is none.
fn environment() -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| TemplateError::new("(syntax)", e.to_string()))?;
    env.set_syntax(syntax);
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // The default auto-escape callback escapes by extension: `.html` yes, `.txt` no.
    env.set_formatter(format_value);
    Ok(env)
}

/// Prints a value: none as nothing (an absent carrier is not "none"), and in HTML with only
/// `& < > " '` escaped. minijinja's own escaping also writes `/` as `&#x2f;`, which is no safer
/// inside quotes and turns every link into `https:&#x2f;&#x2f;…`: what spam filters score as
/// an obfuscated URL.
fn format_value(
    out: &mut minijinja::Output<'_>,
    state: &mut minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if value.is_none() {
        return Ok(());
    }
    if matches!(state.auto_escape(), AutoEscape::Html) && !value.is_safe() && !value.is_undefined()
    {
        return Ok(out.write_str(&escape_html(&value.to_string()))?);
    }
    minijinja::escape_formatter(out, state, value)
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The templates in the business's folder that replace built-in ones, by name. Other files
/// are ignored, except one that looks like a template (`.txt`, `.html`) but has no built-in
/// name: that is a misspelling, and refused.
fn read_folder(dir: &Path) -> Result<Vec<(&'static str, PathBuf, String)>, TemplateError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| TemplateError::io(dir, "cannot read the templates folder", e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| TemplateError::io(dir, "cannot read the templates folder", e))?;
        paths.push(entry.path());
    }
    // The first error is the same on every run.
    paths.sort();
    let mut found = Vec::new();
    for path in paths {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Editors' hidden files (`.#receipt.txt`, `.receipt.txt.swp`) and folders are not ours.
        if file_name.starts_with('.') || !path.is_file() {
            continue;
        }
        match BUILT_IN.iter().find(|(name, _)| *name == file_name) {
            Some((name, _)) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| TemplateError::io(&path, "cannot read the template", e))?;
                found.push((*name, path, text));
            }
            None if file_name.ends_with(".txt") || file_name.ends_with(".html") => {
                return Err(TemplateError::new(
                    path.display().to_string(),
                    unknown_file(&file_name),
                ));
            }
            None => {}
        }
    }
    Ok(found)
}

fn unknown_file(file_name: &str) -> String {
    let names: Vec<&str> = BUILT_IN.iter().map(|(name, _)| *name).collect();
    let closest = names
        .iter()
        .map(|name| (edit_distance(file_name, name), *name))
        .min()
        .filter(|(distance, _)| *distance <= 3);
    let hint = closest.map_or(String::new(), |(_, name)| format!("did you mean {name}? "));
    format!(
        "is not a template Herald knows; {hint}the templates are {}",
        names.join(", ")
    )
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            let value = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            current.push(value);
        }
        previous = current;
    }
    previous[b.len()]
}

/// Which templates render the message, and what they are given (see the top of this file).
fn template_context(message: &EmailContext<'_>) -> (Kind, Value) {
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
fn format_money(amount: &Number, currency: &str) -> String {
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
fn samples() -> Vec<(&'static str, Content, Category)> {
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
    let message = |body: Json| Content::Message(body);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let message =
            Content::Message(json!({"attachment": {"type": "template", "payload": payload}}));
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
}
