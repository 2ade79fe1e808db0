use std::fmt;

use serde::{Deserialize, Serialize};

/// The ULIDs of this process, made in order: two made in the same millisecond sort as they were
/// made (a plain `Ulid::new()` draws its random part afresh, so they would sort by chance). A
/// person's messages due at the same moment go in the order of their ids.
static ULIDS: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());

/// The next ULID of this process, later than every one before it.
fn next_ulid() -> ulid::Ulid {
    let mut generator = ULIDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Fails only when 2^80 ids were made in one millisecond.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

/// An id Herald makes: a prefix and a ULID, so ids sort by creation time (within a process,
/// strictly: see [`next_ulid`]).
macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}{}", Self::PREFIX, next_ulid()))
            }

            /// Accepts only ids this process could have generated.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix(Self::PREFIX)?;
                ulid::Ulid::from_string(rest).ok()?;
                Some(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A message id: `msg_` followed by a ULID.
    MessageId,
    "msg_"
);
prefixed_id!(
    /// A campaign id: `cmp_` followed by a ULID.
    CampaignId,
    "cmp_"
);
prefixed_id!(
    /// An event endpoint's id: `ep_` followed by a ULID.
    EndpointId,
    "ep_"
);
prefixed_id!(
    /// One attempt to deliver an event: `att_` followed by a ULID (sorts by time).
    AttemptId,
    "att_"
);

macro_rules! graph_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// 1 to 64 characters of ASCII letters, digits, `-` or `_`.
            pub fn parse(s: &str) -> Result<Self, String> {
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(format!(
                        concat!("a ", $what, " is 1 to 64 letters, digits, '-' or '_', not {:?}"),
                        s
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

graph_id!(
    /// A page-scoped user id, as Messenger gives it in webhooks.
    Psid,
    "PSID"
);
graph_id!(
    /// A Facebook Page id.
    PageId,
    "page id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_and_sort_by_time() {
        let a = MessageId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = MessageId::generate();
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(MessageId::parse(a.as_str()), Some(a));
        assert_eq!(MessageId::parse("msg_nope"), None);
        assert_eq!(MessageId::parse("cmp_01J0000000000000000000000"), None);
    }

    #[test]
    fn ids_made_in_the_same_millisecond_sort_as_they_were_made() {
        let ids: Vec<MessageId> = (0..1000).map(|_| MessageId::generate()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "made in order, sorted in order"
        );
    }

    #[test]
    fn psids_refuse_empty_and_odd_characters() {
        assert!(Psid::parse("1234567890").is_ok());
        assert!(Psid::parse("").is_err());
        assert!(Psid::parse("12 34").is_err());
        assert!(Psid::parse(&"9".repeat(65)).is_err());
    }
}
