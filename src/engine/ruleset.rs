//! Compiling rule specs into a [`Ruleset`]: the immutable object the hot path
//! reads.
//!
//! Compilation does every expensive thing once: regexes are built, keywords
//! go into one Aho-Corasick automaton, rules without keywords go into one
//! multi-pattern lazy DFA (the two are walked together in one pass over a
//! line, see `scan.rs`, so a clean line costs one scan whatever the
//! number of rules), and field-name rules go into a hash index.

use std::collections::HashMap;

use super::RuleError;
use super::action::HashKey;
pub(crate) use super::scan::{KwRule, LineScan, Prefilter, ScanCache, Sink};
use super::spec::{ActionKind, Category, GroupSpec, PatternEngine, RuleFile, Source, TestSpec};
use super::validate::Validator;

/// Default backtrack limit suggested in messages; fancy rules must set one.
pub const SUGGESTED_BACKTRACK_LIMIT: usize = 100_000;

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub category: Category,
    pub action: ActionKind,
    pub keep_last: usize,
    /// The text a `mask` (and `drop` in text) puts in place of the value.
    pub mask: String,
    /// Literals; the pattern only runs where one occurs.
    pub keywords: Vec<String>,
    /// Keywords match exactly as written (provider prefixes such as `SG.`
    /// or `sk_live_` are case-sensitive by their spec); default: ignore
    /// ASCII case.
    pub keywords_case_sensitive: bool,
    /// Field names as written (`set-cookie`, `*password*`).
    pub keys: Vec<String>,
    pub pattern: Option<String>,
    pub engine: PatternEngine,
    pub(crate) matcher: LazyMatcher,
    pub(crate) group: Group,
    pub(crate) validator: Option<Validator>,
    /// The fewest bytes a match of `pattern` takes (0 when not known): a
    /// shorter text is not searched at all (`path` holds the keyword `pat`
    /// of a rule whose matches are 82 bytes long).
    pub(crate) min_len: usize,
    /// The pattern asserts a start or end of text or line (`^`, `$`), so a
    /// match in a value need not be a match in the line around it (true
    /// when not known).
    pub(crate) anchored: bool,
    /// What stands for this rule in the multi-pattern set when it is not
    /// just its pattern (field-name rules: the JSON member form only).
    pub(crate) set_pattern: Option<String>,
    pub tests: Vec<TestSpec>,
    /// `file:line` of the rule's `id`, for messages.
    pub origin: String,
}

#[derive(Debug)]
pub(crate) enum Matcher {
    Std(regex::Regex),
    Fancy(fancy_regex::Regex),
}

/// A rule's regex, compiled up front or on first use.
///
/// Why on first use: compiling the built-in library's ~220 regexes was
/// three quarters of the agent's start-up (callgrind: 243 M of the 300 M
/// instructions before the first line; again at each hot reload), while a
/// log stream wakes a handful of them. `redactd </dev/null` on the 2-core
/// bench machine, best of 10: 33 ms before, 13 ms deferred.
/// Only the built-in library is deferred: its exact text is what the test
/// suite compiles rule by rule, so its regexes are known to build. A user's
/// rule file is compiled whole at load, so a bad pattern is an error before
/// any output. Should a deferred regex still fail to build, [`LazyMatcher::get`]
/// gives `None` and the rule fails closed wherever it runs.
///
/// Shared with the rule's copies in one-rule rulesets (`Ruleset::only`,
/// which the rule tests of a reload run), so a regex built there is the one
/// the ruleset then runs, not built a second time.
#[derive(Debug)]
pub(crate) struct LazyMatcher(std::sync::Arc<Deferred>);

#[derive(Debug)]
struct Deferred {
    /// What to compile (with ASCII word boundaries); empty when compiled
    /// up front.
    pattern: Box<str>,
    cell: std::sync::OnceLock<Option<Matcher>>,
}

impl LazyMatcher {
    fn ready(m: Matcher) -> LazyMatcher {
        LazyMatcher(std::sync::Arc::new(Deferred {
            pattern: "".into(),
            cell: std::sync::OnceLock::from(Some(m)),
        }))
    }

    fn deferred(pattern: &str) -> LazyMatcher {
        LazyMatcher(std::sync::Arc::new(Deferred {
            pattern: pattern.into(),
            cell: std::sync::OnceLock::new(),
        }))
    }

    /// The regex, compiled now if it was deferred; `None` if that failed.
    pub(crate) fn get(&self) -> Option<&Matcher> {
        let d = &*self.0;
        d.cell
            .get_or_init(|| compile_std(&d.pattern).ok().map(Matcher::Std))
            .as_ref()
    }

    /// Whether the regex has been compiled (for tests of the deferral).
    #[cfg(test)]
    pub(crate) fn is_compiled(&self) -> bool {
        self.0.cell.get().is_some()
    }

    /// The same regex for another ruleset (built once for both).
    fn duplicate(&self) -> LazyMatcher {
        LazyMatcher(std::sync::Arc::clone(&self.0))
    }
}

/// Compiles a `regex`-engine pattern as every rule's is compiled.
fn compile_std(pattern: &str) -> Result<regex::Regex, String> {
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 24)
        .build()
        .map_err(|e| format!("invalid pattern: {e}"))?;
    if re.is_match("") {
        return Err("pattern matches the empty string".into());
    }
    Ok(re)
}

/// The index of the capture group named `name` in `h`.
fn named_capture(h: &regex_syntax::hir::Hir, name: &str) -> Option<usize> {
    use regex_syntax::hir::HirKind;
    match h.kind() {
        HirKind::Capture(c) if c.name.as_deref() == Some(name) => Some(c.index as usize),
        HirKind::Capture(c) => named_capture(&c.sub, name),
        HirKind::Repetition(r) => named_capture(&r.sub, name),
        HirKind::Concat(hs) | HirKind::Alternation(hs) => {
            hs.iter().find_map(|h| named_capture(h, name))
        }
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => None,
    }
}

/// Which span of a match is the value to redact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Group {
    Whole,
    Index(usize),
    /// The first capture group that took part in the match: used by the
    /// patterns derived from `keys`, which have one group per alternative.
    FirstParticipating,
    /// The value of a `keys` rule's text match, found by the match's shape
    /// (see [`key_value_span`]) instead of by capture groups. Used when the
    /// names hold no quote, `=` or `:`, which is what makes the shape
    /// unambiguous.
    KeyValue,
}

/// Compile-time options.
#[derive(Debug, Default, Clone)]
pub struct CompileOptions {
    /// Key for `hash` actions. `None` makes a random per-process key
    /// (tokens then correlate within one run only).
    pub hash_key: Option<Vec<u8>>,
    /// Per-line time budget (per MiB for lines over 1 MiB); `None`: none.
    pub time_budget: Option<std::time::Duration>,
}

/// The compiled, immutable rule set.
#[derive(Debug)]
pub struct Ruleset {
    pub(crate) rules: Vec<Rule>,
    pub(crate) prefilter: Prefilter,
    pub(crate) keys: KeyIndex,
    pub(crate) hash_key: HashKey,
    /// True when some rule without keywords is anchored (`^`, `$`): then a
    /// raw JSON line's scan is no superset of its values' scans, and the
    /// skip-the-parse fast path is off.
    pub(crate) raw_scan_is_superset: bool,
    /// Rules whose match includes a name before the secret (they replace a
    /// capture group, not the whole match): only these need to see a JSON
    /// member's name next to its value.
    pub(crate) context_rules: RuleBits,
    /// Rules with field names (`keys`). Each has its names in the pattern
    /// set as JSON members, so a line whose scan found none of them holds
    /// no member that the name lookup would match (the walk skips it).
    pub(crate) key_rules: RuleBits,
    pub(crate) time_budget: Option<std::time::Duration>,
    /// Tells this ruleset from every other one built in the process, so a
    /// thread's scratch space is never used with rules it was not made
    /// for (`Ruleset::adopt`).
    pub(crate) id: u64,
}

/// One thread's copies of a ruleset's regexes, each made when the thread
/// first runs its rule.
///
/// Why: `regex::Regex` (and `fancy_regex`, which wraps the same engine)
/// keeps its search caches in a pool whose fast path belongs to the first
/// thread that searched with it; every other thread locks a mutex to take
/// a cache and again to give it back (`perf`, `--threads 2` on the 100 MB
/// corpus: `Pool::get_slow` and `put_value` were 0.9% of the run), and
/// reads the pool's owner word, which sits next to the cache the owner
/// writes as it searches. A clone has a pool of its own (the compiled
/// program is shared), so each worker's scratch space holds clones and
/// every thread owns its copies.
///
/// Beside each regex, the capture slots its group rules search with, made
/// once and reused: `captures_iter` allocates a set of slots per search
/// and copies it per match (`create_captures` alone was 1% of a run over
/// the corpus's clean text lines, `perf`, reference rules).
#[derive(Debug)]
pub(crate) struct Matchers {
    each: Vec<std::cell::OnceCell<Option<Matcher>>>,
    locs: Vec<std::cell::RefCell<Option<regex::CaptureLocations>>>,
}

impl Matchers {
    pub(crate) fn new(rules: &Ruleset) -> Matchers {
        Matchers {
            each: rules.rules.iter().map(|_| Default::default()).collect(),
            locs: rules.rules.iter().map(|_| Default::default()).collect(),
        }
    }

    /// This thread's capture slots for rule `r`, whose regex is `re`.
    /// `None` when they are in use (never, as searches do not nest) or the
    /// rule is not this ruleset's.
    pub(crate) fn capture_locations(
        &self,
        r: u32,
        re: &regex::Regex,
    ) -> Option<std::cell::RefMut<'_, regex::CaptureLocations>> {
        let slot = self.locs.get(r as usize)?.try_borrow_mut().ok()?;
        Some(std::cell::RefMut::map(slot, |s| {
            s.get_or_insert_with(|| re.capture_locations())
        }))
    }
}

/// A process-wide counter for [`Ruleset::id`].
static NEXT_RULESET_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Normalised field names to rules.
#[derive(Debug, Default)]
pub(crate) struct KeyIndex {
    exact: HashMap<String, u32, foldhash::fast::RandomState>,
    /// `(pieces between '*', starts with '*', ends with '*', rule)`.
    globs: Vec<(Vec<String>, bool, bool, u32)>,
}

/// A set of rule indices, as a bitset. Reused across lines (no allocation
/// once warm).
#[derive(Debug, Default, Clone)]
pub struct RuleBits(Vec<u64>);

impl RuleBits {
    pub fn reset(&mut self, n: usize) {
        self.0.clear();
        self.0.resize(n.div_ceil(64), 0);
    }
    pub fn insert(&mut self, i: u32) {
        let i = i as usize;
        self.0[i / 64] |= 1 << (i % 64);
    }
    pub fn contains(&self, i: u32) -> bool {
        let i = i as usize;
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    pub fn union_with(&mut self, o: &RuleBits) {
        if self.0.len() < o.0.len() {
            self.0.resize(o.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    /// Makes `self` a copy of `o` without reallocating.
    pub fn copy_from(&mut self, o: &RuleBits) {
        self.0.clear();
        self.0.extend_from_slice(&o.0);
    }
    pub fn intersect_with(&mut self, o: &RuleBits) {
        for (i, a) in self.0.iter_mut().enumerate() {
            *a &= o.0.get(i).copied().unwrap_or(0);
        }
    }
    pub fn intersects(&self, o: &RuleBits) -> bool {
        self.0.iter().zip(&o.0).any(|(a, b)| a & b != 0)
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    /// Set members in ascending order (rule order = priority order).
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some((wi * 64) as u32 + b)
            })
        })
    }
}

impl Ruleset {
    /// Compiles rule sources. Every problem in every file is collected, so
    /// one run of `rules lint` shows them all, in file order.
    pub fn compile(sources: &[Source], opts: &CompileOptions) -> Result<Ruleset, RuleError> {
        // Problems carry the position of what they are about, so those found
        // while reading the files and those of the rule compiler come out in
        // file order.
        let mut problems: Vec<(usize, RuleError)> = Vec::new();
        let mut jobs: Vec<Job> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        let lines: Vec<_> = sources.iter().map(Source::line_index).collect();
        let mut seq = 0usize;
        for (si, src) in sources.iter().enumerate() {
            seq += 1;
            let file: RuleFile = match src.parse() {
                Ok(f) => f,
                Err(e) => {
                    problems.push((seq, e));
                    continue;
                }
            };
            for spec in file.rules {
                seq += 1;
                let line = lines[si].line_of(spec.id.span().start);
                let origin = format!("{}:{}", src.name, line);
                let id = spec.id.get_ref().clone();
                if let Some(prev) = seen.get(&id) {
                    problems.push((
                        seq,
                        RuleError::Invalid {
                            origin: origin.clone(),
                            id: id.clone(),
                            message: format!("duplicate rule id (first defined at {prev})"),
                        },
                    ));
                    continue;
                }
                seen.insert(id.clone(), origin.clone());
                if !spec.enabled {
                    continue;
                }
                jobs.push(Job {
                    seq,
                    spec,
                    source: si,
                    origin,
                });
            }
        }
        let mut rules = Vec::with_capacity(jobs.len());
        for (seq, r) in compile_all(jobs, sources, &lines) {
            match r {
                Ok(r) => rules.push(r),
                Err(e) => problems.push((seq, e)),
            }
        }
        if !problems.is_empty() {
            problems.sort_by_key(|p| p.0);
            return Err(RuleError::Many(problems.into_iter().map(|p| p.1).collect()));
        }
        Self::from_rules(rules, opts)
    }

    /// Builds the indices over already compiled rules.
    pub(crate) fn from_rules(
        rules: Vec<Rule>,
        opts: &CompileOptions,
    ) -> Result<Ruleset, RuleError> {
        let mut ac_pats: Vec<String> = Vec::new();
        let mut ac_index: HashMap<String, usize> = HashMap::new();
        let mut ac_rules: Vec<Vec<KwRule>> = Vec::new();
        let mut set_pats: Vec<String> = Vec::new();
        let mut set_rules = Vec::new();
        let mut always = Vec::new();
        let mut keys = KeyIndex::default();
        let mut raw_scan_is_superset = true;
        let mut context_rules = RuleBits::default();
        context_rules.reset(rules.len());
        let mut key_rules = RuleBits::default();
        key_rules.reset(rules.len());
        for (i, r) in rules.iter().enumerate() {
            if r.group != Group::Whole {
                context_rules.insert(i as u32);
            }
            if !r.keys.is_empty() {
                key_rules.insert(i as u32);
            }
        }
        for (i, r) in rules.iter().enumerate() {
            let i = i as u32;
            for k in &r.keys {
                keys.insert(k, i);
            }
            for kw in &r.keywords {
                let norm = kw.to_ascii_lowercase();
                let slot = *ac_index.entry(norm.clone()).or_insert_with(|| {
                    ac_pats.push(norm);
                    ac_rules.push(Vec::new());
                    ac_pats.len() - 1
                });
                let exact = r
                    .keywords_case_sensitive
                    .then(|| kw.clone().into_boxed_str());
                let kr = KwRule { rule: i, exact };
                if !ac_rules[slot].contains(&kr) {
                    ac_rules[slot].push(kr);
                }
            }
            let set_pat = match (&r.set_pattern, r.engine, &r.pattern) {
                (Some(p), _, _) => Some(p.clone()),
                (None, PatternEngine::Regex, Some(p)) if r.keywords.is_empty() => Some(p.clone()),
                _ => None,
            };
            if let Some(p) = set_pat {
                let p = ascii_word_boundaries(&p);
                if is_anchored(&p) {
                    raw_scan_is_superset = false;
                }
                set_pats.push(p);
                set_rules.push(i);
            } else if r.keywords.is_empty() {
                always.push(i);
            }
            if !r.keys.is_empty() && r.set_pattern.is_none() {
                // A field-name rule with a pattern of its own: the scan
                // looks for its names too, or a JSON line whose only hit
                // is such a member would skip the walk that redacts it.
                set_pats.push(key_set_pattern(&r.keys));
                set_rules.push(i);
            }
        }
        let prefilter = Prefilter::build(&ac_pats, ac_rules, &set_pats, set_rules, always)?;
        Ok(Ruleset {
            rules,
            prefilter,
            keys,
            hash_key: HashKey::new(opts.hash_key.clone()),
            time_budget: opts.time_budget,
            raw_scan_is_superset,
            context_rules,
            key_rules,
            id: NEXT_RULESET_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Rule `r`'s regex: the calling thread's copy in `m` (which was made
    /// from this ruleset: the scratch that holds it is rebuilt for another,
    /// see `Ruleset::adopt`). `None`: it failed to compile (the rule fails
    /// closed).
    pub(crate) fn matcher<'a>(&'a self, r: u32, m: &'a Matchers) -> Option<&'a Matcher> {
        let shared = || self.rules[r as usize].matcher.get();
        match m.each.get(r as usize) {
            Some(own) => own.get_or_init(|| shared().cloned()).as_ref(),
            None => shared(),
        }
    }

    /// The compiled rules, in priority order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The index of the rule with this id.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// A ruleset of just one of this set's rules (for its test cases).
    pub fn only(&self, idx: usize) -> Result<Ruleset, RuleError> {
        let r = &self.rules[idx];
        let rule = Rule {
            id: r.id.clone(),
            description: r.description.clone(),
            category: r.category,
            action: r.action,
            keep_last: r.keep_last,
            mask: r.mask.clone(),
            keywords: r.keywords.clone(),
            keywords_case_sensitive: r.keywords_case_sensitive,
            keys: r.keys.clone(),
            pattern: r.pattern.clone(),
            engine: r.engine,
            matcher: r.matcher.duplicate(),
            group: r.group,
            validator: r.validator,
            min_len: r.min_len,
            anchored: r.anchored,
            set_pattern: r.set_pattern.clone(),
            tests: r.tests.clone(),
            origin: r.origin.clone(),
        };
        Self::from_rules(
            vec![rule],
            &CompileOptions {
                hash_key: Some(self.hash_key.bytes().to_vec()),
                time_budget: self.time_budget,
            },
        )
    }

    /// Fills `out` with the rules worth running on `text`: rules whose
    /// keyword occurs, rules of the multi-pattern set that match somewhere,
    /// and the always-run rules.
    pub(crate) fn candidates(&self, text: &str, out: &mut RuleBits, cache: &mut ScanCache) {
        let mut sink = Sink {
            all: out,
            set: true,
            unkeyed: None,
            kw: None,
            ends: None,
        };
        self.prefilter
            .pass(text, &mut sink, cache, self.rules.len());
    }

    /// Scans a whole line once: see [`LineScan`].
    pub(crate) fn scan_line(
        &self,
        text: &str,
        positional: bool,
        scan: &mut LineScan,
        cache: &mut ScanCache,
    ) {
        scan.positional = positional;
        let mut sink = Sink {
            all: &mut scan.all,
            set: true,
            unkeyed: Some(&mut scan.unkeyed),
            kw: Some(&mut scan.kw),
            ends: Some(&mut scan.ends),
        };
        scan.ends_known = self
            .prefilter
            .pass(text, &mut sink, cache, self.rules.len());
    }

    /// Fills `out` with the rules whose keyword occurs in `text` (only).
    pub(crate) fn keyword_candidates(&self, text: &str, out: &mut RuleBits, cache: &mut ScanCache) {
        let mut sink = Sink {
            all: out,
            set: false,
            unkeyed: None,
            kw: None,
            ends: None,
        };
        self.prefilter
            .pass(text, &mut sink, cache, self.rules.len());
    }

    /// Per-thread search state for this ruleset's prefilter.
    pub(crate) fn new_scan_cache(&self) -> ScanCache {
        self.prefilter.new_cache()
    }

    /// True when some rule matches field names.
    pub(crate) fn has_key_rules(&self) -> bool {
        !(self.keys.exact.is_empty() && self.keys.globs.is_empty())
    }

    /// [`Ruleset::key_rule`] through the thread's cache of field names:
    /// the same few dozen names come back on every line, and one hash of
    /// the raw name is far cheaper than normalizing it and trying the
    /// globs. Bounded: cleared when it holds [`KEY_CACHE_MAX`] names.
    pub(crate) fn key_rule_cached(&self, key: &str, sc: &mut super::Scratch) -> Option<u32> {
        if !self.has_key_rules() {
            return None;
        }
        if let Some(&r) = sc.key_cache.get(key) {
            return r;
        }
        let r = self.key_rule(key, &mut sc.keybuf);
        if sc.key_cache.len() >= KEY_CACHE_MAX {
            sc.key_cache.clear();
        }
        sc.key_cache.insert(key.into(), r);
        r
    }

    /// The rule that applies to a field name, if any. `buf` is scratch.
    pub(crate) fn key_rule(&self, key: &str, buf: &mut String) -> Option<u32> {
        if !self.has_key_rules() {
            return None;
        }
        normalize_key(key, buf);
        if let Some(&r) = self.keys.exact.get(buf.as_str()) {
            return Some(r);
        }
        self.keys
            .globs
            .iter()
            .find(|(pieces, open_start, open_end, _)| {
                glob_match(buf, pieces, *open_start, *open_end)
            })
            .map(|g| g.3)
    }
}

impl Clone for Matcher {
    fn clone(&self) -> Self {
        match self {
            Matcher::Std(r) => Matcher::Std(r.clone()),
            Matcher::Fancy(r) => Matcher::Fancy(r.clone()),
        }
    }
}

impl KeyIndex {
    fn insert(&mut self, key: &str, rule: u32) {
        let mut norm = String::new();
        normalize_key(key, &mut norm);
        if norm.contains('*') {
            let pieces: Vec<String> = norm
                .split('*')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            self.globs
                .push((pieces, norm.starts_with('*'), norm.ends_with('*'), rule));
        } else {
            self.exact.entry(norm).or_insert(rule);
        }
    }
}

/// Field names a thread remembers the rule of (see
/// [`Ruleset::key_rule_cached`]).
pub(crate) const KEY_CACHE_MAX: usize = 4096;

/// Lower-cases ASCII and drops `-`, `_`, `.` and spaces, so `Set-Cookie`,
/// `set_cookie` and `setcookie` are one name.
pub(crate) fn normalize_key(key: &str, out: &mut String) {
    out.clear();
    for c in key.chars() {
        match c {
            '-' | '_' | '.' | ' ' => {}
            c => out.push(c.to_ascii_lowercase()),
        }
    }
}

fn glob_match(s: &str, pieces: &[String], open_start: bool, open_end: bool) -> bool {
    let mut rest = s;
    for (i, p) in pieces.iter().enumerate() {
        if i == 0 && !open_start {
            match rest.strip_prefix(p.as_str()) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == pieces.len() - 1 && !open_end {
            return rest.ends_with(p.as_str());
        } else {
            match rest.find(p.as_str()) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    open_end || rest.is_empty()
}

/// Rewrites the word boundaries `\b`, `\B`, `\<`, `\>` (and `\b{start}`
/// and the other braced forms) outside character classes to their ASCII
/// forms.
///
/// Why: a Unicode word boundary makes regex's lazy DFA give up on any
/// non-ASCII byte and fall back to a much slower engine. Log lines carry
/// non-ASCII often enough that this matters, and every secret format we
/// match is ASCII.
pub(crate) fn ascii_word_boundaries(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 16);
    let mut chars = p.chars().peekable();
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('b' | 'B' | '<' | '>')) if class_depth == 0 => {
                    out.push_str("(?-u:\\");
                    out.push(n);
                    // `\b{start}`, `\b{end}`, ...: the braces belong to it.
                    if n == 'b' && chars.peek() == Some(&'{') {
                        for c in chars.by_ref() {
                            out.push(c);
                            if c == '}' {
                                break;
                            }
                        }
                    }
                    out.push(')');
                }
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' => {
                class_depth += 1;
                out.push(c);
                // A ']' right after '[' or '[^' is a literal.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

fn is_anchored(p: &str) -> bool {
    match regex_syntax::Parser::new().parse(p) {
        Ok(hir) => looks_anchored(hir.properties().look_set()),
        Err(_) => true,
    }
}

/// Whether a pattern's assertions include a start or end of text or line.
fn looks_anchored(looks: regex_syntax::hir::LookSet) -> bool {
    use regex_syntax::hir::Look;
    [
        Look::Start,
        Look::End,
        Look::StartLF,
        Look::EndLF,
        Look::StartCRLF,
        Look::EndCRLF,
    ]
    .into_iter()
    .any(|l| looks.contains(l))
}

/// The pattern a `keys` rule without a `pattern` uses in text: the same
/// names as a JSON member (`"password": "..."`, also in truncated JSON) and
/// as a `key=value` pair (logfmt, query strings).
///
/// The JSON alternative also matches a member whose value is an object,
/// array or literal (without a group, so text mode redacts nothing there):
/// in the line-level scan that is what sends such a line to the structured
/// walk, where the field-name rule masks the whole value. Key rules have no
/// keywords: this pattern, in the multi-pattern set, is far more selective
/// than any substring of a name (`pin` is in `shipping`).
fn key_text_pattern(keys: &[String]) -> String {
    let (json, text) = (
        key_alternation(keys, NameForm::Loose),
        key_alternation(keys, NameForm::Strict),
    );
    format!(
        r#"(?i)"(?:{json})"\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?[0-9][0-9.eE+-]*))|(?-u:\b)(?:{text})=([^\s&,;"'\\]+)"#
    )
}

/// True when a `keys` name is made only of name characters, wildcards and
/// separators: its text pattern's matches can then be cut into name and
/// value by [`key_value_span`].
fn plain_key(k: &str) -> bool {
    k.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '-' | '_' | '.' | ' '))
}

/// The value inside a match `[s, e)` of [`key_text_pattern`] (built from
/// [`plain_key`] names): the string's content or the number after
/// `"name":`, or what follows the first `=` of `name=value`. This is what
/// the pattern's capture groups say, found without them: on a line of
/// thousands of matches the captures engine cost microseconds per match and
/// made the `keys` rules the slowest built-in rules on adversarial input
/// (1.6 MB/s; see `tests/redos.rs`).
pub(crate) fn key_value_span(text: &str, s: usize, e: usize) -> (usize, usize) {
    let m = &text[s..e];
    if let Some(name_on) = m.strip_prefix('"') {
        // "name" \s* : \s* ( "value" | number ); a plain name holds no quote.
        let Some(close) = name_on.find('"') else {
            return (e, e);
        };
        let rest = name_on[close + 1..].trim_start();
        let value = rest.strip_prefix(':').unwrap_or(rest).trim_start();
        let vs = e - value.len();
        if value.starts_with('"') && value.len() >= 2 {
            (vs + 1, e - 1)
        } else {
            (vs, e)
        }
    } else {
        match m.find('=') {
            Some(i) => (s + i + 1, e),
            None => (e, e),
        }
    }
}

/// The alternation of a `keys` rule's names, as regex; `*` is any name
/// characters.
///
/// `Loose` (JSON member names): the names that [`normalize_key`] makes
/// equal (ASCII case aside, which `(?i)` covers), so any run of separators
/// (`-`, `_`, `.`, space) may stand before, between and after a name's
/// characters: the structured walk looks `pass_word` and `Pass Word` up as
/// `password`, so the line-level scan must send such a line to it (before,
/// it did only when something else in the line did, and the field went
/// out or not depending on its neighbours). `Strict` (`name=value` in
/// text): separators optional and interchangeable where the name has one;
/// its keywords are the name's last word plus `=`, which a name split
/// elsewhere would not contain.
fn key_alternation(keys: &[String], form: NameForm) -> String {
    keys.iter()
        .map(|k| {
            let mut s = String::new();
            if form != NameForm::Strict {
                s.push_str(LOOSE_SEP);
            }
            for c in k.chars() {
                match (c, form) {
                    // `*` is what the walk's lookup of the decoded name lets
                    // it be, anything: in the scan's form any characters at
                    // all, in a member of raw JSON text any string content
                    // (escapes included, no closing quote). In a text
                    // `name=value`, the characters a name there is made of.
                    ('*', NameForm::Scan) => s.push_str("(?s:.)*"),
                    ('*', NameForm::Loose) => s.push_str(r#"(?:[^"\\]|\\.)*"#),
                    ('*', NameForm::Strict) => s.push_str("[A-Za-z0-9_.-]*"),
                    ('-' | '_' | '.' | ' ', NameForm::Loose | NameForm::Scan) => continue,
                    ('-' | '_' | '.' | ' ', NameForm::Strict) => {
                        s.push_str("[-_. ]?");
                        continue;
                    }
                    (c, _) => s.push_str(&regex::escape(&c.to_string())),
                }
                if form != NameForm::Strict {
                    s.push_str(LOOSE_SEP);
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// Separators a loose name allows at each place.
const LOOSE_SEP: &str = "[-_. ]*";

/// How a `keys` rule's names are spelled in a pattern (see
/// [`key_alternation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameForm {
    /// The line-level scan's member form: a superset of what the walk's
    /// lookup matches, in raw or escape-decoded text (it only chooses the
    /// lines the walk sees, it redacts nothing).
    Scan,
    /// A member of raw JSON text (text-mode redaction of JSON that does not
    /// parse): separators anywhere, `*` within the string.
    Loose,
    /// A text `name=value` pair: separators where the name has them.
    Strict,
}

/// How a `keys` rule is found by the line-level scan: a JSON member with
/// one of the names, whatever its value (an object under `"password"` must
/// send the line to the structured walk too). Selective where a keyword
/// would not be (`pin` is in `shipping`; `"pin":` is not).
///
/// The backslashes allowed before the closing quote are for JSON inside a
/// string inside a string: the scan reads the line with one level of
/// escapes decoded, where a name two levels down is `\"pin\":` (the walk
/// decodes every level it descends into and looks the name up there).
fn key_set_pattern(keys: &[String]) -> String {
    format!(
        r#"(?i)"(?:{})\\*"\s*:"#,
        key_alternation(keys, NameForm::Scan)
    )
}

/// Keywords for the `name=value` form of a `keys` rule in text: the last
/// word of each name followed by `=` (every spelling of `client_secret=`
/// contains `secret=`).
fn key_keywords(keys: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let last = k
            .rsplit(['*', '-', '_', '.', ' '])
            .find(|p| !p.is_empty())
            .unwrap_or("");
        let kw = format!("{}=", last.to_ascii_lowercase());
        if !last.is_empty() && !out.contains(&kw) {
            out.push(kw);
        }
    }
    out
}

/// One rule to compile: its spec, the index of its source, where it is
/// (for messages), and its place in file order.
struct Job {
    seq: usize,
    spec: super::spec::RuleSpec,
    source: usize,
    origin: String,
}

/// Rules per compiler thread below which another thread does not pay.
const MIN_RULES_PER_THREAD: usize = 32;

/// At most this many threads compile rules.
const MAX_COMPILE_THREADS: usize = 8;

/// Compiles the jobs, in order, on up to one thread per core: a large rule
/// file's regexes are most of a load (the built-in library's ~25 ms of
/// ~30 ms on the bench machine, before their compiling was deferred, see
/// [`LazyMatcher`]); the parse of every pattern remains, and the rules are
/// independent.
fn compile_all(
    jobs: Vec<Job>,
    sources: &[Source],
    lines: &[crate::engine::spec::LineIndex],
) -> Vec<(usize, Result<Rule, RuleError>)> {
    // The built-in library's regexes are compiled on first use (see
    // `LazyMatcher`): only a source that is exactly a built-in file counts.
    let builtin: Vec<bool> = sources.iter().map(Source::is_builtin).collect();
    let run = |jobs: Vec<Job>| -> Vec<(usize, Result<Rule, RuleError>)> {
        jobs.into_iter()
            .map(|j| {
                let r = compile_rule(
                    j.spec,
                    &sources[j.source],
                    &lines[j.source],
                    j.origin,
                    builtin[j.source],
                );
                (j.seq, r)
            })
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_COMPILE_THREADS)
        .min(jobs.len() / MIN_RULES_PER_THREAD)
        .max(1);
    if threads == 1 {
        return run(jobs);
    }
    let per = jobs.len().div_ceil(threads);
    let mut chunks: Vec<Vec<Job>> = Vec::with_capacity(threads);
    let mut rest = jobs.into_iter();
    loop {
        let chunk: Vec<Job> = rest.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let run = &run;
                s.spawn(move || run(chunk))
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part),
                // A compiler thread does not panic; if one did, the whole
                // compile fails (a reload keeps the running rules).
                Err(_) => out.push((
                    usize::MAX,
                    Err(RuleError::Internal(
                        "a rule compiler thread panicked".into(),
                    )),
                )),
            }
        }
        out
    })
}

fn compile_rule(
    spec: super::spec::RuleSpec,
    src: &Source,
    lines: &crate::engine::spec::LineIndex,
    origin: String,
    defer: bool,
) -> Result<Rule, RuleError> {
    let id = spec.id.into_inner();
    let invalid = |origin: &str, message: String| RuleError::Invalid {
        origin: origin.to_string(),
        id: id.clone(),
        message,
    };
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(invalid(
            &origin,
            "id must be non-empty and use only A-Z a-z 0-9 - _ .".into(),
        ));
    }
    if spec.pattern.is_none() && spec.keys.is_empty() {
        return Err(invalid(
            &origin,
            "a rule needs a `pattern`, `keys`, or both".into(),
        ));
    }
    let validator = match &spec.validator {
        None => None,
        Some(v) => Some(
            Validator::from_name(v.get_ref(), spec.min_entropy).ok_or_else(|| {
                invalid(
                    &format!("{}:{}", src.name, lines.line_of(v.span().start)),
                    format!(
                        "unknown validator {:?} (known: {})",
                        v.get_ref(),
                        Validator::NAMES.join(", ")
                    ),
                )
            })?,
        ),
    };
    if spec.action == ActionKind::Partial && spec.keep_last.is_none() {
        return Err(invalid(
            &origin,
            "action = \"partial\" needs keep_last".into(),
        ));
    }
    let (pattern, pattern_line, derived) = match &spec.pattern {
        Some(p) => (p.get_ref().clone(), lines.line_of(p.span().start), false),
        None => (key_text_pattern(&spec.keys), 1, true),
    };
    let at = format!("{}:{}", src.name, pattern_line);
    // The regex crate reads the pattern the same way; a `fancy` pattern
    // it does not parse (look-around) gets 0, which skips nothing, and so
    // does a pattern derived from `keys` (long alternations whose parse
    // would cost more start-up than their short matches save).
    let ascii = ascii_word_boundaries(&pattern);
    let hir = if derived {
        None
    } else {
        regex_syntax::Parser::new().parse(&ascii).ok()
    };
    let (min_len, anchored) = match &hir {
        Some(h) => (
            h.properties().minimum_len().unwrap_or(0),
            looks_anchored(h.properties().look_set()),
        ),
        None => (0, true),
    };
    let (matcher, group) = match (spec.engine, &hir) {
        (PatternEngine::Regex, _) if derived => {
            let group = if spec.keys.iter().all(|k| plain_key(k)) {
                Group::KeyValue
            } else {
                Group::FirstParticipating
            };
            let m = if defer {
                LazyMatcher::deferred(&ascii)
            } else {
                LazyMatcher::ready(Matcher::Std(
                    compile_std(&ascii).map_err(|m| invalid(&at, m))?,
                ))
            };
            (m, group)
        }
        // The group is read off the parse; the regex is built on first use.
        (PatternEngine::Regex, Some(h)) if defer => {
            let group = resolve_group(
                &spec.group,
                h.properties().explicit_captures_len() + 1,
                |n| named_capture(h, n),
            )
            .map_err(|m| invalid(&at, m))?;
            (LazyMatcher::deferred(&ascii), group)
        }
        (PatternEngine::Regex, _) => {
            let re = compile_std(&ascii).map_err(|m| invalid(&at, m))?;
            let group = resolve_group(&spec.group, re.captures_len(), |n| {
                re.capture_names().position(|x| x == Some(n))
            })
            .map_err(|m| invalid(&at, m))?;
            (LazyMatcher::ready(Matcher::Std(re)), group)
        }
        (PatternEngine::Fancy, _) => {
            let limit = spec.backtrack_limit.ok_or_else(|| {
                invalid(
                    &at,
                    format!("engine = \"fancy\" needs backtrack_limit (for example {SUGGESTED_BACKTRACK_LIMIT})"),
                )
            })?;
            let re = fancy_regex::RegexBuilder::new(&pattern)
                .backtrack_limit(limit)
                .build()
                .map_err(|e| invalid(&at, format!("invalid pattern: {e}")))?;
            if matches!(re.is_match(""), Ok(true)) {
                return Err(invalid(&at, "pattern matches the empty string".into()));
            }
            let group = resolve_group(&spec.group, re.captures_len(), |n| {
                re.capture_names().position(|x| x == Some(n))
            })
            .map_err(|m| invalid(&at, m))?;
            (LazyMatcher::ready(Matcher::Fancy(re)), group)
        }
    };
    let mut keywords: Vec<String> = spec.keywords.clone();
    if keywords.iter().any(String::is_empty) {
        return Err(invalid(&origin, "empty keyword".into()));
    }
    let set_pattern = derived.then(|| key_set_pattern(&spec.keys));
    if derived {
        keywords = key_keywords(&spec.keys);
    }
    let mask = spec
        .replacement
        .clone()
        .unwrap_or_else(|| format!("[REDACTED:{id}]"));
    Ok(Rule {
        description: spec.description,
        category: spec.category,
        action: spec.action,
        keep_last: spec.keep_last.unwrap_or(0),
        mask,
        keywords,
        keywords_case_sensitive: spec.keywords_case_sensitive && !derived,
        keys: spec.keys,
        pattern: spec.pattern.map(|p| p.into_inner()),
        engine: spec.engine,
        matcher,
        group,
        validator,
        min_len,
        anchored,
        set_pattern,
        tests: spec.tests,
        origin,
        id,
    })
}

fn resolve_group(
    g: &Option<GroupSpec>,
    captures_len: usize,
    by_name: impl Fn(&str) -> Option<usize>,
) -> Result<Group, String> {
    match g {
        None => Ok(match by_name("secret") {
            Some(i) => Group::Index(i),
            None => Group::Whole,
        }),
        Some(GroupSpec::Index(0)) => Ok(Group::Whole),
        Some(GroupSpec::Index(i)) if *i < captures_len => Ok(Group::Index(*i)),
        Some(GroupSpec::Index(i)) => Err(format!(
            "group {i} does not exist (pattern has {} groups)",
            captures_len - 1
        )),
        Some(GroupSpec::Name(n)) => by_name(n)
            .map(Group::Index)
            .ok_or_else(|| format!("no capture group named {n:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_library_compiles_no_regex_until_a_rule_runs() {
        let rs =
            Ruleset::compile(&crate::engine::spec::builtin_sources(), &Default::default()).unwrap();
        let compiled: Vec<&str> = rs
            .rules()
            .iter()
            .filter(|r| r.engine == PatternEngine::Regex && r.matcher.is_compiled())
            .map(|r| r.id.as_str())
            .collect();
        assert!(compiled.is_empty(), "compiled at load: {compiled:?}");
        // A line with an email wakes the email rule, and only the rules
        // the scan found.
        let mut sc = crate::engine::Scratch::new(&rs);
        let mut st = crate::engine::Stats::new(&rs);
        let (out, _) = rs.redact_line(b"mail ann@example.com", &mut sc, &mut st);
        assert!(!out.windows(3).any(|w| w == b"ann"));
        let email = rs.position("email").unwrap();
        assert!(rs.rules()[email].matcher.is_compiled());
        let woken = rs
            .rules()
            .iter()
            .filter(|r| r.matcher.is_compiled())
            .count();
        assert!(woken < 10, "{woken} rules compiled for one line");
    }

    #[test]
    fn every_deferred_builtin_regex_builds_with_the_group_read_off_its_parse() {
        let builtin = crate::engine::spec::builtin_sources();
        let deferred = Ruleset::compile(&builtin, &Default::default()).unwrap();
        // The same files under other names are compiled up front, the group
        // read off the compiled regex.
        let mut renamed = builtin.clone();
        for s in &mut renamed {
            s.name = s.name.replace("builtin:", "copy/");
        }
        let eager = Ruleset::compile(&renamed, &Default::default()).unwrap();
        assert_eq!(deferred.rules().len(), eager.rules().len());
        for (d, e) in deferred.rules().iter().zip(eager.rules()) {
            assert_eq!(d.id, e.id);
            assert!(e.matcher.is_compiled(), "{}", e.id);
            assert!(
                d.matcher.get().is_some(),
                "{}: its regex does not build",
                d.id
            );
            assert_eq!(d.group, e.group, "{}", d.id);
        }
        // Rules that name their group (`(?P<secret>…)`) are among them.
        let named = deferred
            .rules()
            .iter()
            .filter(|r| matches!(r.group, Group::Index(_)));
        assert!(named.count() > 40);
    }

    #[test]
    fn a_regex_built_for_a_rules_test_is_the_one_its_ruleset_runs() {
        let rs =
            Ruleset::compile(&crate::engine::spec::builtin_sources(), &Default::default()).unwrap();
        let email = rs.position("email").unwrap();
        let alone = rs.only(email).unwrap();
        assert!(!rs.rules()[email].matcher.is_compiled());
        assert!(alone.rules()[0].matcher.get().is_some());
        assert!(rs.rules()[email].matcher.is_compiled());
    }

    #[test]
    fn a_user_rule_file_is_compiled_whole_at_load() {
        let rs = crate::engine::compile_for_test(
            "[[rules]]\nid = \"r\"\ncategory = \"secret\"\npattern = 'tok_[0-9]+'\n",
        );
        assert!(rs.rules()[0].matcher.is_compiled());
        // A copy of the built-in file under another name is a user file.
        let mut src = crate::engine::spec::builtin_sources();
        src.truncate(1);
        assert!(src[0].is_builtin());
        src[0].name = "rules/10-secrets-cloud.toml".into();
        assert!(!src[0].is_builtin());
        let rs = Ruleset::compile(&src, &Default::default()).unwrap();
        assert!(rs.rules().iter().all(|r| r.matcher.is_compiled()));
    }

    #[test]
    fn a_deferred_regex_that_does_not_build_fails_the_rule_closed() {
        let rs = crate::engine::compile_for_test(
            "[[rules]]\nid = \"r\"\ncategory = \"secret\"\npattern = 'tok_[0-9]+'\nkeywords = [\"tok_\"]\n",
        );
        // As if the built-in library had shipped a pattern that fails to
        // build.
        let mut rules = rs.rules;
        rules[0].matcher = LazyMatcher::deferred("tok_(");
        let rs = Ruleset::from_rules(rules, &Default::default()).unwrap();
        let mut sc = crate::engine::Scratch::new(&rs);
        let mut st = crate::engine::Stats::new(&rs);
        let (out, _) = rs.redact_line(b"x tok_123 y", &mut sc, &mut st);
        let out = String::from_utf8(out.to_vec()).unwrap();
        assert!(!out.contains("tok_123"), "{out}");
        assert_eq!(
            st.failures(crate::engine::FailureKind::RuleError),
            1,
            "{out}"
        );
    }

    #[test]
    fn word_boundaries_become_ascii_outside_classes_only() {
        assert_eq!(ascii_word_boundaries(r"\bab\B"), r"(?-u:\b)ab(?-u:\B)");
        assert_eq!(ascii_word_boundaries(r"[\]b]\\b"), r"[\]b]\\b");
        assert_eq!(ascii_word_boundaries(r"[]\b]"), r"[]\b]");
        assert_eq!(
            ascii_word_boundaries(r"\b{start}zz\b{end}"),
            r"(?-u:\b{start})zz(?-u:\b{end})"
        );
        assert_eq!(ascii_word_boundaries(r"\<zz\>"), r"(?-u:\<)zz(?-u:\>)");
        assert_eq!(ascii_word_boundaries(r"[\<]"), r"[\<]");
        // What the rewritten forms mean to the regex crate: the same
        // boundaries between ASCII characters.
        for p in [r"\<zz\>", r"\b{start-half}zz\b{end-half}"] {
            let re = regex::Regex::new(&ascii_word_boundaries(p)).unwrap();
            assert!(re.is_match("a zz b"), "{p}");
            assert!(!re.is_match("azz b"), "{p}");
        }
    }

    #[test]
    fn the_field_name_cache_agrees_with_the_lookup_and_stays_bounded() {
        let rs = crate::engine::builtin_for_test();
        let mut sc = crate::engine::Scratch::new(&rs);
        let mut buf = String::new();
        let mut names: Vec<String> = [
            "password",
            "Pass-Word",
            "user_id",
            "message",
            "db_password",
            "é",
        ]
        .map(String::from)
        .to_vec();
        names.extend((0..KEY_CACHE_MAX + 10).map(|i| format!("field{i}")));
        for round in 0..2 {
            for n in &names {
                assert_eq!(
                    rs.key_rule_cached(n, &mut sc),
                    rs.key_rule(n, &mut buf),
                    "{n} (round {round})"
                );
                assert!(sc.key_cache.len() <= KEY_CACHE_MAX);
            }
        }
        assert!(rs.key_rule_cached("password", &mut sc).is_some());
    }

    #[test]
    fn keys_normalise_case_and_separators() {
        let mut b = String::new();
        normalize_key("Set-Cookie", &mut b);
        assert_eq!(b, "setcookie");
        normalize_key("card_number", &mut b);
        assert_eq!(b, "cardnumber");
    }

    #[test]
    fn globs_match_prefix_suffix_and_inner() {
        let g = |s, p: &[&str], a, b| {
            glob_match(
                s,
                &p.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
                a,
                b,
            )
        };
        assert!(g("dbpassword", &["password"], true, true));
        assert!(g("passwordhash", &["password"], false, true));
        assert!(!g("mypasswordx", &["password"], false, true));
        assert!(g("xtoken", &["token"], true, false));
        assert!(!g("tokencount", &["token"], true, false));
    }

    #[test]
    fn rule_bits_iterate_in_order() {
        let mut b = RuleBits::default();
        b.reset(130);
        for i in [129, 3, 64, 0] {
            b.insert(i);
        }
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 3, 64, 129]);
        assert!(b.contains(64) && !b.contains(65));
    }
}

#[cfg(test)]
mod keyword_tests {
    use super::*;

    #[test]
    fn problems_come_in_file_order_whichever_thread_compiled_the_rule() {
        // Enough rules for several compiler threads; broken ones early, in
        // the middle and at the end, a duplicate id and a broken file between.
        let rule = |i: usize, pat: &str| {
            format!(
                "[[rules]]\nid = \"r{i}\"\ncategory = \"secret\"\npattern = '{pat}'\n[[rules.tests]]\nhit = \"k{i}x\"\n"
            )
        };
        let mut a = String::new();
        for i in 0..200 {
            let pat = if [3, 101, 199].contains(&i) {
                "(unclosed".to_string()
            } else {
                format!("k{i}x")
            };
            a.push_str(&rule(i, &pat));
        }
        a.push_str(&rule(50, "dup"));
        let sources = [
            Source {
                name: "a.toml".into(),
                text: a,
            },
            Source {
                name: "b.toml".into(),
                text: "[[rules]\n".into(),
            },
            Source {
                name: "c.toml".into(),
                text: rule(500, "(also unclosed"),
            },
        ];
        let err = Ruleset::compile(&sources, &CompileOptions::default()).unwrap_err();
        let got: Vec<String> = err
            .problems()
            .iter()
            .map(|p| match p {
                RuleError::Invalid { id, message, .. } => {
                    format!("{id}: {}", message.contains("duplicate"))
                }
                other => format!("other: {}", other.to_string().contains("b.toml")),
            })
            .collect();
        assert_eq!(
            got,
            [
                "r3: false",
                "r101: false",
                "r199: false",
                "r50: true",
                "other: true",
                "r500: false"
            ]
        );
    }

    #[test]
    fn a_json_field_name_with_separators_anywhere_is_redacted_whatever_its_neighbours() {
        // The field-name lookup drops separators (`pass_word` is
        // `password`); the line-level scan must agree, or the field is
        // redacted only when something else sends the line to the walk.
        let rs = crate::engine::builtin_for_test();
        let mut sc = crate::engine::Scratch::new(&rs);
        let mut st = crate::engine::Stats::new(&rs);
        for name in [
            "pass_word",
            "Pass Word",
            "p.a.s.s.w.o.r.d",
            "_password_",
            "api__key",
            "db_pass-word",
        ] {
            for line in [
                format!(r#"{{"{name}":"hunter2"}}"#),
                format!(r#"{{"{name}":"hunter2","e":"ann@example.com"}}"#),
            ] {
                let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
                let out = String::from_utf8_lossy(out).into_owned();
                assert!(!out.contains("hunter2"), "{line} -> {out}");
            }
        }
        // `name=value` in text keeps the strict spelling (its keywords are
        // the names' last words plus `=`).
        let (out, _) = rs.redact_line(b"user=bob pass_word=hunter2", &mut sc, &mut st);
        assert_eq!(out, b"user=bob pass_word=hunter2");
    }

    #[test]
    fn a_field_name_rule_with_its_own_pattern_redacts_its_fields_whatever_they_hold() {
        // The line-level scan looks for its names as well as its pattern:
        // a line whose only hit is such a member still reaches the walk.
        let rs = crate::engine::compile_for_test(
            "[[rules]]\nid='card-field'\ncategory='pii'\nkeys=['card']\npattern='[0-9]{16}'\n\
             [[rules.tests]]\nhit='{\"card\":\"abc\"}'\n\
             [[rules]]\nid='f'\ncategory='pii'\nkeys=['ssn']\n\
             [[rules.tests]]\nhit='{\"ssn\":\"1\"}'\n",
        );
        let mut sc = crate::engine::Scratch::new(&rs);
        let mut st = crate::engine::Stats::new(&rs);
        for line in [
            r#"{"card":"abc"}"#,
            r#"{"a":{"Card":["abc",{"b":"abc"}]},"ssn":"x"}"#,
            r#"{"card":"abc","n":"4111111111111111"}"#,
        ] {
            let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
            let out = String::from_utf8_lossy(out).into_owned();
            assert!(!out.contains("abc"), "{line} -> {out}");
        }
    }

    proptest::proptest! {
        /// The line-level scan sends a JSON line to the structured walk
        /// through the member form of the field-name rules; the walk then
        /// looks each decoded name up. A name the lookup matches must
        /// always get there, whatever characters a glob's `*` stands for
        /// (`cust#ssn` is `*_ssn`), quotes and backslashes included, and
        /// however deep in JSON held in strings.
        #[test]
        fn a_json_member_the_name_lookup_matches_is_redacted_whatever_its_characters(
            pre in "[a-zA-Z0-9 _.#$@:/\\\\\"é-]{0,5}",
            core in proptest::sample::select(vec!["ssn", "_ssn", "pre", "PRE-", "tok", "api_key", "Api.Key", "az", "x"]),
            post in "[a-zA-Z0-9 _.#$@:/\\\\\"é-]{0,5}",
            nested in proptest::bool::ANY,
            embed in 0..4usize,
        ) {
            static RS: std::sync::OnceLock<Ruleset> = std::sync::OnceLock::new();
            let rs = RS.get_or_init(|| crate::engine::compile_for_test(
                "[[rules]]\nid='f'\ncategory='pii'\nkeys=['*_ssn','pre*','a*z','*tok*','api_key']\n\
                 [[rules.tests]]\nhit='{\"cust_ssn\":\"1\"}'\n",
            ));
            let name = format!("{pre}{core}{post}");
            let member = serde_json::json!({ name.as_str(): "v4lue" }).to_string();
            let mut line = if nested { format!(r#"{{"a":{member},"b":1}}"#) } else { member };
            // JSON in a string, up to as deep as the walk descends.
            for _ in 0..embed {
                line = serde_json::json!({ "m": line }).to_string();
            }
            let mut sc = crate::engine::Scratch::new(rs);
            let mut st = crate::engine::Stats::new(rs);
            let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
            let out = String::from_utf8_lossy(out).into_owned();
            let mut buf = String::new();
            let found = rs.key_rule(&name, &mut buf).is_some();
            if found {
                proptest::prop_assert!(!out.contains("v4lue"), "{} -> {}", line, out);
            } else {
                proptest::prop_assert_eq!(&out, &line);
            }
            // Cut short, the line is redacted as text, by the rule's own
            // pattern: the same names must be found there too.
            let cut = &line[..line.len() - 1];
            let (out, _) = rs.redact_line(cut.as_bytes(), &mut sc, &mut st);
            let out = String::from_utf8_lossy(out).into_owned();
            // (Not the other way round: text cannot tell the quote of a
            // `\"` from a real one, so it may redact a little more. And at
            // the top level only: README, known limits.)
            if found && embed == 0 {
                proptest::prop_assert!(!out.contains("v4lue"), "{} -> {}", cut, out);
            }
        }
    }

    #[test]
    fn key_value_spans_agree_with_the_capture_groups() {
        let rs = crate::engine::builtin_for_test();
        let keyed: Vec<&Rule> = rs.rules.iter().filter(|r| !r.keys.is_empty()).collect();
        assert!(keyed.len() >= 2);
        let texts = [
            r#"{"password":"hunter2","api_key": "abc def","pin":1234,"x":1}"#,
            r#"{"db_password" :  "" , "client-secret":"a\"b", "Token":-1.5e3}"#,
            r#"password=abc&secret=%41%42 api_token=x"y passwd="correct horse" ssn=078-05-1120"#,
            r#"user_password=p=q;pwd==x  "pwd": "x\\" "dob":"1990-01-01" card_number=4111"#,
            "\"password\"\u{2003}:\u{a0}\"wide\" SECRET=é PassWord=ſecret \"ſecret\":\"v\"",
            "",
        ];
        let mut checked = 0;
        for r in keyed {
            assert_eq!(r.group, Group::KeyValue, "{}", r.id);
            let Some(Matcher::Std(re)) = r.matcher.get() else {
                panic!("{}: not a regex rule", r.id)
            };
            for t in texts {
                let by_shape: Vec<(usize, usize)> = re
                    .find_iter(t)
                    .map(|m| key_value_span(t, m.start(), m.end()))
                    .collect();
                let by_groups: Vec<(usize, usize)> = re
                    .captures_iter(t)
                    .map(|c| {
                        let m = c.iter().skip(1).flatten().next().unwrap();
                        (m.start(), m.end())
                    })
                    .collect();
                assert_eq!(by_shape, by_groups, "{} on {t:?}", r.id);
                checked += by_groups.len();
            }
        }
        assert!(checked >= 12, "{checked} matches compared");
    }

    #[test]
    fn keys_with_quotes_or_equals_keep_the_capture_groups() {
        let rs = compile(
            r#"
[[rules]]
id = "odd"
description = "odd names"
category = "credential"
keys = ["a=b", "plain"]
[[rules.tests]]
hit = "{\"plain\":\"x\"}"
"#,
        );
        assert_eq!(rs.rules[0].group, Group::FirstParticipating);
    }

    use crate::engine::compile_for_test as compile;

    #[test]
    fn case_sensitive_keywords_match_only_their_spelling() {
        let rs = compile(
            "[[rules]]\nid='a'\ncategory='secret'\npattern='AKIA[0-9A-Z]{16}'\nkeywords=['AKIA']\nkeywords_case_sensitive=true\n\
             [[rules]]\nid='b'\ncategory='secret'\npattern='(?i)pass=\\w+'\nkeywords=['PASS=']\n",
        );
        let mut bits = RuleBits::default();
        let mut c = rs.new_scan_cache();
        rs.keyword_candidates("x AKIAABCDEFGHIJKLMNOP", &mut bits, &mut c);
        assert_eq!(bits.iter().collect::<Vec<_>>(), vec![0]);
        rs.keyword_candidates("x akiaabcdefghijklmnop", &mut bits, &mut c);
        assert!(bits.is_empty());
        rs.keyword_candidates("x pass=1", &mut bits, &mut c);
        assert_eq!(bits.iter().collect::<Vec<_>>(), vec![1]);
    }
}
