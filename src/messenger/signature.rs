use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex>`: the `X-Hub-Signature-256` value Messenger sends for `body`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(app_secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks `header` (`sha256=<hex>`) against the raw `body`, in constant time.
pub fn verify_signature(app_secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(app_secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_secret() {
        let sig = sign(b"secret", b"{\"a\":1}");
        assert!(verify_signature(b"secret", b"{\"a\":1}", Some(&sig)));
        assert!(!verify_signature(b"secret", b"{\"a\":2}", Some(&sig)));
        assert!(!verify_signature(b"other", b"{\"a\":1}", Some(&sig)));
        assert!(!verify_signature(b"secret", b"{\"a\":1}", None));
        assert!(!verify_signature(
            b"secret",
            b"{\"a\":1}",
            Some("sha256=zz")
        ));
        assert!(!verify_signature(
            b"secret",
            b"{\"a\":1}",
            Some(&sig.replace("sha256=", "sha1="))
        ));
    }
}
