//! What a case says of its recipient, written relative to the case's `now`
//! (`last_user_interaction = "-3d"`): the moments, consents and opt-outs, reachability, the
//! Marketing Messages token, the page's region, the time zone and the recent sends.

use chrono::{DateTime, Duration, Utc};

use super::read::Lookup;
use crate::domain::bounds::{earlier, later};
use crate::domain::facts::{Facts, MarketingToken, RecentSend};
use crate::domain::{Category, Role};
use crate::policy::model::fmt_duration;
use crate::policy::read::{
    boolean, duration_up_to, get, integer, moment, named, optional, parse_duration, parse_moment,
    required, string, strings, table, timezone, Cx, TEST_OFFSET_MAX,
};
use crate::policy::tree::{Node, Value};

/// A case's moments, relative to its `now`: when to decide (`at`), and when the user last
/// interacted and opted in by checkbox.
pub(super) struct Moments {
    decide_at: DateTime<Utc>,
    last_user_interaction_at: Option<DateTime<Utc>>,
    user_ref_optin_at: Option<DateTime<Utc>>,
}

pub(super) fn read_moments(cx: &mut Cx<'_>, l: &Lookup<'_>, now: DateTime<Utc>) -> Option<Moments> {
    let time = |cx: &mut Cx<'_>, key: &str| {
        optional(l.get(key), |n| {
            relative_time(cx, n, now, &format!("`{key}`"))
        })
    };
    let at = time(cx, "at");
    let last_user_interaction_at = time(cx, "last_user_interaction");
    let user_ref_optin_at = time(cx, "user_ref_optin");
    Some(Moments {
        decide_at: at?.unwrap_or(now),
        last_user_interaction_at: last_user_interaction_at?,
        user_ref_optin_at: user_ref_optin_at?,
    })
}

/// What a case says of its recipient besides its moments: consents and opt-outs, reachability,
/// the Marketing Messages token, the page's region, the time zone and the recent sends.
pub(super) struct RecipientFacts {
    /// Transactional, marketing; and of those, recorded through the API.
    consents: (bool, bool, bool, bool),
    /// Transactional, marketing.
    opted_out: (bool, bool),
    unreachable: bool,
    marketing_token: Option<MarketingToken>,
    page_region: Option<String>,
    timezone: Option<chrono_tz::Tz>,
    /// Newest first, as the store hands them over.
    recent_sends: Vec<RecentSend>,
}

impl RecipientFacts {
    pub(super) fn into_facts(self, moments: Moments, role: Role) -> Facts {
        let (t, m, t_api, m_api) = self.consents;
        Facts {
            now: moments.decide_at,
            role,
            transactional_consent: t,
            marketing_consent: m,
            transactional_consent_by_api: t_api,
            marketing_consent_by_api: m_api,
            transactional_opted_out: self.opted_out.0,
            marketing_opted_out: self.opted_out.1,
            unreachable: self.unreachable,
            last_user_interaction_at: moments.last_user_interaction_at,
            user_ref_optin_at: moments.user_ref_optin_at,
            marketing_token: self.marketing_token,
            page_region: self.page_region,
            timezone: self.timezone,
            recent_sends: self.recent_sends,
        }
    }
}

/// `consents = ["transactional", "marketing"]` and the like: which of the two scopes are named.
fn scopes(cx: &mut Cx<'_>, l: &Lookup<'_>, key: &str) -> Option<(bool, bool)> {
    let Some(n) = l.get(key) else {
        return Some((false, false));
    };
    let list = strings(cx, n, &format!("`{key}`"))?;
    let (mut t, mut m) = (false, false);
    for s in list {
        match s {
            "transactional" => t = true,
            "marketing" => m = true,
            other => {
                cx.err(
                    n.best_span(),
                    format!("`{key}`: `{other}` must be transactional or marketing"),
                );
                return None;
            }
        }
    }
    Some((t, m))
}

pub(super) fn read_recipient(
    cx: &mut Cx<'_>,
    l: &Lookup<'_>,
    now: DateTime<Utc>,
) -> Option<RecipientFacts> {
    // A consent recorded through the API is a consent too.
    let consents = scopes(cx, l, "consents");
    let api_consents = scopes(cx, l, "api_consents");
    let consents = consents
        .zip(api_consents)
        .map(|((t, m), (at, am))| (t || at, m || am, at, am));
    let opted_out = scopes(cx, l, "opted_out");
    let unreachable = l
        .get("unreachable")
        .map_or(Some(false), |n| boolean(cx, n, "`unreachable`"));
    let token = optional(l.get("token"), |n| read_token(cx, n, now));
    let region = optional(l.get("region"), |n| {
        string(cx, n, "`region`").map(str::to_owned)
    });
    let tz = optional(l.get("timezone"), |n| timezone(cx, n, "`timezone`"));
    let recent_sends = l
        .get("recent_sends")
        .map_or(Some(Vec::new()), |n| read_sends(cx, n, now));
    Some(RecipientFacts {
        consents: consents?,
        opted_out: opted_out?,
        unreachable: unreachable?,
        marketing_token: token?,
        page_region: region?,
        timezone: tz?,
        recent_sends: recent_sends?,
    })
}

/// `"-3d"` / `"+2h"` (relative to the case's `now`), `"now"`, or a moment.
pub(super) fn relative_time(
    cx: &mut Cx<'_>,
    node: &Node,
    now: DateTime<Utc>,
    what: &str,
) -> Option<DateTime<Utc>> {
    if let Value::String(s) = &node.value {
        let s = s.trim();
        if s == "now" {
            return Some(now);
        }
        let signed = match s.as_bytes().first() {
            Some(b'-') => Some(-1),
            Some(b'+') => Some(1),
            _ => None,
        };
        if let Some(sign) = signed {
            // The sign is one ASCII byte, so `get(1..)` is the rest of the text.
            let offset = s.get(1..).and_then(parse_duration);
            return match offset {
                Some(d) if d > TEST_OFFSET_MAX => {
                    cx.err(
                        node.best_span(),
                        format!(
                            "{what}: `{s}` reaches too far from `now`; at most {} is allowed",
                            fmt_duration(TEST_OFFSET_MAX)
                        ),
                    );
                    None
                }
                Some(d) => Some(if sign < 0 {
                    earlier(now, d)
                } else {
                    later(now, d)
                }),
                None => {
                    cx.err(
                        node.best_span(),
                        format!("{what}: `{s}` is not a relative time; write e.g. \"-3d\", \"+2h\" or \"-1h30m\""),
                    );
                    None
                }
            };
        }
        if parse_moment(s).is_err() {
            cx.err(
                node.best_span(),
                format!("{what}: `{s}` is neither a relative time (\"-3d\") nor a moment (2026-04-27T09:00:00Z)"),
            );
            return None;
        }
    }
    moment(cx, node, what)
}

fn read_token(cx: &mut Cx<'_>, node: &Node, now: DateTime<Utc>) -> Option<MarketingToken> {
    let fields = table(cx, node, "`token`", &["stopped", "last_sent"])?;
    let stopped = get(fields, "stopped").map_or(Some(false), |n| boolean(cx, n, "`token.stopped`"));
    let last_sent_at = optional(get(fields, "last_sent"), |n| {
        relative_time(cx, n, now, "`token.last_sent`")
    });
    Some(MarketingToken {
        stopped: stopped?,
        last_sent_at: last_sent_at?,
    })
}

/// `[{ at = "-1h", category = "marketing", repeat = 20, every = "2m" }]`: `repeat` sends, each
/// `every` earlier than the one before, starting at `at`; newest first, as the store hands
/// them over.
fn read_sends(cx: &mut Cx<'_>, node: &Node, now: DateTime<Utc>) -> Option<Vec<RecentSend>> {
    let Value::Array(items) = &node.value else {
        cx.err(
            node.best_span(),
            "`recent_sends` must be an array of { at, category, repeat?, every? }",
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        match read_send_run(cx, item, now) {
            Some(sends) => out.extend(sends),
            None => ok = false,
        }
    }
    out.sort_by_key(|s: &RecentSend| std::cmp::Reverse(s.at));
    ok.then_some(out)
}

/// One item of `recent_sends`: its `repeat` sends.
fn read_send_run(cx: &mut Cx<'_>, item: &Node, now: DateTime<Utc>) -> Option<Vec<RecentSend>> {
    const WHAT: &str = "a `recent_sends` item";
    let span = item.best_span();
    let fields = table(cx, item, WHAT, &["at", "category", "repeat", "every"])?;
    let at =
        required(cx, fields, &span, "at", WHAT).and_then(|n| relative_time(cx, n, now, "`at`"));
    let category = required(cx, fields, &span, "category", WHAT)
        .and_then(|n| named::<Category>(cx, n, "`category`"));
    let repeat = get(fields, "repeat").map_or(Some(1), |n| integer(cx, n, "`repeat`", 1, 10_000));
    let every = get(fields, "every").map_or(Some(Duration::minutes(1)), |n| {
        duration_up_to(cx, n, "`every`", TEST_OFFSET_MAX)
    });
    let (mut t, category, every) = (at?, category?, every?);
    let mut sends = Vec::new();
    for _ in 0..repeat? {
        sends.push(RecentSend { at: t, category });
        t = earlier(t, every);
    }
    Some(sends)
}
