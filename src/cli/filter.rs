//! `redactd filter`: stdin to stdout, one redacted line per input line, in
//! input order.
//!
//! With one thread the loop reads, redacts and writes in place. With more,
//! the reading thread cuts the input into batches for the engine stage of
//! [`crate::pipeline`] (workers, results collected in input order), and a
//! writer thread writes them.
//!
//! Latency: the reader hands over its partial batch right before a read
//! that may block, and the writer flushes whenever the next result is not
//! ready yet, so `tail -f | redactd` sees each line at once, while a fast
//! input is written in large blocks.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread;

use anyhow::{Context, Result};

use super::{FilterArgs, is_broken_pipe, load_ruleset};
use crate::engine::{FailureKind, Ruleset, Scratch, Stats};
use crate::pipeline::{
    Batch, BatchSpares, CHANNEL_DEPTH, Dealer, Item, Redacted, collect_in_order, process,
    read_batches_into, worker,
};
use crate::sources::lines::{Chunk, LineReader};

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
            if flush_err.is_none()
                && let Err(e) = out.flush()
            {
                flush_err = Some(e);
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

/// The multi-threaded loop; see the module doc.
pub fn filter_parallel<W: Write + Send>(
    rs: &Ruleset,
    input: impl io::Read,
    output: W,
    max_line: usize,
    threads: usize,
    stats: &mut Stats,
) -> io::Result<()> {
    let spares = BatchSpares::default();
    let spares = &spares;
    thread::scope(|scope| {
        let mut to_workers: Vec<SyncSender<Batch>> = Vec::new();
        let mut from_workers: Vec<Receiver<Redacted>> = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..threads {
            let (tx, rx) = sync_channel::<Batch>(CHANNEL_DEPTH);
            let (rtx, rrx) = sync_channel::<Redacted>(CHANNEL_DEPTH);
            to_workers.push(tx);
            from_workers.push(rrx);
            workers.push(scope.spawn(move || worker(rs, rx, rtx, None, Some(spares))));
        }
        let writer = scope.spawn(move || {
            let mut out = io::BufWriter::with_capacity(256 * 1024, output);
            collect_in_order(from_workers, |r| match r {
                Some(r) => {
                    out.write_all(&r.data)?;
                    spares.output.put(r.data);
                    Ok(())
                }
                None => out.flush(),
            })?;
            out.flush()
        });

        let mut dealer = Dealer::new(to_workers);
        let read_result =
            match read_batches_into(input, max_line, 0, Some(&spares.input), |b| dealer.send(b)) {
                Ok(true) => Ok(()),
                Ok(false) => Err(io::Error::other(
                    "a worker stopped; input not fully processed",
                )),
                Err(e) => Err(e),
            };
        // Closing the workers' inputs is what lets them, and the writer,
        // finish.
        drop(dealer);
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
