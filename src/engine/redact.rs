//! Text redaction: find, validate, resolve overlaps, replace, verify.

use std::time::Instant;

use super::action::{is_marker, is_whole_marker, render};
use super::ruleset::{Group, Matcher, RuleBits, Ruleset};
use super::spec::ActionKind;
use super::{FailureKind, Finding, Hit, Scratch, Stats};
use crate::decode::logfmt;

/// Why a search stopped before it was done. Either way the caller fails
/// closed: the value being searched is masked whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// This rule failed to run (a `fancy` rule over its backtrack limit).
    Rule(u32),
    /// The line's time budget ran out (see [`Ruleset::check_budget`]).
    Budget,
}

/// What replaces a value that was not fully searched in time.
pub const BUDGET_MASK: &str = "[REDACTED:time-budget]";

/// How many matches a rule reports between two looks at the clock.
const CLOCK_EVERY: u32 = 32;

/// Texts longer than this look at the clock before each rule.
const LONG_TEXT: usize = 4096;

/// The JSON member name a value belongs to, for rules that need a name
/// next to the value.
#[derive(Clone, Copy)]
pub(crate) struct KeyCtx<'a> {
    pub name: &'a str,
    /// The context rules whose keyword is in the name, when a positional
    /// line scan already knows them; `None`: scan the name.
    pub rules: Option<&'a RuleBits>,
}

/// What a verify pass puts in place of a value that still matched.
pub const VERIFY_MASK: &str = "[REDACTED:verify]";

impl Ruleset {
    /// Redacts free text. `cands` are the rules worth running (from a scan
    /// of an enclosing text that contains this one verbatim); `None` scans
    /// `text` itself. `base` is `text`'s offset in the line, for findings.
    /// `key` is the JSON member name the text is the value of: rules that
    /// need a name next to the value (`AWS_SECRET_ACCESS_KEY=...`) see
    /// `key=text`. Returns `Some(new)` when anything changed.
    pub(crate) fn redact_text(
        &self,
        text: &str,
        cands: Option<&RuleBits>,
        key: Option<KeyCtx<'_>>,
        base: usize,
        sc: &mut Scratch,
        st: &mut Stats,
    ) -> Option<String> {
        let mut hits = sc.take_hits();
        let found = self
            .find_hits(text, cands, sc, &mut hits)
            .and_then(|()| key.map_or(Ok(()), |k| self.context_hits(k, text, sc, &mut hits)))
            .map(|()| self.logfmt_hits(text, sc, &mut hits));
        // `pure`: the result holds no byte of the input (every byte is a
        // mask, hash or stop marker), so there is nothing left to verify.
        let mut pure = false;
        let mut result = match found {
            Err(stop) => {
                pure = true;
                Some(self.stopped(stop, sc, st))
            }
            Ok(()) if hits.is_empty() => None,
            Ok(()) => {
                let (out, p) = self.apply(text, &mut hits, Some(base), sc, st);
                pure = p;
                Some(out)
            }
        };
        // Percent-encoded values hide their content from the patterns:
        // decode and look again. One level; the result stays decoded.
        let current = result.as_deref().unwrap_or(text);
        if let Some(decoded) = percent_decode(current) {
            hits.clear();
            match self.find_hits(&decoded, None, sc, &mut hits) {
                Err(stop) => {
                    pure = true;
                    result = Some(self.stopped(stop, sc, st));
                }
                Ok(()) if hits.is_empty() => {}
                Ok(()) => {
                    let (out, p) = self.apply(&decoded, &mut hits, None, sc, st);
                    pure = p;
                    result = Some(out);
                }
            }
        }
        // Verify: a changed value that still holds input bytes is scanned
        // once more; anything left masks the whole value.
        if let Some(out) = &result
            && !pure
        {
            hits.clear();
            let residual = match self.find_hits(out, None, sc, &mut hits) {
                Err(Stop::Budget) => {
                    sc.budget_spent = true;
                    result = Some(BUDGET_MASK.to_string());
                    false
                }
                Err(Stop::Rule(_)) => true,
                Ok(()) => !hits.is_empty(),
            };
            if residual {
                st.compliance_failures += 1;
                result = Some(VERIFY_MASK.to_string());
            }
        }
        sc.put_hits(hits);
        result
    }

    /// Hits of context rules whose keyword is in the member name, found in
    /// `name=text` and mapped back into `text`.
    fn context_hits(
        &self,
        key: KeyCtx<'_>,
        text: &str,
        sc: &mut Scratch,
        hits: &mut Vec<Hit>,
    ) -> Result<(), Stop> {
        let mut bits = sc.take_bits();
        match key.rules {
            Some(r) => bits.copy_from(r),
            None => {
                self.keyword_candidates(key.name, &mut bits, &mut sc.scan_cache);
                bits.intersect_with(&self.context_rules);
            }
        }
        let mut res = Ok(());
        if !bits.is_empty() {
            let synth = format!("{}={text}", key.name);
            let off = key.name.len() + 1;
            let mut tmp = sc.take_hits();
            for r in bits.iter() {
                if let Err(e) = self
                    .check_budget(sc, synth.len())
                    .and_then(|()| self.rule_hits(r, &synth, sc.deadline, &sc.matchers, &mut tmp))
                {
                    res = Err(e);
                    break;
                }
            }
            hits.extend(tmp.iter().filter(|h| h.start >= off).map(|h| Hit {
                start: h.start - off,
                end: h.end - off,
                rule: h.rule,
            }));
            sc.put_hits(tmp);
        }
        sc.put_bits(bits);
        res
    }

    /// Hits of `keys` rules on the `key=value` pairs of logfmt-style text
    /// (see [`crate::decode::logfmt`]): the value is replaced whole, quoted
    /// or not, as a JSON member's would be. (`drop` rules mask the value:
    /// text has no member to remove.) Only text with a quoted value is
    /// scanned: unquoted `name=value` pairs are already found by each `keys`
    /// rule's own text pattern, and `="` is rare outside logfmt.
    fn logfmt_hits(&self, text: &str, sc: &mut Scratch, hits: &mut Vec<Hit>) {
        // One finder for the process: `memmem::find` builds a searcher on
        // every call, which cost more than the search on short lines (1.4% of
        // a run over lines with nothing to redact, for the constructor alone).
        static QUOTED_VALUE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"=\""));
        if !self.has_key_rules() || QUOTED_VALUE.find(text.as_bytes()).is_none() {
            return;
        }
        for p in logfmt::pairs(text) {
            let (vs, ve) = p.value;
            if vs == ve || is_whole_marker(&text[vs..ve]) {
                continue;
            }
            if let Some(rule) = self.key_rule_cached(&text[p.key.0..p.key.1], sc) {
                hits.push(Hit {
                    start: vs,
                    end: ve,
                    rule,
                });
            }
        }
    }

    /// The replacement for a value whose search stopped early.
    fn stopped(&self, stop: Stop, sc: &mut Scratch, st: &mut Stats) -> String {
        match stop {
            Stop::Rule(rule) => {
                st.failure(FailureKind::RuleError);
                format!("[REDACTED:{}:error]", self.rules[rule as usize].id)
            }
            Stop::Budget => {
                // Counted once per line, by `redact_line`.
                sc.budget_spent = true;
                BUDGET_MASK.to_string()
            }
        }
    }

    /// Before a rule runs over `text_len` bytes: `Err` once the current
    /// line's time budget has run out (every later value of the line with
    /// candidate rules is then masked unsearched). Looks at the clock (see
    /// [`Ruleset::look_at_clock`]) once [`LONG_TEXT`] bytes were searched
    /// since the last look, so before every rule on a long text.
    ///
    /// Why a budget and not only linear-time regexes: `regex` is linear in
    /// the input, but the constant grows with the pattern; a user rule with
    /// large counted repetitions can scan at well under 1 MB/s. The clock is
    /// read every few KiB searched and, once the line's deadline is set,
    /// every [`CLOCK_EVERY`] matches, so the overshoot is about one regex
    /// search over one long value, or a few KiB of searches over short ones.
    ///
    /// Why paced by bytes: most lines with a candidate rule search a few
    /// short values, and a clock read per line was 3.7% of a run over the
    /// corpus's text lines with nothing to redact (`perf`, reference rules:
    /// `__vdso_clock_gettime`); pacing by values instead (every 16th) let
    /// a line of short values under slow rules run 30 values past its
    /// budget.
    fn check_budget(&self, sc: &mut Scratch, text_len: usize) -> Result<(), Stop> {
        if self.time_budget.is_none() {
            return Ok(());
        }
        if sc.budget_spent {
            return Err(Stop::Budget);
        }
        sc.unclocked = sc.unclocked.saturating_add(text_len);
        if sc.unclocked > LONG_TEXT {
            sc.unclocked = 0;
            self.look_at_clock(sc)
        } else {
            Ok(())
        }
    }

    /// Reads the clock against the current line's deadline: `Err` when it
    /// has passed. The line's first look sets the deadline, `budget ×
    /// max(1, line size in MiB)` from then (the clean path never looks).
    fn look_at_clock(&self, sc: &mut Scratch) -> Result<(), Stop> {
        let Some(budget) = self.time_budget else {
            return Ok(());
        };
        let now = Instant::now();
        let d = *sc.deadline.get_or_insert_with(|| {
            let mib = u32::try_from(sc.line_len >> 20).unwrap_or(u32::MAX).max(1);
            now + budget.saturating_mul(mib)
        });
        if now >= d { Err(Stop::Budget) } else { Ok(()) }
    }

    /// Collects validated hits of the candidate rules. `Err` when a rule
    /// failed to run (backtrack limit) or the time budget ran out: the
    /// caller fails closed.
    pub(crate) fn find_hits(
        &self,
        text: &str,
        cands: Option<&RuleBits>,
        sc: &mut Scratch,
        hits: &mut Vec<Hit>,
    ) -> Result<(), Stop> {
        let own = match cands {
            Some(_) => None,
            None => {
                let mut b = sc.take_bits();
                self.candidates(text, &mut b, &mut sc.scan_cache);
                Some(b)
            }
        };
        let bits = match (cands, &own) {
            (Some(b), _) | (None, Some(b)) => b,
            (None, None) => return Ok(()),
        };
        // No candidate: nothing to search, and no clock to read (the clean
        // path stays free of it).
        let res = if bits.is_empty() {
            Ok(())
        } else {
            self.run_rules(text, bits, sc, hits)
        };
        if let Some(b) = own {
            sc.put_bits(b);
        }
        res
    }

    /// Runs the rules in `bits` on `text` within the line's time budget.
    fn run_rules(
        &self,
        text: &str,
        bits: &RuleBits,
        sc: &mut Scratch,
        hits: &mut Vec<Hit>,
    ) -> Result<(), Stop> {
        for r in bits.iter() {
            self.check_budget(sc, text.len())?;
            self.rule_hits(r, text, sc.deadline, &sc.matchers, hits)?;
        }
        Ok(())
    }

    fn rule_hits(
        &self,
        r: u32,
        text: &str,
        deadline: Option<Instant>,
        matchers: &super::ruleset::Matchers,
        hits: &mut Vec<Hit>,
    ) -> Result<(), Stop> {
        let rule = &self.rules[r as usize];
        if text.len() < rule.min_len {
            return Ok(());
        }
        let mut n = 0u32;
        let mut consider = |s: usize, e: usize| -> Result<(), Stop> {
            n = n.wrapping_add(1);
            if n.is_multiple_of(CLOCK_EVERY) && deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Stop::Budget);
            }
            if s == e || is_marker(&text[s..]) {
                return Ok(());
            }
            if let Some(v) = &rule.validator
                && !v.check(text, s, e)
            {
                return Ok(());
            }
            hits.push(Hit {
                start: s,
                end: e,
                rule: r,
            });
            Ok(())
        };
        match (self.matcher(r, matchers), rule.group) {
            // A deferred regex that did not build: fail closed.
            (None, _) => return Err(Stop::Rule(r)),
            (Some(Matcher::Std(re)), Group::Whole) => {
                for m in re.find_iter(text) {
                    consider(m.start(), m.end())?;
                }
            }
            (Some(Matcher::Std(re)), Group::KeyValue) => {
                for m in re.find_iter(text) {
                    let (s, e) = super::ruleset::key_value_span(text, m.start(), m.end());
                    consider(s, e)?;
                }
            }
            // A group of a rule whose matches are never empty: one set of
            // capture slots for every search, each from where the last
            // match ended (what `captures_iter` does for such matches).
            (Some(Matcher::Std(re)), g)
                if rule.min_len > 0
                    && let Some(mut locs) = matchers.capture_locations(r, re) =>
            {
                let mut at = 0;
                while at < text.len() {
                    let Some(m) = re.captures_read_at(&mut locs, text, at) else {
                        break;
                    };
                    let sel = match g {
                        Group::Index(i) => locs.get(i),
                        _ => (1..locs.len()).find_map(|i| locs.get(i)),
                    };
                    if let Some((s, e)) = sel {
                        consider(s, e)?;
                    }
                    // (`min_len > 0`: the match is not empty.)
                    at = m.end().max(at + 1);
                }
            }
            (Some(Matcher::Std(re)), g) => {
                for c in re.captures_iter(text) {
                    let m = match g {
                        Group::Index(i) => c.get(i),
                        _ => c.iter().skip(1).flatten().next(),
                    };
                    if let Some(m) = m {
                        consider(m.start(), m.end())?;
                    }
                }
            }
            (Some(Matcher::Fancy(re)), g) => {
                for c in re.captures_iter(text) {
                    let c = c.map_err(|_| Stop::Rule(r))?;
                    let m = match g {
                        Group::Whole => c.get(0),
                        Group::Index(i) => c.get(i),
                        Group::FirstParticipating | Group::KeyValue => {
                            (1..c.len()).find_map(|i| c.get(i))
                        }
                    };
                    if let Some(m) = m {
                        consider(m.start(), m.end())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Replaces the hits in `text`. See the module doc of `engine` for the
    /// overlap rule. Also returns whether the hits covered all of `text`
    /// with replacements that keep none of it (`partial` keeps a tail).
    fn apply(
        &self,
        text: &str,
        hits: &mut [Hit],
        base: Option<usize>,
        sc: &mut Scratch,
        st: &mut Stats,
    ) -> (String, bool) {
        hits.sort_unstable_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.rule.cmp(&b.rule))
        });
        let mut out = sc.take_string();
        out.reserve(text.len() + 32);
        let mut pos = 0;
        let mut i = 0;
        let mut pure = true;
        while i < hits.len() {
            let h = hits[i];
            let mut end = h.end;
            let mut widened = false;
            i += 1;
            while i < hits.len() && hits[i].start < end {
                if hits[i].end > end {
                    end = hits[i].end;
                    widened = true;
                }
                i += 1;
            }
            let rule = &self.rules[h.rule as usize];
            pure &= pos == h.start && (widened || rule.action != ActionKind::Partial);
            out.push_str(&text[pos..h.start]);
            let value = &text[h.start..end];
            if widened {
                out.push_str(&rule.mask);
            } else {
                render(rule, &self.hash_key, value, &mut out);
            }
            st.hit(h.rule);
            if let Some(f) = sc.findings.as_mut() {
                f.push(finding(h.rule, base.map_or(0, |b| b + h.start), value));
            }
            pos = end;
        }
        pure &= pos == text.len();
        out.push_str(&text[pos..]);
        (out, pure)
    }
}

/// A finding with a masked preview: at most a quarter of the value and at
/// most 4 characters.
pub(crate) fn finding(rule: u32, offset: usize, value: &str) -> Finding {
    let n = value.chars().count();
    let keep = (n / 4).min(4);
    let mut preview: String = value.chars().take(keep).collect();
    preview.push('…');
    Finding {
        rule,
        offset,
        len: value.len(),
        preview,
    }
}

/// Whether `s` holds a `%XX` escape.
pub(crate) fn has_percent_escape(s: &str) -> bool {
    let b = s.as_bytes();
    memchr::memchr_iter(b'%', b)
        .any(|i| i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit())
}

/// Decodes `%XX` escapes (`+` stays as it is: it is also a literal).
/// `None` when there is nothing to decode or the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    if !has_percent_escape(s) {
        return None;
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_found_and_decoded() {
        assert!(has_percent_escape("a%40b"));
        assert!(!has_percent_escape("45%"));
        assert!(!has_percent_escape("45%4"));
        assert_eq!(
            percent_decode("ann%40example.com").as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(percent_decode("plain"), None);
        assert_eq!(percent_decode("%ff%fe"), None, "not UTF-8 after decoding");
    }

    fn redact(rs: &Ruleset, line: &str) -> (String, u64) {
        let mut sc = Scratch::new(rs);
        let mut st = Stats::new(rs);
        let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
        (
            String::from_utf8(out.to_vec()).unwrap(),
            st.compliance_failures,
        )
    }

    #[test]
    fn group_rules_reuse_their_capture_slots_and_find_what_captures_iter_finds() {
        // Numbered groups that take part in some matches only (the quoted
        // or the bare form), matches next to each other, at the ends of
        // the text and across multi-byte characters: the spans the rule
        // reports are those of `captures_iter` with the same group choice.
        let rs = crate::engine::compile_for_test(
            r#"
[[rules]]
id = "kv"
category = "secret"
pattern = '(?:pw|pin)=(?:"([^"]*)"|([a-zé0-9]+))'
group = 2
[[rules]]
id = "quoted"
category = "secret"
pattern = '(?:pw|pin)=(?:"([^"]*)"|([a-zé0-9]+))'
group = 1
"#,
        );
        let texts = [
            "pw=abc",
            "pw=abcpin=9 pw=\"q r\"pw=é1é",
            "xpw=1pw=2pin=\"\"pw=3",
            "é pin=ééé pw=\"é\" end",
            "nothing here",
        ];
        for text in texts {
            for (r, rule) in rs.rules.iter().enumerate() {
                let Some(Matcher::Std(re)) = rule.matcher.get() else {
                    panic!("{} is a regex rule", rule.id)
                };
                let want: Vec<(usize, usize)> = re
                    .captures_iter(text)
                    .filter_map(|c| match rule.group {
                        Group::Index(i) => c.get(i),
                        g => panic!("{g:?}: not a group rule"),
                    })
                    .filter(|m| m.start() < m.end())
                    .map(|m| (m.start(), m.end()))
                    .collect();
                let sc = Scratch::new(&rs);
                let mut hits = Vec::new();
                // Twice with the same slots: nothing carries over.
                for _ in 0..2 {
                    hits.clear();
                    rs.rule_hits(r as u32, text, None, &sc.matchers, &mut hits)
                        .unwrap();
                    let got: Vec<(usize, usize)> = hits.iter().map(|h| (h.start, h.end)).collect();
                    assert_eq!(got, want, "{} on {text:?}", rule.id);
                }
            }
        }
    }

    #[test]
    fn verify_rescans_values_that_keep_input_bytes_only() {
        // "ZZ" masks become "QQQQ", which the second rule matches: a value
        // replaced whole holds no input byte and is not rescanned; a value
        // with input bytes left beside the mask is, and the residual masks
        // it whole.
        let rs = crate::engine::compile_for_test(
            r#"
[[rules]]
id = "zz"
category = "secret"
pattern = 'ZZ[0-9]+'
replacement = "QQQQ"
[[rules]]
id = "q4"
category = "secret"
pattern = 'QQQQ'
keywords = ["qqqq"]
"#,
        );
        assert_eq!(
            redact(&rs, r#"{"a":"ZZ12"}"#),
            (r#"{"a":"QQQQ"}"#.into(), 0)
        );
        assert_eq!(
            redact(&rs, r#"{"a":"xZZ12"}"#),
            (format!(r#"{{"a":"{VERIFY_MASK}"}}"#), 1)
        );
    }

    #[test]
    fn a_scratch_made_for_one_ruleset_never_runs_its_regexes_for_another() {
        // Same rule index and keyword, different patterns: the scratch's
        // regex copies belong to `a` and must not stand in for `b`'s.
        let rule = |pat: &str| {
            format!(
                "[[rules]]\nid = \"r\"\ncategory = \"secret\"\npattern = '{pat}'\nkeywords = [\"tok\"]\n"
            )
        };
        let a = crate::engine::compile_for_test(&rule("tok_a[0-9]+"));
        let b = crate::engine::compile_for_test(&rule("tok_b[0-9]+"));
        let mut sc = Scratch::new(&a);
        let mut st = Stats::new(&b);
        let (out, _) = b.redact_line(b"x tok_b123 tok_a456", &mut sc, &mut st);
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(!out.contains("tok_b123"), "{out}");
        assert!(out.contains("tok_a456"), "{out}");
    }

    #[test]
    fn a_scratch_and_stats_made_for_a_smaller_ruleset_are_refitted_not_misused() {
        // `a` has one rule, a field-name rule at index 0; the built-in
        // library numbers its rules differently and has many more, and its
        // automata are not `a`'s. A scratch that has already served `a`
        // (scan cache warmed, field-name cache filled) and counters sized
        // for `a` must give the built-in library's output, not a panic.
        let a = crate::engine::compile_for_test(
            "[[rules]]\nid = \"k\"\ncategory = \"secret\"\nkeys = [\"user\"]\n",
        );
        let b = crate::engine::builtin_shared();
        let mut sc = Scratch::new(&a);
        sc.collect_findings();
        let mut st = Stats::new(&a);
        let line = br#"{"user":"bob","password":"hunter2","ip":"10.1.2.3","note":"ghp_0123456789abcdefghijklmnopqrstuvwxyz"}"#;
        let (first, _) = a.redact_line(line, &mut sc, &mut st);
        assert!(!first.windows(3).any(|w| w == b"bob"));
        let found_for_a = sc.findings.as_ref().map_or(0, Vec::len);
        let (out, _) = b.redact_line(line, &mut sc, &mut st);
        let out = out.to_vec();
        let mut fresh = Scratch::new(b);
        let mut fresh_st = Stats::new(b);
        let (want, _) = b.redact_line(line, &mut fresh, &mut fresh_st);
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
        for secret in ["hunter2", "10.1.2.3", "ghp_0123"] {
            assert!(!String::from_utf8_lossy(&out).contains(secret), "{secret}");
        }
        assert_eq!(st.rule_hits.len(), b.rules().len());
        assert_eq!(st.total_redactions(), 1 + fresh_st.total_redactions());
        // Findings of the line done with `a` are kept, and the scratch still collects.
        assert!(sc.findings.as_ref().map_or(0, Vec::len) > found_for_a);
        let (mut sc_a, mut st_a) = (Scratch::new(&a), Stats::new(&a));
        let piece = b.redact_fragment(b"password=hunter2", &mut sc_a, &mut st_a);
        assert!(!String::from_utf8_lossy(piece).contains("hunter2"));
    }

    #[test]
    fn previews_never_show_more_than_a_quarter() {
        let f = finding(0, 3, "ghp_abcdefghijklmnop");
        assert_eq!(f.preview, "ghp_…");
        assert_eq!(finding(0, 0, "abc").preview, "…");
    }
}
