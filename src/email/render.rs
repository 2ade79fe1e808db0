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
mod tests;
