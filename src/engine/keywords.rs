//! The keyword automaton as the prefilter's walk reads it.
//!
//! [`KwAutomaton`] is the little the joint walk in `scan.rs` needs of a
//! keyword automaton: the next state, whether it is a match, and the
//! keywords that end there. Three kinds implement it:
//!
//! - [`KwDfa`], for the usual few hundred keywords: a copy of
//!   `aho-corasick`'s DFA in a layout made for that loop. The library's
//!   DFA is built first and stays the authority; the copy only re-lays its
//!   transitions out. Why a copy at all: the library's `next_state` is a
//!   bounds-checked load and its "is this state special" test a separate
//!   compare against a bound held in memory, and the joint walk's inner
//!   loop (four chains of loads in flight, see `scan::quiet_pair`) is
//!   bound by the instructions it runs, not by load latency. The copy puts the match flag into the transition itself (bit
//!   31), so "did a keyword end here" is a test of the loaded value.
//!   Measured with callgrind (instructions per 20,000 clean corpus lines,
//!   built-in library, startup taken out): 239.0M with the library's DFA,
//!   219.0M with the copy, 192.4M with the copy and both automata stepped
//!   unchecked in the inner loops (-19.5% in all).
//! - [`KwLib`], for very large keyword sets: the library's contiguous NFA
//!   as it is (a DFA of thousands of keywords grows faster than its speed
//!   pays back).
//! - [`NoKw`], no automaton at all, for a few dozen keywords that are
//!   patterns of the set's lazy DFA instead (the walk then steps one
//!   automaton; see `scan::Prefilter::build`).
//!
//! The copy is also what lets the inner loop skip the bounds check
//! ([`KwAutomaton::next_unchecked`]): every entry of its table was checked
//! when it was built to be a state from which every class stays inside the
//! table, so a state that came out of the table can index it unchecked.
//!
//! States are `u32` in both: for `KwDfa` an offset into its table, for
//! `KwLib` the library's own state id. The value [`KwAutomaton::next`]
//! returns carries [`MATCH`] when the state is a match state; the walk keeps
//! [`KwAutomaton::unflag`]ged states and never passes a flagged one back.

use aho_corasick::Anchored;
use aho_corasick::automaton::{Automaton, StateID};

/// Set in a transition that enters a match state.
pub(crate) const MATCH: u32 = 1 << 31;

/// What the prefilter's walk needs of a keyword automaton.
pub(crate) trait KwAutomaton {
    /// The unanchored start state.
    fn start(&self) -> u32;
    /// The state after byte `b` from the (unflagged) state `s`, with
    /// [`MATCH`] set when it is a match state.
    fn next(&self, s: u32, b: u8) -> u32;
    /// [`Self::next`] without the bounds check, for the walk's inner loop.
    ///
    /// # Safety
    ///
    /// `s` must be a state of this automaton: its [`Self::start`], or a
    /// value one of its `next` calls returned, [`Self::unflag`]ged.
    #[inline(always)]
    unsafe fn next_unchecked(&self, s: u32, b: u8) -> u32 {
        self.next(s, b)
    }
    /// `next`'s value without its flag: the state to go on from.
    #[inline(always)]
    fn unflag(&self, e: u32) -> u32 {
        e & !MATCH
    }
    /// Calls `f(keyword index, keyword length)` for every keyword that ends
    /// on entering the (unflagged) match state `s`.
    fn matches(&self, s: u32, f: impl FnMut(usize, usize));
}

/// Whether a value `next` returned is a match state.
#[inline(always)]
pub(crate) fn is_match(e: u32) -> bool {
    e & MATCH != 0
}

/// The library's DFA re-laid out: `trans[s + class[b]]` is the next state
/// of state `s` (a multiple of `stride`) on byte `b`.
#[derive(Debug)]
pub(crate) struct KwDfa {
    classes: [u8; 256],
    stride: u32,
    trans: Box<[u32]>,
    start: u32,
    /// For state number `s / stride`, its keywords are
    /// `match_pids[match_at[n]..match_at[n + 1]]`.
    match_at: Box<[u32]>,
    match_pids: Box<[u32]>,
    /// Length of each keyword.
    pattern_lens: Box<[u32]>,
}

impl KwDfa {
    /// The copy of `dfa`, built for `keywords` (the lower-cased keywords
    /// `dfa` was built from, ASCII case folded). `None` when the layout
    /// cannot hold it (more than 2^31 transitions, a start state that is a
    /// match): the caller keeps using the library.
    ///
    /// Bytes are grouped into classes by what the keywords say of them (a
    /// byte in no keyword behaves like every other such byte, an ASCII
    /// letter like its other case); every state's transition on every
    /// byte is then checked against the library's, so a class that the
    /// automaton tells apart is caught here, not in a walk.
    pub(crate) fn build(dfa: &aho_corasick::dfa::DFA, keywords: &[String]) -> Option<KwDfa> {
        let lib_start = dfa.start_state(Anchored::No).ok()?;
        if dfa.is_match(lib_start) {
            return None;
        }
        let (classes, reps) = byte_classes(keywords);
        let stride = reps.len();
        // Number the library's states in the order a breadth-first walk
        // from the start reaches them.
        // (A table indexed by the library's state ids, which are offsets
        // into its own transition table: a hash map here cost more than
        // building the library's DFA.)
        const NONE: u32 = u32::MAX;
        let mut number: Vec<u32> = Vec::new();
        let mut order = vec![lib_start];
        let assign = |number: &mut Vec<u32>, s: StateID, n: u32| -> bool {
            if number.len() <= s.as_usize() {
                number.resize(s.as_usize() + 1, NONE);
            }
            if number[s.as_usize()] == NONE {
                number[s.as_usize()] = n;
                true
            } else {
                false
            }
        };
        assign(&mut number, lib_start, 0);
        let mut at = 0;
        while let Some(&s) = order.get(at) {
            at += 1;
            for &b in &reps {
                let n = dfa.next_state(Anchored::No, s, b);
                if assign(&mut number, n, u32::try_from(order.len()).ok()?) {
                    order.push(n);
                }
            }
        }
        let total = order.len().checked_mul(stride)?;
        if u32::try_from(total).ok()? >= MATCH {
            return None;
        }
        let offset = |s: StateID| {
            let n = *number.get(s.as_usize())?;
            (n != NONE).then_some(n * stride as u32)
        };
        let mut trans = vec![0u32; total];
        let mut match_at = Vec::with_capacity(order.len() + 1);
        let mut match_pids = Vec::new();
        for (n, &s) in order.iter().enumerate() {
            for (c, &b) in reps.iter().enumerate() {
                let next = dfa.next_state(Anchored::No, s, b);
                trans[n * stride + c] = offset(next)? | if dfa.is_match(next) { MATCH } else { 0 };
            }
            // Every other byte of a class must go where its representative
            // goes.
            for b in 0..=255u8 {
                let c = usize::from(classes[usize::from(b)]);
                let next = dfa.next_state(Anchored::No, s, b);
                let e = offset(next)? | if dfa.is_match(next) { MATCH } else { 0 };
                if trans[n * stride + c] != e {
                    return None;
                }
            }
            match_at.push(u32::try_from(match_pids.len()).ok()?);
            if dfa.is_match(s) {
                for k in 0..dfa.match_len(s) {
                    match_pids.push(dfa.match_pattern(s, k).as_u32());
                }
            }
        }
        match_at.push(u32::try_from(match_pids.len()).ok()?);
        // What `next_unchecked` relies on, checked once for every entry.
        let in_bounds = |e: &u32| (e & !MATCH) as usize + stride <= trans.len();
        if !trans.iter().all(in_bounds) || classes.iter().any(|&c| usize::from(c) >= stride) {
            return None;
        }
        let pattern_lens = (0..dfa.patterns_len())
            .map(|p| {
                let pid = aho_corasick::PatternID::new(p).ok()?;
                u32::try_from(dfa.pattern_len(pid)).ok()
            })
            .collect::<Option<Box<[u32]>>>()?;
        Some(KwDfa {
            classes,
            stride: stride as u32,
            trans: trans.into_boxed_slice(),
            start: 0,
            match_at: match_at.into_boxed_slice(),
            match_pids: match_pids.into_boxed_slice(),
            pattern_lens,
        })
    }
}

/// Byte classes for an ASCII case-insensitive keyword automaton over
/// `keywords`: one class per distinct (case folded) keyword byte, and one
/// for all other bytes. Returns the map and each class's representative.
fn byte_classes(keywords: &[String]) -> ([u8; 256], Vec<u8>) {
    let mut used = [false; 256];
    for k in keywords {
        for b in k.bytes() {
            used[usize::from(b.to_ascii_lowercase())] = true;
        }
    }
    let mut classes = [0u8; 256];
    // Class 0: bytes in no keyword (represented by the first such byte).
    let other = (0..=255u8).find(|&b| !used[usize::from(b.to_ascii_lowercase())]);
    let mut reps = vec![other.unwrap_or(0)];
    for b in 0..=255u8 {
        let f = b.to_ascii_lowercase();
        if !used[usize::from(f)] {
            continue;
        }
        if f != b {
            continue; // an upper-case letter: filled from its lower case below
        }
        classes[usize::from(b)] = reps.len() as u8;
        reps.push(b);
    }
    for b in b'A'..=b'Z' {
        classes[usize::from(b)] = classes[usize::from(b.to_ascii_lowercase())];
    }
    (classes, reps)
}

impl KwAutomaton for KwDfa {
    #[inline(always)]
    fn start(&self) -> u32 {
        self.start
    }

    #[inline(always)]
    fn next(&self, s: u32, b: u8) -> u32 {
        self.trans[(s + u32::from(self.classes[usize::from(b)])) as usize]
    }

    #[inline(always)]
    unsafe fn next_unchecked(&self, s: u32, b: u8) -> u32 {
        let i = (s + u32::from(self.classes[usize::from(b)])) as usize;
        debug_assert!(i < self.trans.len());
        // SAFETY: a state of this automaton is `n * stride` for one of its
        // `n_states` states, and a class is below `stride` (`build` checks
        // both), so `i < n_states * stride == trans.len()`.
        unsafe { *self.trans.get_unchecked(i) }
    }

    fn matches(&self, s: u32, mut f: impl FnMut(usize, usize)) {
        let n = (s / self.stride) as usize;
        let (Some(&lo), Some(&hi)) = (self.match_at.get(n), self.match_at.get(n + 1)) else {
            return;
        };
        for &p in self
            .match_pids
            .get(lo as usize..hi as usize)
            .unwrap_or_default()
        {
            let len = self.pattern_lens.get(p as usize).copied().unwrap_or(0);
            f(p as usize, len as usize);
        }
    }
}

/// No keyword automaton: what the walk steps in its place when the
/// keywords are patterns of the set itself (see `scan::Prefilter::build`,
/// "keywords in the set"). Every step is the constant 0 and never a match,
/// so once the walk is monomorphised for it the keyword chain's loads and
/// tests are gone from the loop.
#[derive(Debug)]
pub(crate) struct NoKw;

impl KwAutomaton for NoKw {
    #[inline(always)]
    fn start(&self) -> u32 {
        0
    }
    #[inline(always)]
    fn next(&self, _: u32, _: u8) -> u32 {
        0
    }
    fn matches(&self, _: u32, _: impl FnMut(usize, usize)) {}
}

/// The library's automaton used as it is, for keyword sets too large for
/// a DFA.
#[derive(Debug)]
pub(crate) struct KwLib<A> {
    automaton: A,
    start: StateID,
}

impl<A: Automaton> KwLib<A> {
    pub(crate) fn new(automaton: A) -> Result<KwLib<A>, aho_corasick::MatchError> {
        let start = automaton.start_state(Anchored::No)?;
        Ok(KwLib { automaton, start })
    }
}

impl<A: Automaton> KwAutomaton for KwLib<A> {
    fn start(&self) -> u32 {
        self.start.as_u32()
    }

    #[inline(always)]
    fn next(&self, s: u32, b: u8) -> u32 {
        let a = &self.automaton;
        let n = a.next_state(Anchored::No, StateID::new_unchecked(s as usize), b);
        if a.is_special(n) && a.is_match(n) {
            n.as_u32() | MATCH
        } else {
            n.as_u32()
        }
    }

    fn matches(&self, s: u32, mut f: impl FnMut(usize, usize)) {
        let a = &self.automaton;
        let sid = StateID::new_unchecked(s as usize);
        for k in 0..a.match_len(sid) {
            let pid = a.match_pattern(sid, k);
            f(pid.as_usize(), a.pattern_len(pid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib_dfa(keywords: &[&str]) -> aho_corasick::dfa::DFA {
        let kws: Vec<String> = keywords.iter().map(|k| k.to_string()).collect();
        let nfa = aho_corasick::nfa::noncontiguous::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(aho_corasick::MatchKind::Standard)
            .prefilter(false)
            .build(&kws)
            .unwrap();
        aho_corasick::dfa::Builder::new()
            .prefilter(false)
            .build_from_noncontiguous(&nfa)
            .unwrap()
    }

    /// Every (end, keyword) the automaton reports over `text`.
    fn occurrences(k: &impl KwAutomaton, text: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let mut s = k.start();
        for (i, &b) in text.iter().enumerate() {
            let e = k.next(s, b);
            s = k.unflag(e);
            if is_match(e) {
                k.matches(s, |p, len| out.push((i + 1 - len, i + 1, p)));
            }
        }
        out
    }

    #[test]
    fn the_copy_reports_exactly_what_the_library_automaton_reports() {
        let kws = ["pat", "path", "token", "AKIA", "://", "@", "a_b", "secret"];
        let owned: Vec<String> = kws.iter().map(|k| k.to_ascii_lowercase()).collect();
        let lib = lib_dfa(&kws);
        let copy = KwDfa::build(&lib, &owned).expect("the layout holds a small automaton");
        let nfa = aho_corasick::nfa::noncontiguous::Builder::new()
            .ascii_case_insensitive(true)
            .build(&owned)
            .unwrap();
        let contiguous = aho_corasick::nfa::contiguous::Builder::new()
            .build_from_noncontiguous(&nfa)
            .unwrap();
        let lib = KwLib::new(contiguous).unwrap();
        let text = b"GET /PATH?Token=x https://u:p@h akia SeCrEt a_b pat\xff\x00path";
        let want = occurrences(&lib, text);
        assert_eq!(occurrences(&copy, text), want);
        // Overlapping keywords are all reported (`pat` inside `path`).
        assert!(want.iter().filter(|o| o.2 == 0).count() >= 2);
        assert!(want.iter().any(|o| o.2 == 1));
    }

    #[test]
    fn bytes_in_no_keyword_share_one_class_and_letters_fold() {
        let (classes, reps) = byte_classes(&["ab".to_string(), "c:".to_string()]);
        assert_eq!(reps.len(), 5);
        assert_eq!(classes[usize::from(b'A')], classes[usize::from(b'a')]);
        assert_eq!(classes[usize::from(b'z')], classes[0xff]);
        assert_ne!(classes[usize::from(b':')], classes[usize::from(b';')]);
    }
}
