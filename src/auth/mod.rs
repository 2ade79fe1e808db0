//! Client authentication: HS256 JWTs carrying `sub` and `role`, and the extractor that checks them.

mod extractor;
mod jwt;

pub use extractor::{bearer, Client};
pub use jwt::{Claims, JwtKeys, TokenError};
