//! A TOML document as a tree whose every key and value remembers where it was written.
//!
//! Read with `toml_edit`, the parser behind the `toml` crate, through its public spans (the
//! byte range of each key, value and table header in the source): this tree accepts every TOML
//! document — dotted keys, implicit tables, datetimes — so the loader can walk it by hand and
//! report *each* problem with its line and column, instead of stopping at the first one as a
//! derived `Deserialize` would.

use std::ops::Range;

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
    Datetime(toml_edit::Datetime),
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

/// Parses a whole document. On a syntax error: the message and the span the parser gives.
pub(crate) fn parse(text: &str) -> Result<Node, (String, Option<Range<usize>>)> {
    let document = toml_edit::Document::parse(text)
        .map_err(|e| (e.message().trim_end().to_owned(), e.span()))?;
    Ok(table(document.as_table()))
}

fn table(t: &toml_edit::Table) -> Node {
    let entries = t
        .iter()
        .map(|(key, item)| Entry {
            key: key.to_owned(),
            key_span: t.key(key).and_then(toml_edit::Key::span),
            node: item_node(item),
        })
        .collect();
    Node {
        span: t.span(),
        value: Value::Table(entries),
    }
}

fn item_node(item: &toml_edit::Item) -> Node {
    match item {
        toml_edit::Item::Value(v) => value_node(v),
        toml_edit::Item::Table(t) => table(t),
        toml_edit::Item::ArrayOfTables(tables) => Node {
            span: tables.span(),
            value: Value::Array(tables.iter().map(table).collect()),
        },
        // Not produced by parsing; an empty table is the closest harmless reading.
        toml_edit::Item::None => Node {
            span: None,
            value: Value::Table(Vec::new()),
        },
    }
}

fn value_node(v: &toml_edit::Value) -> Node {
    use toml_edit::Value as V;
    let value = match v {
        V::String(s) => Value::String(s.value().clone()),
        V::Integer(i) => Value::Integer(*i.value()),
        V::Float(f) => Value::Float(*f.value()),
        V::Boolean(b) => Value::Boolean(*b.value()),
        V::Datetime(d) => Value::Datetime(*d.value()),
        V::Array(items) => Value::Array(items.iter().map(value_node).collect()),
        V::InlineTable(t) => Value::Table(
            t.iter()
                .map(|(key, value)| Entry {
                    key: key.to_owned(),
                    key_span: t.key(key).and_then(toml_edit::Key::span),
                    node: value_node(value),
                })
                .collect(),
        ),
    };
    Node {
        span: v.span(),
        value,
    }
}

/// Byte offsets → 1-based lines and columns for one source text.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    pub fn new(text: &'t str) -> Lines<'t> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// The 1-based line holding byte `offset`.
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// The 1-based column of byte `offset` in its line, in characters (as an editor counts).
    pub fn column(&self, offset: usize) -> usize {
        let start = self.starts[self.line(offset) - 1];
        let end = offset.min(self.text.len());
        self.text
            .get(start..end)
            .map_or(1, |before| before.chars().count() + 1)
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
    fn a_column_counts_characters_from_the_start_of_its_line() {
        let text = "a = 1\nnamé = \"x\"\n";
        let lines = Lines::new(text);
        let value = text.find("\"x").expect("the value");
        assert_eq!((lines.line(value), lines.column(value)), (2, 8));
        assert_eq!((lines.line(0), lines.column(0)), (1, 1));
    }

    #[test]
    fn syntax_errors_carry_a_span() {
        let (message, span) = parse("a = 1\nb = \n").expect_err("bad");
        assert!(!message.is_empty());
        assert_eq!(line_of("a = 1\nb = \n", span), 2);
    }
}
