//! The engine stage between sources and sinks, shared by `filter` and `run`.
//!
//! Input arrives as [`Batch`]es (raw lines cut by a source, with the
//! acknowledgements they carry). A [`Dealer`] deals them round-robin to
//! worker threads, each with its own bounded channel; [`collect_in_order`]
//! takes the [`Redacted`] results back in the same round-robin order. That
//! keeps input order without sequence numbers or a reorder buffer, and
//! bounds memory to a few batches per worker.

use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};

use crate::engine::{FailureKind, Ruleset, Scratch, Stats};
use crate::sources::lines::Chunk;

/// What replaces a line the engine failed on (a bug): fail closed.
pub const INTERNAL_ERROR_LINE: &[u8] = b"[REDACTED:internal-error]";

/// A batch is handed on once it holds this many bytes or lines.
pub const BATCH_BYTES: usize = 256 * 1024;
pub const BATCH_LINES: usize = 2048;
/// Batches in flight per worker, each way.
pub const CHANNEL_DEPTH: usize = 2;

/// One unit of input in a batch: a line, or a piece of an over-long line.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub start: usize,
    pub end: usize,
    /// A piece of a line longer than the limit (redacted as text).
    pub piece: bool,
    /// For pieces: the first of its line.
    pub first: bool,
    /// Write a newline after it.
    pub newline: bool,
}

impl Item {
    /// The item for `chunk`, whose bytes will sit at `start` in a batch.
    pub fn from_chunk(chunk: &Chunk<'_>, start: usize) -> Item {
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

/// A delivered position to acknowledge once a batch is safe downstream:
/// `offset` bytes of file `file` of source `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub source: usize,
    pub file: u64,
    pub offset: u64,
}

/// Where an event came from in Kafka, for dead-letter records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

/// What an event carries besides its line, for sources that have more
/// (Kafka: key, headers, timestamp, origin). Header values are redacted by
/// the engine stage like the line; the key is kept unless `redact_key`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventMeta {
    pub key: Option<Vec<u8>>,
    pub redact_key: bool,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp_ms: Option<i64>,
    pub origin: Option<Origin>,
    /// Set by the source for an event that must go to the dead-letter path
    /// (after redaction) instead of the sinks: `invalid_utf8`, `oversize`.
    #[serde(skip)]
    pub poison: Option<&'static str>,
}

/// Raw input lines.
#[derive(Debug, Default)]
pub struct Batch {
    pub data: Vec<u8>,
    pub items: Vec<Item>,
    pub acks: Vec<Ack>,
    /// Index of the source that cut it.
    pub source: usize,
    /// One per line (not per piece), or empty when the source has none.
    pub meta: Vec<EventMeta>,
}

impl Batch {
    /// Appends a chunk.
    pub fn push(&mut self, chunk: &Chunk<'_>) {
        let item = Item::from_chunk(chunk, self.data.len());
        let data = match chunk {
            Chunk::Line { data, .. } | Chunk::Piece { data, .. } => data,
        };
        self.data.extend_from_slice(data);
        self.items.push(item);
    }

    pub fn is_full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.items.len() >= BATCH_LINES
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.acks.is_empty()
    }
}

/// Cuts a byte stream into batches of `source`'s lines and hands each to
/// `send`: when full, and right before a read that may block (so a slow
/// stream's lines go on at once). Returns `Ok(false)` if `send` refused a
/// batch (the pipeline is shutting down) before the input ended.
pub fn read_batches(
    input: impl io::Read,
    max_line: usize,
    source: usize,
    send: impl FnMut(Batch) -> bool,
) -> io::Result<bool> {
    read_batches_into(input, max_line, source, None, send)
}

/// [`read_batches`], taking each batch's byte buffer from `spares` when it
/// holds one (the filter's workers hand theirs back there).
pub fn read_batches_into(
    input: impl io::Read,
    max_line: usize,
    source: usize,
    spares: Option<&Spares>,
    mut send: impl FnMut(Batch) -> bool,
) -> io::Result<bool> {
    let mut reader = crate::sources::lines::LineReader::new(input, max_line);
    // Each new batch is sized like the one before it: a fast input fills
    // batches without regrowing them (on the bench corpus that took 44% of
    // this thread's copying away), a slow one keeps them small.
    let new = |prev: &Batch| {
        let mut data = spares.map(Spares::take).unwrap_or_default();
        data.reserve(prev.data.len().min(BATCH_BYTES + max_line));
        Batch {
            source,
            data,
            items: Vec::with_capacity(prev.items.len().min(BATCH_LINES)),
            ..Batch::default()
        }
    };
    let mut batch = new(&Batch::default());
    let mut refused = false;
    loop {
        let chunk = reader.next(|| {
            if !batch.is_empty() && !refused {
                let next = new(&batch);
                refused = !send(std::mem::replace(&mut batch, next));
            }
        })?;
        if refused {
            return Ok(false);
        }
        let Some(chunk) = chunk else { break };
        batch.push(&chunk);
        if batch.is_full() {
            let next = new(&batch);
            if !send(std::mem::replace(&mut batch, next)) {
                return Ok(false);
            }
        }
    }
    Ok(batch.is_empty() || send(batch))
}

/// Redacted output of a batch: lines with their newlines, ready to write.
#[derive(Debug, Default)]
pub struct Redacted {
    pub data: Vec<u8>,
    pub lines: usize,
    /// End offset in `data` of each line (after its newline), so sinks that
    /// send events one by one (Kafka) can cut them apart even when an event
    /// holds a newline.
    pub ends: Vec<u32>,
    /// The batch's event metadata, header values redacted.
    pub meta: Vec<EventMeta>,
    pub acks: Vec<Ack>,
    pub source: usize,
    /// `(line in this batch, rule index)` for every redaction, so a
    /// dead-letter record can name the rules that fired on its event.
    pub hits: Vec<(u32, u32)>,
    /// The ruleset the indices in `hits` refer to (the agent sets it; a
    /// reload may swap rulesets between batches).
    pub rules: Option<std::sync::Arc<Ruleset>>,
}

/// A poison event taken out of a batch: its redacted payload (no newline),
/// metadata, and the rules that fired on it.
pub struct Poison {
    pub payload: Vec<u8>,
    pub meta: EventMeta,
    pub rules: Vec<u32>,
}

impl Redacted {
    /// Takes the events whose metadata is marked poison out of the batch
    /// (data, line ends, metadata and hits are rebuilt without them).
    pub fn take_poison(&mut self) -> Vec<Poison> {
        let mut out = Vec::new();
        let mut data = Vec::with_capacity(self.data.len());
        let mut ends = Vec::with_capacity(self.ends.len());
        let mut meta = Vec::with_capacity(self.meta.len());
        let mut renumber = vec![u32::MAX; self.ends.len()];
        let mut start = 0usize;
        let old_meta = std::mem::take(&mut self.meta);
        for (i, (&end, m)) in self.ends.iter().zip(old_meta).enumerate() {
            let ev = &self.data[start..end as usize];
            start = end as usize;
            if m.poison.is_some() {
                out.push(Poison {
                    payload: ev.strip_suffix(b"\n").unwrap_or(ev).to_vec(),
                    meta: m,
                    rules: self
                        .hits
                        .iter()
                        .filter(|(l, _)| *l as usize == i)
                        .map(|(_, r)| *r)
                        .collect(),
                });
            } else {
                renumber[i] = ends.len() as u32;
                data.extend_from_slice(ev);
                ends.push(data.len() as u32);
                meta.push(m);
            }
        }
        self.hits = self
            .hits
            .iter()
            .filter_map(|&(l, r)| {
                let n = *renumber.get(l as usize)?;
                (n != u32::MAX).then_some((n, r))
            })
            .collect();
        self.lines = ends.len();
        self.data = data;
        self.ends = ends;
        self.meta = meta;
        out
    }
}

/// Redacts one item of `data` and writes it to `out`.
pub fn process(
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

/// Redacts a whole batch.
pub fn redact_batch(
    rs: &Ruleset,
    batch: Batch,
    scratch: &mut Scratch,
    stats: &mut Stats,
) -> Redacted {
    redact_batch_into(rs, batch, Vec::new(), scratch, stats).0
}

/// [`redact_batch`] writing into `out` (cleared first); also gives back the
/// batch's input buffer, for reuse.
pub fn redact_batch_into(
    rs: &Ruleset,
    batch: Batch,
    mut out: Vec<u8>,
    scratch: &mut Scratch,
    stats: &mut Stats,
) -> (Redacted, Vec<u8>) {
    out.clear();
    out.reserve(batch.data.len() + batch.data.len() / 8);
    let mut hits = Vec::new();
    let mut ends = Vec::with_capacity(batch.items.len());
    let mut line = 0u32;
    let mut meta = batch.meta;
    for &item in &batch.items {
        stats.clear_journal();
        // Writing to a Vec cannot fail.
        let _ = process(rs, &batch.data, item, scratch, stats, &mut out);
        hits.extend(stats.journal().iter().map(|&r| (line, r)));
        if (!item.piece || item.newline)
            && let Some(m) = meta.get_mut(line as usize)
        {
            redact_meta(rs, m, scratch, stats, &mut |r| hits.push((line, r)));
        }
        if !item.piece || item.newline {
            line += 1;
            ends.push(out.len() as u32);
        }
    }
    let red = Redacted {
        data: out,
        lines: line as usize,
        ends,
        meta,
        acks: batch.acks,
        source: batch.source,
        hits,
        rules: None,
    };
    (red, batch.data)
}

/// Redacts an event's header values (and its key, if asked). A header is
/// redacted as the JSON member `{"<name>": "<value>"}`, so field-name rules
/// apply to header names (`Authorization`, `X-Api-Key`) as they do to JSON
/// keys; a value that is not UTF-8 is redacted as text and left byte for
/// byte when nothing was found. A panic fails the value closed.
fn redact_meta(
    rs: &Ruleset,
    m: &mut EventMeta,
    scratch: &mut Scratch,
    stats: &mut Stats,
    hit: &mut dyn FnMut(u32),
) {
    // Header values are not lines: keep the line counters as they were.
    let (lines, bytes_in, bytes_out, checked, redacted) = (
        stats.lines,
        stats.bytes_in,
        stats.bytes_out,
        stats.compliance_checked,
        stats.lines_redacted,
    );
    for (name, value) in m.headers.iter_mut() {
        let Some(v) = value.as_deref() else { continue };
        stats.clear_journal();
        let r = catch_unwind(AssertUnwindSafe(|| {
            redact_value(rs, name, v, scratch, stats)
        }));
        stats.journal().iter().for_each(|&r| hit(r));
        match r {
            Ok(Some(new)) => *value = Some(new),
            Ok(None) => {}
            Err(_) => {
                stats.failure(FailureKind::Panic);
                *scratch = Scratch::new(rs);
                *value = Some(INTERNAL_ERROR_LINE.to_vec());
            }
        }
    }
    if m.redact_key
        && let Some(k) = m.key.as_deref()
    {
        stats.clear_journal();
        let r = catch_unwind(AssertUnwindSafe(|| {
            redact_value(rs, "key", k, scratch, stats)
        }));
        stats.journal().iter().for_each(|&r| hit(r));
        match r {
            Ok(Some(new)) => m.key = Some(new),
            Ok(None) => {}
            Err(_) => {
                stats.failure(FailureKind::Panic);
                *scratch = Scratch::new(rs);
                m.key = Some(INTERNAL_ERROR_LINE.to_vec());
            }
        }
    }
    stats.lines = lines;
    stats.bytes_in = bytes_in;
    stats.bytes_out = bytes_out;
    stats.compliance_checked = checked;
    stats.lines_redacted = redacted;
}

/// `Some(new value)` if redaction changed `value` of field `name`.
fn redact_value(
    rs: &Ruleset,
    name: &str,
    value: &[u8],
    scratch: &mut Scratch,
    stats: &mut Stats,
) -> Option<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(value) else {
        let out = rs.redact_fragment(value, scratch, stats);
        return (out != value).then(|| out.to_vec());
    };
    let mut doc = serde_json::Map::new();
    doc.insert(
        name.to_string(),
        serde_json::Value::String(text.to_string()),
    );
    let doc = serde_json::Value::Object(doc).to_string();
    let (out, outcome) = rs.redact_line(doc.as_bytes(), scratch, stats);
    if outcome == crate::engine::Outcome::Clean {
        return None;
    }
    let v: serde_json::Value = match serde_json::from_slice(out) {
        Ok(v) => v,
        Err(_) => return Some(INTERNAL_ERROR_LINE.to_vec()),
    };
    Some(match v.as_object().and_then(|o| o.values().next()) {
        Some(serde_json::Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
        // The member was dropped (a `drop` rule).
        None => format!("[REDACTED:{name}]").into_bytes(),
    })
}

/// A worker thread's loop. `observe` sees each batch's counters (for
/// metrics); the total is returned at the end. With `spares`, output
/// buffers come from `spares.output` and spent input buffers go back to
/// `spares.input`.
pub fn worker(
    rs: &Ruleset,
    rx: Receiver<Batch>,
    tx: SyncSender<Redacted>,
    observe: Option<&(dyn Fn(&Stats) + Sync)>,
    spares: Option<&BatchSpares>,
) -> Stats {
    let mut scratch = Scratch::new(rs);
    let mut total = Stats::new(rs);
    for batch in rx {
        let mut st = Stats::new(rs);
        let buf = spares.map(|s| s.output.take()).unwrap_or_default();
        let (out, spent) = redact_batch_into(rs, batch, buf, &mut scratch, &mut st);
        if let Some(s) = spares {
            s.input.put(spent);
        }
        if let Some(f) = observe {
            f(&st);
        }
        total.merge(&st);
        if tx.send(out).is_err() {
            break;
        }
    }
    total
}

/// Byte buffers handed back between stages for reuse.
///
/// Why: without it every 256 KiB batch was a fresh allocation on one thread
/// freed on another, which in glibc's malloc means locking the other
/// thread's arena, and fresh heap pages to fault in and zero
/// (`--threads 2`, 100 MB corpus: `exc_page_fault`/`clear_page` and
/// malloc's free paths were ~3% of the run). A few buffers circulate
/// instead; at most [`Spares::KEEP`] are kept, so memory stays bounded.
#[derive(Debug, Default)]
pub struct Spares(Mutex<Vec<Vec<u8>>>);

impl Spares {
    const KEEP: usize = 16;
    /// A buffer grown past this (a batch that held a line of megabytes) is
    /// freed, not kept: a few such lines must not pin their memory.
    const KEEP_CAPACITY: usize = 4 * BATCH_BYTES;

    /// A spare buffer (empty), or a new one.
    pub fn take(&self) -> Vec<u8> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        held.pop().unwrap_or_default()
    }

    /// Keeps `buf` for a later [`Spares::take`] (dropped when enough are
    /// kept).
    pub fn put(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() < Self::KEEP && (1..=Self::KEEP_CAPACITY).contains(&buf.capacity()) {
            held.push(buf);
        }
    }
}

/// The filter's two circuits of buffers: batch inputs (reader → worker →
/// reader) and outputs (worker → writer → worker).
#[derive(Debug, Default)]
pub struct BatchSpares {
    pub input: Spares,
    pub output: Spares,
}

/// Deals batches round-robin to workers.
pub struct Dealer {
    to: Vec<SyncSender<Batch>>,
    next: usize,
}

impl Dealer {
    pub fn new(to: Vec<SyncSender<Batch>>) -> Dealer {
        Dealer { to, next: 0 }
    }

    /// Hands a batch on (blocking while the worker is busy: backpressure).
    /// False when the worker is gone.
    pub fn send(&mut self, b: Batch) -> bool {
        let ok = self.to[self.next % self.to.len()].send(b).is_ok();
        self.next += 1;
        ok
    }
}

/// Takes results in the order batches were dealt and hands each to `each`
/// as `Some`; calls it with `None` whenever the next result is not ready
/// yet (a writer flushes there). Ends when the workers are done; an error
/// if one stopped while others still had results.
pub fn collect_in_order(
    from: Vec<Receiver<Redacted>>,
    mut each: impl FnMut(Option<Redacted>) -> io::Result<()>,
) -> io::Result<()> {
    let mut k = 0usize;
    loop {
        let rx = &from[k % from.len()];
        let r = match rx.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => {
                each(None)?;
                match rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        each(Some(r))?;
        k += 1;
    }
    // The worker whose turn it is has finished. If another still has
    // results, a worker died mid-stream: say so rather than end quietly.
    if from.iter().any(|rx| rx.try_recv().is_ok()) {
        return Err(io::Error::other("a worker stopped; output incomplete"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spares_come_back_empty_and_big_or_surplus_buffers_are_freed() {
        let sp = Spares::default();
        sp.put(b"old bytes".to_vec());
        let b = sp.take();
        assert!(b.is_empty() && b.capacity() >= 9);
        // Nothing kept: a new buffer.
        assert_eq!(sp.take().capacity(), 0);
        // A buffer that held a 10 MB line is not kept.
        sp.put(Vec::with_capacity(10 << 20));
        assert_eq!(sp.take().capacity(), 0);
        // At most KEEP are held.
        for _ in 0..Spares::KEEP + 5 {
            sp.put(Vec::with_capacity(64));
        }
        let mut n = 0;
        while sp.take().capacity() > 0 {
            n += 1;
        }
        assert_eq!(n, Spares::KEEP);
    }
}
