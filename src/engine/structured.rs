//! Structured redaction: walk a JSON text token by token and rewrite only the
//! values that need it.
//!
//! The output is built from the input plus a list of byte-range edits, so
//! everything not redacted keeps its exact bytes (key order, whitespace,
//! number spelling). Field-name (`keys`) rules apply at any depth and to the
//! whole subtree under the field; `drop` removes the member with its comma.

use crate::decode::json::{JsonError, Scanner, Token, decode_string, encode_string};

use super::action::render;
use super::redact::{KeyCtx, finding, has_percent_escape};
use super::ruleset::{LineScan, RuleBits, Ruleset};
use super::scan::{any_rule_within, rules_ending_within, rules_within};
use super::spec::ActionKind;
use super::{Scratch, Stats};

/// Strings that hold JSON are walked too, up to this many levels deep.
const MAX_EMBEDDED_DEPTH: u8 = 3;

/// A byte range of the input replaced by `buf[from..to]`.
#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    from: usize,
    to: usize,
}

#[derive(Debug, Default)]
struct Frame<'t> {
    obj: bool,
    /// The current member's name (objects), or the name the array is the
    /// value of (arrays): context for rules that need a name.
    key: Option<std::borrow::Cow<'t, str>>,
    /// The name's content span in the line (inside the quotes).
    key_span: (usize, usize),
    /// Whether the name may give a context rule its match (set with `key`
    /// when a context rule is in the line's scan): then its values are
    /// walked even where the scan saw nothing inside them.
    key_ctx: bool,
    /// A `keys` rule that covers every value under this container.
    subtree: Option<u32>,
    /// The `keys` rule of the current member (objects only).
    member: Option<u32>,
    /// End of the last member value kept, for removing a dropped last member's comma.
    prev_kept_end: Option<usize>,
    /// A dropped member waiting to know whether a member follows: `(key start, value end)`.
    pending_drop: Option<(usize, usize)>,
    /// The names of this object that were redacted (to keep them unique:
    /// two e-mail addresses as keys must not become one key); made at the
    /// first one.
    redacted_names: Option<Box<RedactedNames>>,
}

/// The redacted names of one object: each as written, and for each
/// redacted form how many names came out as it. Hashed, so an object with
/// a hundred thousand e-mail addresses as keys stays linear.
#[derive(Debug, Default)]
struct RedactedNames {
    written: std::collections::HashSet<String>,
    counts: std::collections::HashMap<String, u32>,
}

/// The changes to one JSON text, in order. Pooled in [`Scratch`] so the
/// walk of a line allocates nothing once warm.
#[derive(Debug, Default)]
pub(crate) struct Edits {
    list: Vec<Edit>,
    buf: String,
    /// The walk's container frames and its scanner's stack, kept empty
    /// between walks so that their allocations serve line after line
    /// (see [`recycle_frames`]).
    frames: Vec<Frame<'static>>,
    stack: Vec<bool>,
}

/// The most open containers whose frames and scanner stack a walk's
/// [`Edits`] keep for the next walk.
const KEPT_NESTING_MAX: usize = 256;

/// An emptied list of frames of a walk, as a list of frames for any walk:
/// the same allocation. Why this way: a `Vec<Frame<'t>>` borrows from the
/// walk's text and cannot be kept past it, but an empty one has nothing to
/// borrow; collecting its (absent) elements in place (the standard
/// library's in-place collection for `vec::IntoIter`, whose layout is the
/// same for every `'t`) gives the buffer back with a `'static` type. Were
/// that reuse ever to stop, the list would just be allocated afresh.
// (`filter_map` and not `filter`, which clippy suggests: the point is the
// change of element type, which `filter` does not make.)
#[allow(clippy::unnecessary_filter_map)]
fn recycle_frames(mut frames: Vec<Frame<'_>>) -> Vec<Frame<'static>> {
    frames.clear();
    frames.into_iter().filter_map(|_| None).collect()
}

impl Edits {
    /// Adds an edit after all earlier ones; earlier edits inside its range
    /// are subsumed (a dropped member swallows what came before it).
    fn push(&mut self, start: usize, end: usize, from: usize) {
        while self.list.last().is_some_and(|e| e.start >= start) {
            self.list.pop();
        }
        self.list.push(Edit {
            start,
            end,
            from,
            to: self.buf.len(),
        });
    }
    fn replace_with(&mut self, start: usize, end: usize, f: impl FnOnce(&mut String)) {
        let from = self.buf.len();
        f(&mut self.buf);
        self.push(start, end, from);
    }
    fn delete(&mut self, start: usize, end: usize) {
        self.push(start, end, self.buf.len());
    }
}

impl Ruleset {
    /// Redacts a JSON text. `scan` is the whole line's scan (see
    /// [`LineScan`]); `None` scans each value on its own. `Ok(None)`:
    /// nothing changed. `Err`: not JSON (the caller redacts it as text).
    pub(crate) fn redact_json(
        &self,
        text: &str,
        scan: Option<&LineScan>,
        sc: &mut Scratch,
        st: &mut Stats,
        depth: u8,
    ) -> Result<Option<String>, JsonError> {
        // A malformed text is found out part way through the walk: undo
        // what the walk counted before the caller redacts it as text.
        let mark = st.mark(sc.findings.as_ref().map_or(0, Vec::len));
        let mut edits = sc.edits_pool.pop().unwrap_or_default();
        edits.list.clear();
        edits.buf.clear();
        let mut frames: Vec<Frame<'_>> = std::mem::take(&mut edits.frames);
        let mut scanner = Scanner::with_stack(text, std::mem::take(&mut edits.stack));
        let r = self.walk_json(
            text,
            scan,
            sc,
            st,
            depth,
            &mut edits,
            &mut scanner,
            &mut frames,
        );
        // Kept for the next walk, unless a deeply nested text made them
        // large: that memory goes back with the line.
        let stack = scanner.into_stack();
        if stack.capacity() <= KEPT_NESTING_MAX {
            edits.stack = stack;
        }
        if frames.capacity() <= KEPT_NESTING_MAX {
            edits.frames = recycle_frames(frames);
        }
        sc.edits_pool.push(edits);
        if r.is_err() {
            st.rollback(&mark);
            if let Some(f) = sc.findings.as_mut() {
                f.truncate(mark.findings);
            }
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn walk_json<'t>(
        &self,
        text: &'t str,
        scan: Option<&LineScan>,
        sc: &mut Scratch,
        st: &mut Stats,
        depth: u8,
        edits: &mut Edits,
        sc_: &mut Scanner<'t>,
        frames: &mut Vec<Frame<'t>>,
    ) -> Result<Option<String>, JsonError> {
        // Whether any name or value can hold a percent escape. (A `%` written as the escape `\u0025` counts: decoded, the value
        // holds a percent escape all the same.)
        static ESCAPED_PERCENT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\\u0025"));
        let b = text.as_bytes();
        // (Neither byte in most lines: one pass tells. Before the first of
        // them there is neither, so the rest is searched from there.)
        let has_percent = memchr::memchr2(b'%', b'\\', b).is_some_and(|i| {
            b[i] == b'%'
                || memchr::memchr(b'%', &b[i..]).is_some()
                || ESCAPED_PERCENT.find(&b[i..]).is_some()
        });
        let mut cursor = HitCursor::new(self, scan, has_percent);
        // The scan finds every member a field-name rule matches (its names
        // are in the pattern set): none of those rules in the scan, no
        // lookup. Likewise no context rule in the scan, no value needs its
        // member's name.
        let lookup_names = scan.is_none_or(|ls| ls.all.intersects(&self.key_rules));
        let names_matter = scan.is_none_or(|ls| ls.all.intersects(&self.context_rules));
        // Room for the nesting of a typical log line without regrowing.
        frames.reserve(8);
        // A member being dropped: its key start and how many containers of
        // its value are open.
        let mut dropping: Option<(usize, usize)> = None;

        while let Some(tok) = sc_.next()? {
            if let Some((key_start, open)) = dropping.as_mut() {
                let done_at = match tok {
                    Token::ObjStart(_) | Token::ArrStart(_) => {
                        *open += 1;
                        None
                    }
                    Token::ObjEnd(p) | Token::ArrEnd(p) => {
                        *open -= 1;
                        (*open == 0).then_some(p + 1)
                    }
                    Token::Str { end, .. } | Token::Num { end, .. } | Token::Lit { end, .. }
                        if *open == 0 =>
                    {
                        Some(end)
                    }
                    _ => None,
                };
                if let Some(end) = done_at {
                    let ks = *key_start;
                    dropping = None;
                    if let Some(f) = frames.last_mut() {
                        f.pending_drop = Some((ks, end));
                        f.member = None;
                    }
                }
                continue;
            }
            match tok {
                Token::Key {
                    start,
                    end,
                    escaped,
                } => {
                    let Some(f) = frames.last_mut() else { continue };
                    if let Some((ks, _)) = f.pending_drop.take() {
                        edits.delete(ks, start);
                    }
                    f.member = None;
                    f.key = None;
                    let key = decode_string(&text[start..end], escaped)?;
                    // A name can be the data itself (an address book keyed
                    // by e-mail address): it is redacted like a string
                    // value, and kept unique within its object. Most names
                    // hold no hit of the line's scan: that is checked first.
                    if cursor.may_hold_hits(self, &key, (start + 1, end - 1), true)
                        && let Some(new) = self.redact_member_value(
                            &key,
                            true,
                            (start + 1, end - 1),
                            None,
                            scan,
                            sc,
                            st,
                            MAX_EMBEDDED_DEPTH,
                        )
                    {
                        let seen = f.redacted_names.get_or_insert_with(Default::default);
                        let new = unique_name(new, seen);
                        edits.replace_with(start, end, |b| encode_string(&new, b));
                    }
                    if f.subtree.is_some() {
                        continue;
                    }
                    let rule = if lookup_names {
                        self.key_rule_cached(&key, sc)
                    } else {
                        None
                    };
                    f.key = Some(key);
                    f.key_span = (start + 1, end - 1);
                    f.key_ctx = names_matter && self.name_may_serve_context(scan, f.key_span);
                    let Some(r) = rule else { continue };
                    if self.rules[r as usize].action == ActionKind::Drop {
                        st.hit(r);
                        if let Some(fs) = sc.findings.as_mut() {
                            fs.push(finding(r, start, ""));
                        }
                        dropping = Some((start, 0));
                    } else {
                        f.member = Some(r);
                    }
                }
                Token::ObjStart(_) | Token::ArrStart(_) => {
                    let subtree = frames.last().and_then(|f| f.subtree.or(f.member));
                    let obj = matches!(tok, Token::ObjStart(_));
                    let (key, key_span, key_ctx) = match frames.last() {
                        Some(f) if !obj => (f.key.clone(), f.key_span, f.key_ctx),
                        _ => (None, (0, 0), false),
                    };
                    frames.push(Frame {
                        obj,
                        subtree,
                        key,
                        key_span,
                        key_ctx,
                        ..Frame::default()
                    });
                }
                Token::ObjEnd(p) | Token::ArrEnd(p) => {
                    if let Some(f) = frames.pop()
                        && let Some((ks, ve)) = f.pending_drop
                    {
                        // The dropped member was the last: remove the comma before it.
                        edits.delete(f.prev_kept_end.unwrap_or(ks), ve);
                    }
                    value_done(frames, p + 1);
                }
                Token::Str {
                    start,
                    end,
                    escaped,
                } => {
                    let sensitive = frames.last().and_then(|f| f.subtree.or(f.member));
                    let value = decode_string(&text[start..end], escaped)?;
                    if sensitive.is_some() && super::action::is_whole_marker(&value) {
                        // Already redacted by an earlier pass.
                    } else if let Some(r) = sensitive {
                        self.replace_whole(r, &value, start, end, edits, sc, st);
                    } else if !wants_name(frames.last())
                        // (A backslash in the value needs one in the line.)
                        && (!escaped || !hides_unicode_escapes(&value))
                        && !cursor.may_hold_hits(self, &value, (start + 1, end - 1), true)
                    {
                        // Most values: nothing of the scan inside them.
                    } else if let Some(new) = self.redact_member_value(
                        &value,
                        true,
                        (start + 1, end - 1),
                        frames.last(),
                        scan,
                        sc,
                        st,
                        depth,
                    ) {
                        edits.replace_with(start, end, |b| encode_string(&new, b));
                        sc.put_string(new);
                    }
                    value_done(frames, end);
                }
                Token::Num { start, end } => {
                    let sensitive = frames.last().and_then(|f| f.subtree.or(f.member));
                    let num = &text[start..end];
                    if let Some(r) = sensitive {
                        self.replace_whole(r, num, start, end, edits, sc, st);
                    } else if !wants_name(frames.last())
                        && !cursor.may_hold_hits(self, num, (start, end), false)
                    {
                        // Nothing of the scan inside the number.
                    } else if let Some(new) = self.redact_member_value(
                        num,
                        false,
                        (start, end),
                        frames.last(),
                        scan,
                        sc,
                        st,
                        depth,
                    ) {
                        // A sensitive number (a card stored as a number)
                        // becomes a string: the key stays, the value goes.
                        edits.replace_with(start, end, |b| encode_string(&new, b));
                        sc.put_string(new);
                    }
                    value_done(frames, end);
                }
                Token::Lit { end, .. } => value_done(frames, end),
            }
        }
        if edits.list.is_empty() {
            return Ok(None);
        }
        // At the top, into the line's output buffer, which `redact_line`
        // takes back: no allocation and no copy per line.
        let mut out = if depth == 0 {
            sc.take_out()
        } else {
            String::new()
        };
        out.reserve(text.len() + edits.buf.len());
        let mut pos = 0;
        for e in &edits.list {
            out.push_str(&text[pos..e.start]);
            out.push_str(&edits.buf[e.from..e.to]);
            pos = e.end;
        }
        out.push_str(&text[pos..]);
        Ok(Some(out))
    }

    /// Whether the name at `span` (its content) may give a context rule its
    /// match: what [`Ruleset::redact_member_value`] asks before it passes a
    /// name on. A positional scan tells (a context rule's keyword inside
    /// the name); without one, every name may.
    fn name_may_serve_context(&self, scan: Option<&LineScan>, span: (usize, usize)) -> bool {
        match scan {
            Some(ls) if ls.positional => any_rule_within(
                &ls.kw,
                ls.to_scanned(span.0),
                ls.to_scanned(span.1),
                &self.context_rules,
            ),
            _ => true,
        }
    }

    /// A value under a `keys` rule: replaced as a whole, whatever it is.
    #[allow(clippy::too_many_arguments)]
    fn replace_whole(
        &self,
        r: u32,
        value: &str,
        start: usize,
        end: usize,
        edits: &mut Edits,
        sc: &mut Scratch,
        st: &mut Stats,
    ) {
        if value.is_empty() {
            return; // nothing to hide, and "" is a useful signal in logs
        }
        let rule = &self.rules[r as usize];
        st.hit(r);
        if let Some(fs) = sc.findings.as_mut() {
            fs.push(finding(r, start, value));
        }
        let mut rendered = String::new();
        render(rule, &self.hash_key, value, &mut rendered);
        edits.replace_with(start, end, |b| encode_string(&rendered, b));
    }

    /// One string or number value at `span` (its content) in the line:
    /// works out which rules to run on it and with which member name.
    #[allow(clippy::too_many_arguments)]
    fn redact_member_value(
        &self,
        value: &str,
        is_string: bool,
        span: (usize, usize),
        frame: Option<&Frame<'_>>,
        scan: Option<&LineScan>,
        sc: &mut Scratch,
        st: &mut Stats,
        depth: u8,
    ) -> Option<String> {
        let mut vb = sc.take_bits();
        let mut kb = sc.take_bits();
        let cands = match scan {
            None => None,
            Some(ls) if ls.positional => {
                // Keyword rules only where their keyword is inside this
                // value, set rules only where one of their matches ends.
                let (lo, hi) = (ls.to_scanned(span.0), ls.to_scanned(span.1));
                if ls.ends_known {
                    vb.reset(self.rules.len());
                    rules_ending_within(&ls.ends, lo, hi, &mut vb);
                    for &r in self.prefilter.always() {
                        vb.insert(r);
                    }
                } else {
                    vb.copy_from(&ls.unkeyed);
                }
                rules_within(&ls.kw, lo, hi, None, &mut vb);
                Some(&vb)
            }
            Some(ls) => Some(&ls.all),
        };
        let key = frame.and_then(|f| f.key.as_deref().map(|name| (name, f.key_span)));
        let key = match (key, scan) {
            (None, _) => None,
            (Some((name, _)), None) => Some(KeyCtx { name, rules: None }),
            (Some((name, (lo, hi))), Some(ls)) if ls.positional => {
                let (lo, hi) = (ls.to_scanned(lo), ls.to_scanned(hi));
                kb.reset(self.rules.len());
                rules_within(&ls.kw, lo, hi, Some(&self.context_rules), &mut kb);
                (!kb.is_empty()).then_some(KeyCtx {
                    name,
                    rules: Some(&kb),
                })
            }
            (Some((name, _)), Some(ls)) => ls
                .all
                .intersects(&self.context_rules)
                .then_some(KeyCtx { name, rules: None }),
        };
        // Nothing can match this value: no candidate rule, no name that a
        // context rule wants, and no percent escape to decode and rescan.
        // (Embedded JSON is covered: the line scan saw its text, with one
        // level of escapes decoded, which for `\uXXXX` one level further
        // down is not the text the walk of that level sees.)
        let nothing_to_do = cands.is_some_and(|c| {
            c.iter()
                .all(|r| self.rules[r as usize].min_len > value.len())
        }) && key.is_none()
            && !has_percent_escape(value)
            && !(is_string && hides_unicode_escapes(value));
        let r = if nothing_to_do {
            None
        } else if is_string {
            self.redact_string_value(value, cands, key, span.0, sc, st, depth)
        } else {
            self.redact_text(value, cands, key, span.0, sc, st)
        };
        sc.put_bits(vb);
        sc.put_bits(kb);
        r
    }

    /// A string value: embedded JSON is walked as JSON, anything else is
    /// redacted as text.
    #[allow(clippy::too_many_arguments)]
    fn redact_string_value(
        &self,
        value: &str,
        cands: Option<&RuleBits>,
        key: Option<KeyCtx<'_>>,
        base: usize,
        sc: &mut Scratch,
        st: &mut Stats,
        depth: u8,
    ) -> Option<String> {
        if depth < MAX_EMBEDDED_DEPTH && json_like(value) {
            // Candidates of the outer scan are not valid here: the inner
            // text was unescaped. It gets its own scan, as a line does: one
            // pass over it, and no walk at all when it finds nothing.
            let mut scan = sc.scan_pool.pop().unwrap_or_default();
            let r = if self.raw_scan_is_superset && self.json_line_is_clean(value, &mut scan, sc) {
                Ok(None)
            } else {
                let scan = self.raw_scan_is_superset.then_some(&scan);
                self.redact_json(value, scan, sc, st, depth + 1)
            };
            sc.scan_pool.push(scan);
            if let Ok(r) = r {
                return r;
            }
        }
        self.redact_text(value, cands, key, base, sc, st)
    }
}

/// Whether a member name or value may hold something to redact, asked of
/// each in line order: a keyword inside it or a set match ending in it
/// (the cheap part of [`Ruleset::redact_member_value`]'s choice, without
/// its scratch bit sets), or anything that choice could not rule out. A
/// member's name, wanted by context rules, is the caller's to check.
///
/// What holds for the whole line is worked out once (on the corpus the
/// question is asked ~30 times a line); the places in the scan's lists are
/// carried from one question to the next, so a line costs one pass over
/// them.
struct HitCursor<'s> {
    /// The line's scan, when it can rule names and values out: positional,
    /// with set match positions known, and no rule that always runs.
    scan: Option<&'s LineScan>,
    /// Whether the line holds a `%` (or its escape `\u0025`).
    line_has_percent: bool,
    kw: usize,
    ends: usize,
}

impl<'s> HitCursor<'s> {
    fn new(rs: &Ruleset, scan: Option<&'s LineScan>, line_has_percent: bool) -> HitCursor<'s> {
        let scan = scan.filter(|ls| {
            ls.positional
                && rs.prefilter.always().is_empty()
                && (ls.ends_known || ls.unkeyed.is_empty())
        });
        HitCursor {
            scan,
            line_has_percent,
            kw: 0,
            ends: 0,
        }
    }

    /// For the name or value `name` at `span` (its content) in the line;
    /// `text`: a string (whose percent escapes are decoded), not a number.
    #[inline]
    fn may_hold_hits(
        &mut self,
        rs: &Ruleset,
        name: &str,
        span: (usize, usize),
        text: bool,
    ) -> bool {
        let Some(ls) = self.scan else {
            return true;
        };
        if text && self.line_has_percent && name.as_bytes().contains(&b'%') {
            return true;
        }
        let (lo, hi) = (ls.to_scanned(span.0), ls.to_scanned(span.1));
        while ls
            .ends
            .get(self.ends)
            .is_some_and(|h| (h.end as usize) <= lo)
        {
            self.ends += 1;
        }
        if ls.ends.get(self.ends).is_some_and(|h| h.end as usize <= hi) {
            return true;
        }
        while ls.kw.get(self.kw).is_some_and(|h| (h.end as usize) <= lo) {
            self.kw += 1;
        }
        // A keyword's rule counts where its matches fit in the name (the
        // `pat` of airtable-pat is in every `path`).
        ls.kw[self.kw..]
            .iter()
            .take_while(|h| (h.end as usize) <= hi)
            .any(|h| h.start as usize >= lo && rs.rules[h.rule as usize].min_len <= name.len())
    }
}

/// Whether a value under `frame` must be walked for its member's name
/// alone: a context rule is in the line's scan and the name may give it
/// its match (`key_ctx`). (Otherwise `redact_member_value` would find no
/// name to pass on, and a value the scan saw nothing in has nothing else
/// to find.)
fn wants_name(frame: Option<&Frame<'_>>) -> bool {
    frame.is_some_and(|f| f.key.is_some() && f.key_ctx)
}

fn value_done(frames: &mut [Frame<'_>], end: usize) {
    if let Some(f) = frames.last_mut()
        && f.obj
    {
        f.prev_kept_end = Some(end);
        f.member = None;
        f.key = None;
    }
}

/// `name`, or `name #2`, `name #3`, ... when earlier redacted names of the
/// same object came out the same; recorded in `seen`.
fn unique_name(name: String, seen: &mut RedactedNames) -> String {
    let n = seen.counts.entry(name.clone()).or_insert(0);
    let mut out = name.clone();
    loop {
        *n += 1;
        if *n > 1 {
            out = format!("{name} #{n}");
        }
        // Another redacted form may already read `name #n` (it would take
        // a mask that ends in ` #2`): go on counting.
        if seen.written.insert(out.clone()) {
            return out;
        }
    }
}

/// Whether a (decoded) string value is JSON holding `\u` escapes: its own
/// walk decodes them into text the line-level scan never saw
/// (`pass\u0077ord` is `password` there).
pub(crate) fn hides_unicode_escapes(value: &str) -> bool {
    json_like(value) && has_unicode_escape(value)
}

/// Whether a string value may be JSON text, which starts and ends with its
/// brackets (`[nio-8080-exec-1] c.e.OrderController ...` is not worth a
/// scan and a parse).
fn json_like(value: &str) -> bool {
    let t = value.trim();
    (t.starts_with('{') && t.ends_with('}')) || (t.starts_with('[') && t.ends_with(']'))
}

/// Whether `s` holds `\u` (a backslash is rare in decoded text, so this is
/// one `memchr` pass for most).
pub(crate) fn has_unicode_escape(s: &str) -> bool {
    let b = s.as_bytes();
    memchr::memchr_iter(b'\\', b).any(|i| b.get(i + 1) == Some(&b'u'))
}

#[cfg(test)]
mod tests {
    use crate::engine::{Scratch, Stats, builtin_hits_and, builtin_shared};
    use proptest::prelude::*;

    #[test]
    fn recycled_frames_keep_their_allocation() {
        let text = String::from("name");
        let mut frames: Vec<super::Frame<'_>> = Vec::with_capacity(16);
        frames.push(super::Frame {
            key: Some(std::borrow::Cow::Borrowed(&text)),
            ..super::Frame::default()
        });
        let ptr = frames.as_ptr() as usize;
        let kept = super::recycle_frames(frames);
        assert!(kept.is_empty());
        assert_eq!(kept.capacity(), 16);
        assert_eq!(kept.as_ptr() as usize, ptr, "the same buffer");
    }

    #[test]
    fn a_deeply_nested_line_does_not_leave_its_frames_in_the_pool() {
        let rs = builtin_shared();
        let mut sc = Scratch::new(rs);
        let mut st = Stats::new(rs);
        let deep = 10_000;
        let line = format!(
            "{}\"mail ann@example.com\"{}",
            "[".repeat(deep),
            "]".repeat(deep)
        );
        let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
        assert!(!String::from_utf8_lossy(out).contains("ann@example.com"));
        assert!(!sc.edits_pool.is_empty(), "the walk ran");
        for e in &sc.edits_pool {
            assert!(e.frames.capacity() <= super::KEPT_NESTING_MAX);
            assert!(e.stack.capacity() <= super::KEPT_NESTING_MAX);
        }
        // A shallow line's are kept.
        let (out, _) = rs.redact_line(br#"{"a":{"m":"mail ann@example.com"}}"#, &mut sc, &mut st);
        assert!(!String::from_utf8_lossy(out).contains("ann@example.com"));
        assert!(sc.edits_pool.iter().any(|e| e.frames.capacity() > 0));
    }

    /// What values are made of: every `hit` text of the built-in rules'
    /// own tests (secrets of every kind, names with their values), and
    /// plain words, digits and escapes that sit next to them in logs.
    fn pieces() -> Vec<String> {
        builtin_hits_and(&[
            "",
            " ",
            "ok",
            "GET /api/v2/orders/9093394",
            "10.1.2.3",
            "2001:db8::1",
            "%40",
            "%2F",
            "\\u0041",
            "é",
            "4111111111111111",
            "pass",
            "token=",
            "=",
            ":",
            "\"",
            "{",
            "}",
            "2024-05-14T08:00:00.009963Z",
            "user@",
            "@example.com",
        ])
    }

    const NAMES: &[&str] = &[
        "msg",
        "path",
        "password",
        "token",
        "api_key",
        "aws_secret_access_key",
        "user",
        "remote_ip",
        "ssn",
        "card_number",
        "headers",
        "authorization",
        "x",
        "ann@example.com",
        "db_password",
        "secret",
        "n",
    ];

    /// Whether `text` holds nothing a context rule (one that reads the
    /// member's name, like `password` or `aws_secret_access_key`) keys on:
    /// lines made only of such pieces take the walk's fastest path.
    fn quiet(text: &str) -> bool {
        let rs = builtin_shared();
        let mut bits = super::RuleBits::default();
        let mut cache = rs.new_scan_cache();
        rs.candidates(text, &mut bits, &mut cache);
        !bits.intersects(&rs.context_rules)
    }

    fn value(depth: u32, pieces: Vec<String>) -> BoxedStrategy<serde_json::Value> {
        let text = prop::collection::vec(prop::sample::select(pieces), 1..4)
            .prop_map(|p| serde_json::Value::String(p.concat()));
        let leaf = prop_oneof![
            4 => text,
            1 => (0u64..u64::MAX).prop_map(serde_json::Value::from),
            1 => Just(serde_json::Value::Bool(true)),
        ];
        leaf.prop_recursive(depth, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::vec((prop::sample::select(NAMES), inner.clone()), 0..4).prop_map(
                    |m| serde_json::Value::Object(
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                    )
                ),
                // JSON held in a string, as log shippers nest it, some
                // of its letters written as `\u` escapes.
                (inner, 0..4usize).prop_map(|(v, every)| {
                    serde_json::Value::String(escape_letters(&v.to_string(), every))
                }),
            ]
        })
        .boxed()
    }

    /// A JSON line: from every piece and name, or (half the time) only
    /// from the quiet ones.
    fn line() -> BoxedStrategy<String> {
        let all = pieces();
        let quiet_pieces: Vec<String> = all.iter().filter(|p| quiet(p)).cloned().collect();
        let quiet_names: Vec<&'static str> = NAMES.iter().copied().filter(|n| quiet(n)).collect();
        let object = |names: Vec<&'static str>, pieces: Vec<String>| {
            prop::collection::vec((prop::sample::select(names), value(3, pieces)), 1..6).prop_map(
                |m| {
                    let obj: serde_json::Map<String, serde_json::Value> =
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    serde_json::Value::Object(obj).to_string()
                },
            )
        };
        prop_oneof![
            object(NAMES.to_vec(), all),
            object(quiet_names, quiet_pieces)
        ]
        .boxed()
    }

    #[test]
    fn a_keyword_whose_rule_matches_nowhere_in_the_line_does_not_send_it_to_the_walk() {
        let rs = builtin_shared();
        let mut sc = Scratch::new(rs);
        let mut scan = crate::engine::ruleset::LineScan::default();
        // airtable-pat's keyword `pat` is in `path`.
        let clean = r#"{"request":{"method":"GET","path":"/api/v2/orders/1234567"},"msg":"ok"}"#;
        assert!(rs.json_line_is_clean(clean, &mut scan, &mut sc));
        assert!(!scan.all.is_empty(), "the scan saw the keyword");
        let token =
            "patSLibaI3Bsy5fbW.1dece7374e6104e7cf6e4b509ebf9e4021c95bbc1c4f7cfa958866a0585a183e";
        let hit = format!(r#"{{"path":"/x","value":"{token}"}}"#);
        assert!(!rs.json_line_is_clean(&hit, &mut scan, &mut sc));
        let mut st = Stats::new(rs);
        let (out, _) = rs.redact_line(hit.as_bytes(), &mut sc, &mut st);
        assert!(!String::from_utf8_lossy(out).contains(token));
    }

    #[test]
    fn a_percent_escape_whose_percent_is_a_json_escape_is_still_decoded() {
        // `pass%77ord` is `password` percent-decoded; its `%` may itself be
        // written `\u0025`, which the walk must not take for "no `%` here".
        let rs = builtin_shared();
        let mut sc = Scratch::new(rs);
        let mut st = Stats::new(rs);
        for line in [
            r#"{"q":"pass%77ord=hunter2xyz"}"#,
            r#"{"q":"pass\u002577ord=hunter2xyz"}"#,
            r#"{"msg":"x","q":"pass\u002577ord=hunter2xyz"}"#,
        ] {
            let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
            let out = String::from_utf8_lossy(out);
            assert!(!out.contains("hunter2"), "{line} -> {out}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&out).is_ok(),
                "{out}"
            );
        }
    }

    #[test]
    fn an_anchored_keyword_rule_still_runs_on_the_values_it_matches_alone() {
        // `^...$` matches the value, never the line around it: the line
        // must be walked although the rule does not match the line.
        let rs = crate::engine::compile_for_test(
            "[[rules]]\nid='b'\ncategory='secret'\npattern='^Bearer [a-z]+$'\nkeywords=['bearer']\n",
        );
        let mut sc = Scratch::new(&rs);
        let mut st = Stats::new(&rs);
        let line = r#"{"h":"Bearer abc","m":"x"}"#;
        let (out, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
        let out = String::from_utf8_lossy(out).into_owned();
        assert_eq!(out, r#"{"h":"[REDACTED:b]","m":"x"}"#);
    }

    /// `json` with every `every`-th ASCII letter inside its strings
    /// written as a `\u00XX` escape (0: unchanged). Still the same JSON.
    fn escape_letters(json: &str, every: usize) -> String {
        let mut out = String::with_capacity(json.len());
        let (mut in_str, mut esc, mut n) = (false, false, 0usize);
        for c in json.chars() {
            if in_str && !esc && c.is_ascii_alphabetic() && every > 0 {
                n += 1;
                if n % every == 0 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                    continue;
                }
            }
            out.push(c);
            if esc {
                esc = false;
            } else if in_str && c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = !in_str;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// The walk of a JSON line runs each rule only on the names and
        /// values where the line's one scan saw it, and skips the rest
        /// (and the name lookup, when no field-name rule is in the scan).
        /// Whatever the line, that must redact exactly what a walk that
        /// scans every name and value on its own redacts.
        #[test]
        fn the_walk_guided_by_the_line_scan_redacts_what_a_walk_scanning_every_value_does(
            line in line(),
        ) {
            let rs = builtin_shared();
            let mut sc = Scratch::new(rs);
            let mut st = Stats::new(rs);
            let (fast, _) = rs.redact_line(line.as_bytes(), &mut sc, &mut st);
            let fast = String::from_utf8_lossy(fast).into_owned();
            let mut sc = Scratch::new(rs);
            let mut st = Stats::new(rs);
            let slow = match rs.redact_json(&line, None, &mut sc, &mut st, 0) {
                Ok(Some(s)) => s,
                Ok(None) => line.clone(),
                Err(e) => return Err(TestCaseError::fail(format!("{e:?}: {line}"))),
            };
            prop_assert_eq!(fast, slow, "line: {}", line);
        }
    }
}
