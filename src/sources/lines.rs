//! Splitting a byte stream into lines, in constant memory.
//!
//! Why not `BufRead::read_until`: it grows its buffer without bound on a
//! line with no newline (a 100 MB line is 100 MB of memory), and it gives no
//! hook for "about to block". [`LineReader`] hands out lines as slices of
//! its own buffer (no copy, no allocation per line), splits lines longer
//! than the limit into pieces, and calls back before every read that may
//! block so the caller can flush its output: a slow `tail -f` gets each
//! line at once, a fast file is written in big batches.

use std::io::{self, Read};

/// How much is asked of the OS per read.
const READ_SIZE: usize = 256 * 1024;

/// One unit handed out by [`LineReader::next`].
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// A whole line without its newline. `newline` is false only for a last
    /// line that ended without one.
    Line { data: &'a [u8], newline: bool },
    /// A piece of a line longer than the limit. `first` for its first piece,
    /// `last` (with `newline`) for its final one.
    Piece {
        data: &'a [u8],
        first: bool,
        last: bool,
        newline: bool,
    },
}

/// Reads lines from `R`; see the module doc.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    max_line: usize,
    /// Inside an over-long line: pieces already handed out.
    in_long_line: bool,
}

impl<R: Read> LineReader<R> {
    /// `max_line` is the longest line handed out whole (at least 1 KiB).
    pub fn new(inner: R, max_line: usize) -> Self {
        LineReader {
            inner,
            buf: vec![0; READ_SIZE],
            start: 0,
            end: 0,
            eof: false,
            max_line: max_line.max(1024),
            in_long_line: false,
        }
    }

    /// The next line or piece; `None` at end of input. `before_block` runs
    /// right before any read of the underlying stream.
    pub fn next(&mut self, mut before_block: impl FnMut()) -> io::Result<Option<Chunk<'_>>> {
        loop {
            let avail = &self.buf[self.start..self.end];
            // Only the first max_line bytes (plus a newline) can hold a whole line.
            let limit = avail.len().min(self.max_line + 1);
            if let Some(i) = memchr::memchr(b'\n', &avail[..limit]) {
                let (s, e) = (self.start, self.start + i);
                self.start = e + 1;
                return Ok(Some(self.finish(s, e, true)));
            }
            if avail.len() > self.max_line {
                let cut = split_point(avail, self.max_line);
                let (s, first) = (self.start, !self.in_long_line);
                self.start += cut;
                self.in_long_line = true;
                return Ok(Some(Chunk::Piece {
                    data: &self.buf[s..s + cut],
                    first,
                    last: false,
                    newline: false,
                }));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let (s, e) = (self.start, self.end);
                self.start = self.end;
                return Ok(Some(self.finish(s, e, false)));
            }
            // Need more bytes: compact, grow if a long line fills the buffer.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < READ_SIZE / 2 {
                let want = (self.buf.len() * 2)
                    .min(self.max_line + READ_SIZE)
                    .max(self.end + READ_SIZE / 2);
                self.buf.resize(want, 0);
            }
            before_block();
            let n = loop {
                match self.inner.read(&mut self.buf[self.end..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
            }
            self.end += n;
        }
    }

    fn finish(&mut self, s: usize, e: usize, newline: bool) -> Chunk<'_> {
        if self.in_long_line {
            self.in_long_line = false;
            Chunk::Piece {
                data: &self.buf[s..e],
                first: false,
                last: true,
                newline,
            }
        } else {
            Chunk::Line {
                data: &self.buf[s..e],
                newline,
            }
        }
    }
}

/// Where to cut a piece of an over-long line, given the buffered bytes
/// `avail` (at least `max` of them): after the last whitespace in the second
/// half of the first `max` bytes (tokens and most secrets contain none, so
/// they stay in one piece), else at `max`; never inside a UTF-8 sequence.
fn split_point(avail: &[u8], max: usize) -> usize {
    let window = &avail[..max];
    let half = max / 2;
    if let Some(i) = window[half..].iter().rposition(|b| b.is_ascii_whitespace()) {
        return half + i + 1;
    }
    let mut cut = max;
    // A continuation byte (10xxxxxx) right after the cut means we are inside
    // a character: move back to its first byte (at most 3 steps).
    while cut > max - 3 && avail.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize) -> Vec<String> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        while let Some(c) = r.next(|| {}).unwrap() {
            out.push(match c {
                Chunk::Line { data, newline } => {
                    format!("L{}:{}", u8::from(newline), String::from_utf8_lossy(data))
                }
                Chunk::Piece {
                    data,
                    first,
                    last,
                    newline,
                } => format!(
                    "P{}{}{}:{}",
                    u8::from(first),
                    u8::from(last),
                    u8::from(newline),
                    data.len()
                ),
            });
        }
        out
    }

    #[test]
    fn splits_lines_and_keeps_a_missing_final_newline() {
        assert_eq!(
            collect(b"a\nbb\n\nc", 4096),
            vec!["L1:a", "L1:bb", "L1:", "L0:c"]
        );
        assert_eq!(collect(b"", 4096), Vec::<String>::new());
    }

    #[test]
    fn long_lines_come_in_pieces_that_add_up() {
        let mut input = vec![b'x'; 5000];
        input.push(b'\n');
        input.extend_from_slice(b"after\n");
        let got = collect(&input, 1024);
        assert_eq!(got.first().map(String::as_str), Some("P100:1024"));
        assert!(got[got.len() - 2].starts_with("P011:"));
        assert_eq!(got.last().map(String::as_str), Some("L1:after"));
        let total: usize = got[..got.len() - 1]
            .iter()
            .map(|s| s.rsplit(':').next().unwrap().parse::<usize>().unwrap())
            .sum();
        assert_eq!(total, 5000);
    }

    #[test]
    fn pieces_are_cut_at_whitespace_and_never_inside_utf8() {
        assert_eq!(split_point(b"aaaaaa bbbb", 11), 7);
        let s = "ééééé".as_bytes(); // 10 bytes, no whitespace
        let cut = split_point(s, 7);
        assert!(std::str::from_utf8(&s[..cut]).is_ok(), "cut {cut}");
    }

    #[test]
    fn flush_hook_runs_before_each_read() {
        let mut calls = 0;
        let mut r = LineReader::new(&b"a\nb\n"[..], 4096);
        while r.next(|| calls += 1).unwrap().is_some() {}
        assert!(calls >= 1);
    }
}
