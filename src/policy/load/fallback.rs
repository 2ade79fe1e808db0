//! `[fallback]`: which transactional categories may go by email when Messenger cannot take
//! them, and how long a page's Graph API must fail before Herald treats it as an outage.
//!
//! ```toml
//! [fallback]
//! email        = ["receipt", "shipping_update", "account_update"]
//! outage_after = "10m"
//! ```
//!
//! Optional: a policy without it sends nothing by email, and a page's circuit breaker opens
//! after the default ten minutes.

use super::*;

/// The longest `outage_after` the policy may set.
const OUTAGE_AFTER_MAX_HOURS: i64 = 24;

impl Builder {
    pub(super) fn read_fallback(&mut self, cx: &mut Cx<'_>, e: &Entry) {
        let Some(entries) = table(cx, &e.node, "[fallback]", &["email", "outage_after"]) else {
            return;
        };
        if let Some(k) = entries.iter().find(|x| x.key == "email") {
            let email = categories(cx, &k.node, "`fallback.email`");
            if email.is_some_and(|e| e.contains(Category::Marketing)) {
                cx.err(
                    k.span(),
                    "`fallback.email` may not list marketing: marketing never goes by email",
                );
            } else if let Some(email) = email {
                if self.claim(cx, "fallback.email", &k.span()) {
                    self.fallback.email = email;
                    self.fallback.email_meta = Some(cx.meta("fallback.email", &k.span()));
                }
            }
        }
        if let Some(k) = entries.iter().find(|x| x.key == "outage_after") {
            let max = Duration::hours(OUTAGE_AFTER_MAX_HOURS);
            match duration(cx, &k.node, "`fallback.outage_after`", max) {
                Some(after) if after < Duration::seconds(1) => {
                    cx.err(k.span(), "`fallback.outage_after` must be at least 1s");
                }
                Some(after) if self.claim(cx, "fallback.outage_after", &k.span()) => {
                    self.fallback.outage_after = after;
                    self.fallback.outage_meta = Some(cx.meta("fallback.outage_after", &k.span()));
                }
                _ => {}
            }
        }
    }
}
