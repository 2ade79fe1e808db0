//! The policy engine: rules from files under `policies/`, loaded into a [`PolicySet`], and a pure
//! [`evaluate`] that turns a message and the [`Facts`] about its recipient into a [`Decision`].
//!
//! ```text
//!   policies/*.toml ──load_dir──▶ PolicySet ─┐
//!                                            ├─ evaluate(&PolicySet, &OutboundMessage, &Facts) ─▶ Decision
//!   store ──────────────────────▶ Facts ─────┘
//!   Messenger cannot take it ── evaluate_fallback(&PolicySet, category, &Facts, …) ─▶ Decision (email?)
//!   policies/tests/*.toml ──run_policy_tests──▶ TestReport
//! ```
//!
//! A [`Decision`] is the domain's (`domain::decision`): messages and audit entries keep it, and
//! the policy depends on the domain, never the other way round.

mod engine;
mod errors;
mod fallback;

#[cfg(test)]
mod hostile;
mod load;
mod model;
mod read;
mod source;
mod testing;
#[cfg(test)]
mod tests;
mod tree;

pub use crate::domain::decision::{
    Decision, MessagingType, Outcome, Reason, StepResult, Tag, TraceStep, Via,
};
pub use crate::domain::facts::{Facts, MarketingToken, RecentSend};
pub use engine::{evaluate, window_open};
pub use errors::{PolicyError, PolicyErrors};
pub use fallback::{evaluate_fallback, FallbackCause};
pub use load::DEFAULT_POLICY;
pub use model::PolicySet;
pub use testing::{run_policy_tests, CaseFailure, CasePass, TestReport};
