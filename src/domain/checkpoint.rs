//! Signed checkpoints. A bare hash chain proves nothing against someone who can write the disk:
//! they can rewrite every entry and every hash after it. A checkpoint — the head's seq and hash
//! at a moment, signed with the gateway's Ed25519 key — kept outside Herald pins the chain: a
//! log that no longer has that hash at that seq was rewritten, and a forged checkpoint does not
//! carry a valid signature.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::audit::{AuditHead, ChainHead, ChainPoint};

/// The chain's head, signed (API.md §6: `GET /v1/audit/checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub head: String,
    pub at: DateTime<Utc>,
    /// The first 16 hex digits of the sha256 of the public key.
    pub key_id: String,
    /// The Ed25519 public key (base64), so that anyone can check the signature.
    pub public_key: String,
    /// Ed25519 over `seq|head|at` (at in RFC 3339), base64.
    pub signature: String,
    /// With several chains (PostgreSQL): the head of each, which `head` combines
    /// ([`AuditHead::combined`]) — so they are covered by the signature through it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainHead>,
}

/// Why a checkpoint's signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the checkpoint's public key is not an Ed25519 key")]
    PublicKey,
    #[error("the checkpoint's signature is not an Ed25519 signature")]
    Malformed,
    #[error("the checkpoint's key_id does not match its public key")]
    KeyId,
    #[error("the signature does not match seq|head|at: the checkpoint was altered")]
    Signature,
    #[error("the checkpoint was signed with key {found}, not this gateway's key {expected}")]
    OtherKey { found: String, expected: String },
}

impl Checkpoint {
    /// What is signed.
    pub fn message(seq: u64, head: &str, at: DateTime<Utc>) -> String {
        format!(
            "{seq}|{head}|{}",
            at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        )
    }

    /// The point of the chain it pins.
    pub fn point(&self) -> ChainPoint {
        ChainPoint {
            seq: self.seq,
            hash: self.head.clone(),
            chains: self.chains.clone(),
        }
    }

    /// Checks the signature against the key the checkpoint names.
    pub fn check_signature(&self) -> Result<(), CheckpointError> {
        let key_bytes: [u8; 32] = BASE64
            .decode(&self.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::PublicKey)?;
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| CheckpointError::PublicKey)?;
        if key_id(&key) != self.key_id {
            return Err(CheckpointError::KeyId);
        }
        let sig_bytes: [u8; 64] = BASE64
            .decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(CheckpointError::Malformed)?;
        let signature = Signature::from_bytes(&sig_bytes);
        key.verify(
            Self::message(self.seq, &self.head, self.at).as_bytes(),
            &signature,
        )
        .map_err(|_| CheckpointError::Signature)
    }
}

fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The gateway's checkpoint key (`[audit] signing_key`, an Ed25519 seed in base64).
#[derive(Clone)]
pub struct CheckpointSigner {
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointSigner(key_id {})", self.key_id())
    }
}

impl CheckpointSigner {
    /// Reads a base64 32-byte seed.
    pub fn from_base64(seed: &str) -> Result<CheckpointSigner, String> {
        let bytes: [u8; 32] = BASE64
            .decode(seed.trim())
            .map_err(|_| "must be base64".to_owned())?
            .try_into()
            .map_err(|_| "must be a 32-byte Ed25519 seed in base64 (44 characters)".to_owned())?;
        Ok(CheckpointSigner {
            key: SigningKey::from_bytes(&bytes),
        })
    }

    /// A fresh key, and its seed in base64 (for the sandbox).
    pub fn generate() -> (CheckpointSigner, String) {
        let mut seed = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut seed);
        let signer = CheckpointSigner {
            key: SigningKey::from_bytes(&seed),
        };
        (signer, BASE64.encode(seed))
    }

    pub fn key_id(&self) -> String {
        key_id(&self.key.verifying_key())
    }

    /// A key for recipient pseudonyms derived from this one, for gateways that configure no
    /// `pseudonym_key` of their own. Derived one-way: the pseudonym key gives the signing key
    /// away to no one.
    pub fn pseudonym_key(&self) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(b"herald audit pseudonyms\0");
        h.update(self.key.to_bytes());
        h.finalize().to_vec()
    }

    /// Signs `head` as of `at`.
    pub fn sign(&self, head: &AuditHead, at: DateTime<Utc>) -> Checkpoint {
        let signature = self
            .key
            .sign(Checkpoint::message(head.seq, &head.hash, at).as_bytes());
        Checkpoint {
            seq: head.seq,
            head: head.hash.clone(),
            at,
            key_id: self.key_id(),
            public_key: BASE64.encode(self.key.verifying_key().as_bytes()),
            signature: BASE64.encode(signature.to_bytes()),
            chains: head.chains.clone(),
        }
    }

    /// Checks `checkpoint`'s signature, and that it is this gateway's.
    pub fn check(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        checkpoint.check_signature()?;
        if checkpoint.key_id != self.key_id() {
            return Err(CheckpointError::OtherKey {
                found: checkpoint.key_id.clone(),
                expected: self.key_id(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_until_any_part_of_it_changes() {
        let (signer, seed) = CheckpointSigner::generate();
        let head = AuditHead::at(12, "ab".repeat(32));
        let at = DateTime::parse_from_rfc3339("2026-11-25T12:00:00.123Z")
            .expect("time")
            .with_timezone(&Utc);
        let cp = signer.sign(&head, at);
        let back: Checkpoint =
            serde_json::from_str(&serde_json::to_string(&cp).expect("json")).expect("parse");
        assert_eq!(back.check_signature(), Ok(()));
        assert_eq!(signer.check(&back), Ok(()));
        let again = CheckpointSigner::from_base64(&seed).expect("seed");
        assert_eq!(again.key_id(), signer.key_id());

        let mut moved = cp.clone();
        moved.seq = 13;
        assert_eq!(moved.check_signature(), Err(CheckpointError::Signature));
        let mut rehashed = cp.clone();
        rehashed.head = "cd".repeat(32);
        assert_eq!(rehashed.check_signature(), Err(CheckpointError::Signature));
        let (other, _) = CheckpointSigner::generate();
        assert!(matches!(
            other.check(&cp),
            Err(CheckpointError::OtherKey { .. })
        ));
        assert!(CheckpointSigner::from_base64("too short").is_err());
    }
}
