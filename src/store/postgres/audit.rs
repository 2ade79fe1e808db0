//! Reading the audit chains back: queries, verification of each chain and their combined head,
//! checkpoints, retention and erasure.
//!
//! The log is read in `id` order (the order entries were written in, across chains); each
//! chain is verified in its own `seq` order from where it starts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;

use super::writes::{write_alone, Rows};
use super::{decode, decode_packed, int8, pseudonym_column, uint, PgStore, Prepared, StoreError};
use crate::domain::audit::{
    verify_chain, AuditEntry, AuditHead, ChainHead, ChainItem, ChainPoint, Personal, Verification,
    GENESIS,
};
use crate::store::packing;
use crate::store::{AuditCursor, AuditFilter, AuditLog, AuditOrder, AuditPage, Pruned};

/// Entries read per round trip while a chain is verified.
const VERIFY_CHUNK: i64 = 10_000;

/// A chain's row: where it ends and where it starts.
struct ChainRow {
    chain: u32,
    seq: u64,
    hash: String,
    start: AuditHead,
}

fn chain_col(chain: u32) -> i32 {
    i32::try_from(chain).unwrap_or(i32::MAX)
}

#[async_trait]
impl AuditLog for PgStore {
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        let mut rows = Rows::default();
        rows.audit(entries);
        write_alone(self, rows).await
    }

    /// The combined head of every chain that holds entries.
    async fn head(&self) -> Result<AuditHead, StoreError> {
        let chains = self.chains().await?;
        if chains.is_empty() {
            return Ok(AuditHead::default());
        }
        Ok(AuditHead::combined(
            chains
                .into_iter()
                .map(|c| ChainHead {
                    chain: c.chain,
                    seq: c.seq,
                    hash: c.hash,
                })
                .collect(),
        ))
    }

    /// Walks every chain from where it starts; a chain whose entries end before its recorded
    /// head lost its last entries.
    async fn verify(&self) -> Result<Verification, StoreError> {
        let mut walked = Vec::new();
        for chain in self.chains().await? {
            let mut v = self.verify_chain(&chain).await?;
            if v.ok && v.head_seq != chain.seq {
                v.ok = false;
                v.first_bad_seq = Some(v.head_seq + 1);
            }
            walked.push((chain.chain, v));
        }
        if walked.is_empty() {
            return verify_chain(
                AuditHead::default(),
                std::iter::empty::<Result<_, StoreError>>(),
            );
        }
        Ok(Verification::combine(walked))
    }

    /// The combined hash of each chain's entry at the point's seqs.
    async fn hash_at(&self, point: &ChainPoint) -> Result<Option<String>, StoreError> {
        if point.chains.is_empty() {
            return Ok(None);
        }
        let client = self.client().await?;
        let mut found = Vec::with_capacity(point.chains.len());
        for c in &point.chains {
            let hash = if c.seq == 0 {
                Some(GENESIS.to_owned())
            } else {
                let row = client
                    .opt(
                        "SELECT (SELECT entry FROM audit WHERE chain = $1 AND seq = $2),
                                CASE WHEN start_seq = $2 THEN start_hash END
                         FROM audit_chains WHERE chain = $1",
                        &[&chain_col(c.chain), &int8(c.seq)],
                    )
                    .await?;
                row.and_then(|row| {
                    let entry: Option<&[u8]> = row.get(0);
                    let start: Option<String> = row.get(1);
                    start.or_else(|| {
                        entry.and_then(|e| {
                            decode_packed::<AuditEntry>("audit entry", e)
                                .ok()
                                .map(|e| e.hash)
                        })
                    })
                })
            };
            let Some(hash) = hash else { return Ok(None) };
            found.push(ChainHead {
                chain: c.chain,
                seq: c.seq,
                hash,
            });
        }
        Ok(Some(AuditHead::combined(found).hash))
    }

    /// Up to `limit` entries, in the order they were written, from position `from` (an `id`).
    async fn entries(&self, from: u64, limit: usize) -> Result<Vec<ChainItem>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT seq, entry FROM audit WHERE id >= $1 ORDER BY id LIMIT $2",
                &[&int8(from), &int8(limit as u64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(
                |row| match decode_packed::<AuditEntry>("audit entry", row.get(1)) {
                    Ok(e) => ChainItem::Entry(e),
                    Err(_) => ChainItem::Undecodable {
                        seq: uint(row.get(0)),
                    },
                },
            )
            .collect())
    }

    async fn chains(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        Ok(self
            .chains()
            .await?
            .iter()
            .map(|c| (c.chain, c.seq))
            .collect())
    }

    /// Entries of one chain are appended under the chain's row lock, held to the commit, so
    /// they become visible in seq order.
    async fn read_chain(
        &self,
        chain: u32,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT entry, personal FROM audit
                 WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&chain_col(chain), &int8(after), &int8(limit as u64)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let mut entry: AuditEntry = decode_packed("audit entry", row.get(0))?;
                let personal: Option<String> = row.get(1);
                if let Some(p) = personal.filter(|_| entry.personal_sha256.is_some()) {
                    entry.personal = Some(decode::<Personal>("audit entry's personal values", &p)?);
                }
                Ok(entry)
            })
            .collect()
    }

    /// One statement, the filter as conditions.
    async fn query(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        cursor: Option<&AuditCursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let after: Option<i64> = cursor
            .map(|c| c.0.parse::<i64>().map_err(|_| StoreError::BadCursor))
            .transpose()?;
        let pseudonym = filter
            .recipient
            .as_deref()
            .map(|r| pseudonym_column(&self.pseudonyms.of(r)))
            .transpose()?;
        let category = filter.category.map(|c| c.as_str().to_owned());
        let kind = filter.kind.map(|k| k.as_str().to_owned());
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(p) = pseudonym.as_ref() {
            params.push(p);
            conditions.push(format!("a.pseudonym = ${}", params.len()));
        }
        let text_fields: [(&str, Option<&String>); 7] = [
            ("page_id", filter.page_id.as_ref()),
            ("category", category.as_ref()),
            ("outcome", filter.outcome.as_ref()),
            ("reason", filter.reason.as_ref()),
            ("campaign", filter.campaign.as_ref()),
            ("client", filter.client.as_ref()),
            ("kind", kind.as_ref()),
        ];
        for (column, value) in text_fields {
            if let Some(v) = value {
                params.push(v);
                conditions.push(format!("a.{column} = ${}", params.len()));
            }
        }
        let times: [(&str, Option<&DateTime<Utc>>); 2] =
            [(">=", filter.from.as_ref()), ("<", filter.to.as_ref())];
        for (op, value) in times {
            if let Some(v) = value {
                params.push(v);
                conditions.push(format!("a.at {op} ${}", params.len()));
            }
        }
        let (cmp, direction) = match order {
            AuditOrder::OldestFirst => (">", "ASC"),
            AuditOrder::NewestFirst => ("<", "DESC"),
        };
        if let Some(after) = after.as_ref() {
            params.push(after);
            conditions.push(format!("a.id {cmp} ${}", params.len()));
        }
        let fetch = int8(limit as u64 + 1);
        params.push(&fetch);
        let limit_param = params.len();
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT a.id, a.entry, a.personal FROM audit a
             {where_clause} ORDER BY a.id {direction} LIMIT ${limit_param}"
        );
        let client = self.client().await?;
        let rows = client.rows(&sql, &params).await?;
        let mut page = AuditPage::default();
        for row in rows.iter().take(limit) {
            let mut entry: AuditEntry = decode_packed("audit entry", row.get(1))?;
            let personal: Option<String> = row.get(2);
            if let Some(p) = personal.filter(|_| entry.personal_sha256.is_some()) {
                entry.personal = Some(decode::<Personal>("audit entry's personal values", &p)?);
            }
            page.entries.push(entry);
        }
        if rows.len() > limit {
            if let Some(last) = rows.get(limit.saturating_sub(1)) {
                page.next = Some(AuditCursor(row_id(last).to_string()));
            }
        }
        Ok(page)
    }

    async fn erase_personal(&self, key: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n = client
            .exec(
                "UPDATE audit SET personal = NULL
                 WHERE pseudonym = $1 AND personal IS NOT NULL",
                &[&pseudonym_column(&self.pseudonyms.of(key))?],
            )
            .await?;
        Ok(n)
    }

    /// Each chain loses its entries made before
    /// `before`, oldest first and as long as they are, never its newest; where it now starts
    /// is recorded in the same transaction.
    async fn prune(&self, before: DateTime<Utc>) -> Result<Option<Pruned>, StoreError> {
        let mut client = self.client().await?;
        let mut entries = 0u64;
        for chain in self.chains().await? {
            let tx = client.transaction().await?;
            let col = chain_col(chain.chain);
            let row = tx
                .one(
                    "SELECT seq, start_seq FROM audit_chains WHERE chain = $1 FOR UPDATE",
                    &[&col],
                )
                .await?;
            let (head, start): (i64, i64) = (row.get(0), row.get(1));
            // The first entry kept: the first one not old enough, and never past the newest.
            let first_kept: Option<i64> = tx
                .one(
                    "SELECT min(seq) FROM audit WHERE chain = $1 AND seq > $2 AND at >= $3",
                    &[&col, &start, &before],
                )
                .await?
                .get(0);
            let through = first_kept.unwrap_or(head).min(head) - 1;
            if through <= start {
                continue;
            }
            let last: Vec<u8> = tx
                .one(
                    "SELECT entry FROM audit WHERE chain = $1 AND seq = $2",
                    &[&col, &through],
                )
                .await?
                .get(0);
            let last: AuditEntry = decode_packed("audit entry", &last)?;
            let gone = tx
                .exec(
                    "DELETE FROM audit WHERE chain = $1 AND seq > $2 AND seq <= $3",
                    &[&col, &start, &through],
                )
                .await?;
            tx.exec(
                "UPDATE audit_chains SET start_seq = $2, start_hash = $3 WHERE chain = $1",
                &[&col, &through, &last.hash],
            )
            .await?;
            tx.commit().await?;
            entries += gone;
        }
        // Attempts to deliver events are kept as long as the entries they told of.
        client
            .exec("DELETE FROM event_attempts WHERE at < $1", &[&before])
            .await?;
        if entries == 0 {
            return Ok(None);
        }
        let starts = self
            .chains()
            .await?
            .into_iter()
            .filter(|c| c.start.seq > 0)
            .map(|c| ChainHead {
                chain: c.chain,
                seq: c.start.seq,
                hash: c.start.hash,
            })
            .collect();
        Ok(Some(Pruned {
            entries,
            through: AuditHead::combined(starts),
        }))
    }
}

impl PgStore {
    /// The chains that hold entries.
    async fn chains(&self) -> Result<Vec<ChainRow>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .rows(
                "SELECT chain, seq, hash, start_seq, start_hash FROM audit_chains
                 WHERE seq > 0 ORDER BY chain",
                &[],
            )
            .await?
            .iter()
            .map(|row| ChainRow {
                chain: u32::try_from(row.get::<_, i32>(0)).unwrap_or_default(),
                seq: uint(row.get(1)),
                hash: row.get(2),
                start: AuditHead::at(uint(row.get(3)), row.get(4)),
            })
            .collect())
    }

    /// Walks one chain a chunk at a time, each chunk checked from where the one before it
    /// ended: memory stays at one chunk however long the chain.
    async fn verify_chain(&self, chain: &ChainRow) -> Result<Verification, StoreError> {
        let client = self.client().await?;
        let mut head = chain.start.clone();
        let mut entries = 0;
        loop {
            let rows = client
                .rows(
                    "SELECT seq, entry FROM audit WHERE chain = $1 AND seq > $2
                     ORDER BY seq LIMIT $3",
                    &[&chain_col(chain.chain), &int8(head.seq), &VERIFY_CHUNK],
                )
                .await?;
            let full = i64::try_from(rows.len()).unwrap_or_default() == VERIFY_CHUNK;
            let items = rows
                .iter()
                .map(|row| Ok::<_, StoreError>(packing::sealed(uint(row.get(0)), row.get(1))));
            let mut v = verify_chain(head, items)?;
            entries += v.entries;
            head = AuditHead::at(v.head_seq, v.head.clone());
            if !v.ok || !full {
                v.entries = entries;
                v.first_seq = chain.start.seq + 1;
                return Ok(v);
            }
        }
    }
}

fn row_id(row: &tokio_postgres::Row) -> i64 {
    row.get(0)
}
