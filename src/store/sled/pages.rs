//! Pages held back after Messenger's rate limit (a 613): `page_pause\0<page id>` in the meta
//! tree → the pause's end. Kept on disk so that a restart does not send into a page Messenger
//! asked to wait.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{SledStore, T};
use crate::store::{Pauses, StoreError};

const PREFIX: &[u8] = b"page_pause\0";

fn key(page_id: &str) -> Vec<u8> {
    [PREFIX, page_id.as_bytes()].concat()
}

#[async_trait]
impl Pauses for SledStore {
    async fn pause_page(&self, page_id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        let key = key(page_id);
        self.commit(|tx| {
            let current: Option<DateTime<Utc>> = tx.get(T::Meta, &key)?;
            if current.is_none_or(|c| c < until) {
                tx.put(T::Meta, &key, &until)?;
            }
            Ok(())
        })?;
        self.durable().await
    }

    async fn paused_pages(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(T::Meta).scan_prefix(PREFIX) {
            let (k, v) = item?;
            let until: DateTime<Utc> = super::decode(T::Meta, &v)?;
            if until > now {
                let page = String::from_utf8_lossy(&k[PREFIX.len()..]).into_owned();
                out.push((page, until));
            }
        }
        Ok(out)
    }
}
