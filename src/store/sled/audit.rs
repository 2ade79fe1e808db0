//! Reading the audit chain back: queries through the secondary indexes, verification from where
//! the chain starts, retention and erasure; and entries that belong to no other write.
//!
//! Index keys (tree `audit_index`), written in the transaction that appends the entry: the
//! recipient (a compliance officer's question, and erasure's walk) and the campaign, the two
//! that narrow a query to a small part of the log; and one key per transaction for the time
//! ([`super::timeline`]), which bounds the part of the chain a time query walks:
//!
//! ```text
//!   r ++ pseudonym ++ 0 ++ seq     m ++ campaign ++ 0 ++ seq     w ++ watermark (ms) ++ first seq
//! ```
//!
//! Entries written before issue 18 also have `p` (page), `c` (category), `o` (outcome), `e`
//! (reason) and `l` (client) keys. They cost five keys an entry, a third of every message's
//! writes, for fields a handful of values share (a page, a client, `allow`), where walking the
//! index reads nearly as much as walking the chain. A query no longer walks them (they stay
//! until retention prunes their entry): a query by those fields walks the chain and skips, from
//! the stored bytes, every entry that cannot match before decoding it ([`Needles`]). Entries
//! written before the time index had a time key each (`t ++ time (ms) ++ seq`), likewise no
//! longer walked and removed with their entry.
//!
//! A query walks the one index that narrows it most (or the chain itself) and checks the other
//! fields on each entry it reads. A cursor is the last key walked, in hex.
//!
//! An entry's value (tree `audit`, packed) holds the entry as sealed — the JSON its hash covers —
//! then, if it has erasable values ([`Personal`]), a NUL byte and their JSON ([`Stored`]).
//! Erasure rewrites the value without them; the chain is untouched. Entries written before
//! (issue 18, session 20) keep their erasable values in `audit_personal` under their seq, which
//! is still read, erased and pruned.

use std::ops::Bound;

use async_trait::async_trait;

use super::{decode, millis, SledStore, StoreError, Tx, TxResult, AUDIT_START, T};
use crate::domain::audit::{
    verify_chain, AuditEntry, AuditHead, ChainItem, ChainPoint, Personal, Verification,
};
use crate::store::packing;
use crate::store::{AuditCursor, AuditFilter, AuditLog, AuditOrder, AuditPage, Pruned};

/// The most keys one query page walks before it answers with what it has and a cursor: a
/// filter that matches little cannot make one request walk the whole log.
const SCAN_BUDGET: usize = 20_000;

/// Entries pruned per transaction.
const PRUNE_CHUNK: usize = 1_000;
/// Entries handed from the reading thread to the hashing one at a time, in `verify`.
const VERIFY_CHUNK: usize = 1_024;

fn tagged(tag: u8, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 10);
    key.push(tag);
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

fn with_seq(mut prefix: Vec<u8>, seq: u64) -> Vec<u8> {
    prefix.extend_from_slice(&seq.to_be_bytes());
    prefix
}

/// The fields an entry is indexed by, as (tag, value).
fn indexed_fields(entry: &AuditEntry) -> [(u8, Option<&str>); 2] {
    [
        (b'r', entry.recipient_pseudonym.as_deref()),
        (b'm', entry.campaign.as_deref()),
    ]
}

/// The fields entries written before issue 18 were also indexed by (see the module's
/// documentation): their keys are no longer written nor walked, only removed with their entry.
fn legacy_fields(entry: &AuditEntry) -> [(u8, Option<&str>); 5] {
    [
        (b'p', entry.page_id.as_deref()),
        (b'c', entry.category.map(|c| c.as_str())),
        (b'o', entry.outcome.as_deref()),
        (b'e', entry.reason.as_deref()),
        (b'l', entry.client.as_deref()),
    ]
}

fn field_keys<const N: usize>(fields: [(u8, Option<&str>); N], seq: u64) -> Vec<Vec<u8>> {
    fields
        .into_iter()
        .filter_map(|(tag, value)| value.map(|v| with_seq(tagged(tag, v), seq)))
        .collect()
}

/// Every index key of a sealed entry (its time is indexed per transaction: [`super::timeline`]).
pub(super) fn index_keys(entry: &AuditEntry) -> Vec<Vec<u8>> {
    field_keys(indexed_fields(entry), entry.seq)
}

/// The time key versions before the time index ([`super::timeline`]) wrote for each entry.
fn legacy_time_key(entry: &AuditEntry) -> Vec<u8> {
    let mut time = vec![b't'];
    time.extend_from_slice(&millis(entry.at));
    with_seq(time, entry.seq)
}

/// Every index key an entry may have, whichever version wrote it: what pruning it removes.
fn all_index_keys(entry: &AuditEntry) -> Vec<Vec<u8>> {
    let mut keys = index_keys(entry);
    keys.extend(field_keys(legacy_fields(entry), entry.seq));
    keys.push(legacy_time_key(entry));
    keys
}

/// What an entry's stored JSON must contain to match a filter's fields that no index narrows:
/// `"field":value` as the sealed entry encodes it. The stored JSON is serde's encoding of the
/// entry ([`AuditEntry::seal`]), whose keys are unique and whose strings escape every quote, so
/// an entry without one of these byte strings cannot match, and is skipped undecoded; one with
/// them all is decoded and checked field by field ([`matches`]).
struct Needles(Vec<memchr::memmem::Finder<'static>>);

impl Needles {
    fn of(f: &AuditFilter) -> Needles {
        let fields: [(&str, Option<&str>); 6] = [
            ("page_id", f.page_id.as_deref()),
            ("category", f.category.map(|c| c.as_str())),
            ("outcome", f.outcome.as_deref()),
            ("reason", f.reason.as_deref()),
            ("client", f.client.as_deref()),
            ("kind", f.kind.map(|k| k.as_str())),
        ];
        Needles(
            fields
                .into_iter()
                .filter_map(|(name, value)| {
                    let value = serde_json::to_string(value?).ok()?;
                    let needle = format!("\"{name}\":{value}");
                    Some(memchr::memmem::Finder::new(needle.as_bytes()).into_owned())
                })
                .collect(),
        )
    }

    /// Whether the stored entry may match.
    fn admit(&self, stored: &[u8]) -> bool {
        self.0.iter().all(|n| n.find(stored).is_some())
    }
}

/// An audit value, unpacked, in its two parts.
pub(super) struct Stored<'a> {
    /// The entry as sealed: the JSON its hash covers.
    pub(super) sealed: &'a [u8],
    /// Its erasable values' JSON, if it has them and they are not erased, and were written with
    /// the entry (not in `audit_personal`, as before session 20).
    pub(super) personal: Option<&'a [u8]>,
}

impl<'a> Stored<'a> {
    /// Cuts an unpacked value at its NUL byte, which JSON never holds: serde escapes every
    /// control character inside a string, and none may stand outside one.
    pub(super) fn split(json: &'a [u8]) -> Stored<'a> {
        match memchr::memchr(0, json) {
            Some(at) => Stored {
                sealed: &json[..at],
                personal: json.get(at + 1..),
            },
            None => Stored {
                sealed: json,
                personal: None,
            },
        }
    }
}

/// The value an entry is stored as, before packing: `sealed`, then its erasable values.
pub(super) fn stored_value(
    mut sealed: Vec<u8>,
    personal: Option<&Personal>,
) -> Result<Vec<u8>, serde_json::Error> {
    if let Some(personal) = personal {
        sealed.push(0);
        serde_json::to_writer(&mut sealed, personal)?;
    }
    Ok(sealed)
}

/// A stored entry as verification reads it: the JSON its hash covers, or undecodable.
fn sealed(seq: u64, stored: &[u8]) -> ChainItem {
    match packing::unpack(stored) {
        Ok(json) => {
            let mut bytes = json.into_owned();
            bytes.truncate(Stored::split(&bytes).sealed.len());
            ChainItem::Sealed { seq, bytes }
        }
        Err(_) => ChainItem::Undecodable { seq },
    }
}

pub(super) fn seq_of(key: &[u8]) -> Option<u64> {
    let tail = key.len().checked_sub(8).and_then(|from| key.get(from..))?;
    <[u8; 8]>::try_from(tail).ok().map(u64::from_be_bytes)
}

/// The range a query walks: a tree and the bounds of its keys.
struct Walk {
    tree: T,
    low: Vec<u8>,
    /// Exclusive; `None`: to the end of the tree.
    high: Option<Vec<u8>>,
}

#[async_trait]
impl AuditLog for SledStore {
    /// Appends entries in a transaction of their own and waits until they are durable.
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        self.commit(|tx| {
            for e in entries {
                tx.audit(e)?;
            }
            Ok(())
        })?;
        self.durable().await
    }

    /// The current end of the audit chain.
    async fn head(&self) -> Result<AuditHead, StoreError> {
        Ok(self.end.lock().head.clone())
    }

    /// Up to `limit` entries from `from_seq` on, in order. Bytes that do not decode are
    /// reported as such (the chain breaks there); a read that fails is an error.
    async fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<ChainItem>, StoreError> {
        self.tree(T::Audit)
            .range(from_seq.to_be_bytes()..)
            .take(limit)
            .map(|item| {
                item.map_err(StoreError::from)
                    .map(|(k, v)| chain_item(&k, &v))
            })
            .collect()
    }

    /// One chain, up to its last entry on disk (see `read_chain`).
    async fn chains(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        Ok(vec![(0, self.durable_seq())])
    }

    /// One chain (0): the writer appends in seq order, one transaction at a time. Only entries
    /// on disk are read: one committed but not yet flushed could still be undone by a crash,
    /// and an event must never tell of a change that did not happen.
    async fn read_chain(
        &self,
        chain: u32,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        if chain != 0 {
            return Ok(Vec::new());
        }
        let all = Needles(Vec::new());
        let mut out = Vec::with_capacity(limit.min(1024));
        let (from, through) = (after.saturating_add(1), self.durable_seq());
        if from > through {
            return Ok(out);
        }
        for item in self
            .tree(T::Audit)
            .range(from.to_be_bytes()..=through.to_be_bytes())
            .take(limit)
        {
            let (key, bytes) = item?;
            let seq = seq_of(&key).unwrap_or_default();
            out.extend(self.entry(seq, Some(&bytes), &all)?);
        }
        Ok(out)
    }

    /// Walks the whole chain from where it starts. Each entry is checked as stored, without
    /// decoding it: verification is a hash over the JSON on disk (BENCHMARKS.md). One thread
    /// reads and unpacks the entries while this one hashes them.
    async fn verify(&self) -> Result<Verification, StoreError> {
        let start = self.audit_start()?;
        let from = (start.seq + 1).to_be_bytes();
        let tree = self.tree(T::Audit);
        std::thread::scope(|scope| {
            let (chunks, arrived) = std::sync::mpsc::sync_channel(2);
            scope.spawn(move || {
                let mut chunk = Vec::with_capacity(VERIFY_CHUNK);
                for item in tree.range(from..) {
                    chunk.push(
                        item.map_err(StoreError::from)
                            .map(|(k, v)| sealed(seq_of(&k).unwrap_or_default(), &v)),
                    );
                    if chunk.len() == VERIFY_CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(VERIFY_CHUNK));
                        if chunks.send(full).is_err() {
                            // The chain broke and verification stopped reading.
                            return;
                        }
                    }
                }
                let _ = chunks.send(chunk);
            });
            verify_chain(start, arrived.into_iter().flatten())
        })
    }

    async fn hash_at(&self, point: &ChainPoint) -> Result<Option<String>, StoreError> {
        let seq = point.seq;
        let start = self.audit_start()?;
        if seq == start.seq {
            return Ok(Some(start.hash));
        }
        let Some(bytes) = self.tree(T::Audit).get(seq.to_be_bytes())? else {
            return Ok(None);
        };
        // Bytes that are no entry have no hash: the checkpoint does not hold.
        Ok(decode::<AuditEntry>(T::Audit, &bytes).ok().map(|e| e.hash))
    }

    async fn query(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        cursor: Option<&AuditCursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        // Once per query: a pseudonym is an HMAC.
        let pseudonym = filter.recipient.as_deref().map(|r| self.pseudonyms.of(r));
        let walk = self.walk_for(filter, pseudonym.as_deref())?;
        let needles = Needles::of(filter);
        let after = cursor
            .map(|c| hex::decode(&c.0).map_err(|_| StoreError::BadCursor))
            .transpose()?;
        let (mut low, mut high) = (
            Bound::Included(walk.low.as_slice()),
            walk.high
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded),
        );
        match (&after, order) {
            (Some(a), AuditOrder::OldestFirst) => low = Bound::Excluded(a.as_slice()),
            (Some(a), AuditOrder::NewestFirst) => high = Bound::Excluded(a.as_slice()),
            (None, _) => {}
        }
        let range = self.tree(walk.tree).range::<&[u8], _>((low, high));
        let keys: Box<dyn Iterator<Item = _>> = match order {
            AuditOrder::OldestFirst => Box::new(range),
            AuditOrder::NewestFirst => Box::new(range.rev()),
        };
        let mut page = AuditPage::default();
        let mut last = None;
        for (walked, item) in keys.enumerate() {
            if walked == SCAN_BUDGET || page.entries.len() == limit {
                page.next = last.map(|k: sled::IVec| AuditCursor(hex::encode(k)));
                return Ok(page);
            }
            let (key, value) = item?;
            let Some(seq) = seq_of(&key) else { continue };
            let chained = (walk.tree == T::Audit).then_some(value.as_ref());
            if let Some(entry) = self.entry(seq, chained, &needles)? {
                if matches(filter, pseudonym.as_deref(), &entry) {
                    page.entries.push(entry);
                }
            }
            last = Some(key);
        }
        Ok(page)
    }

    async fn erase_personal(&self, recipient: &str) -> Result<u64, StoreError> {
        let prefix = tagged(b'r', &self.pseudonyms.of(recipient));
        let mut erased = 0;
        let mut keys = self.tree(T::AuditIndex).scan_prefix(&prefix).peekable();
        while keys.peek().is_some() {
            let chunk = keys
                .by_ref()
                .take(PRUNE_CHUNK)
                .map(|item| item.map(|(k, _)| seq_of(&k)))
                .collect::<Result<Vec<_>, _>>()?;
            erased += self.commit(|tx| {
                let mut n = 0;
                for seq in chunk.into_iter().flatten() {
                    n += u64::from(tx.erase_personal(seq)?);
                }
                Ok(n)
            })?;
        }
        self.durable().await?;
        Ok(erased)
    }

    async fn prune(
        &self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Pruned>, StoreError> {
        let mut pruned: Option<Pruned> = None;
        loop {
            let chunk = self.commit(|tx| tx.prune_chunk(before))?;
            let Some(chunk) = chunk else { break };
            pruned = Some(Pruned {
                entries: pruned.as_ref().map_or(0, |p| p.entries) + chunk.entries,
                through: chunk.through,
            });
        }
        if pruned.is_some() {
            self.durable().await?;
        }
        Ok(pruned)
    }
}

impl SledStore {
    /// The last entry pruned (the genesis if none was).
    pub(super) fn audit_start(&self) -> Result<AuditHead, StoreError> {
        Ok(self.read(T::Meta, AUDIT_START)?.unwrap_or_default())
    }

    /// An entry by seq, with its personal values if they are still kept; `None` when there is
    /// none, or when its stored bytes show that it cannot match (`needles`).
    fn entry(
        &self,
        seq: u64,
        bytes: Option<&[u8]>,
        needles: &Needles,
    ) -> Result<Option<AuditEntry>, StoreError> {
        let owned;
        let bytes = match bytes {
            Some(b) => b,
            None => match self.tree(T::Audit).get(seq.to_be_bytes())? {
                Some(b) => {
                    owned = b;
                    &owned
                }
                None => return Ok(None),
            },
        };
        let json = packing::unpack_stored(T::Audit.record(), bytes)?;
        let stored = Stored::split(&json);
        if !needles.admit(stored.sealed) {
            return Ok(None);
        }
        let mut entry: AuditEntry = decode(T::Audit, stored.sealed)?;
        if entry.personal_sha256.is_some() {
            entry.personal = match stored.personal {
                Some(json) => Some(decode(T::AuditPersonal, json)?),
                None => self.read::<Personal>(T::AuditPersonal, &seq.to_be_bytes())?,
            };
        }
        Ok(Some(entry))
    }

    /// The index (or the part of the chain) that narrows `filter` most; `pseudonym` is its
    /// recipient's.
    fn walk_for(&self, f: &AuditFilter, pseudonym: Option<&str>) -> Result<Walk, StoreError> {
        let by_field = [(b'r', pseudonym), (b'm', f.campaign.as_deref())];
        if let Some((tag, Some(value))) = by_field.into_iter().find(|(_, v)| v.is_some()) {
            let low = tagged(tag, value);
            let mut high = low.clone();
            if let Some(last) = high.last_mut() {
                *last = 1;
            }
            return Ok(Walk {
                tree: T::AuditIndex,
                low,
                high: Some(high),
            });
        }
        if f.from.is_some() || f.to.is_some() {
            let (low, high) = self.seqs_between(f.from, f.to)?;
            return Ok(Walk {
                tree: T::Audit,
                low: low.to_be_bytes().to_vec(),
                high: high.map(|h| h.max(low).to_be_bytes().to_vec()),
            });
        }
        Ok(Walk {
            tree: T::Audit,
            low: Vec::new(),
            high: None,
        })
    }
}

impl Tx<'_> {
    /// Erases the erasable values of the entry at `seq`, wherever they are kept; whether it had
    /// any left.
    fn erase_personal(&mut self, seq: u64) -> TxResult<bool> {
        let key = seq.to_be_bytes();
        let mut erased = false;
        if self.contains(T::AuditPersonal, &key)? {
            self.remove(T::AuditPersonal, &key)?;
            erased = true;
        }
        let Some(value) = self.raw(T::Audit, &key)? else {
            return Ok(erased);
        };
        let json = packing::unpack_stored(T::Audit.record(), &value)?;
        let stored = Stored::split(&json);
        if stored.personal.is_none() {
            return Ok(erased);
        }
        let kept = packing::pack_stored(T::Audit.record(), stored.sealed)?;
        self.put_raw(T::Audit, &key, &kept)?;
        Ok(true)
    }

    /// Prunes up to [`PRUNE_CHUNK`] entries older than `before` from the start of the chain,
    /// and records the last as where the chain now starts. Never the newest entry, so the head
    /// is always on record; never bytes that do not decode, which are left for verify to name.
    fn prune_chunk(&mut self, before: chrono::DateTime<chrono::Utc>) -> TxResult<Option<Pruned>> {
        let start: AuditHead = self.get(T::Meta, AUDIT_START)?.unwrap_or_default();
        let head_seq = self.head.seq;
        let mut through = None;
        let mut n = 0;
        let from = (start.seq + 1).to_be_bytes();
        for item in self.store.tree(T::Audit).range(from..).take(PRUNE_CHUNK) {
            let (key, value) = item?;
            let Ok(entry) = decode::<AuditEntry>(T::Audit, &value) else {
                break;
            };
            if entry.at >= before || entry.seq >= head_seq {
                break;
            }
            self.remove(T::Audit, &key)?;
            self.remove(T::AuditPersonal, &key)?;
            for index in all_index_keys(&entry) {
                self.remove(T::AuditIndex, &index)?;
            }
            n += 1;
            through = Some(AuditHead::at(entry.seq, entry.hash));
        }
        let Some(through) = through else {
            return Ok(None);
        };
        self.unindex_times_through(through.seq)?;
        self.put(T::Meta, AUDIT_START, &through)?;
        Ok(Some(Pruned {
            entries: n,
            through,
        }))
    }
}

/// Whether `entry` has every field `filter` asks for (`pseudonym`: the filter's recipient's).
fn matches(f: &AuditFilter, pseudonym: Option<&str>, entry: &AuditEntry) -> bool {
    let same = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    let recipient_ok = pseudonym.is_none_or(|p| entry.recipient_pseudonym.as_deref() == Some(p));
    recipient_ok
        && same(&f.page_id, &entry.page_id)
        && f.category.is_none_or(|c| entry.category == Some(c))
        && same(&f.outcome, &entry.outcome)
        && same(&f.reason, &entry.reason)
        && same(&f.campaign, &entry.campaign)
        && same(&f.client, &entry.client)
        && f.kind.is_none_or(|k| entry.kind == k)
        && f.from.is_none_or(|from| entry.at >= from)
        && f.to.is_none_or(|to| entry.at < to)
}

fn chain_item(key: &[u8], value: &[u8]) -> ChainItem {
    let seq = seq_of(key).unwrap_or_default();
    match decode::<AuditEntry>(T::Audit, value) {
        Ok(entry) => ChainItem::Entry(entry),
        Err(_) => ChainItem::Undecodable { seq },
    }
}

#[cfg(test)]
pub(super) mod tests {
    use chrono::{Duration, Utc};

    use super::*;
    use crate::domain::audit::{AuditKind, Personal};
    use crate::domain::Category;

    fn entry(i: i64, client: &str, kind: AuditKind) -> AuditEntry {
        AuditEntry {
            at: Utc::now() - Duration::hours(10 - i),
            kind,
            message_id: Some(format!("msg_{i}")),
            page_id: Some(format!("p{}", i % 2)),
            category: Some(Category::Receipt),
            outcome: Some(["allow", "sent"][(i % 2) as usize].into()),
            client: Some(client.into()),
            campaign: (i == 2).then(|| "cmp_1".to_owned()),
            // Text that holds what a needle looks for, inside a string: no match by itself.
            detail: Some(r#""page_id":"p9","kind":"consent""#.into()),
            personal: Some(Personal::of("4242")),
            ..AuditEntry::default()
        }
    }

    fn index_len(store: &SledStore) -> usize {
        store.tree(T::AuditIndex).len()
    }

    async fn found(store: &SledStore, filter: AuditFilter) -> Vec<u64> {
        walked(store, &filter, AuditOrder::OldestFirst, 1).await
    }

    /// The seqs a query finds, page by page of `page` entries.
    pub(in crate::store::sled) async fn walked(
        store: &SledStore,
        filter: &AuditFilter,
        order: AuditOrder,
        page: usize,
    ) -> Vec<u64> {
        let mut seqs = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .query(filter, order, cursor.as_ref(), page)
                .await
                .expect("query");
            seqs.extend(page.entries.iter().map(|e| e.seq));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return seqs,
            }
        }
    }

    #[tokio::test]
    async fn entries_written_with_the_old_index_keys_still_read_verify_and_prune_whole() {
        let store = crate::store::sled::temporary().await;
        // Entry 1 as a version before issue 18 wrote it: the same stored entry, with its page,
        // category, outcome, reason and client keys besides.
        store
            .append(vec![entry(0, "shop", AuditKind::Decision)])
            .await
            .expect("append");
        let old = store.entry(1, None, &Needles(Vec::new())).expect("read");
        let old = old.expect("entry 1");
        let mut legacy = field_keys(legacy_fields(&old), old.seq);
        assert_eq!(legacy.len(), 4, "page, category, outcome, client");
        legacy.push(legacy_time_key(&old));
        store
            .commit(|tx| {
                for key in &legacy {
                    tx.put_raw(T::AuditIndex, key, &[])?;
                }
                Ok(())
            })
            .expect("old keys");
        assert_eq!(
            index_len(&store),
            2 + 5,
            "r, and the transaction's time key; the old keys"
        );

        let before = index_len(&store);
        store
            .append(vec![
                entry(1, "shop \"é\", ltd", AuditKind::Attempt),
                entry(2, "shop", AuditKind::Decision),
            ])
            .await
            .expect("append");
        assert_eq!(
            index_len(&store) - before,
            2 + 1 + 1,
            "new entries: the recipient, the campaign when they have one, and a time key for \
             their transaction"
        );

        let v = store.verify().await.expect("verify");
        assert_eq!((v.ok, v.entries), (true, 3), "{v:?}");
        let by = |f: AuditFilter| found(&store, f);
        assert_eq!(
            by(AuditFilter {
                recipient: Some("4242".into()),
                ..AuditFilter::default()
            })
            .await,
            [1, 2, 3]
        );
        assert_eq!(
            by(AuditFilter {
                page_id: Some("p0".into()),
                ..AuditFilter::default()
            })
            .await,
            [1, 3]
        );
        assert!(
            by(AuditFilter {
                page_id: Some("p9".into()),
                ..AuditFilter::default()
            })
            .await
            .is_empty(),
            "a needle inside a string value is no match"
        );
        assert_eq!(
            by(AuditFilter {
                client: Some("shop \"é\", ltd".into()),
                ..AuditFilter::default()
            })
            .await,
            [2],
            "a value JSON escapes"
        );
        assert_eq!(
            by(AuditFilter {
                outcome: Some("allow".into()),
                kind: Some(AuditKind::Decision),
                ..AuditFilter::default()
            })
            .await,
            [1, 3]
        );
        assert_eq!(
            by(AuditFilter {
                campaign: Some("cmp_1".into()),
                client: Some("shop".into()),
                ..AuditFilter::default()
            })
            .await,
            [3]
        );
        assert_eq!(
            by(AuditFilter {
                from: Some(old.at + Duration::minutes(30)),
                category: Some(Category::Receipt),
                ..AuditFilter::default()
            })
            .await,
            [2, 3]
        );

        // Pruning the old entry takes its old keys with it; the newest is never pruned.
        let pruned = store
            .prune(Utc::now() + Duration::hours(1))
            .await
            .expect("prune")
            .expect("pruned");
        assert_eq!(pruned.entries, 2);
        assert_eq!(
            index_len(&store),
            3,
            "only the newest entry's keys are left, and its transaction's time key"
        );
        assert!(store.verify().await.expect("verify").ok);
    }

    #[tokio::test]
    async fn a_chain_is_read_after_a_seq_with_its_personal_values_until_erased() {
        let store = crate::store::sled::temporary().await;
        let mut entries: Vec<_> = (0..3)
            .map(|i| entry(i, "shop", AuditKind::Status))
            .collect();
        for e in &mut entries {
            e.personal = Some(Personal::of("5551"));
        }
        store.append(entries).await.expect("append");
        assert_eq!(store.chains().await.expect("chains"), vec![(0, 3)]);
        let read = store.read_chain(0, 1, 10).await.expect("read");
        assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(read[0].recipient(), Some("5551"));
        assert!(store.read_chain(1, 0, 10).await.expect("read").is_empty());
        store.erase_personal("5551").await.expect("erase");
        let read = store.read_chain(0, 0, 2).await.expect("read");
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(|e| e.erased() && e.recipient().is_none()));
    }

    /// The unpacked value of every entry in the chain.
    fn values(store: &SledStore) -> Vec<Vec<u8>> {
        store
            .tree(T::Audit)
            .iter()
            .map(|item| {
                let (_, v) = item.expect("read");
                packing::unpack(&v).expect("unpack").into_owned()
            })
            .collect()
    }

    #[tokio::test]
    async fn erasable_values_live_in_the_entrys_value_and_erasure_takes_them_out_of_it() {
        let store = crate::store::sled::temporary().await;
        let psid = "psid-6161";
        let entries = (0..3)
            .map(|i| AuditEntry {
                personal: Some(Personal::of(psid)),
                ..entry(i, "shop", AuditKind::Decision)
            })
            .collect();
        store.append(entries).await.expect("append");
        assert_eq!(store.tree(T::AuditPersonal).len(), 0, "no value beside");
        for value in values(&store) {
            let personal = Stored::split(&value).personal.expect("after the entry");
            let personal: Personal = serde_json::from_slice(personal).expect("json");
            assert_eq!(personal.recipient.as_deref(), Some(psid));
        }

        // Entry 2 as a version before session 20 kept it: its values beside, in `audit_personal`.
        let key = 2u64.to_be_bytes();
        let value = values(&store).swap_remove(1);
        let parts = Stored::split(&value);
        let (sealed, personal) = (parts.sealed, parts.personal.expect("values"));
        let packed = packing::pack(sealed).expect("pack");
        store.tree(T::Audit).insert(key, packed).expect("entry");
        store
            .tree(T::AuditPersonal)
            .insert(key, personal)
            .expect("values");

        let v = store.verify().await.expect("verify");
        assert_eq!((v.ok, v.entries), (true, 3), "{v:?}");
        let mine = AuditFilter {
            recipient: Some(psid.into()),
            ..AuditFilter::default()
        };
        let page = store
            .query(&mine, AuditOrder::OldestFirst, None, 10)
            .await
            .expect("query");
        let recipients: Vec<_> = page.entries.iter().map(|e| e.recipient()).collect();
        assert_eq!(recipients, [Some(psid); 3]);

        assert_eq!(store.erase_personal(psid).await.expect("erase"), 3);
        assert_eq!(store.tree(T::AuditPersonal).len(), 0);
        for value in values(&store) {
            assert!(!value.contains(&0), "nothing after the entry");
            let found = memchr::memmem::find(&value, psid.as_bytes());
            assert!(found.is_none(), "{}", String::from_utf8_lossy(&value));
        }
        let v = store.verify().await.expect("verify");
        assert_eq!(
            (v.ok, v.entries),
            (true, 3),
            "the chain is untouched: {v:?}"
        );
        let page = store
            .query(&mine, AuditOrder::OldestFirst, None, 10)
            .await
            .expect("query");
        assert_eq!(page.entries.len(), 3);
        assert!(page.entries.iter().all(|e| e.erased()));
        assert_eq!(store.erase_personal(psid).await.expect("again"), 0);
    }
}
