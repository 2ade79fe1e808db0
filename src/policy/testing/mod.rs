//! Policy test cases (`policies/tests/*.toml`): a message, the facts about its recipient, and the
//! decision the policy must reach. `herald policy test` runs them; so does `cargo test`.
//!
//! The format is explained for its readers at the top of `policies/tests/default.toml`. In short,
//! each `[[case]]` has a `name`, a `now`, a `category`, facts written relative to `now`
//! (`last_user_interaction = "-3d"`), an optional `at` (decide at another moment, under the rules
//! in force then, with the same facts) and an `expect` table. A `[defaults]` table gives values
//! every case of the file starts from.

//!
//! One room per step: `read.rs` reads a file's cases with the policy reader's own helpers
//! (`policy/read.rs`, `policy/source.rs`), so a case file is refused with the same
//! `file:line:column` messages as a policy file; `facts.rs` reads what a case says of its
//! recipient, `expect.rs` the decision it expects and compares it, `samples.rs` holds the sample
//! contents a case names; this file runs the cases and reports.

mod expect;
mod facts;
mod read;
mod samples;

use std::fmt;
use std::path::Path;

use self::expect::Expect;
use self::read::read_cases;
use super::engine::evaluate;
use super::errors::PolicyErrors;
use super::model::PolicySet;
use super::source::toml_files;
use crate::domain::decision::{Decision, StepResult};
use crate::domain::facts::Facts;
use crate::domain::OutboundMessage;

/// The outcome of running a directory of policy test cases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestReport {
    /// Cases whose decision matched, as `file:line name`.
    pub passed: Vec<CasePass>,
    /// Cases whose decision did not.
    pub failed: Vec<CaseFailure>,
}

/// A case that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePass {
    /// `policies/tests/default.toml`.
    pub file: String,
    /// The line of the case's `[[case]]`.
    pub line: Option<usize>,
    /// The case's `name`.
    pub name: String,
}

/// A case that failed: what it expected, and the decision it got.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFailure {
    /// `policies/tests/default.toml`.
    pub file: String,
    /// The line of the case's `[[case]]`.
    pub line: Option<usize>,
    /// The case's `name`.
    pub name: String,
    /// The expected fields that differ, as `field=value`.
    pub expected: String,
    /// The same fields in the decision, and the deciding rule.
    pub got: String,
    /// The whole decision, trace included (`None` for a keyword check).
    pub decision: Option<Decision>,
}

impl TestReport {
    /// Whether every case passed.
    pub fn all_passed(&self) -> bool {
        self.failed.is_empty()
    }

    /// How many cases ran.
    pub fn total(&self) -> usize {
        self.passed.len() + self.failed.len()
    }
}

fn at(file: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{file}:{l}"),
        None => file.to_owned(),
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.passed {
            writeln!(f, "ok    {}  {}", at(&p.file, p.line), p.name)?;
        }
        for c in &self.failed {
            writeln!(f, "FAIL  {}  {}", at(&c.file, c.line), c.name)?;
            writeln!(f, "      expected: {}", c.expected)?;
            writeln!(f, "      got:      {}", c.got)?;
            let trace = c.decision.as_ref().map_or(&[][..], |d| d.trace.as_slice());
            for step in trace {
                let result = match step.result {
                    StepResult::Pass => "pass",
                    StepResult::Fail => "FAIL",
                    StepResult::Skip => "skip",
                };
                writeln!(f, "        {result} {}: {}", step.rule, step.detail)?;
            }
        }
        write!(
            f,
            "{} cases: {} passed, {} failed",
            self.total(),
            self.passed.len(),
            self.failed.len()
        )
    }
}

/// Runs every `*.toml` case file directly in `tests_dir` against `policy`.
///
/// A case file that cannot be read as cases is an error (each problem as `file:line: message`);
/// a case whose decision differs from its expectation is a failure in the report.
pub fn run_policy_tests(policy: &PolicySet, tests_dir: &Path) -> Result<TestReport, PolicyErrors> {
    let sources = toml_files(tests_dir, "policy tests")?;
    if sources.is_empty() {
        return Err(PolicyErrors::one(
            tests_dir.display().to_string(),
            "holds no *.toml test file; a policy without tests cannot be trusted",
        ));
    }
    let mut errors = Vec::new();
    let mut cases = Vec::new();
    for source in &sources {
        cases.extend(read_cases(&source.display, &source.text, &mut errors));
    }
    if !errors.is_empty() {
        return Err(PolicyErrors::new(errors));
    }
    Ok(run_cases(policy, cases))
}

/// Runs the cases of one test file given as text (for tests of the runner itself).
#[cfg(test)]
pub(crate) fn run_text(
    policy: &PolicySet,
    display: &str,
    text: &str,
) -> Result<TestReport, PolicyErrors> {
    let mut errors = Vec::new();
    let cases = read_cases(display, text, &mut errors);
    if !errors.is_empty() {
        return Err(PolicyErrors::new(errors));
    }
    Ok(run_cases(policy, cases))
}

fn run_cases(policy: &PolicySet, cases: Vec<Case>) -> TestReport {
    let mut report = TestReport::default();
    for case in cases {
        let (mismatches, decision) = case.check.run(policy);
        if mismatches.is_empty() {
            report.passed.push(CasePass {
                file: case.file,
                line: case.line,
                name: case.name,
            });
        } else {
            report
                .failed
                .push(CaseFailure::new(case, &mismatches, decision));
        }
    }
    report
}

/// An expected field that differs: (field, expected, got).
type Mismatch = (&'static str, String, String);

impl CaseFailure {
    fn new(case: Case, mismatches: &[Mismatch], decision: Option<Decision>) -> CaseFailure {
        let expected = mismatches
            .iter()
            .map(|(k, e, _)| format!("{k}={e}"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut got = mismatches
            .iter()
            .map(|(k, _, g)| format!("{k}={g}"))
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(d) = &decision {
            got.push_str(&format!(
                "  ({} {} by {})",
                d.outcome.as_str(),
                d.reason,
                d.rule
            ));
        }
        CaseFailure {
            file: case.file,
            line: case.line,
            name: case.name,
            expected,
            got,
            decision,
        }
    }
}

/// One case, ready to run.
struct Case {
    file: String,
    line: Option<usize>,
    name: String,
    check: Check,
}

/// What a case checks.
enum Check {
    /// `[[case]]`: a decision.
    Decide {
        message: Box<OutboundMessage>,
        facts: Box<Facts>,
        expect: Box<Expect>,
    },
    /// `[[keyword]]`: whether a text is a stop (or resume) keyword.
    Keyword {
        text: String,
        stop: Option<bool>,
        resume: Option<bool>,
    },
}

impl Check {
    /// The fields that differ from what the case expects, and the decision when there is one.
    fn run(&self, policy: &PolicySet) -> (Vec<Mismatch>, Option<Decision>) {
        match self {
            Check::Decide {
                message,
                facts,
                expect,
            } => {
                let decision = evaluate(policy, message, facts);
                (expect.compare(&decision), Some(decision))
            }
            Check::Keyword { text, stop, resume } => {
                let mut out = Vec::new();
                let got_stop = policy.is_stop_keyword(text);
                let got_resume = policy.is_resume_keyword(text);
                if stop.is_some_and(|s| s != got_stop) {
                    out.push(("stop", (!got_stop).to_string(), got_stop.to_string()));
                }
                if resume.is_some_and(|r| r != got_resume) {
                    out.push(("resume", (!got_resume).to_string(), got_resume.to_string()));
                }
                (out, None)
            }
        }
    }
}
