//! `redactd filter`: stdin to stdout, one redacted line per input line.

use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use anyhow::{Context, Result};

use super::{FilterArgs, is_broken_pipe, load_ruleset};
use crate::engine::{FailureKind, Ruleset, Scratch, Stats};
use crate::sources::lines::{Chunk, LineReader};

/// What replaces a line the engine failed on (a bug): fail closed.
const INTERNAL_ERROR_LINE: &[u8] = b"[REDACTED:internal-error]";

pub fn run(args: &FilterArgs) -> Result<i32> {
    let rs = load_ruleset(&args.rules, &[])?;
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    let mut stats = Stats::new(&rs);
    let res = filter(&rs, stdin, stdout, args.max_line_bytes, &mut stats);
    if args.stats {
        print_stats(&rs, &stats);
    }
    match res {
        Err(e) if is_broken_pipe(&e) => Ok(0),
        Err(e) => Err(e).context("filter"),
        Ok(()) => Ok(0),
    }
}

/// The filter loop, over any reader and writer (tests use byte slices).
pub fn filter(
    rs: &Ruleset,
    input: impl io::Read,
    output: impl Write,
    max_line: usize,
    stats: &mut Stats,
) -> io::Result<()> {
    let mut reader = LineReader::new(input, max_line);
    let mut out = io::BufWriter::with_capacity(256 * 1024, output);
    let mut scratch = Scratch::new(rs);
    // Flushing before each read that may block is what makes `tail -f |
    // redactd` line-by-line while a fast input is still written in batches.
    let mut flush_err: Option<io::Error> = None;
    loop {
        let chunk = reader.next(|| {
            if flush_err.is_none() {
                if let Err(e) = out.flush() {
                    flush_err = Some(e);
                }
            }
        })?;
        if let Some(e) = flush_err.take() {
            return Err(e);
        }
        let Some(chunk) = chunk else { break };
        match chunk {
            Chunk::Line { data, newline } => {
                // Keep a CRLF line ending out of the patterns' reach.
                let (body, cr) = match data.split_last() {
                    Some((b'\r', rest)) => (rest, true),
                    _ => (data, false),
                };
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let (line, _) = rs.redact_line(body, &mut scratch, stats);
                    out.write_all(line)
                }));
                match r {
                    Ok(res) => res?,
                    Err(_) => {
                        stats.failure(FailureKind::Panic);
                        scratch = Scratch::new(rs);
                        out.write_all(INTERNAL_ERROR_LINE)?;
                    }
                }
                if cr {
                    out.write_all(b"\r")?;
                }
                if newline {
                    out.write_all(b"\n")?;
                }
            }
            Chunk::Piece {
                data,
                first,
                last,
                newline,
            } => {
                if first {
                    stats.lines += 1;
                    stats.lines_redacted += 1;
                    stats.compliance_checked += 1;
                    stats.failure(FailureKind::OversizeLine);
                }
                stats.bytes_in += data.len() as u64;
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let piece = rs.redact_fragment(data, &mut scratch, stats);
                    out.write_all(piece).map(|_| piece.len())
                }));
                match r {
                    Ok(res) => stats.bytes_out += res? as u64,
                    Err(_) => {
                        stats.failure(FailureKind::Panic);
                        scratch = Scratch::new(rs);
                        out.write_all(INTERNAL_ERROR_LINE)?;
                    }
                }
                if last && newline {
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    out.flush()
}

/// `--stats`: a summary on stderr. Counts and rule ids only, never content.
pub fn print_stats(rs: &Ruleset, st: &Stats) {
    let mut e = io::stderr().lock();
    let _ = writeln!(
        e,
        "redactd: lines={} redacted_lines={} redactions={} bytes_in={} bytes_out={}",
        st.lines,
        st.lines_redacted,
        st.total_redactions(),
        st.bytes_in,
        st.bytes_out
    );
    let _ = writeln!(
        e,
        "redactd: compliance checked={} failures={}",
        st.compliance_checked, st.compliance_failures
    );
    let fails: Vec<String> = FailureKind::ALL
        .iter()
        .map(|k| format!("{}/{}={}", k.stage(), k.as_str(), st.failures(*k)))
        .collect();
    let _ = writeln!(
        e,
        "redactd: secondary_failures={} ({})",
        st.total_failures(),
        fails.join(" ")
    );
    let mut hits: Vec<(u64, &str)> = rs
        .rules()
        .iter()
        .zip(&st.rule_hits)
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| (*n, r.id.as_str()))
        .collect();
    hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    for (n, id) in hits {
        let _ = writeln!(e, "redactd: rule {id} hits={n}");
    }
}
