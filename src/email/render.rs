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
//! What each kind of template is given is `context.rs`'s (and `templates/email/README.md`'s).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use super::context::{samples, template_context};
use super::RenderedEmail;
use crate::domain::{Category, Content};

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
pub(super) enum Kind {
    Receipt,
    ShippingUpdate,
    Message,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
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

#[cfg(test)]
mod tests {
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
