//! The prefilter: one pass over a line that finds which rules can match
//! where.
//!
//! Two automata read the same bytes in one loop: the keyword automaton
//! (Aho-Corasick over every rule's keywords, ASCII case folded) and the
//! pattern set (one lazy DFA over the patterns of the rules that have no
//! keyword: card numbers, IP addresses, the JSON member form of field-name
//! rules, ...). The pass reports every keyword occurrence with its span and
//! every pattern-set match with the position where it ends.
//!
//! Why one hand-written loop instead of the libraries' own search calls: a
//! DFA step is one table load that depends on the previous one, so one
//! automaton walks a line at about one load latency per byte (~470 MB/s
//! for either automaton on the 2-core bench machine). Walking both in the
//! same loop gives the CPU two independent chains to overlap: measured on a
//! 20 MB slice of the shared corpus with the built-in library, the keyword
//! search plus the set search took 1/477 + 1/397 s per MB (217 MB/s), the
//! joint walk 337 MB/s. The libraries expose exactly what such a loop needs
//! (`aho_corasick::automaton::Automaton`, `regex_automata::hybrid::dfa`),
//! so the automata themselves stay theirs (the keyword DFA is walked as a
//! re-laid-out copy of the library's, see `keywords.rs`). A line of 128 bytes or more is
//! walked as two halves at once (four chains; see `Prefilter::walk_split`
//! for why that is exact), and the loop that steps the automata while
//! nothing happens is kept apart from the handling of what does
//! (`quiet_run`, `quiet_pair`), so its states stay in registers.
//!
//! With a few dozen keywords (the reference rules' 25, not the library's
//! 350) there is one automaton instead of two: the keywords are patterns of
//! the set, and the walk steps [`NoKw`] where the keyword automaton was (see
//! `Prefilter::build` for the numbers either way). That one automaton is
//! walked over four parts of a line at once (`Prefilter::walk_quarters`),
//! the same four chains as two automata over two halves.
//!
//! Match ends (not just "this rule matched somewhere in the line") are what
//! let the JSON walk run a keyword-less rule only on the values that hold
//! one of its matches: a match inside a value is a match in the line that
//! ends inside the value (word boundaries agree, since a JSON value is
//! bounded by quotes or punctuation; anchored patterns turn the line-level
//! fast path off altogether, see `Ruleset::raw_scan_is_superset`).

use aho_corasick::MatchKind as AcMatchKind;
use regex_automata::nfa::thompson::{self, WhichCaptures, pikevm::PikeVM};
use regex_automata::util::primitives::PatternID;
use regex_automata::{Input, MatchKind, PatternSet, hybrid};

use super::RuleError;
use super::keywords::{KwAutomaton, KwDfa, KwLib, NoKw, is_match as kw_match};
use super::ruleset::RuleBits;

/// Keyword count up to which the keyword automaton is a DFA; past a few
/// thousand keywords its size grows faster than its speed pays back.
const AC_DFA_MAX_KEYWORDS: usize = 5_000;

/// Keyword count up to which the keywords are patterns of the set's lazy
/// DFA instead of a second automaton walked beside it (see
/// [`Prefilter::build`], "keywords in the set").
const SET_MAX_KEYWORDS: usize = 64;

/// A rule enabled by a keyword: the keyword's length and, for
/// case-sensitive keywords, its spelling.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KwRule {
    pub rule: u32,
    pub exact: Option<Box<str>>,
}

/// A keyword occurrence: `[start, end)` in the scanned text, and a rule it
/// enables (case-sensitivity already checked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KwHit {
    pub start: u32,
    pub end: u32,
    pub rule: u32,
}

/// A pattern-set match of `rule` that ends at `end` (exclusive).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndHit {
    pub end: u32,
    pub rule: u32,
}

/// The result of scanning a whole line once, reused for each of its values.
#[derive(Debug, Default)]
pub(crate) struct LineScan {
    /// Every rule that may match somewhere in the line.
    pub all: RuleBits,
    /// Rules that are not keyword-gated (pattern set and always-run).
    pub unkeyed: RuleBits,
    /// Keyword occurrences in order of their end, when positions in the
    /// scanned text can be told from positions in the line (`positional`).
    pub kw: Vec<KwHit>,
    /// Pattern-set match ends in order, when `positional` and `ends_known`.
    pub ends: Vec<EndHit>,
    /// False when the set's walk had to fall back to a search that does not
    /// report positions (then `unkeyed` serves every value).
    pub ends_known: bool,
    pub positional: bool,
    /// When the scanned text is the line with its JSON escapes decoded:
    /// after each escape, its end in the line and in the scanned text.
    /// Empty: the scanned text is the line.
    pub map: Vec<(u32, u32)>,
}

impl LineScan {
    /// The offset in the scanned text of offset `at` of the line (`at`
    /// outside an escape, as a value's or name's boundary always is).
    #[inline]
    pub(crate) fn to_scanned(&self, at: usize) -> usize {
        let k = self.map.partition_point(|&(line, _)| line as usize <= at);
        match k.checked_sub(1).map(|k| self.map[k]) {
            Some((line, scanned)) => scanned as usize + (at - line as usize),
            None => at,
        }
    }
}

/// The keyword automaton (see `keywords.rs`): a DFA for the usual few
/// hundred keywords, a contiguous NFA for very large rule sets (or should
/// the DFA's copy not hold it).
#[derive(Debug)]
enum Keywords {
    Dfa(KwDfa),
    Nfa(KwLib<aho_corasick::nfa::contiguous::NFA>),
}

/// The pattern set: a lazy DFA, and a PikeVM over the same NFA for the rare
/// text the lazy DFA gives up on (a quit byte of a Unicode word boundary).
#[derive(Debug)]
struct Set {
    dfa: Option<hybrid::dfa::DFA>,
    pike: PikeVM,
}

/// Keyword automaton plus the pattern set of keyword-less rules.
#[derive(Debug)]
pub(crate) struct Prefilter {
    keywords: Option<Keywords>,
    /// For each keyword (lower-cased), the rules it enables.
    kw_rules: Vec<Vec<KwRule>>,
    set: Option<Set>,
    /// For each pattern of `set`, its rule.
    set_rules: Vec<u32>,
    /// Rules that must always run (fancy rules without keywords).
    always: Vec<u32>,
    /// The keywords are patterns of `set` too, numbered after the rules'
    /// patterns: keyword `k` is pattern `set_rules.len() + k`, and a pass
    /// that runs the set walks it alone (`keywords` then serves the
    /// keyword-only passes and the set's fallback).
    kw_in_set: bool,
    /// Length in bytes of each keyword (for `kw_in_set`: a set match gives
    /// the keyword's end, its start is the end less this).
    kw_lens: Vec<u32>,
    /// Unique among the prefilters of this process: a cache made for
    /// another one is never used with this one's automata (their unchecked
    /// steps rely on it).
    id: u64,
}

static NEXT_PREFILTER_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Per-thread search state of a [`Prefilter`].
#[derive(Debug)]
pub(crate) struct ScanCache {
    /// The [`Prefilter::id`] of the prefilter it was made for.
    of: u64,
    dfa: Option<hybrid::dfa::Cache>,
    pike: Option<regex_automata::nfa::thompson::pikevm::Cache>,
    patset: PatternSet,
    half: HalfScratch,
    /// What the four-part walk's parts after the first found (see
    /// [`Prefilter::walk_quarters`]).
    quarters: [HalfScratch; 3],
    cuts: Cuts,
}

/// Where this cache's walks cut a line: at exact quarters and at the exact
/// middle, each until a line's parts did not meet there, then at quotes
/// for good (see [`Prefilter::walk_quarters`] and [`split_point`]).
#[derive(Debug, Default, Clone, Copy)]
struct Cuts {
    /// The four-part walk cuts at quotes near the quarters (see
    /// [`CUT_SLACK`]).
    quarters_at_quotes: bool,
    /// The split walk cuts at a quote near the middle.
    middle_at_quote: bool,
}

/// What the split walk's second half found (see [`Prefilter::walk_split`]).
#[derive(Debug, Default)]
struct HalfScratch {
    kw: Vec<KwHit>,
    ends: Vec<EndHit>,
}

/// What one pass fills in. `all` gets every candidate rule; the others are
/// optional extras of the line-level scan.
pub(crate) struct Sink<'a> {
    pub all: &'a mut RuleBits,
    /// Run the pattern set (false: keywords only).
    pub set: bool,
    /// Rules found by the set (and the always-run rules).
    pub unkeyed: Option<&'a mut RuleBits>,
    pub kw: Option<&'a mut Vec<KwHit>>,
    pub ends: Option<&'a mut Vec<EndHit>>,
}

impl Sink<'_> {
    /// Empties the bit sets (sized for `n_rules`) and the lists.
    fn clear(&mut self, n_rules: usize) {
        self.all.reset(n_rules);
        if let Some(u) = self.unkeyed.as_deref_mut() {
            u.reset(n_rules);
        }
        if let Some(k) = self.kw.as_deref_mut() {
            k.clear();
        }
        if let Some(e) = self.ends.as_deref_mut() {
            e.clear();
        }
    }
}

impl Prefilter {
    /// Builds the automata. `keywords[i]` enables `kw_rules[i]`;
    /// `set_pats[i]` is the pattern of rule `set_rules[i]`.
    pub(crate) fn build(
        keywords: &[String],
        kw_rules: Vec<Vec<KwRule>>,
        set_pats: &[String],
        set_rules: Vec<u32>,
        always: Vec<u32>,
    ) -> Result<Prefilter, RuleError> {
        Self::build_with(
            keywords,
            kw_rules,
            set_pats,
            set_rules,
            always,
            SET_MAX_KEYWORDS,
        )
    }

    /// [`Self::build`] with the keywords in the set up to `set_max_keywords`
    /// of them (tests compare both ways on the same keywords).
    fn build_with(
        keywords: &[String],
        kw_rules: Vec<Vec<KwRule>>,
        set_pats: &[String],
        set_rules: Vec<u32>,
        always: Vec<u32>,
        set_max_keywords: usize,
    ) -> Result<Prefilter, RuleError> {
        let kw_err =
            |e: aho_corasick::BuildError| RuleError::Internal(format!("keyword automaton: {e}"));
        let start_err =
            |e: aho_corasick::MatchError| RuleError::Internal(format!("keyword automaton: {e}"));
        let automaton = if keywords.is_empty() {
            None
        } else {
            let nfa = aho_corasick::nfa::noncontiguous::Builder::new()
                .ascii_case_insensitive(true)
                // Standard semantics: walking the states reports every
                // occurrence of every keyword, overlapping ones too.
                .match_kind(AcMatchKind::Standard)
                .prefilter(false)
                .build(keywords)
                .map_err(kw_err)?;
            let dfa = if keywords.len() <= AC_DFA_MAX_KEYWORDS {
                let a = aho_corasick::dfa::Builder::new()
                    .prefilter(false)
                    .build_from_noncontiguous(&nfa)
                    .map_err(kw_err)?;
                KwDfa::build(&a, keywords)
            } else {
                None
            };
            Some(match dfa {
                Some(d) => Keywords::Dfa(d),
                None => {
                    let a = aho_corasick::nfa::contiguous::Builder::new()
                        .prefilter(false)
                        .build_from_noncontiguous(&nfa)
                        .map_err(kw_err)?;
                    Keywords::Nfa(KwLib::new(a).map_err(start_err)?)
                }
            })
        };
        // Keywords in the set: for a few dozen ASCII keywords, the set's
        // lazy DFA takes them as patterns of its own (`(?i-u:keyword)`,
        // the same ASCII case folding as the keyword automaton's) and the
        // walk steps one automaton instead of two. Why: the joint walk's
        // inner loop is bound by its loads (two automata over two halves:
        // 14 loads for two bytes, 4 of them spilled registers; one
        // automaton: 8). With the 14 reference rules (25 keywords) that
        // took the pass from 197.7M to 142.5M instructions over 20,000
        // corpus lines, the whole run from 306.2M to 252.5M (callgrind).
        // Why not always: the DFA's states are then pairs of keyword-trie
        // position and pattern threads, and it builds more of them before
        // it runs at speed. Over the first 20 MB of the corpus with the
        // library's set patterns: with none of its keywords 0.8 MB of
        // states and 0.03 s of warm-up, with 64 of them 1.4 MB and 0.07 s,
        // with all 350 3.5 MB and 0.31 s (a thread; the two automata apart
        // cost no more warm-up than the set alone). Non-ASCII keywords keep
        // the automaton: `(?i)` would fold them by Unicode's rules, and a
        // folded match can differ in length.
        let kw_lens: Vec<u32> = keywords.iter().map(|k| k.len() as u32).collect();
        let mut kw_in_set = false;
        let mut set = None;
        if !keywords.is_empty()
            && keywords.len() <= set_max_keywords
            && keywords.iter().all(|k| !k.is_empty() && k.is_ascii())
        {
            let mut pats = set_pats.to_vec();
            pats.extend(
                keywords
                    .iter()
                    .map(|k| format!("(?i-u:{})", regex::escape(k))),
            );
            // Without a lazy DFA the merged set would be the PikeVM's
            // alone: keep the two automata apart then.
            if let Some(s) = Self::build_set(&pats)?.filter(|s| s.dfa.is_some()) {
                set = Some(s);
                kw_in_set = true;
            }
        }
        if !kw_in_set && !set_pats.is_empty() {
            set = Self::build_set(set_pats)?;
        }
        Ok(Prefilter {
            keywords: automaton,
            kw_rules,
            set,
            set_rules,
            always,
            kw_in_set,
            kw_lens,
            id: NEXT_PREFILTER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// The pattern set over `pats`: its lazy DFA (none when too large for
    /// its cache) and the PikeVM. `None` for no patterns.
    fn build_set(pats: &[String]) -> Result<Option<Set>, RuleError> {
        if pats.is_empty() {
            return Ok(None);
        }
        let set_err = |e: &dyn std::fmt::Display| RuleError::Internal(format!("pattern set: {e}"));
        let nfa = thompson::Compiler::new()
            .configure(thompson::Config::new().which_captures(WhichCaptures::Implicit))
            .build_many(pats)
            .map_err(|e| set_err(&e))?;
        let dfa = hybrid::dfa::Builder::new()
            .configure(
                hybrid::dfa::DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true)
                    .cache_capacity(16 << 20),
            )
            .build_from_nfa(nfa.clone())
            // Too large for the cache: the PikeVM alone (slow, correct).
            .ok();
        let pike = PikeVM::builder()
            .configure(PikeVM::config().match_kind(MatchKind::All))
            .build_from_nfa(nfa)
            .map_err(|e| set_err(&e))?;
        Ok(Some(Set { dfa, pike }))
    }

    pub(crate) fn new_cache(&self) -> ScanCache {
        ScanCache {
            of: self.id,
            dfa: self
                .set
                .as_ref()
                .and_then(|s| s.dfa.as_ref().map(|d| d.create_cache())),
            pike: self.set.as_ref().map(|s| s.pike.create_cache()),
            patset: PatternSet::new(
                self.set
                    .as_ref()
                    .map_or(0, |s| s.pike.get_nfa().pattern_len()),
            ),
            half: HalfScratch::default(),
            quarters: Default::default(),
            cuts: Cuts::default(),
        }
    }

    /// Rules that always run.
    pub(crate) fn always(&self) -> &[u32] {
        &self.always
    }

    /// One pass over `text`, filling `sink` (its bit sets are reset first,
    /// its lists cleared). Returns false when the set's match ends are not
    /// known (the set fell back to a search without positions).
    pub(crate) fn pass(
        &self,
        text: &str,
        sink: &mut Sink<'_>,
        cache: &mut ScanCache,
        n_rules: usize,
    ) -> bool {
        sink.clear(n_rules);
        if cache.of != self.id {
            // Made for another prefilter (the engine's callers refit their
            // scratch space first, see `Ruleset::adopt`; this keeps the
            // walk's unchecked steps sound whatever the caller).
            *cache = self.new_cache();
        }
        let set = if sink.set { self.set.as_ref() } else { None };
        let dfa = set.and_then(|s| s.dfa.as_ref().zip(cache.dfa.as_mut()));
        let no_dfa = set.is_some() && dfa.is_none();
        let (half, quarters) = (&mut cache.half, &mut cache.quarters);
        let cuts = &mut cache.cuts;
        // The set alone when it is the only automaton to walk: no keywords,
        // or keywords among its own patterns.
        let set_alone = set.is_some() && (self.kw_in_set || self.keywords.is_none());
        let walked = match &self.keywords {
            _ if set_alone => self.walk_set_alone(text, dfa, half, quarters, cuts, sink, n_rules),
            Some(Keywords::Dfa(a)) => self.walk_halves(a, text, dfa, half, cuts, sink, n_rules),
            Some(Keywords::Nfa(a)) => self.walk_halves(a, text, dfa, half, cuts, sink, n_rules),
            None => Walked::Done,
        };
        let walked = if no_dfa { Walked::SetFailed } else { walked };
        let ends_known = match (set, walked) {
            (None, _) => true,
            (Some(_), Walked::Done) => true,
            (Some(s), Walked::SetFailed) => {
                // The pattern set without positions: correct, slower.
                if let Some(e) = sink.ends.as_deref_mut() {
                    e.clear();
                }
                if self.kw_in_set {
                    // The keywords' positions went with the set: the
                    // keyword automaton finds them again, from the start.
                    if let Some(k) = sink.kw.as_deref_mut() {
                        k.clear();
                    }
                    match &self.keywords {
                        Some(Keywords::Dfa(a)) => self.walk(a, text, None, sink),
                        Some(Keywords::Nfa(a)) => self.walk(a, text, None, sink),
                        None => Walked::Done,
                    };
                }
                if let Some(pc) = cache.pike.as_mut() {
                    cache.patset.clear();
                    s.pike
                        .which_overlapping_matches(pc, &Input::new(text), &mut cache.patset);
                    for p in cache.patset.iter() {
                        // (Keyword patterns, without positions, are left
                        // to the keyword walk above.)
                        self.set_hit(p, None, text.as_bytes(), sink);
                    }
                }
                false
            }
        };
        if sink.set {
            for &r in &self.always {
                sink.all.insert(r);
                if let Some(u) = sink.unkeyed.as_deref_mut() {
                    u.insert(r);
                }
            }
        }
        ends_known
    }

    #[allow(clippy::too_many_arguments)]
    /// The joint walk of a line, in two halves at once when it is long
    /// enough (see [`Self::walk_split`]), else in one. `dfa`'s cache must
    /// be that DFA's own (the walks step it unchecked; `pass` makes sure).
    fn walk_halves<A: KwAutomaton>(
        &self,
        ac: &A,
        text: &str,
        mut dfa: Option<(&hybrid::dfa::DFA, &mut hybrid::dfa::Cache)>,
        half: &mut HalfScratch,
        cuts: &mut Cuts,
        sink: &mut Sink<'_>,
        n_rules: usize,
    ) -> Walked {
        if text.len() >= SPLIT_MIN
            && let Some((d, c)) = dfa.as_mut()
        {
            if let Some(w) = self.walk_split(ac, text.as_bytes(), d, c, half, cuts, sink) {
                return w;
            }
            // Given up part way: start again from nothing, in one piece.
            sink.clear(n_rules);
        }
        self.walk(ac, text, dfa, sink)
    }

    /// The walk of the set alone (no keyword automaton beside it): in four
    /// parts at once when the line is long enough (see
    /// [`Self::walk_quarters`]), else as [`Self::walk_halves`] walks it.
    #[allow(clippy::too_many_arguments)]
    fn walk_set_alone(
        &self,
        text: &str,
        mut dfa: Option<(&hybrid::dfa::DFA, &mut hybrid::dfa::Cache)>,
        half: &mut HalfScratch,
        quarters: &mut [HalfScratch; 3],
        cuts: &mut Cuts,
        sink: &mut Sink<'_>,
        n_rules: usize,
    ) -> Walked {
        if text.len() >= QUARTERS_MIN
            && let Some((d, c)) = dfa.as_mut()
        {
            if let Some(w) = self.walk_quarters(text.as_bytes(), d, c, quarters, cuts, sink) {
                return w;
            }
            // Given up part way: start again from nothing, in halves.
            sink.clear(n_rules);
        }
        self.walk_halves(&NoKw, text, dfa, half, cuts, sink, n_rules)
    }

    /// The set's walk over four parts of a line at once, for the set alone
    /// (its one chain of table loads a byte becomes four the CPU overlaps,
    /// where [`Self::walk_split`] has two automata over two halves). A
    /// bare loop over the 106 MB clean corpus file with the reference
    /// rules' lazy DFA ran 956 MB/s over two parts and 1,453-1,587 MB/s
    /// over four.
    ///
    /// The same idea as the split walk, at each of the three cuts: a part
    /// starts from the start state at its cut, the part before it goes on
    /// past the cut until the two walks are in the same state (the later
    /// part's first bytes are walked again for that), and the later part's
    /// findings are taken from that byte on. Kept apart from
    /// `walk_split` rather than one walk over any number of parts: through
    /// such a generic walk the library's two automata over two halves ran
    /// 7% more instructions.
    ///
    /// The cuts are at exact quarters (parts of one length: the four
    /// chains run to the end together), or, once `cuts` says so, at
    /// quotes near them (see [`CUT_SLACK`]). A walk whose parts did not
    /// meet sets it, for the rest of the cache's lines: with a field-name
    /// glob in the set, parts that start off a quote rarely meet (see
    /// [`split_point`]). Over the clean JSON lines of the corpus with the
    /// reference rules (no glob) the pass took 51.4 ms cut at quotes and
    /// 46.2 ms cut at quarters (best of 7): at quotes, the parts differ by
    /// up to twice `CUT_SLACK`, and what the longer ones have left is
    /// walked one chain at a time.
    ///
    /// `None` when it gave up (a cut's walks did not meet within
    /// [`MEET_WINDOW`] bytes or inside the later part, the set stopped, or
    /// its cache was cleared): the caller walks the line again otherwise.
    fn walk_quarters(
        &self,
        bytes: &[u8],
        d: &hybrid::dfa::DFA,
        c: &mut hybrid::dfa::Cache,
        parts: &mut [HalfScratch; 3],
        cuts: &mut Cuts,
        sink: &mut Sink<'_>,
    ) -> Option<Walked> {
        let n = bytes.len();
        // Cut p at, or near, p quarters of the way.
        let quotes = cuts.quarters_at_quotes;
        let cut = |p: usize| {
            let q = n * p / 4;
            if quotes {
                cut_near(bytes, q.saturating_sub(CUT_SLACK), q, q + CUT_SLACK)
            } else {
                q
            }
        };
        let at = [0, cut(1), cut(2), cut(3), n];
        // (In order on any line of `QUARTERS_MIN` bytes; not on a short
        // line, which is not split this way.)
        if at.windows(2).any(|w| w[0] >= w[1]) {
            return None;
        }
        let len = |i: usize| at[i + 1] - at[i];
        // Bytes all four walks take at once; the rest of each part is
        // walked alone.
        let common = (0..4).map(len).min()?;
        let clears = c.clear_count();
        let input = Input::new(bytes);
        let mut s = [hybrid::LazyStateID::default(); 4];
        for (i, si) in s.iter_mut().enumerate() {
            *si = d
                .start_state_forward(c, &input.clone().range(at[i]..))
                .ok()?;
        }
        // For walking each part's first bytes again (valid while the cache
        // is not cleared, which ends this walk).
        let firsts = s;
        // A start state that filled the cache up (it is then cleared)
        // leaves the others pointing into the old cache.
        if c.clear_count() != clears {
            return None;
        }
        for p in parts.iter_mut() {
            p.kw.clear();
            p.ends.clear();
        }
        let mut a = NoKw.start();
        let mut k = 0;
        while k < common {
            if s.iter().all(|x| !x.is_tagged()) {
                // SAFETY: the states come from `d` in `c` (`pass` checked
                // that `c` is `d`'s) since its last clear (a clear ends
                // this walk below); all untagged.
                k = unsafe { quiet_quarters(d, c, &mut s, bytes, &at, k, common) };
                if k == common {
                    break; // nothing happened up to the end of the stretch
                }
            }
            for (i, si) in s.iter_mut().enumerate() {
                let mut ps = part_sink(sink, parts, i);
                self.step(&NoKw, d, c, &mut a, si, bytes, at[i] + k, &mut ps)?;
                // A step that filled the cache up (it is then cleared)
                // leaves the other walks' states pointing into the old one.
                if c.clear_count() != clears {
                    return None;
                }
            }
            k += 1;
        }
        for (i, si) in s.iter_mut().enumerate() {
            let mut ps = part_sink(sink, parts, i);
            self.walk_alone(
                &NoKw,
                d,
                c,
                &mut a,
                si,
                bytes,
                at[i] + common,
                at[i + 1],
                &mut ps,
            )?;
            if c.clear_count() != clears {
                return None;
            }
        }
        // At each cut, the part before it goes on until it meets the
        // part after it, whose first bytes are walked again beside it
        // (within that part, so the meets stay in order).
        let mut met = [0usize; 4];
        for p in 1..4 {
            let mut again = firsts[p];
            let mut at_meet = None;
            for j in at[p]..at[p] + MEET_WINDOW.min(len(p)) {
                let (x, y) = (s[p - 1], again);
                if !x.is_tagged() && !y.is_tagged() {
                    let b = *bytes.get(j)?;
                    // SAFETY: both states come from `d` in `c` since its
                    // last clear (a clear ends this walk), both untagged.
                    let (nx, ny) = unsafe {
                        (
                            d.next_state_untagged_unchecked(c, x, b),
                            d.next_state_untagged_unchecked(c, y, b),
                        )
                    };
                    if !nx.is_tagged() && !ny.is_tagged() {
                        // Nothing happens on this byte: no step of the
                        // walk's own (the meet is usually a few such
                        // bytes past the cut).
                        (s[p - 1], again) = (nx, ny);
                        if nx == ny {
                            at_meet = Some(j);
                            break;
                        }
                        continue;
                    }
                }
                let mut ps = part_sink(sink, parts, p - 1);
                self.step(&NoKw, d, c, &mut a, &mut s[p - 1], bytes, j, &mut ps)?;
                again = d.next_state(c, again, *bytes.get(j)?).ok()?;
                if c.clear_count() != clears {
                    return None;
                }
                if again == s[p - 1] {
                    at_meet = Some(j);
                    break;
                }
            }
            if at_meet.is_none() {
                cuts.quarters_at_quotes = true;
            }
            met[p] = at_meet?;
        }
        // From its meet on, a part finds what one walk finds; keywords of
        // the set are reported like its matches, one byte late.
        for p in 1..4 {
            let (j, found) = (met[p], &parts[p - 1]);
            if let Some(kw) = sink.kw.as_deref_mut() {
                kw.extend(found.kw.iter().filter(|h| h.end as usize > j));
            }
            if let Some(e) = sink.ends.as_deref_mut() {
                e.extend(found.ends.iter().filter(|h| h.end as usize > j));
            }
        }
        match d.next_eoi_state(c, s[3]) {
            Ok(e) if e.is_match() => self.set_matches(d, c, e, n, bytes, sink),
            Ok(_) => {}
            Err(_) => return Some(Walked::SetFailed),
        }
        Some(Walked::Done)
    }

    /// The joint walk over two halves of a line at once: four independent
    /// chains of table loads instead of two, which the CPU overlaps (one
    /// chain runs at about one load latency per byte; measured on 20 MB of
    /// the corpus's clean lines with the built-in library: both automata
    /// over the whole text 395-433 MB/s, over two halves at once 707-767
    /// MB/s).
    ///
    /// The second half's walk starts from the start states at the middle,
    /// so it knows nothing of what began before it: until its states meet
    /// those of the first half's walk, which goes on past the middle, what
    /// it finds is a part of what the first finds there, and is dropped.
    /// From the byte where both walks are in the same states (the first
    /// usually a few bytes past the middle) they would find the same
    /// things, and the second half's findings are taken. Exact: the same
    /// hits, in the same order, as one walk.
    ///
    /// To find where they meet, the second walk's first bytes are walked
    /// once more beside the first walk's way past the middle, rather than
    /// its states recorded on the way: the walks meet within a few bytes
    /// on nearly every line, and recording took a loop of its own over
    /// the first [`MEET_WINDOW`] bytes of every second half, slower a byte
    /// than the plain one (11% of a run of the reference rules over clean
    /// lines, perf). Callgrind, 20,000 clean corpus lines, startup
    /// included: reference rules 163.7M -> 153.9M instructions (38.0M of
    /// them startup), library 303.1M -> 293.9M; 20,000 corpus lines with
    /// the library 854.1M -> 843.8M.
    ///
    /// `None` when it gave up (the walks did not meet within
    /// [`MEET_WINDOW`] bytes, the set stopped, or its cache was cleared,
    /// which leaves the other walk's states stale): the caller walks the
    /// line in one piece.
    #[allow(clippy::too_many_arguments)]
    fn walk_split<A: KwAutomaton>(
        &self,
        ac: &A,
        bytes: &[u8],
        d: &hybrid::dfa::DFA,
        c: &mut hybrid::dfa::Cache,
        half: &mut HalfScratch,
        cuts: &mut Cuts,
        sink: &mut Sink<'_>,
    ) -> Option<Walked> {
        let n = bytes.len();
        let mid = if cuts.middle_at_quote {
            split_point(bytes)
        } else {
            n / 2
        };
        // Bytes both walks take at once; the longer half's rest is walked alone.
        let both = mid.min(n - mid);
        let window = MEET_WINDOW.min(both);
        let clears = c.clear_count();
        let input = Input::new(bytes);
        let start = ac.start();
        let mut w = Pair {
            a1: start,
            s1: d.start_state_forward(c, &input).ok()?,
            a2: start,
            s2: d.start_state_forward(c, &input.clone().range(mid..)).ok()?,
        };
        // For walking the second half's first bytes again (valid while the
        // cache is not cleared, which ends this walk).
        let second_start = w.s2;
        // A start state that filled the set's cache up (it is then
        // cleared) leaves the other pointing into the old cache, and the
        // unchecked steps below would read it.
        if c.clear_count() != clears {
            return None;
        }
        half.kw.clear();
        half.ends.clear();
        let (first, second) = (&bytes[..both], &bytes[mid..mid + both]);
        // Byte k of each half.
        let mut k = 0;
        while k < both {
            if !w.s1.is_tagged() && !w.s2.is_tagged() {
                // SAFETY: the states come from `ac`, and from `d` in `c`
                // (`pass` checked that `c` is `d`'s) since its last clear
                // (a clear ends this walk below); both untagged.
                k = unsafe { quiet_pair(ac, d, c, &mut w, first, second, k, both) };
                if k == both {
                    break; // nothing happened up to the end of the stretch
                }
            }
            self.step(ac, d, c, &mut w.a1, &mut w.s1, bytes, k, sink)?;
            // A step that filled the set's cache up (it is then cleared)
            // leaves the other walk's state pointing into the old cache.
            if c.clear_count() != clears {
                return None;
            }
            let mut hs = half_sink(sink, &mut half.kw, &mut half.ends);
            self.step(ac, d, c, &mut w.a2, &mut w.s2, bytes, mid + k, &mut hs)?;
            if c.clear_count() != clears {
                return None;
            }
            k += 1;
        }
        // The longer half's rest (one of these two ranges is empty; the
        // clear check between them keeps the other walk's state from
        // being stepped stale even so).
        self.walk_alone(ac, d, c, &mut w.a1, &mut w.s1, bytes, both, mid, sink)?;
        if c.clear_count() != clears {
            return None;
        }
        let mut hs = half_sink(sink, &mut half.kw, &mut half.ends);
        self.walk_alone(
            ac,
            d,
            c,
            &mut w.a2,
            &mut w.s2,
            bytes,
            mid + both,
            n,
            &mut hs,
        )?;
        // A walk that filled the set's cache up (it is then cleared) has
        // left the other walk's state pointing into the old one.
        if c.clear_count() != clears {
            return None;
        }
        // The first half's walk goes on until it meets the second's,
        // whose first bytes are walked again beside it (its findings there
        // are in `half` already).
        let (mut a2, mut s2) = (start, second_start);
        let mut met = None;
        for t in 0..window {
            let j = mid + t;
            let b = *bytes.get(j)?;
            if !w.s1.is_tagged() && !s2.is_tagged() {
                // SAFETY: as for `quiet_pair` above, for both walks.
                let (na1, na2, ns1, ns2) = unsafe {
                    (
                        ac.next_unchecked(w.a1, b),
                        ac.next_unchecked(a2, b),
                        d.next_state_untagged_unchecked(c, w.s1, b),
                        d.next_state_untagged_unchecked(c, s2, b),
                    )
                };
                if !(kw_match(na1 | na2) || ns1.is_tagged() || ns2.is_tagged()) {
                    // Nothing happens on this byte: no step of the walk's
                    // own (the meet is usually a few such bytes on).
                    (w.a1, w.s1, a2, s2) = (na1, ns1, na2, ns2);
                    if (a2, s2) == (w.a1, w.s1) {
                        met = Some(j);
                        break;
                    }
                    continue;
                }
            }
            self.step(ac, d, c, &mut w.a1, &mut w.s1, bytes, j, sink)?;
            a2 = ac.unflag(ac.next(a2, b));
            s2 = d.next_state(c, s2, b).ok()?;
            if c.clear_count() != clears {
                return None;
            }
            if (a2, s2) == (w.a1, w.s1) {
                met = Some(j);
                break;
            }
        }
        if met.is_none() {
            cuts.middle_at_quote = true;
        }
        let j = met?;
        // From byte j on both walks find the same: keyword ends after j + 1,
        // set match ends (reported one byte late) after j.
        if let Some(kw) = sink.kw.as_deref_mut() {
            // (Keywords of the set are reported like its matches.)
            let after = if self.kw_in_set { j } else { j + 1 };
            kw.extend(half.kw.iter().filter(|h| h.end as usize > after));
        }
        if let Some(e) = sink.ends.as_deref_mut() {
            e.extend(half.ends.iter().filter(|h| h.end as usize > j));
        }
        match d.next_eoi_state(c, w.s2) {
            Ok(s) if s.is_match() => self.set_matches(d, c, s, n, bytes, sink),
            Ok(_) => {}
            Err(_) => return Some(Walked::SetFailed),
        }
        Some(Walked::Done)
    }

    /// One of the split walk's walks over `bytes[from..to]` on its own.
    #[allow(clippy::too_many_arguments)]
    fn walk_alone<A: KwAutomaton>(
        &self,
        ac: &A,
        d: &hybrid::dfa::DFA,
        c: &mut hybrid::dfa::Cache,
        a: &mut u32,
        s: &mut hybrid::LazyStateID,
        bytes: &[u8],
        from: usize,
        to: usize,
        sink: &mut Sink<'_>,
    ) -> Option<()> {
        let bytes = bytes.get(..to)?;
        let mut i = from;
        while i < to {
            if !s.is_tagged() {
                // SAFETY: `s` comes from `d` in `c` (the caller's, which
                // `pass` checked is `d`'s), the latest state of its walk.
                i = unsafe { quiet_run(ac, d, c, a, s, bytes, i) };
                if i == to {
                    break;
                }
            }
            self.step(ac, d, c, a, s, bytes, i, sink)?;
            i += 1;
        }
        Some(())
    }

    /// One byte of one of the split walk's walks, with what it finds
    /// recorded in `sink`. `None` when the set stops (quit or dead state,
    /// or a state it cannot compute).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn step<A: KwAutomaton>(
        &self,
        ac: &A,
        d: &hybrid::dfa::DFA,
        c: &mut hybrid::dfa::Cache,
        a: &mut u32,
        s: &mut hybrid::LazyStateID,
        bytes: &[u8],
        j: usize,
        sink: &mut Sink<'_>,
    ) -> Option<()> {
        let b = *bytes.get(j)?;
        let e = ac.next(*a, b);
        *a = ac.unflag(e);
        if kw_match(e) {
            self.kw_hits(ac, *a, j + 1, bytes, sink);
        }
        *s = d.next_state(c, *s, b).ok()?;
        if s.is_tagged() {
            if s.is_match() {
                self.set_matches(d, c, *s, j, bytes, sink);
            } else if s.is_quit() || s.is_dead() {
                return None;
            }
        }
        Some(())
    }

    /// The joint walk: keyword automaton and (when given) the set's lazy DFA
    /// over the same bytes.
    fn walk<A: KwAutomaton>(
        &self,
        ac: &A,
        text: &str,
        mut dfa: Option<(&hybrid::dfa::DFA, &mut hybrid::dfa::Cache)>,
        sink: &mut Sink<'_>,
    ) -> Walked {
        let bytes = text.as_bytes();
        let mut a = ac.start();
        let Some((d, c)) = dfa.as_mut() else {
            for (i, &b) in bytes.iter().enumerate() {
                let e = ac.next(a, b);
                a = ac.unflag(e);
                if kw_match(e) {
                    self.kw_hits(ac, a, i + 1, bytes, sink);
                }
            }
            return Walked::Done;
        };
        let Ok(mut s) = d.start_state_forward(c, &Input::new(bytes)) else {
            return self.finish_keywords(ac, a, 0, bytes, sink);
        };
        let mut i = 0;
        while i < bytes.len() {
            if !s.is_tagged() {
                // SAFETY: `s` comes from `d` in `c` (which `pass` checked is
                // `d`'s), the latest state of this walk.
                i = unsafe { quiet_run(ac, d, c, &mut a, &mut s, bytes, i) };
                if i == bytes.len() {
                    break;
                }
            }
            // Byte `i` does something: a keyword ends on it, or the set's
            // next state is a match, dead, quit or not computed yet.
            let b = bytes[i];
            let end = i + 1;
            let e = ac.next(a, b);
            a = ac.unflag(e);
            if kw_match(e) {
                self.kw_hits(ac, a, end, bytes, sink);
            }
            s = match d.next_state(c, s, b) {
                Ok(s) => s,
                Err(_) => return self.finish_keywords(ac, a, end, bytes, sink),
            };
            if s.is_tagged() {
                if s.is_match() {
                    // A lazy DFA reports matches one byte late.
                    self.set_matches(d, c, s, i, bytes, sink);
                } else if s.is_quit() {
                    return self.finish_keywords(ac, a, end, bytes, sink);
                } else if s.is_dead() {
                    return match self.finish_keywords(ac, a, end, bytes, sink) {
                        Walked::SetFailed => Walked::Done,
                        w => w,
                    };
                }
            }
            i = end;
        }
        match d.next_eoi_state(c, s) {
            Ok(s) if s.is_match() => self.set_matches(d, c, s, bytes.len(), bytes, sink),
            Ok(_) => {}
            Err(_) => return Walked::SetFailed,
        }
        Walked::Done
    }

    /// The rest of the keyword walk after the set stopped at `from`:
    /// reports `SetFailed` (the caller redoes the set without positions).
    fn finish_keywords<A: KwAutomaton>(
        &self,
        ac: &A,
        mut a: u32,
        from: usize,
        bytes: &[u8],
        sink: &mut Sink<'_>,
    ) -> Walked {
        for (i, &b) in bytes.iter().enumerate().skip(from) {
            let e = ac.next(a, b);
            a = ac.unflag(e);
            if kw_match(e) {
                self.kw_hits(ac, a, i + 1, bytes, sink);
            }
        }
        Walked::SetFailed
    }

    /// Records the keywords that end at `end` (the automaton is in match
    /// state `a`).
    #[inline(never)]
    fn kw_hits<A: KwAutomaton>(
        &self,
        ac: &A,
        a: u32,
        end: usize,
        bytes: &[u8],
        sink: &mut Sink<'_>,
    ) {
        ac.matches(a, |pid, len| {
            self.keyword_at(pid, end - len, end, bytes, sink)
        });
    }

    /// Records keyword `k` found at `[start, end)`: the rules it enables.
    fn keyword_at(&self, k: usize, start: usize, end: usize, bytes: &[u8], sink: &mut Sink<'_>) {
        let Some(rules) = self.kw_rules.get(k) else {
            return;
        };
        for kr in rules {
            // One case-insensitive automaton serves both kinds of
            // keyword; case-sensitive ones are confirmed here, on the
            // (rare) match only.
            if kr
                .exact
                .as_deref()
                .is_some_and(|e| bytes.get(start..end) != Some(e.as_bytes()))
            {
                continue;
            }
            sink.all.insert(kr.rule);
            if let Some(p) = sink.kw.as_deref_mut() {
                p.push(KwHit {
                    start: start as u32,
                    end: end as u32,
                    rule: kr.rule,
                });
            }
        }
    }

    /// Records the set patterns that match ending at `end`.
    #[inline(never)]
    fn set_matches(
        &self,
        d: &hybrid::dfa::DFA,
        c: &hybrid::dfa::Cache,
        s: hybrid::LazyStateID,
        end: usize,
        bytes: &[u8],
        sink: &mut Sink<'_>,
    ) {
        for k in 0..d.match_len(c, s) {
            self.set_hit(d.match_pattern(c, s, k), Some(end), bytes, sink);
        }
    }

    /// Records a match of set pattern `p` (ending at `end` when known):
    /// its rule, or, for a keyword in the set, the keyword.
    fn set_hit(&self, p: PatternID, end: Option<usize>, bytes: &[u8], sink: &mut Sink<'_>) {
        let Some(&rule) = self.set_rules.get(p.as_usize()) else {
            // A keyword (`kw_in_set`); without its position it is left to
            // the keyword walk.
            let k = p.as_usize() - self.set_rules.len();
            if let (Some(end), Some(&len)) = (end, self.kw_lens.get(k)) {
                self.keyword_at(k, end.saturating_sub(len as usize), end, bytes, sink);
            }
            return;
        };
        sink.all.insert(rule);
        if let Some(u) = sink.unkeyed.as_deref_mut() {
            u.insert(rule);
        }
        if let (Some(e), Some(end)) = (sink.ends.as_deref_mut(), end) {
            e.push(EndHit {
                end: end as u32,
                rule,
            });
        }
    }
}

/// Steps both automata from byte `i` while nothing happens, and returns
/// the index of the first byte that does something (`bytes.len()` when
/// none): a keyword ends on it, or the set's next state is tagged (a match,
/// dead, quit, or a transition the lazy DFA has not computed yet). That
/// byte is left to the caller, `a` and `s` are the states before it.
///
/// Why a loop of its own: with the match handling inlined next to the two
/// table loads, the joint loop ran out of registers and spilled the
/// automata's table pointers to the stack (about 30 instructions a byte);
/// this one keeps both chains in registers and has no calls in it, nor
/// bounds checks (the automata's unchecked steps).
///
/// # Safety
///
/// `a` must be a state of `ac`, and `s` an untagged state that `d`
/// computed in its cache `c` since `c` was last cleared.
#[inline(always)]
unsafe fn quiet_run<A: KwAutomaton>(
    ac: &A,
    d: &hybrid::dfa::DFA,
    c: &hybrid::dfa::Cache,
    a: &mut u32,
    s: &mut hybrid::LazyStateID,
    bytes: &[u8],
    mut i: usize,
) -> usize {
    let (mut sa, mut ss) = (*a, *s);
    while let Some(&b) = bytes.get(i) {
        // SAFETY: see the function's doc comment.
        let na = unsafe { ac.next_unchecked(sa, b) };
        let ns = unsafe { d.next_state_untagged_unchecked(c, ss, b) };
        if kw_match(na) || ns.is_tagged() {
            break;
        }
        sa = na;
        ss = ns;
        i += 1;
    }
    *a = sa;
    *s = ss;
    i
}

/// Lines shorter than this are walked in one piece (splitting costs a few
/// bytes past the middle, and a start).
const SPLIT_MIN: usize = 128;

/// How many bytes past the middle the first half's walk may go to meet
/// the second's before the split walk gives up. On the shared corpus the
/// walks met within 16 bytes in all but 48 of 48,938 split lines (20 MB;
/// those 48 gave up at any window size, so for a stopped set or a cleared
/// cache). Each byte of the way is a slow step of two walks (the first
/// half's and the second's again, see `Prefilter::walk_split`), so the
/// window only costs on lines whose walks do not meet, which are walked
/// again whole: at most one more scan of them.
const MEET_WINDOW: usize = 32;

/// Where the split walk's second half starts once it cuts at quotes (see
/// [`Prefilter::walk_split`]): at a quote near the middle when there is
/// one, else the middle. Why a quote: the JSON member form of a
/// field-name glob (`"(?s:.)*_token\\*"\s*:`) keeps a thread alive from a
/// line's first quote on, which a walk that starts between two quotes
/// lacks until the next one, so the walks meet no sooner; one that starts
/// on a quote has it from its first byte.
fn split_point(bytes: &[u8]) -> usize {
    let n = bytes.len();
    let (q1, h, q3) = (n / 4, n / 2, n - n / 4);
    memchr::memchr(b'"', &bytes[h..q3])
        .map(|i| h + i)
        .or_else(|| memchr::memrchr(b'"', &bytes[q1..h]).map(|i| q1 + i))
        .unwrap_or(h)
}

/// The states of the split walk's two walks.
#[derive(Clone, Copy)]
struct Pair {
    a1: u32,
    s1: hybrid::LazyStateID,
    a2: u32,
    s2: hybrid::LazyStateID,
}

/// A sink for the second half's findings: the same bit sets, its own lists.
fn half_sink<'s>(
    sink: &'s mut Sink<'_>,
    kw: &'s mut Vec<KwHit>,
    ends: &'s mut Vec<EndHit>,
) -> Sink<'s> {
    Sink {
        all: &mut *sink.all,
        set: sink.set,
        unkeyed: sink.unkeyed.as_deref_mut(),
        kw: sink.kw.is_some().then_some(kw),
        ends: sink.ends.is_some().then_some(ends),
    }
}

/// Lines at least this long are walked in four parts when the set is
/// walked alone (each cut costs a start and a few bytes walked twice).
/// Reference rules, best of 7, twice: 256 bytes 0.223 / 0.223 s over the
/// 100 MB corpus and 0.172 / 0.169 s over the clean lines, 160 bytes
/// 0.217 / 0.222 s and 0.158 / 0.164 s; 128 bytes no better than 160.
const QUARTERS_MIN: usize = 160;

/// How far from a quarter of the line the four-part walk looks for a quote
/// to cut at, once it cuts at quotes (see [`Prefilter::walk_quarters`]).
/// Not as far as the split walk looks (an eighth of the line):
/// the parts are walked at once only as far as the shortest goes, and the
/// rest of the others one at a time. Over the 100 MB corpus with the
/// reference rules: 0.232 s with cuts within an eighth, 0.222 s within 16
/// bytes (best of 7, twice), and no line gave up either way.
const CUT_SLACK: usize = 16;

/// A cut between `lo` and `hi`: the first quote from `mid` on, else the
/// last before it, else `mid` (why a quote: see [`split_point`]).
fn cut_near(bytes: &[u8], lo: usize, mid: usize, hi: usize) -> usize {
    let (Some(after), Some(before)) = (bytes.get(mid..hi), bytes.get(lo..mid)) else {
        return mid;
    };
    memchr::memchr(b'"', after)
        .map(|i| mid + i)
        .or_else(|| memchr::memrchr(b'"', before).map(|i| lo + i))
        .unwrap_or(mid)
}

/// Where part `i` of the four-part walk records what it finds: the
/// caller's sink for the first, the part's own lists for the others (the
/// same bit sets for all).
fn part_sink<'s>(sink: &'s mut Sink<'_>, parts: &'s mut [HalfScratch; 3], i: usize) -> Sink<'s> {
    match i.checked_sub(1).and_then(|p| parts.get_mut(p)) {
        Some(part) => half_sink(sink, &mut part.kw, &mut part.ends),
        None => Sink {
            all: &mut *sink.all,
            set: sink.set,
            unkeyed: sink.unkeyed.as_deref_mut(),
            kw: sink.kw.as_deref_mut(),
            ends: sink.ends.as_deref_mut(),
        },
    }
}

/// [`quiet_run`] for the four-part walk, the set alone: byte `k` of each
/// part (part `i` starts at `at[i]`), while nothing happens on any, up to
/// `end`.
///
/// # Safety
///
/// As for [`quiet_run`], for each of the states in `s`.
#[inline(never)]
unsafe fn quiet_quarters(
    d: &hybrid::dfa::DFA,
    c: &hybrid::dfa::Cache,
    s: &mut [hybrid::LazyStateID; 4],
    bytes: &[u8],
    at: &[usize; 5],
    mut k: usize,
    end: usize,
) -> usize {
    let part = |i: usize| bytes.get(at[i]..at[i] + end).unwrap_or(&[]);
    let (p0, p1, p2, p3) = (part(0), part(1), part(2), part(3));
    // Bounds checked once here, not on every byte.
    let end = end.min(p0.len()).min(p1.len()).min(p2.len()).min(p3.len());
    let (p0, p1, p2, p3) = (&p0[..end], &p1[..end], &p2[..end], &p3[..end]);
    let [mut s0, mut s1, mut s2, mut s3] = *s;
    while k < end {
        // SAFETY: see the function's doc comment.
        let (n0, n1, n2, n3) = unsafe {
            (
                d.next_state_untagged_unchecked(c, s0, p0[k]),
                d.next_state_untagged_unchecked(c, s1, p1[k]),
                d.next_state_untagged_unchecked(c, s2, p2[k]),
                d.next_state_untagged_unchecked(c, s3, p3[k]),
            )
        };
        if n0.is_tagged() | n1.is_tagged() | n2.is_tagged() | n3.is_tagged() {
            break;
        }
        (s0, s1, s2, s3) = (n0, n1, n2, n3);
        k += 1;
    }
    *s = [s0, s1, s2, s3];
    k
}

/// [`quiet_run`] for the split walk: byte `k` of each half, while nothing
/// happens on either, up to `end`.
///
/// # Safety
///
/// As for [`quiet_run`], for both pairs of states in `w`.
///
/// Not inlined, unlike `quiet_run`: inlined into the split walk, with all
/// that walk keeps live around it, the loop reloaded its byte pointers
/// (and with the keyword DFA its table pointers) from the stack on every
/// byte; on its own it keeps everything in registers (19 instructions for
/// two bytes with the keywords in the set). Callgrind over 20,000 lines
/// with nothing to redact: 132.5M -> 126.9M instructions for the reference
/// rules, 211.8M -> 197.5M for the library; 10,000 JSON corpus lines
/// 461.2M -> 457.0M.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
unsafe fn quiet_pair<A: KwAutomaton>(
    ac: &A,
    d: &hybrid::dfa::DFA,
    c: &hybrid::dfa::Cache,
    w: &mut Pair,
    first: &[u8],
    second: &[u8],
    mut k: usize,
    end: usize,
) -> usize {
    let Pair {
        mut a1,
        mut s1,
        mut a2,
        mut s2,
    } = *w;
    // Bounds checked once here, not on every byte.
    let end = end.min(first.len()).min(second.len());
    let (first, second) = (&first[..end], &second[..end]);
    // Byte k of each half: `false` when something happens on it (the
    // states are then left as they were before it).
    macro_rules! pair_step {
        ($k:expr) => {{
            let (b1, b2) = (first[$k], second[$k]);
            // SAFETY: see the function's doc comment.
            let (na1, na2) = unsafe { (ac.next_unchecked(a1, b1), ac.next_unchecked(a2, b2)) };
            let ns1 = unsafe { d.next_state_untagged_unchecked(c, s1, b1) };
            let ns2 = unsafe { d.next_state_untagged_unchecked(c, s2, b2) };
            if kw_match(na1 | na2) | ns1.is_tagged() | ns2.is_tagged() {
                false
            } else {
                (a1, s1, a2, s2) = (na1, ns1, na2, ns2);
                true
            }
        }};
    }
    // Two bytes of each half a turn: one count and one bound check
    // for four steps. Callgrind, 20,000 clean corpus lines: library
    // 293.9M -> 277.8M instructions, reference rules 153.9M -> 150.7M;
    // 20,000 corpus lines, library 843.8M -> 822.4M. Wall time on the
    // bench machine the same within its noise (the loop is bound by its
    // chains of loads more than by its instructions), but a core shared
    // with a second worker has the fewer to run.
    while k + 2 <= end {
        if !pair_step!(k) {
            break;
        }
        if !pair_step!(k + 1) {
            k += 1;
            break;
        }
        k += 2;
    }
    if k + 1 == end && pair_step!(k) {
        k += 1;
    }
    *w = Pair { a1, s1, a2, s2 };
    k
}

/// How a walk ended.
enum Walked {
    Done,
    /// The set's lazy DFA gave up part way: its results are incomplete.
    SetFailed,
}

/// Rules whose keyword lies inside `[lo, hi)` of a positional scan,
/// restricted to `mask` when given, added to `out`. `kw` is in order of
/// keyword end.
pub(crate) fn rules_within(
    kw: &[KwHit],
    lo: usize,
    hi: usize,
    mask: Option<&RuleBits>,
    out: &mut RuleBits,
) {
    // Ends are ordered; a keyword inside the span ends in (lo, hi].
    let first = kw.partition_point(|h| (h.end as usize) <= lo);
    for h in kw[first..].iter().take_while(|h| (h.end as usize) <= hi) {
        if h.start as usize >= lo && mask.is_none_or(|m| m.contains(h.rule)) {
            out.insert(h.rule);
        }
    }
}

/// Whether a keyword of one of the rules in `mask` lies inside `[lo, hi]`
/// (what [`rules_within`] with that mask would add anything for).
pub(crate) fn any_rule_within(kw: &[KwHit], lo: usize, hi: usize, mask: &RuleBits) -> bool {
    let first = kw.partition_point(|h| (h.end as usize) <= lo);
    kw[first..]
        .iter()
        .take_while(|h| (h.end as usize) <= hi)
        .any(|h| h.start as usize >= lo && mask.contains(h.rule))
}

/// Rules of the pattern set with a match ending inside `(lo, hi]`, added
/// to `out`.
pub(crate) fn rules_ending_within(ends: &[EndHit], lo: usize, hi: usize, out: &mut RuleBits) {
    let first = ends.partition_point(|h| (h.end as usize) <= lo);
    for h in ends[first..].iter().take_while(|h| (h.end as usize) <= hi) {
        out.insert(h.rule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{
        Ruleset, Scratch, Stats, builtin_hits_and, builtin_shared, compile_for_test as compile,
    };

    const RULES: &str = r#"
[[rules]]
id = "short"
category = "secret"
pattern = 'ab[0-9]+'
keywords = ["ab"]
[[rules]]
id = "long"
category = "secret"
pattern = 'abc[0-9]+'
keywords = ["ABC"]
keywords_case_sensitive = true
[[rules]]
id = "digits"
category = "pii"
pattern = '\b[0-9]{3}-[0-9]{4}\b'
"#;

    type Found = (
        Vec<u32>,
        Vec<u32>,
        Vec<(u32, u32, u32)>,
        Vec<(u32, u32)>,
        bool,
    );

    /// What a test's walk or pass fills in, with every list on.
    #[derive(Default)]
    struct Collected {
        all: RuleBits,
        unkeyed: RuleBits,
        kw: Vec<KwHit>,
        ends: Vec<EndHit>,
    }

    impl Collected {
        fn new(n_rules: usize) -> Collected {
            let mut c = Collected::default();
            c.all.reset(n_rules);
            c.unkeyed.reset(n_rules);
            c
        }

        fn sink(&mut self) -> Sink<'_> {
            Sink {
                all: &mut self.all,
                set: true,
                unkeyed: Some(&mut self.unkeyed),
                kw: Some(&mut self.kw),
                ends: Some(&mut self.ends),
            }
        }

        fn found(&self, done: bool) -> Found {
            (
                self.all.iter().collect(),
                self.unkeyed.iter().collect(),
                self.kw.iter().map(|h| (h.start, h.end, h.rule)).collect(),
                self.ends.iter().map(|h| (h.end, h.rule)).collect(),
                done,
            )
        }
    }

    /// The joint walk of `text`, in halves when `split` (and the text is
    /// long enough), else in one piece: every finding, in order.
    fn walk_of(rs: &Ruleset, text: &str, split: bool, cache: &mut ScanCache) -> Found {
        let p = &rs.prefilter;
        let n = rs.rules().len();
        let mut got = Collected::new(n);
        let mut sink = got.sink();
        let Some(Keywords::Dfa(ac)) = &p.keywords else {
            panic!("a keyword DFA")
        };
        let d = p.set.as_ref().and_then(|s| s.dfa.as_ref());
        let dfa = d.zip(cache.dfa.as_mut());
        let walked = match (split, p.kw_in_set) {
            (true, false) => p.walk_halves(
                ac,
                text,
                dfa,
                &mut cache.half,
                &mut cache.cuts,
                &mut sink,
                n,
            ),
            (false, false) => p.walk(ac, text, dfa, &mut sink),
            (true, true) => p.walk_set_alone(
                text,
                dfa,
                &mut cache.half,
                &mut cache.quarters,
                &mut cache.cuts,
                &mut sink,
                n,
            ),
            (false, true) => p.walk(&NoKw, text, dfa, &mut sink),
        };
        got.found(matches!(walked, Walked::Done))
    }

    /// Pieces of lines: the built-in rules' own hits, and the quotes,
    /// escapes, digits and letters around them in logs.
    fn pieces() -> Vec<String> {
        builtin_hits_and(&[
            "\"",
            "\"",
            "\":\"",
            "\\\"",
            " ",
            "  ",
            "é",
            "Zürich",
            "{",
            "}",
            ",",
            "=",
            "10.1.2.3",
            "4111 1111 1111 1111",
            "2024-05-14T08:00:00Z",
            "\\n\\tat org.example.Run(Run.java:12)",
            "x_token",
            "\"db_password\":",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "0123456789abcdef",
        ])
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// The walk over two halves of a line at once finds exactly what
        /// one walk over the whole line finds: the same rules, the same
        /// keyword spans and set match ends, in the same order; wherever
        /// the halves meet, and whatever is cut in two at the middle.
        #[test]
        fn the_split_walk_finds_what_one_walk_finds_in_the_same_order(
            parts in proptest::collection::vec(proptest::sample::select(pieces()), 0..40),
        ) {
            let text = parts.concat();
            let rs = builtin_shared();
            let mut cache = rs.new_scan_cache();
            let one = walk_of(rs, &text, false, &mut cache);
            let split = walk_of(rs, &text, true, &mut cache);
            proptest::prop_assert_eq!(split, one, "line: {:?}", text);
        }
    }

    /// Pieces for the reference rules: their hits, and what logs put
    /// around them.
    fn reference_pieces() -> Vec<String> {
        [
            "\"",
            "\":\"",
            " ",
            "=",
            ":",
            ".",
            "-",
            "@",
            "a",
            "x",
            "token",
            "secret=abc",
            "password=hunter2",
            "ghp_",
            "AKIA",
            "eyJ",
            "bearer ",
            "Bearer abc.def",
            "xoxb-",
            "://u:p@h",
            "10.1.2.3",
            "4111 1111 1111 1111",
            "123-45-6789",
            "ann@example.com",
            "2024-05-14T08:00:00Z",
            "\\\"",
            "é",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn reference_rules() -> &'static Ruleset {
        static RS: std::sync::LazyLock<Ruleset> = std::sync::LazyLock::new(|| {
            compile(include_str!("../../benches/ruleset-reference.toml"))
        });
        &RS
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// With the keywords among the set's patterns (the reference
        /// rules), the walk over two halves finds what one walk finds:
        /// keyword spans and set match ends alike, in the same order.
        #[test]
        fn the_split_walk_of_the_set_alone_finds_what_one_walk_finds(
            parts in proptest::collection::vec(proptest::sample::select(reference_pieces()), 0..60),
        ) {
            let text = parts.concat();
            let rs = reference_rules();
            proptest::prop_assert!(rs.prefilter.kw_in_set);
            let mut cache = rs.new_scan_cache();
            let one = walk_of(rs, &text, false, &mut cache);
            let split = walk_of(rs, &text, true, &mut cache);
            proptest::prop_assert_eq!(split, one, "line: {:?}", text);
        }
    }

    /// The four-part walk of the set alone over `text`: its findings, or
    /// `None` when it gave up.
    fn quarters_of(rs: &Ruleset, text: &str, cache: &mut ScanCache) -> Option<Found> {
        let p = &rs.prefilter;
        let mut got = Collected::new(rs.rules().len());
        let mut sink = got.sink();
        let d = p.set.as_ref().and_then(|s| s.dfa.as_ref())?;
        let c = cache.dfa.as_mut()?;
        let walked = p.walk_quarters(
            text.as_bytes(),
            d,
            c,
            &mut cache.quarters,
            &mut cache.cuts,
            &mut sink,
        )?;
        Some(got.found(matches!(walked, Walked::Done)))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// The set's walk over four parts of a line at once finds exactly
        /// what one walk finds, in the same order, wherever the cuts fall
        /// and whatever they cut; and on these lines it does not give up
        /// (so it is the four-part walk that is checked, not the fallback).
        #[test]
        fn the_four_part_walk_of_the_set_alone_finds_what_one_walk_finds(
            parts in proptest::collection::vec(proptest::sample::select(reference_pieces()), 60..240),
        ) {
            let text = parts.concat();
            let rs = reference_rules();
            let mut cache = rs.new_scan_cache();
            let one = walk_of(rs, &text, false, &mut cache);
            for at_quotes in [false, true] {
                cache.cuts.quarters_at_quotes = at_quotes;
                let quarters = quarters_of(rs, &text, &mut cache);
                proptest::prop_assert_eq!(quarters, Some(one.clone()), "line: {:?}", text);
                proptest::prop_assert_eq!(cache.cuts.quarters_at_quotes, at_quotes, "no give-up");
            }
            if text.len() >= QUARTERS_MIN {
                proptest::prop_assert_eq!(walk_of(rs, &text, true, &mut cache), one);
            }
        }
    }

    /// Asserts that the first quote at or after `cut` lies past the meet
    /// window: a walk that starts at `cut` lacks the glob's thread until
    /// that quote, so it cannot meet the walk before it in time.
    fn assert_next_quote_past_the_window(text: &str, cut: usize) {
        let next_quote = cut + text[cut..].find('"').expect("a quote");
        assert!(
            next_quote > cut + MEET_WINDOW,
            "cut at {cut}, quote at {next_quote}"
        );
    }

    /// A field-name glob (`*_token`) and a keyword rule, and a JSON line of
    /// `members` members with 50-byte values, then a `refresh_token` member
    /// that both rules find.
    fn glob_rules_and_line(members: usize) -> (Ruleset, String) {
        let rs = compile(
            "[[rules]]\nid='tok'\ncategory='secret'\nkeys=['*_token']\n\
             [[rules]]\nid='kw'\ncategory='secret'\npattern='tok[0-9]+'\nkeywords=['tok']\n",
        );
        let member = format!(r#""k":"{}","#, "a".repeat(50));
        let text = format!("{{{}\"refresh_token\":\"tok1\"}}", member.repeat(members));
        (rs, text)
    }

    #[test]
    fn a_field_name_glob_turns_the_four_part_walk_to_cuts_at_quotes() {
        // `"(?s:.)*_token\\*"\s*:` keeps a thread alive from a line's first
        // quote on: a part cut off a quote starts without it and meets the
        // part before only at its first quote. Cut inside a value of 50
        // bytes, that is past the window: the first such line is walked
        // again (the same findings) and turns the cache's cuts to quotes,
        // where the parts then meet at once.
        let (rs, text) = glob_rules_and_line(8);
        assert!(rs.prefilter.kw_in_set);
        assert!(text.len() >= QUARTERS_MIN);
        let cut1 = text.len() / 4;
        assert_next_quote_past_the_window(&text, cut1);
        let mut cache = rs.new_scan_cache();
        let one = walk_of(&rs, &text, false, &mut cache);
        assert!(!cache.cuts.quarters_at_quotes);
        assert_eq!(
            quarters_of(&rs, &text, &mut cache),
            None,
            "exact cuts gave up"
        );
        assert!(
            cache.cuts.quarters_at_quotes,
            "and turned the cuts to quotes"
        );
        assert_eq!(quarters_of(&rs, &text, &mut cache), Some(one.clone()));
        assert_eq!(walk_of(&rs, &text, true, &mut cache), one);
        assert_eq!(one.0, vec![0, 1], "both rules found");
    }

    #[test]
    fn quarters_that_do_not_meet_within_the_window_are_walked_again_in_halves() {
        // At the third cut the part before it is inside `x[a-z]{100}y`'s
        // count and the part after it is not; they would meet only where
        // the count runs out, past the window: the four-part walk gives up
        // and the line is walked in halves, with the same findings.
        let rs = compile(
            "[[rules]]\nid='long'\ncategory='secret'\npattern='x[a-z]{100}y'\n\
             [[rules]]\nid='kw'\ncategory='secret'\npattern='tok[0-9]+'\nkeywords=['tok']\n",
        );
        assert!(rs.prefilter.kw_in_set);
        let text = format!("tok1 {} x{}y tok2", "b".repeat(280), "a".repeat(100));
        let cut3 = text.len() * 3 / 4;
        let x = text.find('x').expect("an x");
        assert!(
            x < cut3 && cut3 + MEET_WINDOW < x + 101,
            "x at {x}, cut at {cut3}"
        );
        let mut cache = rs.new_scan_cache();
        assert_eq!(quarters_of(&rs, &text, &mut cache), None, "gave up");
        let walked = walk_of(&rs, &text, true, &mut cache);
        assert_eq!(walked, walk_of(&rs, &text, false, &mut cache));
        assert_eq!(walked.0, vec![0, 1]);
        assert_eq!(walked.3, vec![(text.len() as u32 - 5, 0)]);
    }

    #[test]
    fn a_keyword_on_the_byte_where_the_halves_meet_is_reported_once() {
        // No quote: the second half starts at the middle, on the `@`, with
        // the first half's walk in its start state there too, so the walks
        // meet on that byte, which ends a keyword.
        let rs = compile(
            "[[rules]]\nid='at'\ncategory='pii'\npattern='@[a-z]+'\nkeywords=['@']\n\
             [[rules]]\nid='digits'\ncategory='pii'\npattern='[0-9]{5}'\n",
        );
        let text = format!(
            "{} @{}",
            "a".repeat(SPLIT_MIN / 2 - 1),
            "b".repeat(SPLIT_MIN / 2)
        );
        assert_eq!(split_point(text.as_bytes()), SPLIT_MIN / 2);
        let mut cache = rs.new_scan_cache();
        let split = walk_of(&rs, &text, true, &mut cache);
        assert_eq!(split, walk_of(&rs, &text, false, &mut cache));
        let at = (SPLIT_MIN / 2) as u32;
        assert_eq!(split.2, vec![(at, at + 1, 0)]);
    }

    #[test]
    fn a_field_name_glob_turns_the_split_walk_to_a_cut_at_a_quote() {
        // As for the four-part walk (see
        // `a_field_name_glob_turns_the_four_part_walk_to_cuts_at_quotes`):
        // the middle falls inside a 50-byte value, the second half's walk
        // lacks the glob's thread until its first quote, past the window.
        let (rs, text) = glob_rules_and_line(4);
        let mid = text.len() / 2;
        assert!(text.len() >= SPLIT_MIN);
        assert_next_quote_past_the_window(&text, mid);
        let mut cache = rs.new_scan_cache();
        let one = walk_of(&rs, &text, false, &mut cache);
        assert_eq!(one.0, vec![0, 1], "both rules found");
        let p = &rs.prefilter;
        let d = p
            .set
            .as_ref()
            .and_then(|s| s.dfa.as_ref())
            .expect("a set DFA");
        let split = |cache: &mut ScanCache| {
            let mut got = Collected::new(rs.rules().len());
            let mut sink = got.sink();
            let c = cache.dfa.as_mut().expect("a set cache");
            let w = p.walk_split(
                &NoKw,
                text.as_bytes(),
                d,
                c,
                &mut cache.half,
                &mut cache.cuts,
                &mut sink,
            );
            w.map(|w| got.found(matches!(w, Walked::Done)))
        };
        assert!(!cache.cuts.middle_at_quote);
        assert_eq!(split(&mut cache), None, "cut at the middle: gave up");
        assert!(cache.cuts.middle_at_quote, "and turned the cut to a quote");
        assert_eq!(split(&mut cache), Some(one));
    }

    #[test]
    fn halves_that_do_not_meet_within_the_window_are_walked_again_in_one_piece() {
        // At the middle the first walk is inside `x[a-z]{100}`'s count and
        // the second is not; their states differ until the count runs out,
        // further past the middle than the window: the split walk gives up
        // and the line is walked whole, with the same findings.
        let rs = compile(
            "[[rules]]\nid='long'\ncategory='secret'\npattern='x[a-z]{100}y'\n\
             [[rules]]\nid='kw'\ncategory='secret'\npattern='tok[0-9]+'\nkeywords=['tok']\n",
        );
        let text = format!("tok1 {}x{}y tok2", "a".repeat(80), "a".repeat(100));
        let mid = split_point(text.as_bytes());
        assert!(mid > 86 && mid + MEET_WINDOW < 86 + 101, "split at {mid}");
        let mut cache = rs.new_scan_cache();
        let p = &rs.prefilter;
        let Some(Keywords::Dfa(ac)) = &p.keywords else {
            panic!("a keyword DFA")
        };
        let d = p
            .set
            .as_ref()
            .and_then(|s| s.dfa.as_ref())
            .expect("a set DFA");
        let c = cache.dfa.as_mut().expect("a set cache");
        let (mut all, mut kw) = (RuleBits::default(), Vec::new());
        all.reset(2);
        let mut sink = Sink {
            all: &mut all,
            set: true,
            unkeyed: None,
            kw: Some(&mut kw),
            ends: None,
        };
        assert!(p.kw_in_set, "two keywords are patterns of the set");
        let _ = ac;
        let gave_up = p
            .walk_split(
                &NoKw,
                text.as_bytes(),
                d,
                c,
                &mut cache.half,
                &mut cache.cuts,
                &mut sink,
            )
            .is_none();
        assert!(gave_up, "the walks met within the window");
        let split = walk_of(&rs, &text, true, &mut cache);
        assert_eq!(split, walk_of(&rs, &text, false, &mut cache));
        assert_eq!(split.0, vec![0, 1]);
        assert_eq!(
            split.3,
            vec![(text.len() as u32 - 5, 0)],
            "the long match ends at its y"
        );
    }

    fn line_scan(rs: &Ruleset, text: &str) -> (LineScan, bool) {
        let mut scan = LineScan::default();
        rs.scan_line(text, true, &mut scan, &mut rs.new_scan_cache());
        let known = scan.ends_known;
        (scan, known)
    }

    #[test]
    fn one_pass_reports_overlapping_keywords_and_set_match_ends() {
        let rs = compile(RULES);
        // "ab" is a prefix of "abc": both occurrences are reported, at
        // their own spans; "abc" only where its case matches.
        let text = "x ABC1 abc2 555-1234";
        let (scan, known) = line_scan(&rs, text);
        assert!(known);
        let kw: Vec<(u32, u32, u32)> = scan.kw.iter().map(|h| (h.start, h.end, h.rule)).collect();
        assert_eq!(kw, vec![(2, 4, 0), (2, 5, 1), (7, 9, 0)]);
        let ends: Vec<(u32, u32)> = scan.ends.iter().map(|h| (h.end, h.rule)).collect();
        assert_eq!(ends, vec![(20, 2)], "the set match ends at the line's end");
        assert_eq!(scan.all.iter().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(scan.unkeyed.iter().collect::<Vec<_>>(), vec![2]);

        let mut bits = RuleBits::default();
        bits.reset(3);
        rules_within(&scan.kw, 7, 11, None, &mut bits);
        assert_eq!(
            bits.iter().collect::<Vec<_>>(),
            vec![0],
            "only keywords inside [7, 11)"
        );
        bits.reset(3);
        rules_ending_within(&scan.ends, 12, 20, &mut bits);
        assert_eq!(bits.iter().collect::<Vec<_>>(), vec![2]);
        bits.reset(3);
        rules_ending_within(&scan.ends, 0, 19, &mut bits);
        assert!(bits.is_empty());
    }

    /// Every keyword hit and set match end of one `pass` over `text`.
    fn pass_hits(pf: &Prefilter, cache: &mut ScanCache, text: &str) -> Found {
        let mut got = Collected::default();
        let known = pf.pass(text, &mut got.sink(), cache, 2);
        got.found(known)
    }

    /// A prefilter over `n` keywords (`kw0`, `kw1`, ... for rule 0, `pat`
    /// for rule 0 too) and one set pattern (rule 1).
    fn prefilter_with_keywords(n: usize) -> Prefilter {
        let mut keywords: Vec<String> = (0..n).map(|i| format!("kw{i}z")).collect();
        keywords.push("pat".to_string());
        let kw_rules = keywords
            .iter()
            .map(|_| {
                vec![KwRule {
                    rule: 0,
                    exact: None,
                }]
            })
            .collect();
        Prefilter::build(
            &keywords,
            kw_rules,
            &[r"\b[0-9]{3}-[0-9]{4}\b".to_string()],
            vec![1],
            vec![],
        )
        .unwrap()
    }

    #[test]
    fn past_the_dfa_keyword_limit_the_nfa_walk_finds_what_the_dfa_walk_finds() {
        let small = prefilter_with_keywords(10);
        let large = prefilter_with_keywords(AC_DFA_MAX_KEYWORDS + 1);
        assert!(matches!(small.keywords, Some(Keywords::Dfa(_))));
        assert!(matches!(large.keywords, Some(Keywords::Nfa(_))));
        let (mut cs, mut cl) = (small.new_cache(), large.new_cache());
        let long = format!(
            "{} KW3Z call 555-1234 /path/kw7z {}",
            "x".repeat(90),
            "pat ".repeat(40)
        );
        for text in ["kw1z and kw9z, pat 555-1234", "nothing here", long.as_str()] {
            let (a, b) = (
                pass_hits(&small, &mut cs, text),
                pass_hits(&large, &mut cl, text),
            );
            assert_eq!(a, b, "{text}");
        }
        assert_eq!(pass_hits(&large, &mut cl, "kw1z").2, vec![(0, 4, 0)]);
    }

    #[test]
    fn a_scan_cache_made_for_another_prefilter_is_rebuilt_not_used() {
        let (one, two) = (prefilter_with_keywords(3), prefilter_with_keywords(300));
        let mut cache = two.new_cache();
        let text = format!("{} kw2z 555-1234 {}", "y".repeat(100), "z".repeat(100));
        let found = pass_hits(&one, &mut cache, &text);
        assert_eq!(found, pass_hits(&one, &mut one.new_cache(), &text));
        assert_eq!(cache.of, one.id);
        assert_eq!(found.2.len(), 1);
        assert_eq!(found.3.len(), 1);
    }

    /// Keywords (overlapping, one case-sensitive), set patterns with word
    /// boundaries and the JSON member form, built with the keywords in the
    /// set (`true`) or in their own automaton (`false`).
    fn mixed_prefilter(kw_in_set: bool) -> Prefilter {
        let keywords: Vec<String> = ["ab", "abc", "key=", "apikey=", "@", "bearer ", "tok"]
            .iter()
            .map(|k| k.to_string())
            .collect();
        let kw_rules = (0..keywords.len() as u32)
            .map(|r| {
                vec![KwRule {
                    rule: r,
                    exact: (r == 1).then(|| "ABC".into()),
                }]
            })
            .collect();
        let set_pats = [
            r"(?-u:\b)[0-9]{3}-[0-9]{4}(?-u:\b)",
            r#""[a-z_]*token\\*"\s*:"#,
            r"(?-u:\b)([0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
        ]
        .map(String::from);
        let pf = Prefilter::build_with(
            &keywords,
            kw_rules,
            &set_pats,
            vec![7, 8, 9],
            vec![],
            if kw_in_set { SET_MAX_KEYWORDS } else { 0 },
        )
        .unwrap();
        assert_eq!(pf.kw_in_set, kw_in_set);
        pf
    }

    /// `pass_hits` with 10 rules, keyword hits sorted within each end (the
    /// two ways report the keywords that end on the same byte in
    /// different orders; nothing reads that order).
    fn mixed_hits(pf: &Prefilter, cache: &mut ScanCache, text: &str, set: bool) -> Found {
        let mut got = Collected::new(10);
        let mut sink = got.sink();
        sink.set = set;
        let known = pf.pass(text, &mut sink, cache, 10);
        let mut found = got.found(known);
        assert!(
            found.2.is_sorted_by_key(|h| h.1),
            "keywords in order of end"
        );
        found
            .2
            .sort_by_key(|&(start, end, rule)| (end, start, rule));
        found
    }

    fn mixed_pieces() -> Vec<String> {
        [
            "ab",
            "AB",
            "abc",
            "ABC",
            "aBc",
            "key=",
            "KEY=",
            "apikey=",
            "ApiKey=",
            "@",
            "bearer ",
            "Bearer ",
            "tok",
            "TOK",
            "555-1234",
            "10.1.2.3",
            "\"x_token\":",
            "\"",
            " ",
            "=",
            "é",
            "0",
            "a",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "1234567890",
        ]
        .map(String::from)
        .to_vec()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// With the keywords as patterns of the set, a pass finds exactly
        /// what the keyword automaton walked beside the set finds: the same
        /// rules, keyword spans and set match ends, split walk or not,
        /// keyword-only passes too.
        #[test]
        fn keywords_in_the_set_find_what_the_keyword_automaton_finds(
            parts in proptest::collection::vec(proptest::sample::select(mixed_pieces()), 0..60),
        ) {
            let text = parts.concat();
            let (merged, apart) = (mixed_prefilter(true), mixed_prefilter(false));
            let (mut cm, mut ca) = (merged.new_cache(), apart.new_cache());
            for set in [true, false] {
                proptest::prop_assert_eq!(
                    mixed_hits(&merged, &mut cm, &text, set),
                    mixed_hits(&apart, &mut ca, &text, set),
                    "set: {}, line: {:?}", set, text
                );
            }
        }
    }

    #[test]
    fn the_reference_rules_have_their_keywords_in_the_set_and_the_library_does_not() {
        let reference = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/ruleset-reference.toml"
        ))
        .unwrap();
        assert!(compile(&reference).prefilter.kw_in_set);
        let library = &builtin_shared().prefilter;
        assert!(!library.kw_in_set);
        assert!(library.kw_lens.len() > SET_MAX_KEYWORDS);
    }

    #[test]
    fn a_line_the_set_gives_up_on_reports_each_keyword_once_with_its_span() {
        // The merged set quits on the `é` (a Unicode word boundary), after
        // it reported the first `tok`: the keyword automaton walks the
        // line again from the start and the set's keywords are dropped.
        let keywords = vec!["tok".to_string()];
        let kw_rules = vec![vec![KwRule {
            rule: 0,
            exact: None,
        }]];
        let pf = Prefilter::build(
            &keywords,
            kw_rules,
            &[r"\<zz[0-9]{4}".to_string()],
            vec![1],
            vec![],
        )
        .unwrap();
        assert!(pf.kw_in_set);
        let mut cache = pf.new_cache();
        let text = "tok1 é TOK2 zz1234 tok";
        let found = pass_hits(&pf, &mut cache, text);
        assert_eq!(found.2, vec![(0, 3, 0), (8, 11, 0), (20, 23, 0)]);
        assert_eq!((found.0, found.1), (vec![0, 1], vec![1]));
        assert!(found.3.is_empty(), "no positions for the set's matches");
        assert!(!found.4);
    }

    #[test]
    fn a_set_the_lazy_dfa_gives_up_on_falls_back_without_positions() {
        // A Unicode word boundary (rules never reach the set with one: see
        // the next test) makes the lazy DFA quit on the first non-ASCII
        // byte; the PikeVM then answers for the whole line.
        let pf =
            Prefilter::build(&[], vec![], &[r"\<zz[0-9]{4}".to_string()], vec![0], vec![]).unwrap();
        let mut cache = pf.new_cache();
        let mut got = Collected::default();
        let mut pass = |text: &str| {
            let known = pf.pass(text, &mut got.sink(), &mut cache, 1);
            (
                known,
                got.ends.len(),
                got.unkeyed.iter().collect::<Vec<_>>(),
            )
        };
        assert_eq!(pass("é zz1234"), (false, 0, vec![0]));
        assert_eq!(pass("é zz12"), (false, 0, vec![]));
        assert_eq!(pass("a zz1234"), (true, 1, vec![0]));
    }

    #[test]
    fn start_and_end_of_word_boundaries_keep_the_set_on_non_ascii_lines() {
        // `\<` and `\>` are rewritten to their ASCII forms like `\b`, so
        // a line with non-ASCII text keeps the one-pass scan with positions.
        let rs = compile(
            "[[rules]]\nid='w'\ncategory='secret'\npattern='\\<zz[0-9]{4}\\>'\n[[rules.tests]]\nhit='a zz1234'\n",
        );
        let (scan, known) = line_scan(&rs, "é zz1234");
        assert!(known);
        assert_eq!(scan.ends.len(), 1);
        assert_eq!(scan.unkeyed.iter().collect::<Vec<_>>(), vec![0]);

        let mut sc = Scratch::new(&rs);
        let mut st = Stats::new(&rs);
        let line = r#"{"a":"é zz1234","b":"é","c":"xzz1234"}"#;
        let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
        assert_eq!(
            std::str::from_utf8(out).unwrap(),
            r#"{"a":"é [REDACTED:w]","b":"é","c":"xzz1234"}"#
        );
    }

    #[test]
    fn escaped_lines_map_value_offsets_into_the_decoded_copy() {
        let rs = compile(RULES);
        let mut sc = Scratch::new(&rs);
        let mut st = Stats::new(&rs);
        // The escapes before and inside the values shift every offset of
        // the decoded copy; each value still gets its own rules only.
        let line = r#"{"m":"q\"\\\u00e9 ab12","n":"t\n555-1234","o":"ab"}"#;
        let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
        assert_eq!(
            std::str::from_utf8(out).unwrap(),
            r#"{"m":"q\"\\é [REDACTED:short]","n":"t\n[REDACTED:digits]","o":"ab"}"#
        );
        let scan = LineScan {
            map: vec![(10, 8), (20, 15)],
            ..LineScan::default()
        };
        assert_eq!(scan.to_scanned(5), 5);
        assert_eq!(scan.to_scanned(10), 8);
        assert_eq!(scan.to_scanned(19), 17);
        assert_eq!(scan.to_scanned(25), 20);
    }
}
