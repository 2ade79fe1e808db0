//! The hash chain: where it ends (its head, and the combined head of several chains), sealed
//! hashes read back from stored bytes, and verifying a chain entry by entry.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuditEntry, GENESIS};

/// Where the chain ends. A store with several chains reports their combination
/// ([`AuditHead::combined`]): `seq` counts every entry and `hash` covers each chain's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
    /// With several chains: the head of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainHead>,
}

impl Default for AuditHead {
    fn default() -> Self {
        AuditHead::at(0, GENESIS.to_owned())
    }
}

/// Where one of several chains ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub chain: u32,
    pub seq: u64,
    pub hash: String,
}

impl AuditHead {
    /// The head of a single chain.
    pub fn at(seq: u64, hash: String) -> AuditHead {
        AuditHead {
            seq,
            hash,
            chains: Vec::new(),
        }
    }

    /// The combined head of several chains: `seq` is the sum of their seqs and `hash` the
    /// sha256 of `chain:seq:hash` lines in chain order, so that signing it pins every chain.
    pub fn combined(mut chains: Vec<ChainHead>) -> AuditHead {
        chains.sort_by_key(|c| c.chain);
        let mut h = Sha256::new();
        for c in &chains {
            h.update(format!("{}:{}:{}\n", c.chain, c.seq, c.hash).as_bytes());
        }
        AuditHead {
            seq: chains.iter().map(|c| c.seq).sum(),
            hash: hex::encode(h.finalize()),
            chains,
        }
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    /// Entries checked and found good.
    pub entries: u64,
    /// Where the chain starts: 1, or the first entry kept after older ones were pruned (whose
    /// `prev_hash` is the recorded hash of the last one pruned).
    pub first_seq: u64,
    /// The last good entry's seq and hash.
    pub head_seq: u64,
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// With several chains: the chain that breaks (`first_bad_seq` is within it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_chain: Option<u32>,
    /// With several chains: each chain's own verification; `entries`, `head_seq` and `head`
    /// are then their combination ([`AuditHead::combined`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainVerification>,
    /// With a checkpoint: whether the log still extends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointCheck>,
}

/// One chain's verification, among several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainVerification {
    pub chain: u32,
    pub ok: bool,
    pub entries: u64,
    pub first_seq: u64,
    pub head_seq: u64,
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
}

impl Verification {
    /// The verification of several chains, each walked on its own: ok when every one is, with
    /// their combined head.
    pub fn combine(walked: Vec<(u32, Verification)>) -> Verification {
        let head = AuditHead::combined(
            walked
                .iter()
                .map(|(chain, v)| ChainHead {
                    chain: *chain,
                    seq: v.head_seq,
                    hash: v.head.clone(),
                })
                .collect(),
        );
        let bad = walked
            .iter()
            .find_map(|(chain, v)| v.first_bad_seq.map(|seq| (*chain, seq)));
        Verification {
            ok: walked.iter().all(|(_, v)| v.ok),
            entries: walked.iter().map(|(_, v)| v.entries).sum(),
            first_seq: 1,
            head_seq: head.seq,
            head: head.hash,
            first_bad_seq: bad.map(|(_, seq)| seq),
            first_bad_chain: bad.map(|(chain, _)| chain),
            chains: walked
                .into_iter()
                .map(|(chain, v)| ChainVerification {
                    chain,
                    ok: v.ok,
                    entries: v.entries,
                    first_seq: v.first_seq,
                    head_seq: v.head_seq,
                    head: v.head,
                    first_bad_seq: v.first_bad_seq,
                })
                .collect(),
            checkpoint: None,
        }
    }
}

/// A point of the log someone kept: the entry at `seq` had hash `hash`. With several chains,
/// `seq` and `hash` are a combined head and `chains` the heads it combines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    pub seq: u64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainHead>,
}

/// What became of a checkpoint in a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointCheck {
    pub seq: u64,
    /// The entry at `seq` still has the checkpoint's hash: the log was only appended to since.
    pub ok: bool,
    /// Why not, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Verification {
    /// Checks that the chain (already walked) still extends `point`, given the hash found at
    /// `point.seq` (`None`: no such entry). A log that does not is not ok.
    pub fn against(&mut self, point: &ChainPoint, found: Option<&str>) {
        // With several chains, one of the point's chains may have been pruned past it.
        let pruned_chain = point.chains.iter().find_map(|c| {
            self.chains
                .iter()
                .find(|v| v.chain == c.chain && c.seq + 1 < v.first_seq)
                .map(|v| (c.chain, c.seq, v.first_seq))
        });
        let problem = if point.seq > self.head_seq {
            Some(format!(
                "the log ends at {} before the checkpoint's entry",
                self.head_seq
            ))
        } else if let Some((chain, seq, first)) = pruned_chain {
            Some(format!(
                "entry {seq} of chain {chain} was pruned; that chain now starts at {first}"
            ))
        } else if point.chains.is_empty() && point.seq + 1 < self.first_seq {
            Some(format!(
                "entry {} was pruned; the chain now starts at {}",
                point.seq, self.first_seq
            ))
        } else {
            match found {
                Some(h) if h == point.hash => None,
                Some(_) => Some(format!(
                    "entry {} no longer has the checkpoint's hash: the log was rewritten",
                    point.seq
                )),
                None => Some(format!("entry {} is missing", point.seq)),
            }
        };
        if problem.is_some() {
            self.ok = false;
            self.first_bad_seq = self.first_bad_seq.or(Some(point.seq));
        }
        self.checkpoint = Some(CheckpointCheck {
            seq: point.seq,
            ok: problem.is_none(),
            problem,
        });
    }
}

/// One stored entry as the chain walk sees it.
// Walked one at a time, nearly all of them entries: boxing each would cost an allocation apiece.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ChainItem {
    Entry(AuditEntry),
    /// An entry as stored under `seq`, checked without decoding it (see [`sealed_hash`]).
    Sealed {
        seq: u64,
        bytes: Vec<u8>,
    },
    /// The bytes stored under `seq` are not an entry: altered or corrupt, so the chain breaks
    /// there.
    Undecodable {
        seq: u64,
    },
}

/// How a sealed entry's stored JSON ends: `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX: usize = 9 + 64 + 2;

/// The hash of an entry as stored, if it links to `prev_hash` and its bytes are intact. The
/// stored JSON is the canonical JSON with its hash spliced onto the end ([`AuditEntry::seal`]),
/// so the hash is recomputed over the very bytes on disk, with no decoding and no encoding:
/// any byte changed, the hash differs.
pub fn sealed_hash(prev_hash: &str, stored: &[u8]) -> Option<String> {
    let cut = stored.len().checked_sub(HASH_SUFFIX)?;
    let (canonical, suffix) = stored.split_at(cut);
    let hash = suffix.strip_prefix(b",\"hash\":\"")?.strip_suffix(b"\"}")?;
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical);
    h.update(b"}");
    let computed = hex::encode(h.finalize());
    (computed.as_bytes() == hash).then_some(computed)
}

/// Walks entries in order from `start` (the genesis, or the last entry pruned) and reports the
/// first that breaks the chain. An `Err` from the entries (the disk could not be read) is an
/// error, never a verdict of tampering.
pub fn verify_chain<E, I>(start: AuditHead, entries: I) -> Result<Verification, E>
where
    I: IntoIterator<Item = Result<ChainItem, E>>,
{
    let first_seq = start.seq + 1;
    let mut prev = start;
    let result = |prev: AuditHead, bad: Option<u64>| Verification {
        ok: bad.is_none(),
        entries: prev.seq + 1 - first_seq,
        first_seq,
        head_seq: prev.seq,
        head: prev.hash,
        first_bad_seq: bad,
        first_bad_chain: None,
        chains: Vec::new(),
        checkpoint: None,
    };
    for item in entries {
        let entry = match item? {
            ChainItem::Entry(e) => e,
            ChainItem::Sealed { seq, bytes } => {
                let expected_seq = prev.seq + 1;
                match sealed_hash(&prev.hash, &bytes) {
                    Some(hash) if seq == expected_seq => {
                        prev = AuditHead::at(seq, hash);
                        continue;
                    }
                    _ => return Ok(result(prev, Some(expected_seq.min(seq.max(1))))),
                }
            }
            ChainItem::Undecodable { seq } => return Ok(result(prev, Some(seq))),
        };
        let expected_seq = prev.seq + 1;
        let hash_ok = entry
            .computed_hash()
            .is_ok_and(|computed| computed == entry.hash);
        if entry.seq != expected_seq || entry.prev_hash != prev.hash || !hash_ok {
            let bad = expected_seq.min(entry.seq.max(1));
            return Ok(result(prev, Some(bad)));
        }
        prev = AuditHead::at(entry.seq, entry.hash);
    }
    Ok(result(prev, None))
}
