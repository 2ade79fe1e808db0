use serde::{Deserialize, Serialize};

use super::Psid;

/// Who a message goes to: a PSID, or a checkbox-plugin `user_ref` before the user has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    Psid(Psid),
    UserRef(String),
}

impl Recipient {
    /// The key under which facts about this recipient are kept: the PSID, or `user_ref:<ref>`.
    pub fn key(&self) -> String {
        match self {
            Recipient::Psid(p) => p.as_str().to_owned(),
            Recipient::UserRef(r) => format!("user_ref:{r}"),
        }
    }

    pub fn psid(&self) -> Option<&Psid> {
        match self {
            Recipient::Psid(p) => Some(p),
            Recipient::UserRef(_) => None,
        }
    }
}
