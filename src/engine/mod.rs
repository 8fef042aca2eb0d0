//! The redaction engine: rules, redact, verify.
//!
//! # Contract
//!
//! The engine is pure and synchronous: a compiled [`Ruleset`], one line of
//! bytes, and reusable [`Scratch`] space go in; the redacted line comes out,
//! and [`Stats`] are updated. It does no I/O and keeps no state between
//! lines, so it can be shared by any number of threads (`&Ruleset` is
//! `Sync`; each thread owns a `Scratch` and a `Stats`).
//!
//! What [`Ruleset::redact_line`] guarantees for every input:
//! - the output is one line (no newline is added or removed inside it);
//! - a JSON object or array line stays valid JSON with the same keys in the
//!   same order (except members of `drop` rules, and keys that hold a
//!   secret themselves: those are redacted like values, `#2`, `#3`, ...
//!   added where two would come out the same); untouched parts keep their
//!   exact bytes, and a line with nothing to redact comes back byte for byte;
//! - invalid UTF-8 is redacted as lossy text, malformed JSON as text: both
//!   are counted as secondary failures, neither is ever passed through raw;
//! - every changed value is scanned again (verify); a residual match masks
//!   the whole value and counts as a compliance failure (a value replaced
//!   whole by masks or hashes holds no input byte and is not rescanned);
//! - a rule that errors (a `fancy` rule over its backtrack limit) masks the
//!   whole value it was scanning and counts as a secondary failure;
//! - a line that runs past its time budget (`CompileOptions::time_budget`,
//!   scaled by the line's size) has every value not yet searched that has
//!   candidate rules masked as `[REDACTED:time-budget]`, counted once as a
//!   secondary failure: a slow rule cannot stall the pipeline.
//!
//! How a line is processed, cheapest first:
//! 1. The keyword automaton and the multi-pattern set walk the line
//!    together in one pass (`scan`), which reports every keyword
//!    occurrence and every set match end. A JSON line whose scan finds
//!    nothing is returned untouched without being parsed (a line with JSON
//!    escapes is scanned as a decoded copy whose offsets map back to the
//!    line; one with percent escapes is also scanned percent-decoded).
//! 2. JSON lines are walked token by token ([`crate::decode::json`]): field
//!    names are checked against `keys` rules (and redacted like values
//!    where they hold a secret), every string (and number)
//!    value is redacted as text by the rules whose keyword lies inside it
//!    or whose set match ends inside it; strings holding JSON are walked
//!    too.
//! 3. Text is matched by the candidate rules only; validators run on each
//!    candidate; overlapping hits are resolved (leftmost, then longest, then
//!    rule order; a partial overlap widens the masked span so no byte of
//!    either hit survives); replacements are rendered by [`action`].
//! 4. Text with `key="quoted value"` pairs is read as logfmt
//!    ([`crate::decode::logfmt`]): `keys` rules mask the values of matching
//!    names, quotes kept.
//! 5. Percent-encoded text (`ann%40example.com`) is decoded and scanned
//!    again when it contains escapes.

pub mod action;
mod keywords;
pub mod ruleset;
mod scan;
pub mod spec;
pub mod testing;
pub mod validate;

mod redact;
mod structured;

pub use ruleset::{CompileOptions, Rule, RuleBits, Ruleset};
pub use spec::{ActionKind, Category, PatternEngine, Source};

/// Errors from loading or compiling rules. Messages carry `file:line` and
/// the rule id; never any log content.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// (The I/O error is part of the message, not a `source`, so that
    /// error chains do not print it twice.)
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{origin}: rule {id:?}: {message}")]
    Invalid {
        origin: String,
        id: String,
        message: String,
    },
    #[error("{0}")]
    Internal(String),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Many(Vec<RuleError>),
}

impl RuleError {
    /// The individual problems (a `Many` flattened).
    pub fn problems(&self) -> Vec<&RuleError> {
        match self {
            RuleError::Many(v) => v.iter().flat_map(|e| e.problems()).collect(),
            e => vec![e],
        }
    }
}

/// Kinds of secondary failure: the agent could not process an event as
/// intended and fell back to the fail-closed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    InvalidUtf8,
    MalformedJson,
    OversizeLine,
    RuleError,
    /// A line ran past its time budget; its unsearched values were masked.
    TimeBudget,
    Panic,
}

impl FailureKind {
    pub const ALL: [FailureKind; 6] = [
        FailureKind::InvalidUtf8,
        FailureKind::MalformedJson,
        FailureKind::OversizeLine,
        FailureKind::RuleError,
        FailureKind::TimeBudget,
        FailureKind::Panic,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::InvalidUtf8 => "invalid_utf8",
            FailureKind::MalformedJson => "malformed_json",
            FailureKind::OversizeLine => "oversize_line",
            FailureKind::RuleError => "rule_error",
            FailureKind::TimeBudget => "time_budget",
            FailureKind::Panic => "panic",
        }
    }
    /// The pipeline stage the failure belongs to.
    pub fn stage(self) -> &'static str {
        match self {
            FailureKind::InvalidUtf8 | FailureKind::MalformedJson | FailureKind::OversizeLine => {
                "decode"
            }
            FailureKind::RuleError | FailureKind::TimeBudget | FailureKind::Panic => "engine",
        }
    }
}

/// Counters for one thread's share of the work; merge with [`Stats::merge`].
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub lines: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Lines whose output differs from their input.
    pub lines_redacted: u64,
    /// Redactions per rule, indexed like [`Ruleset::rules`].
    pub rule_hits: Vec<u64>,
    /// Values checked by the verify pass (every line counts once).
    pub compliance_checked: u64,
    /// Residual matches found by verify (each masked the whole value).
    pub compliance_failures: u64,
    failures: [u64; FailureKind::ALL.len()],
    /// Rule hits of the current line, in order, so a walk that turns out
    /// to be over malformed JSON can be undone ([`Stats::rollback`]).
    journal: Vec<u32>,
}

/// A point to roll [`Stats`] back to.
pub(crate) struct Mark {
    journal: usize,
    compliance_failures: u64,
    failures: [u64; FailureKind::ALL.len()],
    pub findings: usize,
}

impl Stats {
    /// Counts a redaction by rule `r`.
    pub(crate) fn hit(&mut self, r: u32) {
        self.rule_hits[r as usize] += 1;
        self.journal.push(r);
    }
    /// Rules that hit since the last [`Stats::clear_journal`] (one entry
    /// per redaction; the current line's, as `redact_line` clears it).
    pub fn journal(&self) -> &[u32] {
        &self.journal
    }
    pub fn clear_journal(&mut self) {
        self.journal.clear();
    }
    pub(crate) fn mark(&self, findings: usize) -> Mark {
        Mark {
            journal: self.journal.len(),
            compliance_failures: self.compliance_failures,
            failures: self.failures,
            findings,
        }
    }
    pub(crate) fn rollback(&mut self, m: &Mark) {
        for r in self.journal.drain(m.journal..) {
            self.rule_hits[r as usize] -= 1;
        }
        self.compliance_failures = m.compliance_failures;
        self.failures = m.failures;
    }

    pub fn new(rules: &Ruleset) -> Stats {
        Stats {
            rule_hits: vec![0; rules.rules.len()],
            ..Stats::default()
        }
    }
    pub fn failure(&mut self, kind: FailureKind) {
        self.failures[kind as usize] += 1;
    }
    pub fn failures(&self, kind: FailureKind) -> u64 {
        self.failures[kind as usize]
    }
    pub fn total_failures(&self) -> u64 {
        self.failures.iter().sum()
    }
    pub fn total_redactions(&self) -> u64 {
        self.rule_hits.iter().sum()
    }
    pub fn merge(&mut self, o: &Stats) {
        self.lines += o.lines;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.lines_redacted += o.lines_redacted;
        if self.rule_hits.len() < o.rule_hits.len() {
            self.rule_hits.resize(o.rule_hits.len(), 0);
        }
        for (a, b) in self.rule_hits.iter_mut().zip(&o.rule_hits) {
            *a += b;
        }
        self.compliance_checked += o.compliance_checked;
        self.compliance_failures += o.compliance_failures;
        for (a, b) in self.failures.iter_mut().zip(&o.failures) {
            *a += b;
        }
    }
}

/// Where a value was found, for `redactd scan`. Holds no content beyond a
/// short masked preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: u32,
    /// Byte offset in the line (approximate for values that were decoded
    /// from JSON escapes or percent-encoding: the value's start).
    pub offset: usize,
    pub len: usize,
    /// At most a quarter of the value, and at most 4 characters, then `…`.
    pub preview: String,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub rule: u32,
}

/// Reusable per-thread buffers, so the clean path allocates nothing.
///
/// A `Scratch` belongs to the ruleset it was made for (its scan cache and
/// pattern set are that ruleset's automata's, its field-name cache holds
/// that ruleset's rule numbers, its regex copies are of that ruleset's
/// rules). Make a new one when the ruleset changes, as every caller does on
/// reload; one handed to another ruleset is rebuilt for it on its first
/// line (see `Ruleset::adopt`), never used as it is.
#[derive(Debug)]
pub struct Scratch {
    /// [`Ruleset::id`] of the ruleset this scratch was made for.
    of: u64,
    scan_cache: ruleset::ScanCache,
    bits_pool: Vec<RuleBits>,
    hits_pool: Vec<Vec<Hit>>,
    keybuf: String,
    /// Field name → its `keys` rule (`Ruleset::key_rule_cached`).
    key_cache: std::collections::HashMap<Box<str>, Option<u32>, foldhash::fast::RandomState>,
    lossy: String,
    line_scan: ruleset::LineScan,
    /// Scans of JSON held in strings (one per level being walked).
    scan_pool: Vec<ruleset::LineScan>,
    out: Vec<u8>,
    findings: Option<Vec<Finding>>,
    /// The current line's length and deadline, set at its first look at
    /// the clock (see `Ruleset::check_budget`).
    line_len: usize,
    deadline: Option<std::time::Instant>,
    budget_spent: bool,
    /// Bytes searched by rules since this thread last looked at the clock
    /// (paces the clock reads, see `Ruleset::check_budget`).
    unclocked: usize,
    /// Edit lists of JSON walks (one per level of embedded JSON).
    edits_pool: Vec<structured::Edits>,
    /// Emptied strings to build redacted text in (see [`Scratch::take_string`]).
    strings: Vec<String>,
    /// This thread's copies of the rules' regexes (see [`ruleset::Matchers`]).
    matchers: ruleset::Matchers,
    /// Per rule, how its whole-line check came out (see
    /// [`Ruleset::none_match_whole`]).
    line_checks: Vec<LineCheck>,
}

/// The largest string [`Scratch::put_string`] keeps.
const POOLED_STRING_MAX: usize = 64 << 10;

/// How often one rule's whole-line check (see [`Ruleset::none_match_whole`])
/// found a match on this thread, recently: the counts are halved as they
/// grow, so they follow the stream.
#[derive(Debug, Default, Clone, Copy)]
struct LineCheck {
    matched: u32,
    missed: u32,
    /// Lines on which the check was left out (see [`LineCheck::skip`]).
    skipped: u32,
}

impl LineCheck {
    /// Whether the check is left out this time: it found a match nearly
    /// every time lately (ipv6's `::` is an address in ~all log lines that
    /// have it), so it would only cost a search of the line before the
    /// walk that runs the rule anyway. One line in [`LINE_CHECK_SAMPLE`] is
    /// checked still, so that a stream which changes is followed.
    fn skip(&mut self) -> bool {
        if self.matched < 32 || self.missed.saturating_mul(16) > self.matched {
            return false;
        }
        self.skipped = self.skipped.wrapping_add(1);
        !self.skipped.is_multiple_of(LINE_CHECK_SAMPLE)
    }

    fn record(&mut self, matched: bool) {
        if matched {
            self.matched += 1;
        } else {
            self.missed += 1;
        }
        if self.matched + self.missed >= 1024 {
            self.matched /= 2;
            self.missed /= 2;
        }
    }
}

/// One line in this many has a rule's whole-line check run even while the
/// check is being left out (see [`LineCheck::skip`]).
const LINE_CHECK_SAMPLE: u32 = 16;

impl Scratch {
    pub fn new(rules: &Ruleset) -> Scratch {
        Scratch {
            of: rules.id,
            scan_cache: rules.new_scan_cache(),
            bits_pool: Vec::new(),
            hits_pool: Vec::new(),
            keybuf: String::new(),
            key_cache: Default::default(),
            lossy: String::new(),
            line_scan: ruleset::LineScan::default(),
            scan_pool: Vec::new(),
            out: Vec::with_capacity(4096),
            findings: None,
            line_len: 0,
            deadline: None,
            budget_spent: false,
            unclocked: 0,
            edits_pool: Vec::new(),
            strings: Vec::new(),
            matchers: ruleset::Matchers::new(rules),
            line_checks: vec![LineCheck::default(); rules.rules.len()],
        }
    }

    /// Collect [`Finding`]s from now on (for `redactd scan`).
    pub fn collect_findings(&mut self) {
        self.findings = Some(Vec::new());
    }

    /// Findings collected since the last call.
    pub fn take_findings(&mut self) -> Vec<Finding> {
        self.findings
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Starts a line: its time budget is not running yet.
    fn start_line(&mut self, len: usize) {
        self.line_len = len;
        self.deadline = None;
        self.budget_spent = false;
    }

    /// Ends a line: counts a spent time budget once.
    fn end_line(&mut self, stats: &mut Stats) {
        if self.budget_spent {
            stats.failure(FailureKind::TimeBudget);
        }
    }

    fn take_bits(&mut self) -> RuleBits {
        self.bits_pool.pop().unwrap_or_default()
    }
    fn put_bits(&mut self, b: RuleBits) {
        self.bits_pool.push(b);
    }
    fn take_hits(&mut self) -> Vec<Hit> {
        let mut h = self.hits_pool.pop().unwrap_or_default();
        h.clear();
        h
    }
    fn put_hits(&mut self, h: Vec<Hit>) {
        self.hits_pool.push(h);
    }
    /// An empty string to build a redacted text in: one given back with
    /// [`Self::put_string`] when there is one. Why: a redacted value's text
    /// is built, copied into its line's edits and dropped, for most lines
    /// of a log several times (with the built-in rules, a third of the
    /// allocations of a run over the corpus, with their frees).
    pub(crate) fn take_string(&mut self) -> String {
        let mut s = self.strings.pop().unwrap_or_default();
        s.clear();
        s
    }
    /// Gives back a string [`Self::take_string`] can hand out again. A few
    /// are kept, none empty (nothing to reuse) and none larger than
    /// [`POOLED_STRING_MAX`], so that a
    /// huge line does not stay in memory.
    pub(crate) fn put_string(&mut self, s: String) {
        if self.strings.len() < 16 && (1..=POOLED_STRING_MAX).contains(&s.capacity()) {
            self.strings.push(s);
        }
    }
    /// The output buffer, emptied, to build a line's output in; the line's
    /// output is then put back as the buffer (`redact_line`), so the same
    /// allocation serves line after line.
    fn take_out(&mut self) -> String {
        let mut v = std::mem::take(&mut self.out);
        v.clear();
        // An empty vector is valid UTF-8: the default is never taken.
        String::from_utf8(v).unwrap_or_default()
    }
}

/// A ruleset from one rule file's text, for unit tests.
#[cfg(test)]
pub(crate) fn compile_for_test(text: &str) -> Ruleset {
    let src = Source {
        name: "t.toml".into(),
        text: text.into(),
    };
    Ruleset::compile(&[src], &CompileOptions::default()).unwrap()
}

/// The built-in ruleset, for unit tests.
#[cfg(test)]
pub(crate) fn builtin_for_test() -> Ruleset {
    Ruleset::compile(&spec::builtin_sources(), &CompileOptions::default()).unwrap()
}

/// The built-in ruleset, compiled once per test binary.
#[cfg(test)]
pub(crate) fn builtin_shared() -> &'static Ruleset {
    static RS: std::sync::OnceLock<Ruleset> = std::sync::OnceLock::new();
    RS.get_or_init(builtin_for_test)
}

/// Pieces to build test lines from: every `hit` text of the built-in
/// rules' own tests (secrets of every kind, names with their values), and
/// `extra`.
#[cfg(test)]
pub(crate) fn builtin_hits_and(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = builtin_shared()
        .rules()
        .iter()
        .flat_map(|r| r.tests.iter().filter_map(|t| t.hit.clone()))
        .collect();
    v.extend(extra.iter().map(|p| p.to_string()));
    v
}

/// How a line was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to redact: the output is the input.
    Clean,
    /// Values were redacted.
    Redacted,
}

impl Ruleset {
    /// Scans a JSON line once (see [`ruleset::LineScan`]); true when no rule
    /// can match any of its values, so it need not be parsed.
    ///
    /// Escapes change what the values say: the scan then runs on a copy with
    /// the JSON escapes decoded, and the scan's map ties the copy's offsets
    /// to the line's (each string's decoded text stands whole in the copy),
    /// so the walk still runs each rule only on the values where it can
    /// match. If there are `%XX` escapes, a percent-decoded copy is scanned
    /// too.
    pub(crate) fn json_line_is_clean(
        &self,
        s: &str,
        scan: &mut ruleset::LineScan,
        sc: &mut Scratch,
    ) -> bool {
        // One pass for the two bytes that call for more work, both absent
        // from most lines: a backslash (escapes to decode before the
        // scan) and a percent sign (escapes to decode after it).
        let b = s.as_bytes();
        let first = memchr::memchr2(b'\\', b'%', b);
        let escaped =
            first.is_some_and(|i| b[i] == b'\\' || memchr::memchr(b'\\', &b[i..]).is_some());
        let text = if escaped {
            let mut copy = std::mem::take(&mut sc.lossy);
            json_unescape_copy(s, &mut copy, &mut scan.map);
            copy
        } else {
            scan.map.clear();
            String::new()
        };
        let view = if escaped { text.as_str() } else { s };
        self.scan_line(view, true, scan, &mut sc.scan_cache);
        // A `\u` left after one level of decoding belongs to JSON held in a
        // string, which the walk decodes further (see
        // `structured::hides_unicode_escapes`): such a line is walked.
        let mut clean = !(escaped && structured::has_unicode_escape(view))
            && (scan.all.is_empty()
                || self.none_match_whole(view, &scan.all, &sc.matchers, &mut sc.line_checks));
        // (No `%` and no backslash, so no `\u0025` either: nothing to decode.)
        if clean
            && first.is_some()
            && let Some(decoded) = redact::percent_decode(view)
        {
            let mut bits = sc.take_bits();
            self.candidates(&decoded, &mut bits, &mut sc.scan_cache);
            clean = bits.is_empty();
            sc.put_bits(bits);
        }
        if escaped {
            sc.lossy = text;
        }
        clean
    }

    /// Whether `cands`, the rules the scan of `text` found, are a few
    /// keyword rules none of which matches anywhere in `text`: then none
    /// matches in any of its values either (each value stands whole in
    /// `text`, between quotes or punctuation), and a JSON line need not be
    /// walked. A keyword says little on its own: airtable-pat's `pat` is in
    /// every `"path"`, and such a line took three times as long as a clean
    /// one for a walk that found nothing (criterion, 330-byte JSON line:
    /// 1.75 µs). Rules that read a member's name (`name=value` context) or
    /// field names, anchored ones (`^Bearer` matches a value, not the line
    /// around it), and `fancy` rules are never ruled out here; nor are the
    /// pattern set's rules (their match is already real). The other way
    /// round, a rule whose check nearly always finds a match is not checked
    /// (see [`LineCheck::skip`]): on the shared corpus that is ipv6, whose
    /// search of the whole line for the address the walk then finds again
    /// cost 4,600 instructions of a 40,000-instruction line (callgrind).
    fn none_match_whole(
        &self,
        text: &str,
        cands: &ruleset::RuleBits,
        m: &ruleset::Matchers,
        checks: &mut [LineCheck],
    ) -> bool {
        const MAX_CONFIRMED: usize = 2;
        if cands.iter().nth(MAX_CONFIRMED).is_some() {
            return false;
        }
        let checkable = |r: u32| {
            let rule = &self.rules[r as usize];
            match self.matcher(r, m) {
                Some(ruleset::Matcher::Std(re))
                    if !rule.keywords.is_empty()
                        && rule.keys.is_empty()
                        && rule.group == ruleset::Group::Whole
                        && !rule.anchored =>
                {
                    Some(re)
                }
                _ => None,
            }
        };
        // At most MAX_CONFIRMED candidates (checked above), each with its regex.
        let mut picked = [None; MAX_CONFIRMED];
        for (slot, r) in picked.iter_mut().zip(cands.iter()) {
            let Some(re) = checkable(r) else { return false };
            *slot = Some((r, re));
        }
        // A rule whose check finds a match nearly every time: walk the line
        // without searching it first (the outcome is the same, the walk is
        // what would follow the match).
        if picked
            .iter()
            .flatten()
            .any(|&(r, _)| checks.get_mut(r as usize).is_some_and(LineCheck::skip))
        {
            return false;
        }
        picked.iter().flatten().all(|&(r, re)| {
            let found = re.is_match(text);
            if let Some(c) = checks.get_mut(r as usize) {
                c.record(found);
            }
            !found
        })
    }

    /// Makes `scratch` and `stats` fit for this ruleset: a scratch made for
    /// another one is rebuilt (its automata caches would be handed to this
    /// ruleset's automata, which `regex-automata` answers with wrong
    /// results or a panic, and its field-name cache would name the other
    /// ruleset's rules), and per-rule counters sized for a smaller ruleset
    /// are grown (a hit would index past them). One comparison per line
    /// when they already fit, as they do in every caller in this crate.
    fn adopt(&self, scratch: &mut Scratch, stats: &mut Stats) {
        if scratch.of != self.id {
            // Findings of lines already done are kept for the caller.
            let findings = scratch.findings.take();
            *scratch = Scratch::new(self);
            scratch.findings = findings;
        }
        if stats.rule_hits.len() < self.rules.len() {
            stats.rule_hits.resize(self.rules.len(), 0);
        }
    }

    /// Redacts one line (without its newline). The returned slice is the
    /// line to write: the input itself when clean, else `scratch`'s buffer.
    pub fn redact_line<'a>(
        &self,
        line: &'a [u8],
        scratch: &'a mut Scratch,
        stats: &mut Stats,
    ) -> (&'a [u8], Outcome) {
        self.adopt(scratch, stats);
        stats.lines += 1;
        stats.bytes_in += line.len() as u64;
        stats.compliance_checked += 1;
        stats.journal.clear();
        scratch.start_line(line.len());
        // simdutf8's check is the same as std's (it returns the same `&str`
        // for the same bytes), several times faster on long ASCII lines.
        let changed = match simdutf8::basic::from_utf8(line) {
            Ok(s) => self.redact_str(s, scratch, stats),
            Err(_) => {
                stats.failure(FailureKind::InvalidUtf8);
                let mut lossy = std::mem::take(&mut scratch.lossy);
                lossy.clear();
                lossy.push_str(&String::from_utf8_lossy(line));
                let r = self
                    .redact_str(&lossy, scratch, stats)
                    .unwrap_or_else(|| lossy.clone());
                scratch.lossy = lossy;
                Some(r)
            }
        };
        scratch.end_line(stats);
        match changed {
            None => {
                stats.bytes_out += line.len() as u64;
                (line, Outcome::Clean)
            }
            Some(s) => {
                stats.lines_redacted += 1;
                stats.bytes_out += s.len() as u64;
                // The buffer itself, not a copy (a JSON line's was
                // `scratch.out` already, see `Scratch::take_out`).
                let mut old = std::mem::replace(&mut scratch.out, s.into_bytes());
                old.clear();
                // (Empty, so valid UTF-8: never an error.)
                if let Ok(old) = String::from_utf8(old) {
                    scratch.put_string(old);
                }
                (&scratch.out, Outcome::Redacted)
            }
        }
    }

    /// Redacts a piece of an over-long line as plain text (never as JSON:
    /// a window of a JSON line is not JSON). Same return as `redact_line`.
    pub fn redact_fragment<'a>(
        &self,
        piece: &'a [u8],
        scratch: &'a mut Scratch,
        stats: &mut Stats,
    ) -> &'a [u8] {
        self.adopt(scratch, stats);
        let text = String::from_utf8_lossy(piece);
        let lossy = matches!(text, std::borrow::Cow::Owned(_));
        if lossy {
            stats.failure(FailureKind::InvalidUtf8);
        }
        scratch.start_line(piece.len());
        let r = self.redact_text(&text, None, None, 0, scratch, stats);
        scratch.end_line(stats);
        match r {
            None if !lossy => piece,
            r => {
                let s = r.unwrap_or_else(|| text.into_owned());
                scratch.out.clear();
                scratch.out.extend_from_slice(s.as_bytes());
                &scratch.out
            }
        }
    }

    /// `Some(redacted)` when anything changed.
    fn redact_str(&self, s: &str, scratch: &mut Scratch, stats: &mut Stats) -> Option<String> {
        let first = s.bytes().find(|b| !b.is_ascii_whitespace());
        if matches!(first, Some(b'{' | b'[')) {
            let mut scan = std::mem::take(&mut scratch.line_scan);
            let r = if self.raw_scan_is_superset && self.json_line_is_clean(s, &mut scan, scratch) {
                Ok(None)
            } else {
                let scan = self.raw_scan_is_superset.then_some(&scan);
                self.redact_json(s, scan, scratch, stats, 0)
            };
            scratch.line_scan = scan;
            match r {
                Ok(out) => return out,
                Err(_) => stats.failure(FailureKind::MalformedJson),
            }
        }
        self.redact_text(s, None, None, 0, scratch, stats)
    }
}

/// The text of a JSON line with every escape decoded in place (`\n` becomes a
/// newline, `\"` a quote, `\u00e9` an é; a lone surrogate becomes U+FFFD).
/// Only for scanning: each decoded string value appears in it whole. `map`
/// gets, after each escape, its end in `s` and in `out`.
fn json_unescape_copy(s: &str, out: &mut String, map: &mut Vec<(u32, u32)>) {
    out.clear();
    map.clear();
    let b = s.as_bytes();
    let mut i = 0;
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\\', &b[i..]) {
        let at = i + off;
        out.push_str(&s[from..at]);
        let (ch, len) = match b.get(at + 1) {
            Some(b'n') => ('\n', 2),
            Some(b't') => ('\t', 2),
            Some(b'r') => ('\r', 2),
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'u') => {
                let hex = |k: usize| {
                    s.get(at + k..at + k + 4)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                };
                match hex(2) {
                    Some(hi @ 0xD800..=0xDBFF)
                        if b.get(at + 6) == Some(&b'\\') && b.get(at + 7) == Some(&b'u') =>
                    {
                        match hex(8) {
                            Some(lo @ 0xDC00..=0xDFFF) => {
                                let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
                            }
                            _ => ('\u{FFFD}', 6),
                        }
                    }
                    Some(c) => (char::from_u32(c).unwrap_or('\u{FFFD}'), 6),
                    None => ('\u{FFFD}', 2),
                }
            }
            Some(&c) if c.is_ascii() => (c as char, 2),
            _ => ('\\', 1),
        };
        out.push(ch);
        i = (at + len).min(b.len());
        from = i;
        map.push((i as u32, out.len() as u32));
    }
    out.push_str(&s[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(rs: &Ruleset, sc: &mut Scratch, st: &mut Stats, line: &str) -> String {
        String::from_utf8_lossy(rs.redact_line(line.as_bytes(), sc, st).0).into_owned()
    }

    #[test]
    fn a_whole_line_check_that_keeps_finding_matches_is_left_out_until_the_stream_changes() {
        let rs = builtin_shared();
        let ipv6 = rs.position("ipv6").expect("a built-in ipv6 rule");
        let (mut sc, mut st) = (Scratch::new(rs), Stats::new(rs));
        let address = r#"{"path":"/a","ip":"2001:db8:1:2::17"}"#;
        let want = r#"{"path":"/a","ip":"[REDACTED:ipv6]"}"#;
        // `::` with nothing the pattern takes for an address: the line is
        // clean, found so by the check (`std::vector` is not: `d::` is one
        // for the pattern, which only the validator turns down).
        let cpp = r#"{"path":"/a","msg":"Foo::bar returned"}"#;
        for _ in 0..200 {
            assert_eq!(redact(rs, &mut sc, &mut st, address), want);
        }
        let skipped = sc.line_checks[ipv6].skipped;
        assert!(skipped > 100, "the check was left out {skipped} times");
        // Left out or not, each line comes out as it must; once misses make
        // up the stream, the check comes back (the clean lines are then
        // found clean without a walk).
        for _ in 0..4000 {
            assert_eq!(redact(rs, &mut sc, &mut st, cpp), cpp);
        }
        assert!(!sc.line_checks[ipv6].skip(), "{:?}", sc.line_checks[ipv6]);
        assert_eq!(redact(rs, &mut sc, &mut st, address), want);
    }
}
