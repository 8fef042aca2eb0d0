//! A logfmt pair scanner: `key=value key="quoted \"value\"" flag`.
//!
//! Why: field-name (`keys`) rules must cover logfmt as they cover JSON
//! members. A regex over `name=value` stops at the first space, so a quoted
//! value (`password="correct horse"`) would keep everything after its first
//! word; this scanner knows where a quoted value ends (backslash escapes
//! included) and hands the engine its exact span. There is no logfmt crate
//! that reports spans without allocating, and the grammar is a few lines.
//!
//! The grammar, as go-logfmt reads it: pairs are separated by spaces; a key
//! is a run of bytes other than space, `=` and `"`; a value is either quoted
//! (`"` to the next unescaped `"`) or a run of non-space bytes. A bare key
//! (`flag`) has no value. Anything else is skipped a byte at a time, so the
//! scanner works on any text — prose with a `key=value` in it included —
//! and never fails. An unterminated quoted value runs to the end of the
//! text: the engine then masks up to the end, which fails closed.

/// One `key=value` pair. Spans are byte offsets into the scanned text; the
/// value span excludes the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub key: (usize, usize),
    pub value: (usize, usize),
    pub quoted: bool,
}

/// Iterator over the `key=value` pairs of a text. Bare keys are skipped.
pub struct Pairs<'a> {
    b: &'a [u8],
    i: usize,
}

/// The pairs of `text`, left to right.
pub fn pairs(text: &str) -> Pairs<'_> {
    Pairs {
        b: text.as_bytes(),
        i: 0,
    }
}

/// Can a logfmt key contain this byte? (Not space, `=`, `"`, or control.)
fn key_byte(c: u8) -> bool {
    c > b' ' && c != b'=' && c != b'"' && c != 0x7f
}

impl Iterator for Pairs<'_> {
    type Item = Pair;

    fn next(&mut self) -> Option<Pair> {
        let b = self.b;
        while self.i < b.len() {
            // A key starts at the text's start or after whitespace.
            if !key_byte(b[self.i]) || (self.i > 0 && !b[self.i - 1].is_ascii_whitespace()) {
                self.i += 1;
                continue;
            }
            let ks = self.i;
            let mut k = ks;
            while k < b.len() && key_byte(b[k]) {
                k += 1;
            }
            if b.get(k) != Some(&b'=') {
                self.i = k.max(ks + 1);
                continue;
            }
            let vs = k + 1;
            if b.get(vs) == Some(&b'"') {
                let mut j = vs + 1;
                while j < b.len() {
                    match b[j] {
                        b'\\' => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                let end = j.min(b.len());
                self.i = (end + 1).min(b.len());
                return Some(Pair {
                    key: (ks, k),
                    value: (vs + 1, end),
                    quoted: true,
                });
            }
            let mut j = vs;
            while j < b.len() && !b[j].is_ascii_whitespace() {
                j += 1;
            }
            self.i = j;
            return Some(Pair {
                key: (ks, k),
                value: (vs, j),
                quoted: false,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> Vec<(&str, &str, bool)> {
        pairs(text)
            .map(|p| {
                (
                    &text[p.key.0..p.key.1],
                    &text[p.value.0..p.value.1],
                    p.quoted,
                )
            })
            .collect()
    }

    #[test]
    fn reads_plain_quoted_and_escaped_values() {
        assert_eq!(
            show(r#"level=info msg="a \"b\" c" password="x y" n=3 flag"#),
            vec![
                ("level", "info", false),
                ("msg", r#"a \"b\" c"#, true),
                ("password", "x y", true),
                ("n", "3", false),
            ]
        );
    }

    #[test]
    fn keys_start_after_whitespace_only() {
        // `b=c` inside a value is not a pair; neither is `=x` without a key.
        assert_eq!(
            show("a=b=c =x k=v"),
            vec![("a", "b=c", false), ("k", "v", false)]
        );
        assert_eq!(
            show("url=/p?token=abc"),
            vec![("url", "/p?token=abc", false)]
        );
    }

    #[test]
    fn empty_and_unterminated_values_fail_closed() {
        assert_eq!(show("a= b=\"\""), vec![("a", "", false), ("b", "", true)]);
        // No closing quote: the value runs to the end of the text.
        assert_eq!(
            show(r#"secret="open to the end"#),
            vec![("secret", "open to the end", true)]
        );
        // A trailing backslash cannot step past the end.
        assert_eq!(show("secret=\"ab\\"), vec![("secret", "ab\\", true)]);
    }

    #[test]
    fn prose_and_non_ascii_never_panic() {
        for t in [
            "",
            "=",
            "\"",
            "é=ü x=\"é",
            "a =b",
            "k=\"\\\"",
            "\t\tk=v\u{7f}",
        ] {
            for p in pairs(t) {
                assert!(t.get(p.key.0..p.key.1).is_some());
                assert!(t.get(p.value.0..p.value.1).is_some());
            }
        }
    }
}
