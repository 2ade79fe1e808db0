//! Reading a JSON body strictly: only `application/json` (or a `+json` type), and never an
//! object that names a key twice. serde_json keeps the last of two equal keys, so
//! `{"category": "receipt", "category": "marketing"}` would mean whatever the last proxy or
//! parser in the path decided; Herald refuses it instead, naming the key. Nor a string with the
//! character U+0000 (`"\u0000"`), which PostgreSQL cannot store in text or `jsonb`: refused by
//! its path on either store, rather than accepted on sled and a 503 on PostgreSQL.

use std::cell::RefCell;
use std::fmt;

use actix_web::http::header;
use actix_web::HttpRequest;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::domain::FieldError;
use crate::error::ApiError;

/// Whether the request says its body is JSON: `application/json` or `application/…+json`,
/// with any parameters (`; charset=utf-8`).
pub fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// 415 unless the request's content type is JSON.
pub fn require_json(req: &HttpRequest) -> Result<(), ApiError> {
    if is_json(req) {
        return Ok(());
    }
    let given = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    Err(ApiError::UnsupportedMediaType(match given {
        Some(given) => format!("the body must be application/json, not {given:?}"),
        None => "the body must be application/json: the content-type header is missing".into(),
    }))
}

/// Parses `bytes` as JSON, refusing a key that appears twice in one object or a string with
/// U+0000 (400 naming it by its path, `recipient.psid`) and anything that is not JSON (400).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, ApiError> {
    read(bytes, Nul::Refuse).map_err(Unread::into_api)
}

/// Parses Messenger's own body (a webhook, signed) as [`parse_strict`] does, but with U+0000
/// replaced by U+FFFD: refusing it would refuse every event of the batch, and Messenger would
/// send the same body again for as long as it retries.
pub fn parse_messengers(bytes: &[u8]) -> Result<Value, ApiError> {
    read(bytes, Nul::Replace).map_err(Unread::into_api)
}

/// The path of the first key that `bytes`, read as JSON, names twice in one object; `None` when
/// there is none or `bytes` is not JSON (which its reader reports in its own way).
pub fn duplicate_key(bytes: &[u8]) -> Option<String> {
    match read(bytes, Nul::Replace) {
        Err(Unread::Refused(Refusal {
            path,
            why: Why::Duplicate,
        })) => Some(path),
        _ => None,
    }
}

/// Why a string with U+0000 is refused (PostgreSQL cannot store it in text or `jsonb`).
pub const NUL_REFUSED: &str = "contains the character U+0000, which Herald does not take";

/// The path of the first string or key in `object` that holds U+0000 (`recipient.user_ref`),
/// for parameters read another way than [`parse_strict`] (the Graph endpoint's form fields).
pub fn nul_in(object: &Map<String, Value>) -> Option<String> {
    fn in_object(object: &Map<String, Value>, at: &Step<'_>) -> Option<String> {
        object.iter().find_map(|(key, item)| {
            let at = Step::Key(at, key);
            match key.contains('\0') {
                true => Some(at.to_string()),
                false => in_value(item, &at),
            }
        })
    }
    fn in_value(value: &Value, at: &Step<'_>) -> Option<String> {
        match value {
            Value::String(s) if s.contains('\0') => Some(at.to_string()),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| in_value(item, &Step::Index(at, i))),
            Value::Object(object) => in_object(object, at),
            _ => None,
        }
    }
    in_object(object, &Step::Root)
}

/// What U+0000 in a string or key does to the reading.
#[derive(Clone, Copy)]
enum Nul {
    /// Stops it: the body is refused by the string's path.
    Refuse,
    /// Becomes U+FFFD, the replacement character.
    Replace,
}

/// Why a body was not read.
enum Unread {
    Refused(Refusal),
    NotJson(serde_json::Error),
}

impl Unread {
    fn into_api(self) -> ApiError {
        match self {
            Unread::Refused(refusal) => {
                ApiError::Invalid(vec![FieldError::new(refusal.path, refusal.why.says())])
            }
            Unread::NotJson(e) => ApiError::BadRequest(format!("the body is not valid JSON: {e}")),
        }
    }
}

fn read(bytes: &[u8], nul: Nul) -> Result<Value, Unread> {
    let refused = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue {
        at: Step::Root,
        nul,
        refused: &refused,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match (parsed, refused.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(refusal)) => Err(Unread::Refused(refusal)),
        (Err(e), None) => Err(Unread::NotJson(e)),
    }
}

/// Reads a raw field (`Option<Value>`) keeping a `null` as a value given, where serde would read
/// it as an absent field. For `#[serde(default, deserialize_with = "keep_null")]` on the fields
/// that refuse a `null`: the Graph Send API's parameters, and `at` of `POST /v1/policy/evaluate`.
pub fn keep_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Builds a `Value` as serde_json does, noting the path of the first duplicate key. The path is
/// kept as borrowed steps and spelled out only for a duplicate, so a large body costs no string
/// per value.
struct StrictValue<'a> {
    at: Step<'a>,
    nul: Nul,
    refused: &'a RefCell<Option<Refusal>>,
}

/// What a body was refused for, and where.
struct Refusal {
    path: String,
    why: Why,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Duplicate,
    Nul,
}

impl Why {
    fn says(self) -> &'static str {
        match self {
            Why::Duplicate => "appears more than once in its object",
            Why::Nul => NUL_REFUSED,
        }
    }
}

/// Where a value sits: the root, a key of an object, or an index of an array.
#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a Step<'a>, &'a str),
    Index(&'a Step<'a>, usize),
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Root => Ok(()),
            Step::Key(Step::Root, key) => write!(f, "{key}"),
            Step::Key(parent, key) => write!(f, "{parent}.{key}"),
            Step::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

impl<'a> StrictValue<'a> {
    /// Notes `why` at `at` and gives the error that stops the reading.
    fn refuse<E: serde::de::Error>(&self, at: &Step<'_>, why: Why) -> E {
        let path = at.to_string();
        let error = E::custom(format!("{path} {}", why.says()));
        *self.refused.borrow_mut() = Some(Refusal { path, why });
        error
    }

    /// A string (a value, or the key at `at`) as [`Nul`] says: refused when it holds U+0000, or
    /// given back with U+FFFD in its place; `None` when it has none (nearly always: no copy).
    fn without_nul<E: serde::de::Error>(
        &self,
        at: &Step<'_>,
        s: &str,
    ) -> Result<Option<String>, E> {
        if !s.contains('\0') {
            return Ok(None);
        }
        match self.nul {
            Nul::Refuse => Err(self.refuse(at, Why::Nul)),
            Nul::Replace => Ok(Some(s.replace('\0', "\u{FFFD}"))),
        }
    }

    fn child<'b>(&'b self, at: Step<'b>) -> StrictValue<'b>
    where
        'a: 'b,
    {
        StrictValue {
            at,
            nul: self.nul,
            refused: self.refused,
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        let read = self.without_nul(&self.at, s)?;
        Ok(Value::String(read.unwrap_or_else(|| s.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Value, E> {
        let read = self.without_nul(&self.at, &s)?;
        Ok(Value::String(read.unwrap_or(s)))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let at = Step::Index(&self.at, items.len());
            match seq.next_element_seed(self.child(at))? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let key = match self.without_nul(&Step::Key(&self.at, &key), &key)? {
                Some(read) => read,
                None => key,
            };
            let at = Step::Key(&self.at, &key);
            if object.contains_key(&key) {
                return Err(self.refuse(&at, Why::Duplicate));
            }
            let value = map.next_value_seed(self.child(at))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(text: &str) -> Option<String> {
        match parse_strict(text.as_bytes()) {
            Err(ApiError::Invalid(errors)) => errors.first().map(|e| e.field.clone()),
            _ => None,
        }
    }

    #[test]
    fn a_key_named_twice_is_refused_by_its_path_at_any_depth() {
        assert_eq!(
            duplicate(r#"{"category": "a", "category": "b"}"#).as_deref(),
            Some("category")
        );
        assert_eq!(
            duplicate(r#"{"recipient": {"psid": "1", "psid": "2"}}"#).as_deref(),
            Some("recipient.psid")
        );
        assert_eq!(
            duplicate(r#"{"order": {"elements": [{}, {"price": 1, "price": 2}]}}"#).as_deref(),
            Some("order.elements[1].price")
        );
    }

    #[test]
    fn a_string_or_key_with_u0000_is_refused_by_its_path_and_is_no_duplicate() {
        let refused = |text: &str| match parse_strict(text.as_bytes()) {
            Err(ApiError::Invalid(errors)) => errors
                .first()
                .map(|e| (e.field.clone(), e.message.contains("U+0000"))),
            _ => None,
        };
        assert_eq!(
            refused(r#"{"recipient": {"user_ref": "\u0000"}}"#),
            Some(("recipient.user_ref".into(), true))
        );
        assert_eq!(
            refused(r#"{"evidence": [1, {"a\u0000": 1}]}"#),
            Some(("evidence[1].a\u{0}".into(), true))
        );
        assert_eq!(duplicate_key(br#"{"a": "\u0000"}"#), None);
        assert_eq!(
            duplicate_key(br#"{"a": "\u0000", "b": 1, "b": 2}"#).as_deref(),
            Some("b")
        );
        assert!(parse_strict(br#"{"a": "\\u0000 is six characters"}"#).is_ok());
    }

    #[test]
    fn messengers_body_keeps_a_string_with_u0000_as_u_fffd_and_still_refuses_a_duplicate() {
        let read = parse_messengers(br#"{"text": "a\u0000b", "k\u0000": 1}"#).expect("read");
        assert_eq!(
            read,
            serde_json::json!({"text": "a\u{FFFD}b", "k\u{FFFD}": 1})
        );
        assert!(matches!(
            parse_messengers(br#"{"a": 1, "a": 2}"#),
            Err(ApiError::Invalid(_))
        ));
    }

    #[test]
    fn parameters_read_another_way_name_where_u0000_is() {
        let at = |v: Value| nul_in(v.as_object().expect("an object"));
        assert_eq!(
            at(serde_json::json!({"recipient": {"id": "1"}, "message": {"quick_replies": [{"title": "x"}, {"title": "\u{0}"}]}})).as_deref(),
            Some("message.quick_replies[1].title")
        );
        assert_eq!(
            at(serde_json::json!({"a\u{0}": 1})).as_deref(),
            Some("a\u{0}")
        );
        assert_eq!(at(serde_json::json!({"a": ["b", {"c": 1}]})), None);
    }

    #[test]
    fn json_without_duplicates_reads_as_serde_json_reads_it() {
        let text = r#"{"a": [1, -2, 2.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        let strict = parse_strict(text.as_bytes()).expect("valid");
        let plain: Value = serde_json::from_str(text).expect("valid");
        assert_eq!(strict, plain);
        assert!(matches!(
            parse_strict(b"{\"a\": 1} trailing"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_strict(b"{\"a\": 1e400}"),
            Err(ApiError::BadRequest(_))
        ));
    }
}
