//! `redactd filter`: stdin to stdout, one redacted line per input line, in
//! input order.
//!
//! With one thread the loop reads, redacts and writes in place. With more,
//! the reading thread cuts the input into batches and deals them round-robin
//! to the workers, each with its own bounded channel; a writer thread takes
//! the results back in the same round-robin order. That keeps output order
//! without sequence numbers or a reorder buffer, and bounds memory to a few
//! batches per worker whatever the input size.
//!
//! Latency: the reader hands over its partial batch right before a read
//! that may block, and the writer flushes whenever the next result is not
//! ready yet, so `tail -f | redactd` sees each line at once, while a fast
//! input is written in large blocks.

use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread;

use anyhow::{Context, Result};

use super::{FilterArgs, is_broken_pipe, load_ruleset};
use crate::engine::{FailureKind, Ruleset, Scratch, Stats};
use crate::sources::lines::{Chunk, LineReader};

/// What replaces a line the engine failed on (a bug): fail closed.
const INTERNAL_ERROR_LINE: &[u8] = b"[REDACTED:internal-error]";

/// A batch is handed to a worker once it holds this many bytes or lines.
const BATCH_BYTES: usize = 256 * 1024;
const BATCH_LINES: usize = 2048;
/// Batches in flight per worker, each way.
const CHANNEL_DEPTH: usize = 2;

pub fn run(args: &FilterArgs) -> Result<i32> {
    let rs = load_ruleset(&args.rules, &[])?;
    let threads = match args.threads {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let stdin = io::stdin().lock();
    let stdout = io::stdout();
    let mut stats = Stats::new(&rs);
    let res = if threads <= 1 {
        filter(&rs, stdin, stdout.lock(), args.max_line_bytes, &mut stats)
    } else {
        filter_parallel(&rs, stdin, stdout, args.max_line_bytes, threads, &mut stats)
    };
    if args.stats {
        print_stats(&rs, &stats);
    }
    match res {
        Err(e) if is_broken_pipe(&e) => Ok(0),
        Err(e) => Err(e).context("filter"),
        Ok(()) => Ok(0),
    }
}

/// One unit of input: a line, or a piece of an over-long line.
#[derive(Debug, Clone, Copy)]
struct Item {
    start: usize,
    end: usize,
    /// A line (false) or a piece of one (true).
    piece: bool,
    /// For pieces: the first of its line.
    first: bool,
    /// Write a newline after it.
    newline: bool,
}

impl Item {
    fn from_chunk(chunk: &Chunk<'_>, start: usize) -> Item {
        match *chunk {
            Chunk::Line { data, newline } => Item {
                start,
                end: start + data.len(),
                piece: false,
                first: false,
                newline,
            },
            Chunk::Piece {
                data,
                first,
                last,
                newline,
            } => Item {
                start,
                end: start + data.len(),
                piece: true,
                first,
                newline: last && newline,
            },
        }
    }
}

/// Redacts one item of `data` and writes it to `out`. Shared by both loops.
fn process(
    rs: &Ruleset,
    data: &[u8],
    item: Item,
    scratch: &mut Scratch,
    stats: &mut Stats,
    out: &mut impl Write,
) -> io::Result<()> {
    let bytes = &data[item.start..item.end];
    if item.piece {
        if item.first {
            stats.lines += 1;
            stats.lines_redacted += 1;
            stats.compliance_checked += 1;
            stats.failure(FailureKind::OversizeLine);
        }
        stats.bytes_in += bytes.len() as u64;
        let r = catch_unwind(AssertUnwindSafe(|| {
            let piece = rs.redact_fragment(bytes, scratch, stats);
            out.write_all(piece).map(|_| piece.len())
        }));
        match r {
            Ok(res) => stats.bytes_out += res? as u64,
            Err(_) => {
                stats.failure(FailureKind::Panic);
                *scratch = Scratch::new(rs);
                out.write_all(INTERNAL_ERROR_LINE)?;
            }
        }
    } else {
        // Keep a CRLF line ending out of the patterns' reach.
        let (body, cr) = match bytes.split_last() {
            Some((b'\r', rest)) => (rest, true),
            _ => (bytes, false),
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            let (line, _) = rs.redact_line(body, scratch, stats);
            out.write_all(line)
        }));
        match r {
            Ok(res) => res?,
            Err(_) => {
                stats.failure(FailureKind::Panic);
                *scratch = Scratch::new(rs);
                out.write_all(INTERNAL_ERROR_LINE)?;
            }
        }
        if cr {
            out.write_all(b"\r")?;
        }
    }
    if item.newline {
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The single-threaded loop, over any reader and writer.
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
        let item = Item::from_chunk(&chunk, 0);
        let data = match chunk {
            Chunk::Line { data, .. } | Chunk::Piece { data, .. } => data,
        };
        process(rs, data, item, &mut scratch, stats, &mut out)?;
    }
    out.flush()
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    items: Vec<Item>,
}

/// The multi-threaded loop; see the module doc.
pub fn filter_parallel<W: Write + Send>(
    rs: &Ruleset,
    input: impl io::Read,
    output: W,
    max_line: usize,
    threads: usize,
    stats: &mut Stats,
) -> io::Result<()> {
    thread::scope(|scope| {
        let mut to_workers: Vec<SyncSender<Batch>> = Vec::new();
        let mut from_workers: Vec<Receiver<Vec<u8>>> = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..threads {
            let (tx, rx) = sync_channel::<Batch>(CHANNEL_DEPTH);
            let (rtx, rrx) = sync_channel::<Vec<u8>>(CHANNEL_DEPTH);
            to_workers.push(tx);
            from_workers.push(rrx);
            workers.push(scope.spawn(move || worker(rs, rx, rtx)));
        }
        let writer = scope.spawn(move || write_in_order(from_workers, output));

        let read_result = read_batches(input, max_line, &to_workers);
        drop(to_workers);
        for w in workers {
            // A worker only ends early when the writer is gone; its stats
            // still count.
            if let Ok(s) = w.join() {
                stats.merge(&s);
            }
        }
        let write_result = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer thread failed")));
        // A writer error (a closed stdout) explains a failed hand-over, so
        // it wins over the reader's.
        write_result.and(read_result)
    })
}

/// Reads the input and deals batches round-robin. Stops early when a
/// worker is gone (the writer failed and everything is shutting down).
fn read_batches(
    input: impl io::Read,
    max_line: usize,
    to_workers: &[SyncSender<Batch>],
) -> io::Result<()> {
    let mut reader = LineReader::new(input, max_line);
    let mut batch = Batch::default();
    let mut next = 0usize;
    let mut closed = false;
    let mut send = |batch: &mut Batch, closed: &mut bool| {
        if batch.items.is_empty() || *closed {
            return;
        }
        let b = std::mem::take(batch);
        if to_workers[next % to_workers.len()].send(b).is_err() {
            *closed = true;
        }
        next += 1;
    };
    loop {
        let chunk = reader.next(|| send(&mut batch, &mut closed))?;
        if closed {
            return Err(io::Error::other(
                "a worker stopped; input not fully processed",
            ));
        }
        let Some(chunk) = chunk else { break };
        let item = Item::from_chunk(&chunk, batch.data.len());
        let data = match chunk {
            Chunk::Line { data, .. } | Chunk::Piece { data, .. } => data,
        };
        batch.data.extend_from_slice(data);
        batch.items.push(item);
        if batch.data.len() >= BATCH_BYTES || batch.items.len() >= BATCH_LINES {
            send(&mut batch, &mut closed);
        }
    }
    send(&mut batch, &mut closed);
    if closed {
        return Err(io::Error::other(
            "a worker stopped; input not fully processed",
        ));
    }
    Ok(())
}

fn worker(rs: &Ruleset, rx: Receiver<Batch>, tx: SyncSender<Vec<u8>>) -> Stats {
    let mut scratch = Scratch::new(rs);
    let mut stats = Stats::new(rs);
    for batch in rx {
        let mut out = Vec::with_capacity(batch.data.len() + batch.data.len() / 8);
        for &item in &batch.items {
            // Writing to a Vec cannot fail.
            let _ = process(rs, &batch.data, item, &mut scratch, &mut stats, &mut out);
        }
        if tx.send(out).is_err() {
            break;
        }
    }
    stats
}

/// Takes results in the order batches were dealt and writes them; flushes
/// whenever the next result is not ready yet.
fn write_in_order<W: Write>(from: Vec<Receiver<Vec<u8>>>, output: W) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(256 * 1024, output);
    let mut k = 0usize;
    loop {
        let rx = &from[k % from.len()];
        let buf = match rx.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => {
                out.flush()?;
                match rx.recv() {
                    Ok(b) => b,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        out.write_all(&buf)?;
        k += 1;
    }
    // The worker whose turn it is has finished. If another still has
    // results, a worker died mid-stream: say so rather than end quietly.
    if from.iter().any(|rx| rx.try_recv().is_ok()) {
        return Err(io::Error::other("a worker stopped; output incomplete"));
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
