//! The limits after the route: how often a recipient may be sent to (frequency caps) and when
//! not (quiet hours in the recipient's time zone).

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

use super::{rfc3339, Eval, Stop};
use crate::domain::bounds::{earlier, later};
use crate::domain::decision::{Outcome, Reason, StepResult};
use crate::policy::model::{fmt_duration, WhenExceeded};

impl<'a> Eval<'a> {
    pub(super) fn frequency(&mut self) -> Result<(), Stop<'a>> {
        let p = self.policy;
        let f = self.facts;
        let now = f.now;
        let cat = self.message.category;
        for rule in &p.frequency {
            if !rule.applies_to.contains(cat) {
                self.skip(&rule.meta);
                continue;
            }
            let since = earlier(now, rule.per);
            let counted = |at: DateTime<Utc>| at > since && at <= now;
            let count = f
                .recent_sends
                .iter()
                .filter(|s| rule.applies_to.contains(s.category) && counted(s.at))
                .count();
            if count < rule.max as usize {
                self.pass(&rule.meta, "under the cap for its period");
                continue;
            }
            let said = format!(
                "{count} sent to this recipient in the last {}; the cap is {}",
                fmt_duration(rule.per),
                rule.max
            );
            return Err(match rule.when_exceeded {
                WhenExceeded::Deny => self.deny(&rule.meta, Reason::FrequencyCap, said),
                WhenExceeded::Defer => {
                    // The period has room again once the max-th newest counted send leaves it.
                    let mut ats: Vec<DateTime<Utc>> = f
                        .recent_sends
                        .iter()
                        .filter(|s| rule.applies_to.contains(s.category) && counted(s.at))
                        .map(|s| s.at)
                        .collect();
                    ats.sort_unstable_by(|a, b| b.cmp(a));
                    let nth = ats
                        .get((rule.max as usize).saturating_sub(1))
                        .copied()
                        .unwrap_or(now);
                    let reopen = later(nth, rule.per);
                    let detail = format!("{said}; it may go at {}", rfc3339(reopen));
                    self.stop(
                        &rule.meta,
                        Outcome::Defer,
                        Reason::FrequencyCap,
                        Some(reopen),
                        detail,
                    )
                }
            });
        }
        Ok(())
    }

    pub(super) fn quiet_hours(&mut self) -> Result<(), Stop<'a>> {
        let p = self.policy;
        let f = self.facts;
        let cat = self.message.category;
        for rule in &p.quiet_hours {
            if !rule.applies_to.contains(cat) {
                self.skip(&rule.meta);
                continue;
            }
            if !self.message.respect_quiet_hours {
                self.step(
                    &rule.meta,
                    StepResult::Skip,
                    "waived: the campaign was created with respect_quiet_hours false",
                );
                continue;
            }
            let tz = f.timezone.unwrap_or(rule.timezone_if_unknown);
            let local = f.now.with_timezone(&tz);
            let day_off = rule.is_day_off(local.weekday());
            if !day_off && rule.allows(local.time()) {
                self.pass(
                    &rule.meta,
                    "inside the sending hours in the recipient's time zone",
                );
                continue;
            }
            let mut next = next_local(tz, local, rule.send_from);
            // Past the days off: at most six in a row, since the loader refuses all seven.
            for _ in 0..7 {
                let there = next.with_timezone(&tz);
                if !rule.is_day_off(there.weekday()) {
                    break;
                }
                next = next_local(tz, there, rule.send_from);
            }
            let detail = format!(
                "it is {} {} in {}{}; sending resumes at {} there ({})",
                local.format("%A"),
                local.format("%H:%M"),
                tz.name(),
                if f.timezone.is_none() {
                    " (the recipient's time zone is unknown)"
                } else {
                    ""
                },
                rule.send_from.format("%H:%M"),
                rfc3339(next)
            );
            return Err(self.stop(
                &rule.meta,
                Outcome::Defer,
                Reason::QuietHours,
                Some(next),
                detail,
            ));
        }
        Ok(())
    }
}

/// The next moment after `local` at which the wall clock there reads `at`. A time skipped by a
/// daylight-saving jump moves forward to the first hour that exists; a repeated one takes the
/// earlier occurrence.
///
/// Never panics: at the ends of chrono's range, where the local date or the wanted time does
/// not exist, it answers a day later (saturating), which no real clock reaches.
fn next_local(tz: Tz, local: DateTime<Tz>, at: NaiveTime) -> DateTime<Utc> {
    // Not `date_naive()`, which panics when the local date lies beyond chrono's last day.
    let today = local
        .naive_utc()
        .checked_add_offset(local.offset().fix())
        .map(|n| n.date());
    let day = today.and_then(|today| {
        if local.time() < at {
            Some(today)
        } else {
            today.succ_opt()
        }
    });
    if let Some(day) = day {
        let wanted = day.and_time(at);
        for shift in 0..4 {
            let Some(t) = wanted.checked_add_signed(Duration::hours(shift)) else {
                break;
            };
            match tz.from_local_datetime(&t) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    return t.with_timezone(&Utc)
                }
                LocalResult::None => continue,
            }
        }
    }
    later(local.with_timezone(&Utc), Duration::hours(24))
}
