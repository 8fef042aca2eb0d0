//! A validating, span-reporting JSON tokenizer.
//!
//! Why our own instead of serde_json's DOM: redaction must give back the
//! line with *only* the redacted values changed — same key order, same
//! whitespace, same number spelling, byte for byte elsewhere — and it must
//! not recurse (a 10,000-deep object would overflow a recursive parser's
//! stack). serde_json offers neither spans nor an iterative pull API, so
//! this module walks the bytes itself and reports each token with its byte
//! span. Decoding of string escapes is left to serde_json
//! ([`decode_string`]), which is where the subtle part (surrogates) lives.
//!
//! Measured against the alternatives the performance issue named, on the
//! 34,686 JSON lines (17.2 MB) of a 20 MB slice of the shared corpus, best
//! of 5, 2-core x86_64 VM, 2026-12-01 (`cargo run --release --manifest-path
//! benches/json-parsers/Cargo.toml -- FILE`):
//!
//! | parser | MB/s | spans | deep nesting |
//! |---|---|---|---|
//! | this tokenizer (every token with its span) | 616.5 | yes | heap stack |
//! | serde_json into `IgnoredAny` (validation only) | 1572.8 | no | recursion limit 128 |
//! | serde_json into `Value` (DOM) | 423.5 | no | recursion limit 128 |
//! | simd-json tape (includes the copy it parses in place) | 636.5 | no (unescapes in place) | limit |
//! | simd-json borrowed DOM | 435.3 | no | limit |
//! | sonic-rs into `Value` (DOM) | 1433.7 | no | recursion limit |
//! | sonic-rs lazy top-level members (raw values) | 1272.7 | raw text of each member | recursion limit |
//!
//! The faster ones give no byte spans, so rewriting only the changed values
//! would mean re-serialising (losing key order, spacing and number
//! spelling) or re-finding each value in the text; and they refuse the
//! 10,000-deep lines this tokenizer walks. Speed matters less than the
//! table suggests: a line whose prefilter pass finds nothing is never
//! tokenized, and on lines that are, tokenizing is about 5% of the time
//! (perf, full library). The cost here is per token (about 21 ns: 38 tokens
//! a line, short strings), not per byte: which is why a string's first
//! bytes are searched a word at a time (see [`special_at`]) rather than
//! with a `memchr2` call each.

use std::borrow::Cow;

/// A token and its byte span `[start, end)` in the input. String spans
/// include the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    ObjStart(usize),
    /// Position of the `}`.
    ObjEnd(usize),
    ArrStart(usize),
    ArrEnd(usize),
    /// A member name. `escaped` when it holds a backslash escape.
    Key {
        start: usize,
        end: usize,
        escaped: bool,
    },
    Str {
        start: usize,
        end: usize,
        escaped: bool,
    },
    Num {
        start: usize,
        end: usize,
    },
    /// `true`, `false` or `null`.
    Lit {
        start: usize,
        end: usize,
    },
}

/// Why a line is not JSON. The offset is a byte position, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON at byte {offset}: {what}")]
pub struct JsonError {
    pub offset: usize,
    pub what: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value,
    /// Right after `{`: a key or `}`.
    KeyOrEnd,
    /// After `,` in an object.
    Key,
    Colon,
    /// Right after `[`: a value or `]`.
    ValueOrEnd,
    CommaOrEnd,
    Done,
}

/// Pull tokenizer over one JSON text.
pub struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
    /// Open containers, `true` for objects. Heap-allocated: depth is bounded
    /// by the input's length, not by the thread's stack.
    stack: Vec<bool>,
    expect: Expect,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Scanner<'a> {
        Self::with_stack(text, Vec::new())
    }

    /// A scanner that keeps its open containers in `stack` (emptied first):
    /// a caller that scans line after line hands back the stack of the line
    /// before ([`Self::into_stack`]) instead of allocating one per line.
    pub fn with_stack(text: &'a str, mut stack: Vec<bool>) -> Scanner<'a> {
        stack.clear();
        Scanner {
            b: text.as_bytes(),
            pos: 0,
            stack,
            expect: Expect::Value,
        }
    }

    /// The stack's allocation, for [`Self::with_stack`].
    pub fn into_stack(self) -> Vec<bool> {
        self.stack
    }

    /// Current nesting depth.
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    fn err(&self, what: &'static str) -> JsonError {
        JsonError {
            offset: self.pos,
            what,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn after_value(&mut self) {
        self.expect = if self.stack.is_empty() {
            Expect::Done
        } else {
            Expect::CommaOrEnd
        };
    }

    /// The next token, `Ok(None)` at a clean end of input.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Token>, JsonError> {
        loop {
            self.skip_ws();
            let Some(&c) = self.b.get(self.pos) else {
                return if self.expect == Expect::Done {
                    Ok(None)
                } else {
                    Err(self.err("unexpected end of input"))
                };
            };
            match self.expect {
                Expect::Done => return Err(self.err("trailing characters after the JSON value")),
                Expect::Colon => {
                    if c != b':' {
                        return Err(self.err("expected ':'"));
                    }
                    self.pos += 1;
                    self.expect = Expect::Value;
                }
                Expect::CommaOrEnd => {
                    let in_obj = self.stack.last().copied().unwrap_or(false);
                    match c {
                        b',' => {
                            self.pos += 1;
                            self.expect = if in_obj { Expect::Key } else { Expect::Value };
                        }
                        b'}' if in_obj => return Ok(Some(self.close(true))),
                        b']' if !in_obj => return Ok(Some(self.close(false))),
                        _ => return Err(self.err("expected ',' or a closing bracket")),
                    }
                }
                Expect::KeyOrEnd | Expect::Key => match c {
                    b'}' if self.expect == Expect::KeyOrEnd => return Ok(Some(self.close(true))),
                    b'"' => {
                        let (start, end, escaped) = self.string()?;
                        self.expect = Expect::Colon;
                        return Ok(Some(Token::Key {
                            start,
                            end,
                            escaped,
                        }));
                    }
                    _ => return Err(self.err("expected a member name")),
                },
                Expect::ValueOrEnd if c == b']' => return Ok(Some(self.close(false))),
                Expect::Value | Expect::ValueOrEnd => return self.value(c).map(Some),
            }
        }
    }

    fn close(&mut self, obj: bool) -> Token {
        let at = self.pos;
        self.pos += 1;
        self.stack.pop();
        self.after_value();
        if obj {
            Token::ObjEnd(at)
        } else {
            Token::ArrEnd(at)
        }
    }

    fn value(&mut self, c: u8) -> Result<Token, JsonError> {
        let start = self.pos;
        match c {
            b'{' => {
                self.pos += 1;
                self.stack.push(true);
                self.expect = Expect::KeyOrEnd;
                Ok(Token::ObjStart(start))
            }
            b'[' => {
                self.pos += 1;
                self.stack.push(false);
                self.expect = Expect::ValueOrEnd;
                Ok(Token::ArrStart(start))
            }
            b'"' => {
                let (start, end, escaped) = self.string()?;
                self.after_value();
                Ok(Token::Str {
                    start,
                    end,
                    escaped,
                })
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
                self.after_value();
                Ok(Token::Num {
                    start,
                    end: self.pos,
                })
            }
            b't' | b'f' | b'n' => {
                let lit: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !self.b[self.pos..].starts_with(lit) {
                    return Err(self.err("invalid literal"));
                }
                self.pos += lit.len();
                self.after_value();
                Ok(Token::Lit {
                    start,
                    end: self.pos,
                })
            }
            _ => Err(self.err("expected a value")),
        }
    }

    /// Scans a string starting at the opening quote; returns its span with
    /// quotes and whether it contains escapes.
    fn string(&mut self) -> Result<(usize, usize, bool), JsonError> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        loop {
            // The next quote, backslash or control character (which JSON
            // forbids unescaped).
            let Some(i) = special_at(&self.b[self.pos..]) else {
                self.pos = self.b.len();
                return Err(self.err("unterminated string"));
            };
            self.pos += i;
            match self.b[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok((start, self.pos, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match self.b.get(self.pos + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 2
                        }
                        Some(b'u') => {
                            let hex = self.b.get(self.pos + 2..self.pos + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.err("invalid \\u escape"));
                            }
                            self.pos += 6;
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                // `special_at` stops at nothing else.
                _ => return Err(self.err("control character in string")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let s = self.pos;
        while self.b.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - s
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.b[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.b.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(())
    }
}

/// The text of a JSON string token (span with quotes). Borrowed when there
/// is no escape; decoded by serde_json otherwise. A lone surrogate escape
/// (valid JSON syntax, not valid Unicode) is an error.
pub fn decode_string(raw_with_quotes: &str, escaped: bool) -> Result<Cow<'_, str>, JsonError> {
    if !escaped {
        return Ok(Cow::Borrowed(
            &raw_with_quotes[1..raw_with_quotes.len() - 1],
        ));
    }
    serde_json::from_str::<String>(raw_with_quotes)
        .map(Cow::Owned)
        .map_err(|_| JsonError {
            offset: 0,
            what: "invalid string escape",
        })
}

/// How many bytes of a string [`special_at`] reads word by word before it
/// hands the rest to `memchr2`.
const SWAR_BYTES: usize = 32;

/// The offset of the first byte of `s` that ends a run of plain string
/// content: a quote, a backslash or a control character (< 0x20).
///
/// Why by hand: most member names and values in log lines are short (a
/// level, a timestamp, an id), and for those a `memchr2` call plus a
/// separate pass for control characters cost more than the bytes (about
/// 166 instructions a string on the shared corpus, callgrind). The first
/// [`SWAR_BYTES`] are read eight at a time with all three tests in one
/// word (the bit tricks of "Bit Twiddling Hacks", *Determine if a word has
/// a byte less than n*); what is longer goes on with `memchr2`'s SIMD
/// search, whose run is then checked for control characters.
fn special_at(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < SWAR_BYTES {
        let Some(w) = s.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) else {
            // Under eight bytes left: one by one.
            return s[i..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .map(|k| i + k);
        };
        let m = special_mask(u64::from_le_bytes(w));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    let rest = &s[i..];
    let j = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    control_at(&rest[..j])
        .or((j < rest.len()).then_some(j))
        .map(|k| i + k)
}

/// The high bit of each byte of `w` (bytes in memory order from the low
/// end) that is a quote, a backslash or below 0x20, exact up to and
/// including the lowest such byte (a borrow may also flag bytes above it,
/// which no caller looks at).
#[inline(always)]
fn special_mask(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // A byte is zero in `x` when `(x - 1) & !x` has its high bit set; below
    // 0x20 when `(x - 0x20) & !x` has.
    let q = w ^ (LO * b'"' as u64);
    let b = w ^ (LO * b'\\' as u64);
    ((q.wrapping_sub(LO) & !q) | (b.wrapping_sub(LO) & !b) | (w.wrapping_sub(LO * 0x20) & !w)) & HI
}

/// The offset of the first control character (< 0x20) in `run`, if any.
fn control_at(run: &[u8]) -> Option<usize> {
    if run.iter().fold(false, |seen, &c| seen | (c < 0x20)) {
        run.iter().position(|&c| c < 0x20)
    } else {
        None
    }
}

/// Appends `s` as a JSON string literal (with quotes) to `out`.
///
/// Everything that needs an escape (a quote, a backslash, a control
/// character) is one ASCII byte, so the runs between them are found with
/// [`special_at`] and copied whole: a redacted message of a few hundred
/// characters went through `char_indices` one character at a time, 3.5% of
/// a run over the corpus's JSON lines with a hit (`perf`).
pub fn encode_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(k) = special_at(&b[from..]) {
        let i = from + k;
        // (`i` is on an ASCII byte, so a char boundary.)
        out.push_str(&s[from..i]);
        match b[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c);
            }
        }
        from = i + 1;
    }
    out.push_str(&s[from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> Result<Vec<Token>, JsonError> {
        let mut sc = Scanner::new(s);
        let mut v = Vec::new();
        while let Some(t) = sc.next()? {
            v.push(t);
        }
        Ok(v)
    }

    #[test]
    fn reports_spans_for_keys_and_values() {
        let t = tokens(r#"{"a": "b\n", "n": -1.5e3, "l": [true, null]}"#).unwrap();
        assert_eq!(t[0], Token::ObjStart(0));
        assert_eq!(
            t[1],
            Token::Key {
                start: 1,
                end: 4,
                escaped: false
            }
        );
        assert_eq!(
            t[2],
            Token::Str {
                start: 6,
                end: 11,
                escaped: true
            }
        );
        assert!(matches!(t[4], Token::Num { start: 18, end: 24 }));
        assert_eq!(t.len(), 11);
    }

    #[test]
    fn rejects_truncated_and_trailing_input() {
        for bad in [
            r#"{"a":"b""#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1} x"#,
            r#"[1,2"#,
            r#"{"a":01}"#,
            "{\"a\":\"\u{1}\"}",
            r#""\x""#,
            r#"[tru]"#,
        ] {
            assert!(tokens(bad).is_err(), "{bad}");
        }
    }

    /// The first quote, backslash or control character, one byte at a time.
    fn special_at_naive(s: &[u8]) -> Option<usize> {
        s.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)
    }

    #[test]
    fn the_word_at_a_time_search_stops_where_a_byte_by_byte_one_does() {
        // Every special byte at every offset, behind plain ASCII and behind
        // UTF-8 (bytes >= 0x80 must not look special), in texts that end
        // inside a word, exactly on one, and past the word-at-a-time part.
        let fillers: [&[u8]; 3] = [b"a", "é".as_bytes(), b"\x7f"];
        let specials = [b'"', b'\\', 0x00, 0x01, 0x1f];
        let tails: [&[u8]; 4] = [b"", b"!", b" 0x20 and above ~ \x7f", b"\x01\\"];
        for len in 0..=(SWAR_BYTES + 20) {
            for filler in fillers {
                let plain: Vec<u8> = filler.iter().copied().cycle().take(len).collect();
                assert_eq!(special_at(&plain), special_at_naive(&plain), "{plain:?}");
                for sp in specials {
                    for tail in tails {
                        let mut t = plain.clone();
                        t.push(sp);
                        t.extend_from_slice(tail);
                        assert_eq!(special_at(&t), special_at_naive(&t), "{t:?}");
                        assert_eq!(special_at(&t), Some(len));
                    }
                }
            }
        }
        // Bytes just above the limits are plain: 0x20, and the neighbours
        // of the quote and backslash.
        let plain = b" !#[]^ !#[]^ !#[]^ !#[]^ !#[]^ !#[]^ !#[]^";
        assert_eq!(special_at(plain), None);
    }

    #[test]
    fn strings_with_escapes_and_control_characters_at_any_offset() {
        for pad in 0..48 {
            let p = "x".repeat(pad);
            let ok = format!(r#"{{"{p}":"{p}\n{p}\u00e9{p}\"{p}"}}"#);
            assert!(tokens(&ok).is_ok(), "{ok}");
            let ctl = format!("{{\"{p}\u{1}\":1}}");
            let e = tokens(&ctl).unwrap_err();
            assert_eq!((e.offset, e.what), (2 + pad, "control character in string"));
            let open = format!(r#"{{"a":"{p}"#);
            assert_eq!(tokens(&open).unwrap_err().what, "unterminated string");
        }
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let depth = 100_000;
        let s = "[".repeat(depth) + &"]".repeat(depth);
        assert_eq!(tokens(&s).unwrap().len(), 2 * depth);
    }

    #[test]
    fn encode_round_trips_through_serde() {
        let s = "quote\" back\\ nl\n ctl\u{1} é 😀";
        let mut out = String::new();
        encode_string(s, &mut out);
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        assert_eq!(decode_string(&out, true).unwrap(), s);
    }

    /// The encoding one character at a time (what `encode_string` did
    /// before it copied runs).
    fn encode_naive(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn encoding_copies_runs_and_escapes_exactly_what_a_char_by_char_encoding_does() {
        // Every byte below 0x80 that needs an escape, and its neighbours,
        // at every offset around the word-at-a-time part of the search,
        // behind ASCII and behind multi-byte characters.
        let specials: Vec<char> = (0u8..0x20).chain([b'"', b'\\']).map(char::from).collect();
        let plain = [' ', '!', '#', '[', ']', '\u{7f}', 'é', '😀'];
        for len in 0..48 {
            for filler in ["x", "é", "😀"] {
                let pad = filler.repeat(len);
                for &c in specials.iter().chain(&plain) {
                    for tail in ["", "z", "\"\\\n", "é\u{1}"] {
                        let s = format!("{pad}{c}{tail}{pad}");
                        let mut out = String::from("kept:");
                        encode_string(&s, &mut out);
                        assert_eq!(out, format!("kept:{}", encode_naive(&s)), "{s:?}");
                        assert_eq!(serde_json::from_str::<String>(&out[5..]).unwrap(), s);
                    }
                }
            }
        }
    }
}
