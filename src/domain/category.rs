use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a message is for; decides which of Messenger's rules apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Response,
    Receipt,
    ShippingUpdate,
    AccountUpdate,
    EventUpdate,
    AgentReply,
    Marketing,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Response,
        Category::Receipt,
        Category::ShippingUpdate,
        Category::AccountUpdate,
        Category::EventUpdate,
        Category::AgentReply,
        Category::Marketing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Response => "response",
            Category::Receipt => "receipt",
            Category::ShippingUpdate => "shipping_update",
            Category::AccountUpdate => "account_update",
            Category::EventUpdate => "event_update",
            Category::AgentReply => "agent_reply",
            Category::Marketing => "marketing",
        }
    }

    /// Everything but marketing: sent because the customer's own business needs it.
    pub fn is_transactional(self) -> bool {
        self != Category::Marketing
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown category {s:?}; expected one of {}",
                    Category::ALL.map(Category::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client's role, carried in its JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Backend,
    Marketer,
    Compliance,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Backend, Role::Marketer, Role::Compliance, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Backend => "backend",
            Role::Marketer => "marketer",
            Role::Compliance => "compliance",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?}; expected one of {}",
                    Role::ALL.map(Role::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
