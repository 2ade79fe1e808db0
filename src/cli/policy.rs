use std::path::Path;
use std::process::ExitCode;

use crate::policy::{run_policy_tests, PolicySet};

/// `herald policy check`.
pub fn check(dir: &Path) -> anyhow::Result<ExitCode> {
    match PolicySet::load_dir(dir) {
        Ok(policy) => {
            println!("ok: {} (version {})", dir.display(), policy.version());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `herald policy test`.
pub fn test(dir: &Path) -> anyhow::Result<ExitCode> {
    let policy = match PolicySet::load_dir(dir) {
        Ok(p) => p,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match run_policy_tests(&policy, &dir.join("tests")) {
        Ok(report) => {
            println!("{report}");
            Ok(if report.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
