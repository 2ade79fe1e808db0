//! What goes wrong with policy files: every problem, each with the file, line and column it is on.

use std::fmt;

/// One problem in a policy or policy-test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file as the operator would open it (`policies/default.toml`), or the directory for
    /// problems of the whole set (a rule no file defines).
    pub file: String,
    /// 1-based line, when the problem sits on one.
    pub line: Option<usize>,
    /// 1-based column (in characters) on that line, when the problem points at a place in it.
    pub column: Option<usize>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.file, self.message)
            }
            (Some(line), None) => write!(f, "{}:{line}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found while loading policy files (or policy tests); never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(Vec<PolicyError>);

impl PolicyErrors {
    /// Wraps a list of problems (the caller makes sure there is at least one).
    pub fn new(errors: Vec<PolicyError>) -> PolicyErrors {
        PolicyErrors(errors)
    }

    /// A single problem that sits on no line.
    pub fn one(file: impl Into<String>, message: impl Into<String>) -> PolicyErrors {
        PolicyErrors(vec![PolicyError {
            file: file.into(),
            line: None,
            column: None,
            message: message.into(),
        }])
    }

    /// The problems, in file and line order.
    pub fn errors(&self) -> &[PolicyError] {
        &self.0
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (only ever true for a value built by hand).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

impl IntoIterator for PolicyErrors {
    type Item = PolicyError;
    type IntoIter = std::vec::IntoIter<PolicyError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
