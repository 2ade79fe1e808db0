//! Reading the audit chain back, and entries that belong to no other write.

use super::{decode, SledStore, StoreError, T};
use crate::domain::audit::{verify_chain, AuditEntry, ChainItem, Verification};

impl SledStore {
    /// Appends entries in a transaction of their own and waits until they are durable.
    pub(super) async fn append(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        self.commit(|tx| {
            for e in entries {
                tx.audit(e)?;
            }
            Ok(())
        })?;
        self.durable().await
    }

    /// Up to `limit` entries from `from_seq` on, in order. Bytes that do not decode are
    /// reported as such (the chain breaks there); a read that fails is an error.
    pub(super) fn audit_page(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChainItem>, StoreError> {
        self.tree(T::Audit)
            .range(from_seq.to_be_bytes()..)
            .take(limit)
            .map(|item| {
                item.map_err(StoreError::from)
                    .map(|(k, v)| chain_item(&k, &v))
            })
            .collect()
    }

    /// Walks the whole chain.
    pub(super) fn verify(&self) -> Result<Verification, StoreError> {
        verify_chain(self.tree(T::Audit).iter().map(|item| {
            item.map_err(StoreError::from)
                .map(|(k, v)| chain_item(&k, &v))
        }))
    }
}

fn chain_item(key: &[u8], value: &[u8]) -> ChainItem {
    let seq = <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .unwrap_or_default();
    match decode::<AuditEntry>(T::Audit, value) {
        Ok(entry) => ChainItem::Entry(entry),
        Err(_) => ChainItem::Undecodable { seq },
    }
}
