//! The sections that are read the same in every policy: `[roles]`, `[consent]`, `[opt_out.*]`,
//! `[window]`, `[tag_retirements]`, `[send_rate]` and the keyword lists.

use super::*;

impl Builder {
    pub(super) fn read_roles(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let names = Role::ALL.map(Role::as_str);
        let Some(entries) = table(cx, &e.node, "[roles]", &names) else {
            return;
        };
        for r in entries {
            let Ok(role) = r.key.parse::<Role>() else {
                continue; // reported by `table`
            };
            let path = format!("roles.{role}");
            let Some(may_send) = categories(cx, &r.node, &format!("`{path}`")) else {
                continue;
            };
            if role == Role::Compliance && may_send != CategorySet::EMPTY {
                cx.err(
                    r.span(),
                    "`roles.compliance` must be []: the compliance role reads and verifies, it never sends (API.md §3)",
                );
                continue;
            }
            if self.claim(cx, &path, &r.span()) {
                self.roles[role_index(role)] = Some(RoleRule {
                    meta: cx.meta(&path, &r.span()),
                    may_send,
                });
            }
        }
    }

    pub(super) fn read_consent(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let names = Category::ALL.map(Category::as_str);
        let Some(entries) = table(cx, &e.node, "[consent]", &names) else {
            return;
        };
        for c in entries {
            let Ok(cat) = c.key.parse::<Category>() else {
                continue;
            };
            let path = format!("consent.{cat}");
            let Some((node, by_api)) = consent_form(cx, c, &path) else {
                continue;
            };
            let Some((transactional, marketing)) = consent_scopes(cx, c, node, &path) else {
                continue;
            };
            if cat == Category::Marketing && !marketing {
                cx.err(
                    c.span(),
                    "`consent.marketing` must require the marketing scope: marketing is only sent to people who opted in to it",
                );
                continue;
            }
            if self.claim(cx, &path, &c.span()) {
                self.consent[category_index(cat)] = Some(ConsentRule {
                    meta: cx.meta(&path, &c.span()),
                    transactional,
                    marketing,
                    by_api,
                });
            }
        }
    }

    pub(super) fn read_opt_out(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let names = OptOutKind::ALL.map(|(_, n)| n);
        let Some(entries) = table(cx, &e.node, "[opt_out]", &names) else {
            return;
        };
        for o in entries {
            let Some((kind, name)) = OptOutKind::ALL.into_iter().find(|(_, n)| *n == o.key) else {
                continue;
            };
            let path = format!("opt_out.{name}");
            let what = format!("[{path}]");
            let Some(fields) = table(cx, &o.node, &what, &["stops"]) else {
                continue;
            };
            let span = o.span();
            let Some(stops) = required(cx, fields, &span, "stops", &what)
                .and_then(|n| categories(cx, n, &format!("`{path}.stops`")))
            else {
                continue;
            };
            if kind == OptOutKind::Marketing && !stops.contains(Category::Marketing) {
                cx.err(
                    span.clone(),
                    "`opt_out.marketing.stops` must include marketing",
                );
                continue;
            }
            if self.claim(cx, &path, &span) {
                self.opt_outs.push(OptOutRule {
                    meta: cx.meta(&path, &span),
                    kind,
                    stops,
                });
            }
        }
    }

    pub(super) fn read_window(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let Some(entries) = table(
            cx,
            &e.node,
            "[window]",
            &["standard", "user_ref", "human_agent"],
        ) else {
            return;
        };
        for w in entries {
            let path = format!("window.{}", w.key);
            let slot = match w.key.as_str() {
                "standard" => &mut self.standard,
                "user_ref" => &mut self.user_ref,
                "human_agent" => &mut self.human_agent,
                _ => continue,
            };
            let Some(length) = duration(cx, &w.node, &format!("`{path}`"), WINDOW_MAX) else {
                continue;
            };
            let meta = cx.meta(&path, &w.span());
            if w.key == "human_agent" {
                self.human_agent_loc = Some(Loc {
                    display: cx.display.to_owned(),
                    line: cx.line(&w.span()),
                });
            }
            // Claim after taking the slot would borrow self twice; check the map directly.
            if let Some(first) = self.seen.get(&path) {
                cx.err(
                    w.span(),
                    format!("`{path}` is already defined at {first}; each rule is defined once across the policy files"),
                );
                continue;
            }
            *slot = Some(WindowRule { meta, length });
            self.seen.insert(path, cx.here(&w.span()));
        }
    }

    pub(super) fn read_retirements(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let names = TAGS.map(Tag::as_str);
        let Some(entries) = table(cx, &e.node, "[tag_retirements]", &names) else {
            return;
        };
        for t in entries {
            let Some(tag) = TAGS.into_iter().find(|x| x.as_str() == t.key) else {
                continue;
            };
            let path = format!("tag_retirements.{}", t.key);
            let Some(on) = moment(cx, &t.node, &format!("`{path}`")) else {
                continue;
            };
            if self.claim(cx, &path, &t.span()) {
                self.retirements.push(TagRetirement {
                    meta: cx.meta(&path, &t.span()),
                    tag,
                    on,
                });
            }
        }
    }

    pub(super) fn read_send_rate(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let Some(entries) = table(cx, &e.node, "[send_rate]", &["per_page"]) else {
            return;
        };
        let span = e.span();
        let Some(per_page) = required(cx, entries, &span, "per_page", "[send_rate]")
            .and_then(|n| integer(cx, n, "`send_rate.per_page`", 1, 100_000))
        else {
            return;
        };
        let key_span = entries
            .iter()
            .find(|x| x.key == "per_page")
            .and_then(Entry::span);
        if self.claim(cx, "send_rate.per_page", &key_span) {
            self.send_rate = Some(SendRate {
                meta: cx.meta("send_rate.per_page", &key_span),
                per_page: u32::try_from(per_page).unwrap_or(u32::MAX),
            });
        }
    }

    pub(super) fn read_keywords(&mut self, cx: &mut Cx<'_>, e: &Entry, stop: bool) {
        let section = if stop {
            "stop_keywords"
        } else {
            "resume_keywords"
        };
        let Some(entries) = e.node.as_table() else {
            cx.err(
                e.span(),
                format!("[{section}] must be a table of language = [keywords]"),
            );
            return;
        };
        for k in entries {
            let path = format!("{section}.{}", k.key);
            if !is_language_code(&k.key) {
                cx.err(
                    k.span(),
                    format!(
                        "[{section}]: `{}` is not a language code such as en, de, pt_BR",
                        k.key
                    ),
                );
                continue;
            }
            let Some(words) = strings(cx, &k.node, &format!("`{path}`")) else {
                continue;
            };
            if words.is_empty() || words.iter().any(|w| w.trim().is_empty()) {
                cx.err(
                    k.span(),
                    format!("`{path}` must list keywords, none of them empty"),
                );
                continue;
            }
            if self.claim(cx, &path, &k.span()) {
                let meta = cx.meta(&path, &k.span());
                let words = words.into_iter().map(str::to_owned).collect();
                let list = if stop {
                    &mut self.stop
                } else {
                    &mut self.resume
                };
                list.add(meta, k.key.clone(), words);
            }
        }
    }
}

/// A category's consent rule as written: its scopes alone, or `{ scopes = …, recorded_by =
/// "api" }`, the same scopes counted only when a client recorded them through the API. The
/// scopes' node, and whether only the API's count.
fn consent_form<'n>(cx: &mut Cx<'_>, c: &'n Entry, path: &str) -> Option<(&'n Node, bool)> {
    if !matches!(c.node.value, Value::Table(_)) {
        return Some((&c.node, false));
    }
    let what = format!("`{path}`");
    let fields = table(cx, &c.node, &what, &["scopes", "recorded_by"])?;
    let by_api = match get(fields, "recorded_by") {
        None => false,
        Some(n) => recorded_by_api(cx, n, path)?,
    };
    let scopes = required(cx, fields, &c.span(), "scopes", &what)?;
    Some((scopes, by_api))
}

/// `recorded_by = "api"` (true) or `"anyone"` (false).
fn recorded_by_api(cx: &mut Cx<'_>, n: &Node, path: &str) -> Option<bool> {
    match string(cx, n, &format!("`{path}.recorded_by`"))? {
        "api" => Some(true),
        "anyone" => Some(false),
        other => {
            cx.err(
                n.best_span(),
                format!("`{path}.recorded_by`: `{other}` must be \"api\" (only consents recorded through POST /v1/consents count) or \"anyone\""),
            );
            None
        }
    }
}

/// `"transactional"`, `"marketing"`, `"none"` or a list of scopes: whether the transactional
/// and the marketing scope are required. Every problem is reported.
fn consent_scopes(cx: &mut Cx<'_>, c: &Entry, node: &Node, path: &str) -> Option<(bool, bool)> {
    let scopes: Vec<&str> = match &node.value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(_) => strings(cx, node, &format!("`{path}`"))?,
        other => {
            cx.err(
                c.span(),
                format!(
                    "`{path}` must be \"transactional\", \"marketing\", \"none\" or a list of scopes, not {}",
                    other.type_name()
                ),
            );
            return None;
        }
    };
    let (mut transactional, mut marketing, mut ok) = (false, false, true);
    for s in &scopes {
        match *s {
            "transactional" => transactional = true,
            "marketing" => marketing = true,
            "none" if scopes.len() == 1 => {}
            "none" => {
                cx.err(
                    c.span(),
                    format!("`{path}`: \"none\" cannot be combined with a scope"),
                );
                ok = false;
            }
            other => {
                cx.err(
                    c.span(),
                    format!("`{path}`: unknown consent scope `{other}`; expected transactional, marketing or none"),
                );
                ok = false;
            }
        }
    }
    ok.then_some((transactional, marketing))
}
