//! Client authentication: HS256 JWTs carrying `sub` and `role`, and the extractor that checks them.

mod extractor;
mod jwt;

/// The caller's identity is the domain's ([`crate::domain::Client`]); named here too, where the
/// routes and the core have always found it.
pub use crate::domain::Client;
pub use extractor::bearer;
pub use jwt::{Claims, JwtKeys, TokenError};
