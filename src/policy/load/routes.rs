//! A route outside the window (a message tag, a utility template, or the Marketing Messages
//! token) and what it is built from: regions and template specifications.

use super::*;

pub(super) fn single(route: Route) -> Dated<Route> {
    Dated {
        entries: vec![DatedEntry {
            from: None,
            until: None,
            label: route.describe(),
            value: route,
        }],
    }
}

pub(super) fn regions(cx: &mut Cx<'_>, node: &Node) -> Option<Regions> {
    if let Value::String(s) = &node.value {
        if s == "all" {
            return Some(Regions::All);
        }
    }
    let list = strings(cx, node, "`regions`")?;
    let mut ok = !list.is_empty();
    if !ok {
        cx.err(
            node.best_span(),
            "`regions` lists no region; write \"all\" or codes such as [\"EU\", \"UK\"]",
        );
    }
    for r in &list {
        if !(r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase())) {
            cx.err(
                node.best_span(),
                format!("`regions`: `{r}` is not a two-letter region code such as EU, UK or JP"),
            );
            ok = false;
        }
    }
    ok.then(|| Regions::Only(list.into_iter().map(str::to_owned).collect()))
}

pub(super) fn route_entry(
    cx: &mut Cx<'_>,
    fields: &[Entry],
    span: &Option<Range<usize>>,
    cat: Category,
    path: &str,
) -> Option<Route> {
    let chosen: Vec<&str> = ["messaging_type", "via", "deny"]
        .into_iter()
        .filter(|k| get(fields, k).is_some())
        .collect();
    if chosen.len() != 1 {
        cx.err(
            span.clone(),
            format!(
                "an entry of `{path}` needs exactly one of messaging_type, via or deny{}",
                if chosen.is_empty() {
                    String::new()
                } else {
                    format!(", not {}", chosen.join(" and "))
                }
            ),
        );
        return None;
    }
    let tag = get(fields, "tag");
    let template = get(fields, "template");
    if let Some(n) = get(fields, "deny") {
        let yes = boolean(cx, n, "`deny`")?;
        if !yes || tag.is_some() || template.is_some() {
            cx.err(
                span.clone(),
                format!("an entry of `{path}` with deny must say deny = true and nothing else"),
            );
            return None;
        }
        return Some(Route::Deny);
    }
    if let Some(n) = get(fields, "via") {
        return via_route(cx, n, span, cat, path, tag.is_some() || template.is_some());
    }
    let mt_node = get(fields, "messaging_type")?;
    let mt = messaging_type_named(cx, mt_node, "`messaging_type`")?;
    match mt {
        MessagingType::MessageTag => tag_route(cx, tag, template.is_some(), span, cat, path),
        MessagingType::Utility => {
            if tag.is_some() {
                cx.err(
                    span.clone(),
                    "`tag` goes with messaging_type = \"MESSAGE_TAG\", not UTILITY",
                );
                return None;
            }
            if cat == Category::Marketing {
                cx.err(
                    mt_node.best_span(),
                    "utility templates may never carry marketing",
                );
                return None;
            }
            match template {
                Some(t) => template_spec(cx, t, cat).map(|t| Route::Utility(Some(t))),
                None => Some(Route::Utility(None)),
            }
        }
        MessagingType::Response | MessagingType::Update => {
            cx.err(
                mt_node.best_span(),
                format!(
                    "`{path}`: outside the window a message goes as MESSAGE_TAG or UTILITY (or via = \"marketing_token\", or deny = true), not {}",
                    mt.as_str()
                ),
            );
            None
        }
    }
}

/// `via = "marketing_token"`: marketing only, and nothing else in the entry.
fn via_route(
    cx: &mut Cx<'_>,
    n: &Node,
    span: &Option<Range<usize>>,
    cat: Category,
    path: &str,
    more: bool,
) -> Option<Route> {
    let via = string(cx, n, "`via`")?;
    if via != "marketing_token" {
        cx.err(
            n.best_span(),
            format!("`via`: `{via}` is unknown; the only value is \"marketing_token\""),
        );
        return None;
    }
    if cat != Category::Marketing {
        cx.err(
            n.best_span(),
            format!("`{path}`: Marketing Messages tokens carry marketing only"),
        );
        return None;
    }
    if more {
        cx.err(
            span.clone(),
            format!("an entry of `{path}` with via takes no tag or template"),
        );
        return None;
    }
    Some(Route::MarketingToken)
}

/// `messaging_type = "MESSAGE_TAG"` with its `tag`: never marketing, HUMAN_AGENT for agent
/// replies only.
fn tag_route(
    cx: &mut Cx<'_>,
    tag: Option<&Node>,
    template: bool,
    span: &Option<Range<usize>>,
    cat: Category,
    path: &str,
) -> Option<Route> {
    if template {
        cx.err(
            span.clone(),
            "`template` goes with messaging_type = \"UTILITY\", not MESSAGE_TAG",
        );
        return None;
    }
    let Some(tag_node) = tag else {
        cx.err(
            span.clone(),
            format!("an entry of `{path}` with MESSAGE_TAG needs `tag`"),
        );
        return None;
    };
    let tag = tag_named(cx, tag_node, "`tag`")?;
    if cat == Category::Marketing {
        cx.err(
            tag_node.best_span(),
            "message tags may never carry marketing (MESSENGER.md §2.2)",
        );
        return None;
    }
    if tag == Tag::HumanAgent && cat != Category::AgentReply {
        cx.err(
            tag_node.best_span(),
            format!("HUMAN_AGENT is for replies a person types (agent_reply), not {cat}"),
        );
        return None;
    }
    Some(Route::Tag(tag))
}

pub(super) fn template_spec(cx: &mut Cx<'_>, node: &Node, cat: Category) -> Option<TemplateSpec> {
    let fields_of: &[&str] = match OrderFields::of(cat) {
        Some(OrderFields::Receipt) => &RECEIPT_FIELDS,
        Some(OrderFields::Shipping) => &SHIPPING_FIELDS,
        None => {
            cx.err(
                node.best_span(),
                format!("{cat} messages are free-form, so the client names their utility template in the request (`utility_template`); remove `template` here"),
            );
            return None;
        }
    };
    let entries = table(
        cx,
        node,
        "`template`",
        &["name", "language", "parameters", "when_missing"],
    )?;
    let span = node.best_span();
    let name = required(cx, entries, &span, "name", "`template`").and_then(|n| {
        let s = string(cx, n, "`template.name`")?;
        let ok = !s.is_empty()
            && s.len() <= 512
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            cx.err(n.best_span(), format!("`template.name`: `{s}` must be lowercase letters, digits and _ (as Meta names templates)"));
        }
        ok.then(|| s.to_owned())
    });
    let language = required(cx, entries, &span, "language", "`template`").and_then(|n| {
        let s = string(cx, n, "`template.language`")?;
        let ok = is_language_code(s);
        if !ok {
            cx.err(
                n.best_span(),
                format!("`template.language`: `{s}` is not a language code such as en_US"),
            );
        }
        ok.then(|| s.to_owned())
    });
    let parameters = match get(entries, "parameters") {
        None => Some(Vec::new()),
        Some(n) => {
            let list = strings(cx, n, "`template.parameters`")?;
            let mut ok = true;
            for p in &list {
                if !fields_of.contains(p) {
                    cx.err(
                        n.best_span(),
                        format!("`template.parameters`: a {cat} has no field `{p}`; expected one of: {}", fields_of.join(", ")),
                    );
                    ok = false;
                }
            }
            ok.then(|| list.into_iter().map(str::to_owned).collect())
        }
    };
    let when_missing = match get(entries, "when_missing") {
        None => Some("-".to_owned()),
        Some(n) => string(cx, n, "`template.when_missing`").map(str::to_owned),
    };
    let (name, language) = (name?, language?);
    let detail = format!(
        "outside the window: UTILITY with the policy's template {name} ({language}) filled from the {}",
        if cat == Category::ShippingUpdate { "shipment" } else { "order" }
    );
    Some(TemplateSpec {
        name,
        language,
        parameters: parameters?,
        when_missing: when_missing?,
        detail,
    })
}
