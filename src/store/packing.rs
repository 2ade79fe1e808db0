//! Stored values, packed: message records and audit entries are kept compressed with zstd
//! against a dictionary trained on example values, so that the field names, the policy's rule
//! names and the shape every record and entry shares are not stored again with each one.
//!
//! A packed value is one tag byte, then a zstd frame made with the dictionary that tag names.
//! JSON never starts with a tag (it starts with `{`, `[`, `"`, a digit or a letter), so a value
//! written before packing, or by hand, is read as it is: no store has to be rewritten, and the
//! audit chain's hashes, which cover the JSON, hold whatever way it is kept.
//!
//! A dictionary is part of the stored format: once values are written with it, it must stay
//! as it is, byte for byte, for as long as they are kept. A better one is added under a new tag,
//! never put in place of an old one (the test below pins each dictionary's digest).

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The tag of values packed with [`DICTIONARY_1`].
const TAG_1: u8 = 0x01;

/// A zstd dictionary (16 KB: the strings records and entries repeat, and entropy tables for
/// them, so that a small value needs no tables of its own), trained by zstd 1.5.4's
/// `zstd --train --maxdict=16384` on the 1,244 records and audit entries of a sandbox store:
/// 80 customers, each with a consent, a receipt and a shipping update, every third a reply
/// inside the window, every seventh a reply refused for want of consent. Never edit: see the
/// module's documentation.
const DICTIONARY_1: &[u8] = include_bytes!("packing/dictionary-1.zdict");

/// zstd's fastest level: packing is on the path every message takes.
const LEVEL: i32 = 1;

/// The largest value unpacking will make: a frame that claims more is not one of ours.
const MAX_UNPACKED: usize = 16 * 1024 * 1024;

static ENCODER_1: LazyLock<EncoderDictionary<'static>> =
    LazyLock::new(|| EncoderDictionary::copy(DICTIONARY_1, LEVEL));
static DECODER_1: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(DICTIONARY_1));

thread_local! {
    // zstd's contexts are reused: making one for each value costs more than the compression.
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Why stored bytes could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("a packed value with the unknown tag {0:#04x}")]
    UnknownTag(u8),
    #[error("a packed value that does not say its size, or claims more than {MAX_UNPACKED} bytes")]
    Size,
    #[error("a packed value that does not decompress: {0}")]
    Zstd(#[source] std::io::Error),
}

/// `json` packed with the current dictionary.
pub fn pack(json: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match cell.as_mut() {
            Some(c) => c,
            None => {
                let mut c = Compressor::with_prepared_dictionary(&ENCODER_1)?;
                // The tag names the dictionary: the frame need not.
                c.set_parameter(zstd::zstd_safe::CParameter::DictIdFlag(false))?;
                cell.insert(c)
            }
        };
        let frame = compressor.compress(json)?;
        let mut out = Vec::with_capacity(1 + frame.len());
        out.push(TAG_1);
        out.extend_from_slice(&frame);
        Ok(out)
    })
}

/// The JSON `stored` holds: itself when it was stored unpacked.
pub fn unpack(stored: &[u8]) -> Result<Cow<'_, [u8]>, UnpackError> {
    let Some((&tag, frame)) = stored.split_first() else {
        return Ok(Cow::Borrowed(stored));
    };
    if !is_tag(tag) {
        return Ok(Cow::Borrowed(stored));
    }
    if tag != TAG_1 {
        return Err(UnpackError::UnknownTag(tag));
    }
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= MAX_UNPACKED as u64 => size as usize,
        _ => return Err(UnpackError::Size),
    };
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match cell.as_mut() {
            Some(d) => d,
            None => cell.insert(
                Decompressor::with_prepared_dictionary(&DECODER_1).map_err(UnpackError::Zstd)?,
            ),
        };
        let json = decompressor
            .decompress(frame, size)
            .map_err(UnpackError::Zstd)?;
        Ok(Cow::Owned(json))
    })
}

/// `json` packed, for a store: a failure is the store's encoding error for `what`.
pub(crate) fn pack_stored(what: &'static str, json: &[u8]) -> Result<Vec<u8>, super::StoreError> {
    pack(json).map_err(|e| super::StoreError::Encode {
        what,
        source: Arc::new(<serde_json::Error as serde::ser::Error>::custom(e)),
    })
}

/// The JSON a store's value holds: bytes that do not unpack are `what`, corrupt.
pub(crate) fn unpack_stored<'a>(
    what: &'static str,
    stored: &'a [u8],
) -> Result<Cow<'a, [u8]>, super::StoreError> {
    unpack(stored).map_err(|e| super::StoreError::Corrupt {
        what,
        source: Arc::new(<serde_json::Error as serde::de::Error>::custom(e)),
    })
}

/// A stored audit entry as verification reads it: the JSON its hash covers, or undecodable.
pub(crate) fn sealed(seq: u64, stored: &[u8]) -> crate::domain::audit::ChainItem {
    use crate::domain::audit::ChainItem;
    match unpack(stored) {
        Ok(json) => ChainItem::Sealed {
            seq,
            bytes: json.into_owned(),
        },
        Err(_) => ChainItem::Undecodable { seq },
    }
}

/// Whether `byte` opens a packed value: the control characters below the tab, which JSON never
/// starts with (not even with leading whitespace, which Herald does not write anyway).
fn is_tag(byte: u8) -> bool {
    byte < 0x09
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn a_value_comes_back_as_it_was_packed() {
        let json = br#"{"id":"msg_01","status":"sent","recipient":{"psid":"4242"},"attempts":1}"#;
        let packed = pack(json).expect("pack");
        assert_eq!(packed[0], TAG_1);
        assert_eq!(unpack(&packed).expect("unpack").as_ref(), json);
    }

    #[test]
    fn a_value_stored_unpacked_is_read_as_it_is() {
        for json in [&b"{\"a\":1}"[..], b"[1,2]", b"\"s\"", b"", b"12"] {
            assert!(matches!(unpack(json), Ok(Cow::Borrowed(b)) if b == json));
        }
    }

    #[test]
    fn the_dictionary_shrinks_a_record_it_was_not_trained_on() {
        // A record from another sandbox run than the dictionary's: other keys, times, hashes.
        let json = include_bytes!("packing/test-record.json");
        let packed = pack(json).expect("pack");
        assert!(
            packed.len() * 5 < json.len(),
            "{} of {}",
            packed.len(),
            json.len()
        );
        let plain = zstd::bulk::compress(json, LEVEL).expect("zstd");
        assert!(
            packed.len() * 3 < plain.len(),
            "{} vs {}",
            packed.len(),
            plain.len()
        );
    }

    #[test]
    fn damaged_or_unknown_values_are_errors_not_guesses() {
        let mut packed = pack(br#"{"kind":"decision","outcome":"allow"}"#).expect("pack");
        assert!(matches!(
            unpack(&[0x02, 1, 2, 3]),
            Err(UnpackError::UnknownTag(0x02))
        ));
        assert!(matches!(unpack(&[TAG_1, 1, 2, 3]), Err(UnpackError::Size)));
        let last = packed.len() - 1;
        packed.truncate(last);
        assert!(unpack(&packed).is_err());
    }

    /// Values packed with a dictionary can be read only with that dictionary, byte for byte.
    #[test]
    fn the_released_dictionaries_are_unchanged() {
        assert_eq!(
            hex::encode(Sha256::digest(DICTIONARY_1)),
            "1977726a37c2f908d06b5b483545dd43602b69b8f15a37acd66b43549ac4bb34"
        );
    }
}
