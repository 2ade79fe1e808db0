//! A TOML document as a tree whose every key and value remembers where it was written.
//!
//! `toml::Spanned` alone is not enough: it refuses values without a span (dotted keys, implicit
//! tables) and cannot hold datetimes read through `deserialize_any`. This tree accepts every TOML
//! document, so the loader can walk it by hand and report *each* problem with its line, instead of
//! stopping at the first one as a derived `Deserialize` would.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

// The private names through which the `toml` crate hands out spans (serde_spanned 0.6) and
// datetimes (toml_datetime 0.6). They are stable within toml 0.8, which Cargo.lock pins.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];
const DATETIME_FIELD: &str = "$__toml_private_datetime";

/// One TOML value and the bytes of the source it came from (when the parser knows them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub span: Option<Range<usize>>,
    pub value: Value,
}

/// A TOML value whose children are [`Node`]s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime(toml::value::Datetime),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// One `key = value` of a table, in the order written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Option<Range<usize>>,
    pub node: Node,
}

impl Value {
    /// The TOML type's name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

impl Node {
    /// The entries when this node is a table.
    pub fn as_table(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// Where to point an error about this node: its own span, else its first child's.
    pub fn best_span(&self) -> Option<Range<usize>> {
        if self.span.as_ref().is_some_and(|s| s.end > s.start) {
            return self.span.clone();
        }
        match &self.value {
            Value::Table(entries) => entries
                .iter()
                .find_map(|e| e.key_span.clone().or_else(|| e.node.best_span())),
            Value::Array(items) => items.iter().find_map(Node::best_span),
            _ => self.span.clone(),
        }
    }
}

impl Entry {
    /// Where to point an error about this entry: the key, else the value.
    pub fn span(&self) -> Option<Range<usize>> {
        self.key_span.clone().or_else(|| self.node.best_span())
    }
}

/// Parses a whole document. On a syntax error: the message and the span toml gives for it.
pub(crate) fn parse(text: &str) -> Result<Node, (String, Option<Range<usize>>)> {
    toml::from_str::<Node>(text).map_err(|e| (e.message().to_owned(), e.span()))
}

/// Byte offsets → 1-based line numbers for one source text.
#[derive(Debug, Clone)]
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor { spanned: true })
    }
}

/// A value without the span wrapper (what sits inside a spanned map's value field).
struct Bare(Node);

impl<'de> Deserialize<'de> for Bare {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bare, D::Error> {
        deserializer
            .deserialize_any(NodeVisitor { spanned: false })
            .map(Bare)
    }
}

struct NodeVisitor {
    /// Whether a spanned map (`start`, `end`, `value`) may arrive.
    spanned: bool,
}

fn bare(value: Value) -> Node {
    Node { span: None, value }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(bare(Value::Boolean(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(bare(Value::Integer(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|v| bare(Value::Integer(v)))
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(bare(Value::Float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(bare(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(bare(Value::String(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(bare(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let Some(first) = map.next_key::<Key>()? else {
            return Ok(bare(Value::Table(Vec::new())));
        };
        if self.spanned && first.name == SPANNED_START {
            let start: usize = map.next_value()?;
            let mut end = start;
            let mut inner = None;
            while let Some(key) = map.next_key::<Key>()? {
                match key.name.as_str() {
                    SPANNED_END => end = map.next_value()?,
                    SPANNED_VALUE => inner = Some(map.next_value::<Bare>()?.0),
                    other => return Err(de::Error::unknown_field(other, SPANNED_FIELDS)),
                }
            }
            let mut node = inner.ok_or_else(|| de::Error::missing_field(SPANNED_VALUE))?;
            node.span = Some(start..end);
            return Ok(node);
        }
        if first.name == DATETIME_FIELD {
            let text: String = map.next_value()?;
            let parsed = text
                .parse::<toml::value::Datetime>()
                .map_err(de::Error::custom)?;
            return Ok(bare(Value::Datetime(parsed)));
        }
        let mut entries = vec![Entry {
            key: first.name,
            key_span: first.span,
            node: map.next_value()?,
        }];
        while let Some(key) = map.next_key::<Key>()? {
            entries.push(Entry {
                key: key.name,
                key_span: key.span,
                node: map.next_value()?,
            });
        }
        Ok(bare(Value::Table(entries)))
    }
}

/// A table key with its span when the parser has one.
struct Key {
    name: String,
    span: Option<Range<usize>>,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(Key {
            name: v.to_owned(),
            span: None,
        })
    }

    fn visit_string<E>(self, v: String) -> Result<Key, E> {
        Ok(Key {
            name: v,
            span: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
        let (mut start, mut end, mut name) = (None, None, None);
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                SPANNED_START => start = Some(map.next_value::<usize>()?),
                SPANNED_END => end = Some(map.next_value::<usize>()?),
                _ => name = Some(map.next_value::<String>()?),
            }
        }
        let name = name.ok_or_else(|| de::Error::missing_field(SPANNED_VALUE))?;
        let span = match (start, end) {
            (Some(s), Some(e)) => Some(s..e),
            _ => None,
        };
        Ok(Key { name, span })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(text: &str, span: Option<Range<usize>>) -> usize {
        Lines::new(text).line(span.map_or(0, |s| s.start))
    }

    #[test]
    fn keys_and_values_keep_their_lines_through_every_table_form() {
        let text = "[a]\nx = 1\nd = 2026-04-27\n\n[[b.c]]\ny = \"s\"\n[b.e]\nq = { r = [1, 2] }\nz.w = true\n";
        let root = parse(text).expect("parses");
        let a = &root.as_table().expect("table")[0];
        assert_eq!(a.key, "a");
        let a_entries = a.node.as_table().expect("a is a table");
        assert_eq!(line_of(text, a_entries[0].key_span.clone()), 2);
        assert_eq!(line_of(text, a_entries[1].node.span.clone()), 3);
        assert!(matches!(a_entries[1].node.value, Value::Datetime(_)));
        let b = root.as_table().expect("table")[1]
            .node
            .as_table()
            .expect("b");
        let Value::Array(cs) = &b[0].node.value else {
            panic!("b.c is an array of tables")
        };
        assert_eq!(line_of(text, cs[0].best_span()), 5);
        let e = b[1].node.as_table().expect("b.e");
        assert_eq!(line_of(text, e[0].key_span.clone()), 8);
        assert_eq!(e[1].key, "z");
        assert_eq!(line_of(text, e[1].node.best_span()), 9);
    }

    #[test]
    fn syntax_errors_carry_a_span() {
        let (message, span) = parse("a = 1\nb = \n").expect_err("bad");
        assert!(!message.is_empty());
        assert_eq!(line_of("a = 1\nb = \n", span), 2);
    }
}
