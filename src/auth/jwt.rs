use std::time::Duration;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::Role;

/// The claims Herald reads from a client token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The client's name, recorded in the audit log.
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the epoch; required.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Why a token was refused. The message is safe to show: it never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Signs and verifies client JWTs with the configured HS256 secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
}

impl JwtKeys {
    pub fn new(secret: &SecretString, issuer: Option<String>, audience: Option<String>) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        // Only HS256: a token that names `none` or any other algorithm is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.leeway = 5;
        // A token with `nbf` in the future is not valid yet (jsonwebtoken skips it by default).
        validation.validate_nbf = true;
        if let Some(iss) = &issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            issuer,
            audience,
        }
    }

    /// A token for `sub` with `role`, valid for `ttl`.
    pub fn issue(&self, sub: &str, role: Role, ttl: Duration) -> Result<String, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Checks signature, algorithm, expiry and (when configured) issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "expired",
                ErrorKind::ImmatureSignature => "not valid yet (nbf)",
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    "only HS256 is accepted"
                }
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                _ => "malformed",
            };
            TokenError::Invalid(why.to_owned())
        })?;
        if data.claims.sub.trim().is_empty() {
            return Err(TokenError::Invalid("empty sub".into()));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(iss: Option<&str>, aud: Option<&str>) -> JwtKeys {
        JwtKeys::new(
            &SecretString::from("a-test-secret-of-some-length"),
            iss.map(Into::into),
            aud.map(Into::into),
        )
    }

    #[test]
    fn an_issued_token_verifies() {
        let k = keys(Some("herald"), Some("herald"));
        let t = k
            .issue("shop", Role::Backend, Duration::from_secs(60))
            .expect("token");
        let c = k.verify(&t).expect("valid");
        assert_eq!((c.sub.as_str(), c.role), ("shop", Role::Backend));
    }

    #[test]
    fn wrong_issuer_audience_or_secret_is_refused() {
        let t = keys(Some("other"), None)
            .issue("s", Role::Admin, Duration::from_secs(60))
            .expect("token");
        assert!(keys(Some("herald"), None).verify(&t).is_err());
        let t = keys(None, Some("other"))
            .issue("s", Role::Admin, Duration::from_secs(60))
            .expect("token");
        assert!(keys(None, Some("herald")).verify(&t).is_err());
        let other = JwtKeys::new(&SecretString::from("another-secret-entirely"), None, None);
        let t = other
            .issue("s", Role::Admin, Duration::from_secs(60))
            .expect("token");
        assert!(keys(None, None).verify(&t).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        use base64_like::encode as b64;
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = b64(br#"{"sub":"x","role":"admin","exp":99999999999}"#);
        let token = format!("{header}.{claims}.");
        assert!(keys(None, None).verify(&token).is_err());
    }

    /// URL-safe base64 without padding, enough to forge a token by hand.
    mod base64_like {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        pub fn encode(bytes: &[u8]) -> String {
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
