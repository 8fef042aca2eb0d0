//! `redactd rules test|lint|list`.

use std::io::Write;

use anyhow::Result;

use super::{RulePathArgs, load_ruleset, load_sources};
use crate::engine::testing::{lint as lint_rules, run_tests};
use crate::engine::{CompileOptions, Ruleset};

pub fn test(args: &RulePathArgs) -> Result<i32> {
    let rs = load_ruleset(&args.rules, &args.paths)?;
    let report = run_tests(&rs);
    for f in &report.failures {
        writeln!(std::io::stdout().lock(), "FAIL {f}")?;
    }
    writeln!(
        std::io::stdout().lock(),
        "rules test: {} rules, {} cases: {} passed, {} failed",
        report.rules,
        report.cases,
        report
            .cases
            .saturating_sub(count_failed_cases(&report.failures)),
        report.failures.len()
    )?;
    Ok(i32::from(!report.failures.is_empty()))
}

fn count_failed_cases(f: &[crate::engine::testing::Problem]) -> usize {
    f.iter().filter(|p| p.message.starts_with("test ")).count()
}

pub fn lint(args: &RulePathArgs) -> Result<i32> {
    let sources = load_sources(&args.rules, &args.paths)?;
    let rs = match Ruleset::compile(&sources, &CompileOptions::default()) {
        Ok(rs) => rs,
        Err(e) => {
            for p in e.problems() {
                writeln!(std::io::stdout().lock(), "error: {p}")?;
            }
            writeln!(
                std::io::stdout().lock(),
                "rules lint: {} errors",
                e.problems().len()
            )?;
            return Ok(1);
        }
    };
    let (errors, warnings) = lint_rules(&rs);
    for w in &warnings {
        writeln!(std::io::stdout().lock(), "warning: {w}")?;
    }
    for e in &errors {
        writeln!(std::io::stdout().lock(), "error: {e}")?;
    }
    writeln!(
        std::io::stdout().lock(),
        "rules lint: {} rules, {} errors, {} warnings",
        rs.rules().len(),
        errors.len(),
        warnings.len()
    )?;
    Ok(i32::from(!errors.is_empty()))
}

pub fn list(args: &RulePathArgs) -> Result<i32> {
    let rs = load_ruleset(&args.rules, &args.paths)?;
    writeln!(
        std::io::stdout().lock(),
        "{:<40} {:<11} {:<8} DESCRIPTION",
        "ID",
        "CATEGORY",
        "ACTION"
    )?;
    for r in rs.rules() {
        writeln!(
            std::io::stdout().lock(),
            "{:<40} {:<11} {:<8} {}",
            r.id,
            r.category.as_str(),
            format!("{:?}", r.action).to_lowercase(),
            r.description
        )?;
    }
    Ok(0)
}
