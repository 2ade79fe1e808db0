//! Reading untyped JSON into domain types while naming every bad field, not just the first.

use serde_json::{Map, Number, Value};

use super::Violations;

/// The largest amount a receipt may carry, either way: far beyond any order, and far inside
/// what a decimal (or an `f64`, exactly to the cent) can carry.
pub const MAX_AMOUNT: f64 = 1e12;

/// Reads the fields of one JSON object, recording each problem under its full path.
pub(crate) struct Fields<'a> {
    obj: Option<&'a Map<String, Value>>,
    path: String,
}

impl<'a> Fields<'a> {
    /// `value` must be an object; if it is not, that is recorded and every read yields nothing.
    pub fn of(value: &'a Value, path: &str, v: &mut Violations) -> Self {
        let obj = value.as_object();
        if obj.is_none() {
            v.push(path, "must be an object");
        }
        Self {
            obj,
            path: path.to_owned(),
        }
    }

    pub fn path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj?.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A required string of at most `max` characters.
    pub fn req_str(&self, name: &str, max: usize, v: &mut Violations) -> String {
        if self.obj.is_some() && !self.has(name) {
            v.push(self.path(name), "is required");
            return String::new();
        }
        self.opt_str(name, max, v).unwrap_or_default()
    }

    /// An optional string of at most `max` characters.
    pub fn opt_str(&self, name: &str, max: usize, v: &mut Violations) -> Option<String> {
        text(self.get(name)?, &self.path(name), max, v)
    }

    /// A required decimal amount (a JSON number, or a string holding one).
    pub fn req_amount(&self, name: &str, v: &mut Violations) -> Number {
        if self.obj.is_some() && !self.has(name) {
            v.push(self.path(name), "is required");
            return Number::from(0);
        }
        self.opt_amount(name, v).unwrap_or_else(|| Number::from(0))
    }

    /// An optional decimal amount, at most [`MAX_AMOUNT`] either way and kept to four decimal
    /// places, so that it always renders as plain digits (`1000000000000`, `0.0001`), never as
    /// `1e29` or `1e-7`, and fits any decimal type downstream.
    pub fn opt_amount(&self, name: &str, v: &mut Violations) -> Option<Number> {
        let value = self.get(name)?;
        let parsed = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|f| f.is_finite());
        let Some(amount) = parsed else {
            v.push(self.path(name), "must be a decimal number");
            return None;
        };
        if amount.abs() > MAX_AMOUNT {
            v.push(
                self.path(name),
                "must be at most 1000000000000 (10^12) either way",
            );
            return None;
        }
        match value {
            // A whole number is kept as written: exact, and rendered without a fraction.
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.clone()),
            _ => Number::from_f64((amount * 10_000.0).round() / 10_000.0),
        }
    }

    pub fn opt_u32(&self, name: &str, v: &mut Violations) -> Option<u32> {
        let value = self.get(name)?;
        let parsed = value.as_u64().and_then(|n| u32::try_from(n).ok());
        if parsed.is_none() {
            v.push(self.path(name), "must be a non-negative whole number");
        }
        parsed
    }

    /// An optional array; each item is handed to `each` with its own path.
    pub fn opt_array(&self, name: &str, max: usize, v: &mut Violations) -> Option<&'a Vec<Value>> {
        match self.get(name)? {
            Value::Array(items) => {
                if items.len() > max {
                    v.push(self.path(name), format!("must have at most {max} items"));
                }
                Some(items)
            }
            _ => {
                v.push(self.path(name), "must be an array");
                None
            }
        }
    }
}

/// A field's value as a string of at most `max` characters; `path` names it in a violation.
pub(crate) fn text(value: &Value, path: &str, max: usize, v: &mut Violations) -> Option<String> {
    match value {
        Value::String(s) => {
            super::check_text(v, path, s, max);
            Some(s.clone())
        }
        _ => {
            v.push(path, "must be a string");
            None
        }
    }
}

/// A required field (`path`), a string of at most `max` characters.
pub(crate) fn required_text(
    value: Option<&Value>,
    path: &str,
    max: usize,
    v: &mut Violations,
) -> String {
    match value {
        Some(value) => text(value, path, max, v).unwrap_or_default(),
        None => {
            v.push(path, "is required");
            String::new()
        }
    }
}
