//! Reading a policy test file into cases, with the policy reader's own helpers
//! (`policy/read.rs`) and its file parsing (`policy/source.rs`): a case file is refused with
//! the same `file:line:column` messages as a policy file, and every problem of the file is
//! reported in one pass.

use std::collections::HashMap;
use std::ops::Range;

use super::expect::read_expect;
use super::facts::{read_moments, read_recipient};
use super::samples::{content_of, CONTENTS, TEST_PSID};
use super::{Case, Check};
use crate::domain::{Category, Content, OutboundMessage, Psid, Recipient, Role, UtilityTemplate};
use crate::policy::errors::PolicyError;
use crate::policy::read::{
    boolean, get, moment, named, optional, required, string, strings, table, Cx,
};
use crate::policy::source::read_tree;
use crate::policy::tree::{Entry, Node, Value};

/// The keys of a `[[case]]`; all but `name` and `expect` may be given in `[defaults]`.
const CASE_KEYS: [&str; 19] = [
    "name",
    "now",
    "at",
    "role",
    "category",
    "content",
    "recipient",
    "utility_template",
    "consents",
    "api_consents",
    "opted_out",
    "unreachable",
    "last_user_interaction",
    "user_ref_optin",
    "token",
    "region",
    "timezone",
    "recent_sends",
    "expect",
];

/// Reads every case of one file, in the order the file is written; problems go to `errors`.
pub(super) fn read_cases(display: &str, text: &str, errors: &mut Vec<PolicyError>) -> Vec<Case> {
    read_tree(display, display, text, errors, read_file).unwrap_or_default()
}

fn read_file(cx: &mut Cx<'_>, root: &Node) -> Vec<Case> {
    let Some(top) = table(
        cx,
        root,
        "a policy test file",
        &["defaults", "case", "keyword"],
    ) else {
        return Vec::new();
    };
    let defaults = get(top, "defaults").map_or(&[][..], |d| read_defaults(cx, d));
    let mut cases: Vec<Case> = get(top, "keyword")
        .map(|kw| array_of_tables(cx, kw, "keyword"))
        .unwrap_or_default()
        .iter()
        .filter_map(|item| read_keyword(cx, item))
        .collect();
    match get(top, "case") {
        Some(nodes) => cases.extend(read_decisions(cx, nodes, defaults)),
        None if cases.is_empty() => {
            cx.err(Some(0..0), "the file has no [[case]] and no [[keyword]]");
        }
        None => {}
    }
    cases.sort_by_key(|c| c.line);
    cases
}

/// `[defaults]`: the keys of a case but its `name` and `expect`.
fn read_defaults<'n>(cx: &mut Cx<'_>, node: &'n Node) -> &'n [Entry] {
    let allowed: Vec<&str> = CASE_KEYS
        .into_iter()
        .filter(|k| *k != "name" && *k != "expect")
        .collect();
    table(cx, node, "[defaults]", &allowed).unwrap_or(&[])
}

/// The `[[case]]`s, each name once.
fn read_decisions(cx: &mut Cx<'_>, nodes: &Node, defaults: &[Entry]) -> Vec<Case> {
    let mut names = HashMap::new();
    let mut cases = Vec::new();
    for item in array_of_tables(cx, nodes, "case") {
        let span = item.best_span();
        let Some(fields) = table(cx, item, "a [[case]]", &CASE_KEYS) else {
            continue;
        };
        let Some(case) = read_case(cx, &Lookup { fields, defaults }, &span) else {
            continue;
        };
        if let Some(first) = names.insert(case.name.clone(), case.line) {
            cx.err(
                span,
                format!(
                    "a case named {:?} already exists{}; names must be unique",
                    case.name,
                    first.map_or(String::new(), |l| format!(" (line {l})"))
                ),
            );
            continue;
        }
        cases.push(case);
    }
    cases
}

fn array_of_tables<'n>(cx: &mut Cx<'_>, node: &'n Node, name: &str) -> &'n [Node] {
    match &node.value {
        Value::Array(items) => items,
        _ => {
            cx.err(
                node.best_span(),
                format!("write these as [[{name}]], an array of tables"),
            );
            &[]
        }
    }
}

/// `[[keyword]] text = "Stop!"  stop = true  resume = false`.
fn read_keyword(cx: &mut Cx<'_>, item: &Node) -> Option<Case> {
    let span = item.best_span();
    let fields = table(cx, item, "a [[keyword]]", &["text", "stop", "resume"])?;
    let text = required(cx, fields, &span, "text", "a [[keyword]]")
        .and_then(|n| string(cx, n, "`text`"))?;
    let stop = optional(get(fields, "stop"), |n| boolean(cx, n, "`stop`"))?;
    let resume = optional(get(fields, "resume"), |n| boolean(cx, n, "`resume`"))?;
    if stop.is_none() && resume.is_none() {
        cx.err(
            span,
            "a [[keyword]] needs `stop` or `resume` (true or false)",
        );
        return None;
    }
    Some(Case {
        file: cx.display.to_owned(),
        line: cx.line(&span),
        name: format!("keyword {text:?}"),
        check: Check::Keyword {
            text: text.to_owned(),
            stop,
            resume,
        },
    })
}

/// A case's own fields, falling back to the file's `[defaults]`.
pub(super) struct Lookup<'n> {
    fields: &'n [Entry],
    defaults: &'n [Entry],
}

impl<'n> Lookup<'n> {
    pub(super) fn get(&self, key: &str) -> Option<&'n Node> {
        get(self.fields, key).or_else(|| get(self.defaults, key))
    }
}

/// A `[[case]]` (with its file's `[defaults]`): its name, the message, the facts about the
/// recipient and the decision expected. Every problem of the case is reported.
fn read_case(cx: &mut Cx<'_>, l: &Lookup<'_>, span: &Option<Range<usize>>) -> Option<Case> {
    let line = cx.line(span);
    let name = required(cx, l.fields, span, "name", "a [[case]]")
        .and_then(|n| string(cx, n, "`name`"))
        .map(str::to_owned);
    let Some(now) = l.get("now") else {
        cx.err(span.clone(), "a [[case]] needs `now` (or [defaults] now)");
        return None;
    };
    let now = moment(cx, now, "`now`")?;
    let moments = read_moments(cx, l, now);
    let role = l
        .get("role")
        .map_or(Some(Role::Backend), |n| named::<Role>(cx, n, "`role`"));
    let message = read_message(cx, l, span);
    let recipient = read_recipient(cx, l, now);
    let expect = match get(l.fields, "expect") {
        Some(n) => read_expect(cx, n, now),
        None => {
            cx.err(span.clone(), "a [[case]] needs `expect`");
            None
        }
    };
    let (Some(name), Some(moments), Some(role), Some(message), Some(recipient), Some(expect)) =
        (name, moments, role, message, recipient, expect)
    else {
        return None;
    };
    Some(Case {
        file: cx.display.to_owned(),
        line,
        name,
        check: Check::Decide {
            message: Box::new(message),
            facts: Box::new(recipient.into_facts(moments, role)),
            expect: Box::new(expect),
        },
    })
}

/// The message a case decides on: its category, content, recipient and utility template.
fn read_message(
    cx: &mut Cx<'_>,
    l: &Lookup<'_>,
    span: &Option<Range<usize>>,
) -> Option<OutboundMessage> {
    let category = match l.get("category") {
        Some(n) => named::<Category>(cx, n, "`category`"),
        None => {
            cx.err(span.clone(), "a [[case]] needs `category`");
            None
        }
    };
    let content = l
        .get("content")
        .map_or_else(|| content_of("text"), |n| read_content(cx, n));
    let recipient = read_addressee(cx, l, span);
    let utility_template = optional(l.get("utility_template"), |n| read_template(cx, n));
    Some(OutboundMessage {
        page_id: None,
        recipient: recipient?,
        category: category?,
        content: content?,
        utility_template: utility_template?,
        send_at: None,
        expires_at: None,
        respect_quiet_hours: true,
    })
}

/// `content = "receipt"`: one of the sample contents.
fn read_content(cx: &mut Cx<'_>, node: &Node) -> Option<Content> {
    let kind = string(cx, node, "`content`")?;
    let content = content_of(kind);
    if content.is_none() {
        cx.err(
            node.best_span(),
            format!(
                "`content`: `{kind}` is unknown; expected one of: {}",
                CONTENTS.join(", ")
            ),
        );
    }
    content
}

/// `recipient = "psid"` (the default) or `"user_ref"` (a checkbox reference).
fn read_addressee(
    cx: &mut Cx<'_>,
    l: &Lookup<'_>,
    span: &Option<Range<usize>>,
) -> Option<Recipient> {
    let psid = || Psid::parse(TEST_PSID).ok().map(Recipient::Psid);
    let Some(n) = l.get("recipient") else {
        let recipient = psid();
        if recipient.is_none() {
            cx.err(
                span.clone(),
                format!("the test PSID {TEST_PSID} no longer parses"),
            );
        }
        return recipient;
    };
    match string(cx, n, "`recipient`")? {
        "psid" => psid(),
        "user_ref" => Some(Recipient::UserRef("checkbox-ref-1".to_owned())),
        other => {
            cx.err(
                n.best_span(),
                format!("`recipient`: `{other}` must be \"psid\" or \"user_ref\""),
            );
            None
        }
    }
}

/// `utility_template = { name, language, parameters? }`: the template the client names.
fn read_template(cx: &mut Cx<'_>, node: &Node) -> Option<UtilityTemplate> {
    let fields = table(
        cx,
        node,
        "`utility_template`",
        &["name", "language", "parameters"],
    )?;
    let span = node.best_span();
    let name = required(cx, fields, &span, "name", "`utility_template`")
        .and_then(|n| string(cx, n, "`utility_template.name`"));
    let language = required(cx, fields, &span, "language", "`utility_template`")
        .and_then(|n| string(cx, n, "`utility_template.language`"));
    let parameters = get(fields, "parameters").map_or(Some(Vec::new()), |n| {
        strings(cx, n, "`utility_template.parameters`")
            .map(|v| v.into_iter().map(str::to_owned).collect())
    });
    Some(UtilityTemplate {
        name: name?.to_owned(),
        language: language?.to_owned(),
        parameters: parameters?,
    })
}
