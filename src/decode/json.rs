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
//! a line, short strings, a `memchr2` call each), not per byte.

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
        Scanner {
            b: text.as_bytes(),
            pos: 0,
            stack: Vec::new(),
            expect: Expect::Value,
        }
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
            let rest = &self.b[self.pos..];
            // Jump to the next quote or backslash (SIMD), then check the run
            // before it for control characters, which JSON forbids
            // unescaped (a branch-free fold the compiler vectorizes).
            let Some(i) = memchr::memchr2(b'"', b'\\', rest) else {
                self.pos = self.b.len();
                return Err(self.err("unterminated string"));
            };
            if let Some(c) = control_at(&rest[..i]) {
                self.pos += c;
                return Err(self.err("control character in string"));
            }
            self.pos += i;
            match self.b[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok((start, self.pos, escaped));
                }
                // A backslash: memchr2 stops at nothing else.
                _ => {
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

/// The offset of the first control character (< 0x20) in `run`, if any.
fn control_at(run: &[u8]) -> Option<usize> {
    if run.iter().fold(false, |seen, &c| seen | (c < 0x20)) {
        run.iter().position(|&c| c < 0x20)
    } else {
        None
    }
}

/// Appends `s` as a JSON string literal (with quotes) to `out`.
pub fn encode_string(s: &str, out: &mut String) {
    out.push('"');
    let mut from = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[from..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        from = i + c.len_utf8();
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
}
