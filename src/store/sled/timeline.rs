//! The audit log's time index: one key per transaction that appends entries, not one per entry.
//!
//! Entries are appended in seq order, each with the time it was made, and those times are
//! nearly in order but not exactly: an entry made a moment before another can reach the writer
//! after it. So the index keeps two facts that make a walk of the chain by seq exact:
//!
//! - the **watermark** after each transaction, `W(s)`: the latest time of any entry up to seq
//!   `s`. It never decreases, so the transactions' keys, `w ++ W (ms) ++ first seq → last seq`,
//!   sort by seq as well as by time;
//! - the **lag**: the most any entry's time has ever trailed the watermark before it (kept in
//!   `meta`, written when it grows; a few milliseconds on a healthy gateway).
//!
//! Every entry `s` then has `W(s) − lag ≤ at(s) ≤ W(s)`, so the entries made in `[from, to)` all
//! lie between the first transaction whose watermark reaches `from` and the first whose
//! watermark reaches `to + lag`. A time query walks the chain between them and checks each
//! entry's time ([`super::audit`]); results come in seq order.
//!
//! Versions before this one wrote a key per entry (`t ++ time ++ seq`); they are no longer
//! written nor walked, and go with their entry when retention prunes it. A store those versions
//! wrote is indexed here once, when it is opened ([`SledStore::index_audit_times`]).

use super::{decode, millis_of, SledStore, StoreError, Tx, TxResult, T};

/// The tag of the time index's keys in `audit_index`.
const TAG: u8 = b'w';

/// `meta` key: the lag, in milliseconds.
const LAG: &[u8] = b"audit_lag";

/// Entries per key when a store written by an earlier version is indexed at opening.
const INDEX_CHUNK: usize = 4096;

/// Where the chain's times stand (see the module's documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Timeline {
    /// The latest time appended, ms since the epoch.
    watermark: u64,
    /// The most an entry's time has trailed the watermark before it, ms.
    lag: u64,
}

impl Timeline {
    /// Notes an entry appended with time `at` (ms).
    pub(super) fn note(&mut self, at: u64) {
        self.lag = self.lag.max(self.watermark.saturating_sub(at));
        self.watermark = self.watermark.max(at);
    }
}

fn key(watermark: u64, first: u64) -> [u8; 17] {
    let mut key = [0; 17];
    key[0] = TAG;
    key[1..9].copy_from_slice(&watermark.to_be_bytes());
    key[9..].copy_from_slice(&first.to_be_bytes());
    key
}

/// A key's watermark, first seq and last seq (its value).
fn parse(key: &[u8], value: &[u8]) -> Option<(u64, u64, u64)> {
    let be = |b: Option<&[u8]>| <[u8; 8]>::try_from(b?).ok().map(u64::from_be_bytes);
    if key.len() != 17 || key.first() != Some(&TAG) {
        return None;
    }
    Some((be(key.get(1..9))?, be(key.get(9..))?, be(Some(value))?))
}

impl Tx<'_> {
    /// Indexes entries `first..=last`, appended by this transaction (or by an earlier version,
    /// see [`SledStore::index_audit_times`]), under the watermark they reached; `before` is the
    /// timeline as it was before them.
    pub(super) fn index_times(&mut self, first: u64, last: u64, before: Timeline) -> TxResult<()> {
        let time = self.time;
        self.put_raw(
            T::AuditIndex,
            &key(time.watermark, first),
            &last.to_be_bytes(),
        )?;
        if time.lag > before.lag {
            self.put(T::Meta, LAG, &time.lag)?;
        }
        Ok(())
    }

    /// Removes the keys of transactions whose entries are all pruned, up to `through`.
    pub(super) fn unindex_times_through(&mut self, through: u64) -> TxResult<()> {
        for item in self.store.tree(T::AuditIndex).scan_prefix([TAG]) {
            let (k, v) = item?;
            match parse(&k, &v) {
                Some((_, _, last)) if last <= through => self.remove(T::AuditIndex, &k)?,
                _ => break,
            }
        }
        Ok(())
    }
}

impl SledStore {
    /// The seqs a query for entries made in `[from, to)` walks: from the first (inclusive) to
    /// the last (exclusive; `None`: to the end of the chain).
    pub(super) fn seqs_between(
        &self,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(u64, Option<u64>), StoreError> {
        let lag = self.end.lock().time.lag;
        let low = match from {
            None => 0,
            // No transaction reached `from`: no entry was made at or after it.
            Some(from) => self
                .first_reaching(millis_of(from))?
                .map_or(u64::MAX, |(first, _)| first),
        };
        let high = match to {
            None => None,
            Some(to) => self
                .first_reaching(millis_of(to).saturating_add(lag))?
                .map(|(_, last)| last.saturating_add(1)),
        };
        Ok((low, high))
    }

    /// The first and last seq of the first transaction whose watermark reached `at` (ms).
    fn first_reaching(&self, at: u64) -> Result<Option<(u64, u64)>, StoreError> {
        let tree = self.tree(T::AuditIndex);
        let Some(item) = tree.range(key(at, 0)..key(u64::MAX, u64::MAX)).next() else {
            return Ok(None);
        };
        let (k, v) = item?;
        Ok(parse(&k, &v).map(|(_, first, last)| (first, last)))
    }

    /// Reads the timeline when the store opens, and indexes the entries an earlier version
    /// appended without this index: in chunks of [`INDEX_CHUNK`], once.
    pub(super) fn index_audit_times(&self) -> Result<(), StoreError> {
        let mut time = Timeline {
            lag: self.read(T::Meta, LAG)?.unwrap_or(0),
            ..Timeline::default()
        };
        let mut covered = 0;
        if let Some(item) = self.tree(T::AuditIndex).scan_prefix([TAG]).next_back() {
            let (k, v) = item?;
            if let Some((watermark, _, last)) = parse(&k, &v) {
                (time.watermark, covered) = (watermark, last);
            }
        }
        self.end.lock().time = time;
        let mut from = covered.max(self.audit_start()?.seq) + 1;
        let mut indexed = 0;
        loop {
            let chunk = self
                .tree(T::Audit)
                .range(from.to_be_bytes()..)
                .take(INDEX_CHUNK)
                .map(|item| item.map(|(k, v)| (super::audit::seq_of(&k), v)))
                .collect::<Result<Vec<_>, _>>()?;
            let Some(last) = chunk.last().and_then(|(seq, _)| *seq) else {
                break;
            };
            self.commit(|tx| {
                let before = tx.time;
                for (_, bytes) in &chunk {
                    // Bytes that are no entry are left for verify to name.
                    if let Ok(entry) = decode::<MadeAt>(T::Audit, bytes) {
                        tx.time.note(millis_of(entry.at));
                    }
                }
                tx.index_times(from, last, before)
            })?;
            indexed += chunk.len();
            from = last + 1;
        }
        if indexed > 0 {
            tracing::info!(entries = indexed, "audit log's time index built (once)");
            self.flush()?;
        }
        Ok(())
    }
}

/// The one field of a sealed entry that indexing its time needs; serde skips the others.
#[derive(serde::Deserialize)]
struct MadeAt {
    at: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::*;
    use crate::domain::audit::{AuditEntry, AuditKind, Personal};
    use crate::store::{AuditFilter, AuditLog, AuditOrder};

    fn made(at: chrono::DateTime<Utc>) -> AuditEntry {
        AuditEntry {
            at,
            kind: AuditKind::Decision,
            personal: Some(Personal::of("77")),
            ..AuditEntry::default()
        }
    }

    async fn between(
        store: &SledStore,
        from: Option<chrono::DateTime<Utc>>,
        to: Option<chrono::DateTime<Utc>>,
        order: AuditOrder,
    ) -> Vec<u64> {
        let filter = AuditFilter {
            from,
            to,
            ..AuditFilter::default()
        };
        super::super::audit::tests::walked(store, &filter, order, 2).await
    }

    /// Times out of order, as entries reach the writer: every query finds exactly the
    /// entries made in its range, however far one trailed the others.
    #[tokio::test]
    async fn a_time_query_finds_exactly_the_entries_made_in_its_range() {
        let store = crate::store::sled::temporary().await;
        let t0 = Utc::now() - Duration::hours(1);
        let minutes = [0, 10, 5, 20, 30, 1, 40, 35, 50];
        for chunk in minutes.chunks(2) {
            let entries = chunk
                .iter()
                .map(|m| made(t0 + Duration::minutes(*m)))
                .collect();
            store.append(entries).await.expect("append");
        }
        let at = |m: i64| Some(t0 + Duration::minutes(m));
        let expected = |from: i64, to: i64| {
            minutes
                .iter()
                .enumerate()
                .filter(|(_, m)| (from..to).contains(*m))
                .map(|(i, _)| i as u64 + 1)
                .collect::<Vec<_>>()
        };
        for (from, to) in [
            (0, 60),
            (1, 2),
            (5, 11),
            (6, 36),
            (21, 41),
            (40, 41),
            (51, 90),
        ] {
            let oldest = between(&store, at(from), at(to), AuditOrder::OldestFirst).await;
            assert_eq!(oldest, expected(from, to), "[{from}, {to})");
            let mut newest = between(&store, at(from), at(to), AuditOrder::NewestFirst).await;
            newest.reverse();
            assert_eq!(newest, expected(from, to), "[{from}, {to}) newest first");
        }
        assert_eq!(
            between(&store, at(31), None, AuditOrder::OldestFirst).await,
            [7, 8, 9]
        );
        assert_eq!(
            between(&store, None, at(5), AuditOrder::OldestFirst).await,
            [1, 6]
        );
        assert_eq!(
            store.end.lock().time.lag,
            29 * 60 * 1000,
            "entry 6 trailed 30 by 29 minutes"
        );
        assert_eq!(
            store.tree(T::AuditIndex).scan_prefix([TAG]).count(),
            5,
            "one time key per transaction"
        );
    }

    /// A store whose entries an earlier version wrote (no time keys) is indexed when it opens,
    /// and pruning removes the keys of transactions it pruned whole.
    #[tokio::test]
    async fn entries_without_time_keys_are_indexed_once_and_pruned_with_their_keys() {
        let store = crate::store::sled::temporary().await;
        let t0 = Utc::now() - Duration::hours(5);
        for h in [0, 2, 1, 3] {
            store
                .append(vec![made(t0 + Duration::hours(h))])
                .await
                .expect("append");
        }
        store
            .commit(|tx| {
                for item in tx.store.tree(T::AuditIndex).scan_prefix([TAG]) {
                    tx.remove(T::AuditIndex, &item?.0)?;
                }
                tx.remove(T::Meta, LAG)
            })
            .expect("as an earlier version left it");
        store.end.lock().time = Timeline::default();
        assert!(between(&store, Some(t0), None, AuditOrder::OldestFirst)
            .await
            .is_empty());

        store.index_audit_times().expect("index");
        let found = between(
            &store,
            Some(t0 + Duration::minutes(30)),
            Some(t0 + Duration::minutes(150)),
            AuditOrder::OldestFirst,
        )
        .await;
        assert_eq!(found, [2, 3], "made at 2 h and 1 h");
        assert_eq!(store.end.lock().time.lag, 3_600_000);
        store.index_audit_times().expect("again");
        assert_eq!(store.tree(T::AuditIndex).scan_prefix([TAG]).count(), 1);

        store
            .append(vec![made(t0 + Duration::hours(4))])
            .await
            .expect("append");
        let pruned = store
            .prune(t0 + Duration::minutes(210))
            .await
            .expect("prune")
            .expect("pruned");
        assert_eq!(pruned.entries, 4);
        let keys: Vec<_> = store
            .tree(T::AuditIndex)
            .scan_prefix([TAG])
            .map(|item| item.expect("key"))
            .filter_map(|(k, v)| parse(&k, &v))
            .map(|(_, first, last)| (first, last))
            .collect();
        assert_eq!(keys, [(5, 5)], "the chunk of entries 1–4 went with them");
        assert_eq!(
            between(&store, Some(t0), None, AuditOrder::OldestFirst).await,
            [5]
        );
    }
}
