//! The events feed (`GET /v1/events`, API.md "Events for business systems"): the events of
//! `domain::event`, read from the audit log oldest first, a page at a time, for systems that
//! pull (or missed deliveries) and for `herald events tail`.
//!
//! The cursor names, for each audit chain, the last seq read: a page reads every chain after
//! its position ([`AuditLog::read_chain`]), merges them by moment (each chain stays in seq
//! order), and moves a chain's position only past the entries it hands out, so a cursor
//! neither loses nor repeats an event, however many chains the store keeps and however many
//! entries are written meanwhile. With a recipient, the entries are found through the audit
//! log's recipient index instead ([`AuditLog::query`]) — a cursor of its own kind, holding the
//! store's cursor and the same per-chain positions.
//!
//! ```text
//!   cursor "c1_…" = { chain → last seq handed out }          (every event)
//!                 | { recipient, store cursor, chain → seq }  (?recipient=)
//! ```

use std::collections::{BTreeMap, VecDeque};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CommandError, Herald};
use crate::domain::audit::AuditEntry;
use crate::domain::event::{events_of, Event, TypeFilter};
use crate::domain::Client;
use crate::domain::{FieldError, Role};
use crate::store::{AuditCursor, AuditFilter, AuditOrder};

/// Events a page holds unless asked otherwise.
pub const FEED_DEFAULT_LIMIT: usize = 100;
/// The most events a page holds.
pub const FEED_MAX_LIMIT: usize = 1000;
/// How many entries a page reads from a chain at a time.
const READ_BATCH: usize = 200;
/// How many reads one page may make looking for an event its filters admit: past them it
/// answers what it found (perhaps nothing) with a cursor past what it read.
const READ_ROUNDS: usize = 50;

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStart {
    /// The start of the log (the oldest entry kept).
    Beginning,
    /// The end of the log as it is now: an empty page whose cursor later pages continue from.
    End,
    /// A page's `next_cursor`.
    Cursor(String),
}

/// `GET /v1/events`, parsed.
#[derive(Debug, Clone)]
pub struct FeedQuery {
    pub types: Option<TypeFilter>,
    /// A recipient's key (a PSID).
    pub recipient: Option<String>,
    pub start: FeedStart,
    pub limit: usize,
}

/// One page of the feed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeedPage {
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Event>,
    /// Where the next page starts; always given (an empty page is the end for now: ask again
    /// with the same cursor later).
    pub next_cursor: String,
}

/// What a cursor holds (private: it is opaque to callers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
enum Position {
    /// The last seq handed out, per chain (a chain not named: none yet).
    #[serde(rename = "c")]
    Chains { p: Positions },
    /// One recipient's entries: `r` a digest of the recipient (a cursor is for the recipient
    /// it was made for), `q` the store's cursor to query from, `p` the last seq handed out
    /// per chain (entries at or before it are skipped).
    #[serde(rename = "r")]
    Recipient {
        r: String,
        q: Option<String>,
        p: Positions,
    },
}

/// The last seq handed out per chain, as a cursor keeps it: `[[chain, seq], …]` (a map's keys
/// would be strings in JSON, which an internally tagged enum does not read back as numbers).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Vec<(u32, u64)>", into = "Vec<(u32, u64)>")]
struct Positions(BTreeMap<u32, u64>);

impl From<Vec<(u32, u64)>> for Positions {
    fn from(pairs: Vec<(u32, u64)>) -> Positions {
        Positions(pairs.into_iter().collect())
    }
}

impl From<Positions> for Vec<(u32, u64)> {
    fn from(p: Positions) -> Vec<(u32, u64)> {
        p.0.into_iter().collect()
    }
}

const CURSOR_PREFIX: &str = "c1_";

impl Position {
    fn encode(&self) -> String {
        // A map of numbers and strings always serialises.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{CURSOR_PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(text: &str) -> Option<Position> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().strip_prefix(CURSOR_PREFIX)?)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A short digest of the recipient a cursor was made for.
fn recipient_tag(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

fn bad_cursor(why: &str) -> CommandError {
    CommandError::Invalid(vec![FieldError::new("after", why)])
}

/// Which events of an entry a caller may see and asked for.
struct Admit<'a> {
    types: Option<&'a TypeFilter>,
    /// A backend sees only the `message.*` events of the messages it sent.
    own_messages_of: Option<&'a str>,
}

impl Admit<'_> {
    fn events(&self, entry: &AuditEntry) -> Vec<Event> {
        if let Some(client) = self.own_messages_of {
            if entry.client.as_deref() != Some(client) {
                return Vec::new();
            }
        }
        events_of(entry)
            .into_iter()
            .filter(|e| self.own_messages_of.is_none() || e.kind.starts_with("message."))
            .filter(|e| self.types.is_none_or(|t| t.admits(&e.kind)))
            .collect()
    }
}

/// Adds an entry's events to the page unless they would make it longer than `limit` (an
/// entry's events go whole: a page holds at least one entry's). Returns whether they went.
fn take(out: &mut Vec<Event>, events: Vec<Event>, limit: usize) -> bool {
    if !out.is_empty() && out.len() + events.len() > limit {
        return false;
    }
    out.extend(events);
    true
}

impl Herald {
    /// A page of events for `client` (admin and compliance: every event; backend: the
    /// `message.*` events of its own messages; others: none).
    pub async fn events_feed(
        &self,
        client: &Client,
        query: &FeedQuery,
    ) -> Result<FeedPage, CommandError> {
        let admit = Admit {
            types: query.types.as_ref(),
            own_messages_of: match client.role {
                Role::Admin | Role::Compliance => None,
                Role::Backend => Some(client.name.as_str()),
                _ => {
                    return Err(CommandError::Forbidden(format!(
                        "role {} may not read events",
                        client.role
                    )))
                }
            },
        };
        let limit = query.limit.clamp(1, FEED_MAX_LIMIT);
        let position = match (&query.start, &query.recipient) {
            (FeedStart::Cursor(text), _) => {
                Position::decode(text).ok_or_else(|| bad_cursor("not a cursor of this feed"))?
            }
            (FeedStart::Beginning, None) => Position::Chains {
                p: Positions::default(),
            },
            (FeedStart::Beginning, Some(key)) => Position::Recipient {
                r: recipient_tag(key),
                q: None,
                p: Positions::default(),
            },
            (FeedStart::End, recipient) => {
                let p = Positions(self.store.audit.chains().await?.into_iter().collect());
                match recipient {
                    None => Position::Chains { p },
                    Some(key) => Position::Recipient {
                        r: recipient_tag(key),
                        q: None,
                        p,
                    },
                }
            }
        };
        if query.start == FeedStart::End {
            return Ok(FeedPage {
                events: Vec::new(),
                next_cursor: position.encode(),
            });
        }
        let (events, next) = match (position, &query.recipient) {
            (Position::Chains { p }, None) => {
                let (events, p) = self.read_chains(p.0, &admit, limit).await?;
                (events, Position::Chains { p: Positions(p) })
            }
            (Position::Recipient { r, q, p }, Some(key)) if r == recipient_tag(key) => {
                let (events, q, p) = self.read_recipient(key, q, p.0, &admit, limit).await?;
                let p = Positions(p);
                (events, Position::Recipient { r, q, p })
            }
            _ => {
                return Err(bad_cursor(
                    "this cursor was made for another recipient filter: ask with the same `recipient` as the page it came from",
                ))
            }
        };
        Ok(FeedPage {
            events,
            next_cursor: next.encode(),
        })
    }

    /// Every chain after its position, merged by moment (each chain in seq order); a chain's
    /// position moves only past the entries handed out.
    async fn read_chains(
        &self,
        mut positions: BTreeMap<u32, u64>,
        admit: &Admit<'_>,
        limit: usize,
    ) -> Result<(Vec<Event>, BTreeMap<u32, u64>), CommandError> {
        let audit = &self.store.audit;
        let chains = audit.chains().await?;
        // Enough to fill the page from one chain, not many times that from each.
        let batch_size = limit.clamp(20, READ_BATCH);
        let mut out = Vec::new();
        for _ in 0..READ_ROUNDS {
            // Each chain's next entries; `full`: there may be more after them.
            let mut heads: Vec<(u32, VecDeque<AuditEntry>, bool)> = Vec::new();
            for &(chain, last) in &chains {
                let after = positions.get(&chain).copied().unwrap_or(0);
                if after >= last {
                    continue;
                }
                let batch = audit.read_chain(chain, after, batch_size).await?;
                let full = batch.len() == batch_size;
                heads.push((chain, batch.into(), full));
            }
            if heads.iter().all(|(_, batch, _)| batch.is_empty()) {
                break;
            }
            let mut page_full = false;
            loop {
                // A chain read to the end of its batch may have more: its next entry is not
                // known, so nothing after its last can be put in order; read again.
                if heads
                    .iter()
                    .any(|(_, batch, full)| *full && batch.is_empty())
                {
                    break;
                }
                let next = heads
                    .iter_mut()
                    .filter(|(_, batch, _)| !batch.is_empty())
                    .min_by_key(|(chain, batch, _)| batch.front().map(|e| (e.at, *chain, e.seq)));
                let Some((chain, batch, _)) = next else {
                    break;
                };
                let Some(entry) = batch.pop_front() else {
                    break;
                };
                if !take(&mut out, admit.events(&entry), limit) {
                    page_full = true;
                    break;
                }
                positions.insert(*chain, entry.seq);
            }
            if page_full || !out.is_empty() {
                break;
            }
        }
        Ok((out, positions))
    }

    /// One recipient's entries through the audit log's recipient index, after the store's
    /// cursor `q`, skipping what was handed out already (`positions`).
    async fn read_recipient(
        &self,
        key: &str,
        mut q: Option<String>,
        mut positions: BTreeMap<u32, u64>,
        admit: &Admit<'_>,
        limit: usize,
    ) -> Result<(Vec<Event>, Option<String>, BTreeMap<u32, u64>), CommandError> {
        let filter = AuditFilter {
            recipient: Some(key.to_owned()),
            ..AuditFilter::default()
        };
        let mut out = Vec::new();
        for _ in 0..READ_ROUNDS {
            let cursor = q.clone().map(AuditCursor);
            let page = self
                .store
                .audit
                .query(
                    &filter,
                    AuditOrder::OldestFirst,
                    cursor.as_ref(),
                    READ_BATCH,
                )
                .await?;
            let mut page_full = false;
            for entry in &page.entries {
                let chain = entry.chain.unwrap_or(0);
                if positions.get(&chain).is_some_and(|seen| entry.seq <= *seen) {
                    continue;
                }
                if !take(&mut out, admit.events(entry), limit) {
                    page_full = true;
                    break;
                }
                positions.insert(chain, entry.seq);
            }
            // Past the store's page only once all of it was handed out; until then the same
            // page is read again and what was handed out skipped.
            match page.next {
                Some(next) if !page_full => q = Some(next.0),
                _ => break,
            }
            if !out.is_empty() {
                break;
            }
        }
        Ok((out, q, positions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_anything_else_is_refused() {
        let p = Position::Chains {
            p: Positions(BTreeMap::from([(0, 42), (3, 7)])),
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        let r = Position::Recipient {
            r: recipient_tag("5551"),
            q: Some("00ff".into()),
            p: Positions(BTreeMap::from([(0, 9)])),
        };
        assert_eq!(Position::decode(&r.encode()), Some(r));
        for bad in ["", "c1_", "c1_!!!", "c2_e30", "evt_0_1_0", "c1_e30"] {
            assert_eq!(Position::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_page_takes_an_entrys_events_whole_and_at_least_one_entrys() {
        let event = |i: u64| Event {
            id: format!("evt_0_{i}_0"),
            kind: "message.sent".into(),
            at: chrono::Utc::now(),
            data: serde_json::Value::Null,
        };
        let mut out = Vec::new();
        assert!(
            take(&mut out, vec![event(1), event(1)], 1),
            "the first entry goes whole"
        );
        assert!(!take(&mut out, vec![event(2)], 2));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_backend_sees_only_the_message_events_of_its_own_messages() {
        let entry = |kind, client: &str| AuditEntry {
            kind,
            outcome: Some("allow".into()),
            client: Some(client.to_owned()),
            ..AuditEntry::default()
        };
        let shop = Admit {
            types: None,
            own_messages_of: Some("shop"),
        };
        use crate::domain::audit::AuditKind;
        assert_eq!(shop.events(&entry(AuditKind::Decision, "shop")).len(), 1);
        assert!(shop.events(&entry(AuditKind::Decision, "other")).is_empty());
        let mut consent = entry(AuditKind::Consent, "shop");
        consent.outcome = Some("grant".into());
        assert!(shop.events(&consent).is_empty(), "not a message event");
        let all = Admit {
            types: None,
            own_messages_of: None,
        };
        assert_eq!(all.events(&consent).len(), 1);
    }
}
