//! Running rules' own test cases, and linting rules.
//!
//! Each rule is tested in isolation (a ruleset of that rule alone, through
//! the same `redact_line` the filter uses, prefilter included), so a case
//! proves the rule itself catches or spares it, not that some other rule
//! happens to.

use regex_syntax::hir::{Hir, HirKind};

use super::action::is_marker;
use super::ruleset::Ruleset;
use super::{Outcome, PatternEngine, Scratch, Stats};

/// One failed test case or lint finding.
#[derive(Debug, Clone)]
pub struct Problem {
    pub rule: String,
    /// `file:line` of the rule.
    pub origin: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: rule {:?}: {}", self.origin, self.rule, self.message)
    }
}

/// Result of running every rule's tests.
#[derive(Debug, Default)]
pub struct TestReport {
    pub rules: usize,
    pub cases: usize,
    pub failures: Vec<Problem>,
}

/// Runs the test cases of every rule in `rs`.
pub fn run_tests(rs: &Ruleset) -> TestReport {
    let mut report = TestReport::default();
    for (idx, rule) in rs.rules().iter().enumerate() {
        report.rules += 1;
        let fail = |message: String| Problem {
            rule: rule.id.clone(),
            origin: rule.origin.clone(),
            message,
        };
        let alone = match rs.only(idx) {
            Ok(r) => r,
            Err(e) => {
                report
                    .failures
                    .push(fail(format!("cannot build the rule alone: {e}")));
                continue;
            }
        };
        let (hits, misses) = rule.tests.iter().fold((0, 0), |(h, m), t| {
            (
                h + usize::from(t.hit.is_some()),
                m + usize::from(t.miss.is_some()),
            )
        });
        if hits == 0 || misses == 0 {
            report.failures.push(fail(
                "needs at least one `hit` and one `miss` test case".into(),
            ));
        }
        let mut scratch = Scratch::new(&alone);
        for (n, case) in rule.tests.iter().enumerate() {
            report.cases += 1;
            let n = n + 1;
            let mut stats = Stats::new(&alone);
            match (&case.hit, &case.miss) {
                (Some(input), None) => {
                    let (out, outcome) =
                        alone.redact_line(input.as_bytes(), &mut scratch, &mut stats);
                    let out = String::from_utf8_lossy(out).into_owned();
                    if outcome != Outcome::Redacted || stats.rule_hits[0] == 0 {
                        report.failures.push(fail(format!(
                            "test {n}: hit case was not redacted: {input:?}"
                        )));
                    } else if let Some(want) = &case.output
                        && &out != want
                    {
                        report
                            .failures
                            .push(fail(format!("test {n}: output {out:?}, expected {want:?}")));
                    }
                    if stats.compliance_failures > 0 {
                        report.failures.push(fail(format!(
                            "test {n}: verify found a residual after redaction: {out:?}"
                        )));
                    }
                }
                (None, Some(input)) => {
                    let (out, outcome) =
                        alone.redact_line(input.as_bytes(), &mut scratch, &mut stats);
                    if outcome != Outcome::Clean {
                        let out = String::from_utf8_lossy(out);
                        report.failures.push(fail(format!(
                            "test {n}: miss case was changed: {input:?} -> {out:?}"
                        )));
                    }
                }
                _ => report.failures.push(fail(format!(
                    "test {n}: needs exactly one of `hit` or `miss`"
                ))),
            }
        }
    }
    report
}

/// Lints a compiled ruleset: the problems compilation does not reject but a
/// reviewer should see. Errors fail `rules lint`; warnings are printed.
pub fn lint(rs: &Ruleset) -> (Vec<Problem>, Vec<Problem>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for rule in rs.rules() {
        let p = |message: String| Problem {
            rule: rule.id.clone(),
            origin: rule.origin.clone(),
            message,
        };
        let (hits, misses) = rule.tests.iter().fold((0, 0), |(h, m), t| {
            (
                h + usize::from(t.hit.is_some()),
                m + usize::from(t.miss.is_some()),
            )
        });
        if hits == 0 || misses == 0 {
            errors.push(p("needs at least one `hit` and one `miss` test case".into()));
        }
        if !is_marker(&rule.mask) {
            warnings.push(p(
                "replacement does not start with \"[REDACTED\": redacting twice may not equal redacting once".into(),
            ));
        }
        if rule.engine == PatternEngine::Fancy && rule.keywords.is_empty() {
            warnings.push(p(
                "fancy rule without keywords runs on every value: give it keywords".into(),
            ));
        }
        if let Some(pat) = &rule.pattern
            && let Ok(hir) = regex_syntax::Parser::new().parse(pat)
        {
            // `regex` runs in linear time whatever the nesting; only a
            // backtracking engine can blow up on it.
            if rule.engine == PatternEngine::Fancy && nested_unbounded(&hir, false) {
                warnings.push(p(
                    "nested unbounded quantifiers: catastrophic backtracking risk (ReDoS)".into(),
                ));
            }
            // Linear is not fast: counted repetitions of anything but a
            // short class multiply the automaton, and a big automaton thrashes
            // the lazy DFA's cache and falls back to a slower engine
            // (`(?:\w+\s+){1,100}x`: 33,000 states, 0.27 MB/s).
            if rule.engine == PatternEngine::Regex
                && let Some(states) = nfa_states(pat)
                && states > MAX_NFA_STATES
            {
                warnings.push(p(format!(
                    "large automaton ({states} NFA states, over {MAX_NFA_STATES}): scans slowly and can use up the per-line time budget; shrink counted repetitions"
                )));
            }
        }
    }
    (errors, warnings)
}

/// Above this many NFA states a `std` rule gets a lint warning. The
/// largest built-in rule has far fewer (see the test below).
const MAX_NFA_STATES: usize = 5_000;

/// The size of a pattern's Thompson NFA (what the lazy DFA explores).
fn nfa_states(pattern: &str) -> Option<usize> {
    regex_automata::nfa::thompson::NFA::new(pattern)
        .ok()
        .map(|n| n.states().len())
}

/// Whether an unbounded repetition sits inside another repetition.
fn nested_unbounded(h: &Hir, inside_rep: bool) -> bool {
    match h.kind() {
        HirKind::Repetition(r) => {
            let unbounded = r.max.is_none();
            if unbounded && inside_rep {
                return true;
            }
            nested_unbounded(&r.sub, inside_rep || r.max.is_none_or(|m| m > 1))
        }
        HirKind::Capture(c) => nested_unbounded(&c.sub, inside_rep),
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            v.iter().any(|x| nested_unbounded(x, inside_rep))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_quantifiers_are_detected() {
        let p = |s| nested_unbounded(&regex_syntax::Parser::new().parse(s).unwrap(), false);
        assert!(p("(a+)+"));
        assert!(p("(?:ab*){2,}"));
        assert!(!p("a+b+"));
        assert!(!p("(?:ab+)?"));
    }

    #[test]
    fn big_automata_are_flagged_and_no_built_in_rule_is_one() {
        assert!(nfa_states(r"(?i)(?:\w+\s+){1,100}\w*zzqq").unwrap() > MAX_NFA_STATES);
        assert!(nfa_states(r"\bacme_[0-9a-f]{32}\b").unwrap() < 100);
        let rs = crate::engine::builtin_for_test();
        let (_, warnings) = lint(&rs);
        let big: Vec<_> = warnings
            .iter()
            .filter(|w| w.message.contains("large automaton"))
            .collect();
        assert!(big.is_empty(), "{big:?}");
    }
}
