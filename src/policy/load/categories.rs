//! A category's section (`[receipt]`, `[marketing]`, …): when it may go inside and outside the
//! window, its frequency and quiet hours, and `[transactional]` limits across categories.

use super::*;

impl Builder {
    pub(super) fn read_category(&mut self, cx: &mut Cx<'_>, e: &Entry, cat: Category) {
        let mut allowed = vec![
            "inside_window",
            "outside_window",
            "frequency",
            "quiet_hours",
        ];
        if cat == Category::Marketing {
            allowed.extend(["token_regions", "token_cooldown"]);
        }
        let Some(entries) = table(cx, &e.node, &format!("[{cat}]"), &allowed) else {
            return;
        };
        for x in entries {
            let path = format!("{cat}.{}", x.key);
            match x.key.as_str() {
                "inside_window" => {
                    let Some(mt) = messaging_type_named(cx, &x.node, &format!("`{path}`")) else {
                        continue;
                    };
                    if !matches!(mt, MessagingType::Response | MessagingType::Update) {
                        cx.err(
                            x.span(),
                            format!("`{path}`: inside the window a message goes as RESPONSE or UPDATE, not {}", mt.as_str()),
                        );
                        continue;
                    }
                    if self.claim(cx, &path, &x.span()) {
                        self.inside[category_index(cat)] = Some((cx.meta(&path, &x.span()), mt));
                    }
                }
                "outside_window" => self.read_outside(cx, x, cat, &path),
                "token_regions" => {
                    let read = dated(
                        cx,
                        &x.node,
                        &path,
                        &["regions"],
                        |cx, fields, span| {
                            let node =
                                required(cx, fields, span, "regions", "a token_regions entry")?;
                            regions(cx, node)
                        },
                        Regions::describe,
                    );
                    if let Some((d, _)) = read {
                        if self.claim(cx, &path, &x.span()) {
                            self.token_regions = Some((cx.meta(&path, &x.span()), d));
                        }
                    }
                }
                "token_cooldown" => {
                    let read = dated(
                        cx,
                        &x.node,
                        &path,
                        &["cooldown"],
                        |cx, fields, span| {
                            let node =
                                required(cx, fields, span, "cooldown", "a token_cooldown entry")?;
                            duration(cx, node, "`cooldown`", TOKEN_COOLDOWN_MAX)
                        },
                        |d| format!("at most one message per token per {}", fmt_duration(*d)),
                    );
                    if let Some((d, _)) = read {
                        if self.claim(cx, &path, &x.span()) {
                            self.token_cooldown = Some((cx.meta(&path, &x.span()), d));
                        }
                    }
                }
                "frequency" => self.read_frequency(cx, x, &path, CategorySet::EMPTY.with(cat)),
                "quiet_hours" => self.read_quiet(cx, x, &path, CategorySet::EMPTY.with(cat)),
                _ => {}
            }
        }
    }

    /// `[transactional]`: limits over every transactional category together.
    pub(super) fn read_limits(
        &mut self,
        cx: &mut Cx<'_>,
        e: &Entry,
        section: &str,
        applies: CategorySet,
    ) {
        let Some(entries) = table(
            cx,
            &e.node,
            &format!("[{section}]"),
            &["frequency", "quiet_hours"],
        ) else {
            return;
        };
        for x in entries {
            let path = format!("{section}.{}", x.key);
            match x.key.as_str() {
                "frequency" => self.read_frequency(cx, x, &path, applies),
                "quiet_hours" => self.read_quiet(cx, x, &path, applies),
                _ => {}
            }
        }
    }

    pub(super) fn read_outside(&mut self, cx: &mut Cx<'_>, x: &Entry, cat: Category, path: &str) {
        let shorthand = match &x.node.value {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        };
        let (routes, spans) = match shorthand {
            Some("deny") => (single(Route::Deny), vec![x.span()]),
            Some("marketing_token") if cat == Category::Marketing => {
                (single(Route::MarketingToken), vec![x.span()])
            }
            Some(other) => {
                cx.err(
                    x.span(),
                    format!(
                        "`{path}`: `{other}` is not a route; write \"deny\"{}, or a table with messaging_type = \"MESSAGE_TAG\" (and tag) or \"UTILITY\" (and template)",
                        if cat == Category::Marketing { ", \"marketing_token\"" } else { "" }
                    ),
                );
                return;
            }
            None => {
                let read = dated(
                    cx,
                    &x.node,
                    path,
                    &["messaging_type", "tag", "template", "via", "deny"],
                    |cx, fields, span| route_entry(cx, fields, span, cat, path),
                    Route::describe,
                );
                match read {
                    Some(r) => r,
                    None => return,
                }
            }
        };
        if !self.claim(cx, path, &x.span()) {
            return;
        }
        for (entry, span) in routes.entries.iter().zip(&spans) {
            match entry.value {
                Route::Tag(tag) => self.tag_uses.push(TagUse {
                    tag,
                    until: entry.until,
                    path: path.to_owned(),
                    display: cx.display.to_owned(),
                    line: cx.line(span),
                }),
                Route::MarketingToken => self.token_uses.push(Loc {
                    display: cx.display.to_owned(),
                    line: cx.line(span),
                }),
                Route::Deny | Route::Utility(_) => {}
            }
        }
        self.outside[category_index(cat)] = Some((cx.meta(path, &x.span()), routes));
    }

    pub(super) fn read_frequency(
        &mut self,
        cx: &mut Cx<'_>,
        x: &Entry,
        path: &str,
        applies: CategorySet,
    ) {
        let what = format!("[{path}]");
        let Some(fields) = table(cx, &x.node, &what, &["max", "per", "when_exceeded"]) else {
            return;
        };
        let span = x.span();
        let max = required(cx, fields, &span, "max", &what)
            .and_then(|n| integer(cx, n, "`max`", 1, 1_000_000));
        let per = required(cx, fields, &span, "per", &what)
            .and_then(|n| duration(cx, n, &format!("`{path}.per`"), FREQUENCY_PER_MAX));
        let when =
            required(cx, fields, &span, "when_exceeded", &what).and_then(|n| {
                match string(cx, n, "`when_exceeded`")? {
                    "defer" => Some(WhenExceeded::Defer),
                    "deny" => Some(WhenExceeded::Deny),
                    other => {
                        cx.err(
                            n.best_span(),
                            format!("`when_exceeded`: `{other}` must be \"defer\" or \"deny\""),
                        );
                        None
                    }
                }
            });
        let (Some(max), Some(per), Some(when_exceeded)) = (max, per, when) else {
            return;
        };
        if !self.claim(cx, path, &span) {
            return;
        }
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        let label = format!(
            "{}: at most {max} per recipient per {}; beyond that {}",
            applies.names().join(", "),
            fmt_duration(per),
            match when_exceeded {
                WhenExceeded::Defer => "a message waits until the period allows it (defer)",
                WhenExceeded::Deny => "a message is refused (deny frequency_cap)",
            }
        );
        self.frequency.push(FrequencyRule {
            meta: cx.meta(path, &span),
            applies_to: applies,
            max,
            per,
            when_exceeded,
            label,
        });
    }

    pub(super) fn read_quiet(
        &mut self,
        cx: &mut Cx<'_>,
        x: &Entry,
        path: &str,
        applies: CategorySet,
    ) {
        let what = format!("[{path}]");
        let Some(fields) = table(
            cx,
            &x.node,
            &what,
            &["send_from", "send_until", "timezone_if_unknown", "days_off"],
        ) else {
            return;
        };
        let span = x.span();
        let days_off = match get(fields, "days_off") {
            None => Some(Vec::new()),
            Some(n) => weekdays(cx, n, &format!("`{path}.days_off`")),
        };
        let from = required(cx, fields, &span, "send_from", &what)
            .and_then(|n| clock_time(cx, n, "`send_from`"));
        let until = required(cx, fields, &span, "send_until", &what)
            .and_then(|n| clock_time(cx, n, "`send_until`"));
        let tz = match get(fields, "timezone_if_unknown") {
            Some(n) => timezone(cx, n, "`timezone_if_unknown`"),
            None => Some(Tz::UTC),
        };
        let (Some(send_from), Some(send_until), Some(tz), Some(days_off)) =
            (from, until, tz, days_off)
        else {
            return;
        };
        if send_from == send_until {
            cx.err(
                span,
                format!("{what}: send_from and send_until are both {}, which leaves no hours to send in; remove the section to allow every hour", send_from.format("%H:%M")),
            );
            return;
        }
        if !self.claim(cx, path, &span) {
            return;
        }
        let days = match days_off.as_slice() {
            [] => String::new(),
            days => format!(
                ", never on {}",
                days.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let label = format!(
            "{}: sent only between {} and {}{days} in the recipient's time zone ({} when unknown); at other times they wait until {} there",
            applies.names().join(", "),
            send_from.format("%H:%M"),
            send_until.format("%H:%M"),
            tz.name(),
            send_from.format("%H:%M"),
        );
        self.quiet_hours.push(QuietHoursRule {
            meta: cx.meta(path, &span),
            applies_to: applies,
            send_from,
            send_until,
            timezone_if_unknown: tz,
            days_off,
            label,
        });
    }
}
