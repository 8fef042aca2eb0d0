//! The file source: tails files matched by globs, follows rotation, and
//! checkpoints what was delivered.
//!
//! Why a stat loop and not only file-system events: inotify reports a
//! copytruncate only as a modification, `notify`'s polling watcher misses
//! appends and truncations, and network file systems and exhausted inotify
//! limits give no events at all. So the loop below, which compares each
//! open file's size with its read position and each path's device+inode
//! with the file it had, is the source of truth; `notify` only wakes it
//! early.
//!
//! Guarantees:
//! - a file is identified by device+inode and a fingerprint of its first
//!   bytes, so inode reuse is not mistaken for the old file;
//! - rename rotation: the old file (kept open) is read to its end, then
//!   released; the new file at the path is read from its start;
//! - copytruncate: a size below the read position restarts the file at 0;
//! - deleted files are read to their end and released;
//! - checkpoints advance only to offsets acknowledged downstream (an [`Ack`]
//!   comes back once a batch is delivered), always at line boundaries.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use super::checkpoint::{Entry, FileId, Fingerprint, Store};
use super::kubernetes::PodMeta;
use super::lines::Chunk;
use crate::config::{FileSourceConfig, StartAt};
use crate::decode::container::{self, Decoder, Problem, Record};
use crate::pipeline::{Ack, Batch};

/// Bytes read from one file per read call.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes read from one file per loop turn, so one busy file cannot starve
/// the others.
const READ_PER_TURN: u64 = 8 * 1024 * 1024;

/// Live numbers the agent exports as metrics.
#[derive(Debug, Default)]
pub struct FileSourceStats {
    /// Bytes in watched files not yet read.
    pub lag_bytes: AtomicU64,
    pub files: AtomicU64,
    pub truncations: AtomicU64,
    pub rotations: AtomicU64,
    /// Container records that were not in the source's format.
    pub malformed_envelopes: AtomicU64,
    /// Container records cut because their join grew past the cap.
    pub partial_overflows: AtomicU64,
    /// Container records whose message was not UTF-8.
    pub invalid_utf8: AtomicU64,
    /// Checkpoint writes that failed (full disk, read-only data dir).
    pub checkpoint_errors: AtomicU64,
    /// Events per namespace (only with `kubernetes.namespace_metric`),
    /// at most `max_label_values` names plus `_other`.
    pub namespaces: std::sync::Mutex<HashMap<String, u64>>,
}

/// A container file's decoding state.
struct Container {
    decoder: Decoder,
    /// The Kubernetes metadata object, serialized once per file.
    meta: Option<Vec<u8>>,
    namespace: Option<String>,
}

struct Tailed {
    /// Local key in acks; a truncated file gets a new one, so acks still in
    /// flight for its old content cannot move the new checkpoint.
    key: u64,
    id: FileId,
    path: PathBuf,
    file: File,
    fingerprint: Fingerprint,
    /// Bytes of the file consumed into `buf` or sent.
    read_pos: u64,
    /// Unfinished line (no newline yet) and the file offset of its start.
    buf: Vec<u8>,
    buf_offset: u64,
    /// Inside a line longer than the limit.
    in_long_line: bool,
    /// Offset of the end of the last line handed to the pipeline.
    sent: u64,
    /// Offset delivered downstream (checkpointed).
    acked: u64,
    /// Since when its path no longer leads to it (rotated away, deleted).
    gone_since: Option<Instant>,
    /// Size at the last look, to re-check the fingerprint only on change.
    last_size: u64,
    /// For container formats.
    container: Option<Container>,
}

/// A running file source.
pub struct FileSource {
    index: usize,
    cfg: FileSourceConfig,
    store: Store,
    files: HashMap<FileId, Tailed>,
    /// Files no longer tailed whose last lines are not acknowledged yet.
    retiring: Vec<Tailed>,
    by_key: HashMap<u64, FileId>,
    next_key: u64,
    out: SyncSender<Batch>,
    acks: Receiver<Ack>,
    stop: Arc<AtomicBool>,
    pub stats: Arc<FileSourceStats>,
    warned: std::collections::HashSet<PathBuf>,
    checkpoint_every: Duration,
    /// When a failed checkpoint write was last logged: a full disk fails
    /// every write, and the log should say so, not flood.
    checkpoint_error_logged: Option<Instant>,
    /// Unread bytes of the files already visited in this turn.
    lag_others: u64,
    /// Reused buffers for container records and the events written for them.
    records: Vec<Record>,
    event: Vec<u8>,
    /// Events per namespace not yet published to `stats.namespaces`.
    ns_counts: HashMap<String, u64>,
}

impl FileSource {
    pub fn new(
        index: usize,
        cfg: FileSourceConfig,
        data_dir: &Path,
        out: SyncSender<Batch>,
        acks: Receiver<Ack>,
        stop: Arc<AtomicBool>,
        checkpoint_every: Duration,
    ) -> io::Result<FileSource> {
        let dir = data_dir.join("checkpoints").join(sanitize(&cfg.id));
        let store = Store::open(&dir)?;
        Ok(FileSource {
            index,
            cfg,
            store,
            files: HashMap::new(),
            retiring: Vec::new(),
            by_key: HashMap::new(),
            next_key: 1,
            out,
            acks,
            stop,
            stats: Arc::new(FileSourceStats::default()),
            warned: Default::default(),
            checkpoint_every,
            checkpoint_error_logged: None,
            lag_others: 0,
            records: Vec::new(),
            event: Vec::new(),
            ns_counts: HashMap::new(),
        })
    }

    /// Runs until `stop` is set, then waits (up to `drain`) for the last
    /// acknowledgements and writes the final checkpoint.
    pub fn run(mut self, drain: Duration) -> io::Result<()> {
        let (wake_tx, wake_rx) = sync_channel::<()>(1);
        let _watcher = self.watch(wake_tx);
        let poll = Duration::from_millis(self.cfg.poll_interval_ms.max(10));
        let mut first = true;
        let mut last_save = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            self.take_acks();
            self.discover(first)?;
            first = false;
            let more = self.read_all()?;
            self.retire();
            if last_save.elapsed() >= self.checkpoint_every {
                self.save();
                last_save = Instant::now();
            }
            if !more {
                match wake_rx.recv_timeout(poll) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => std::thread::sleep(poll),
                }
            }
        }
        // Draining: nothing new is read; wait for what was sent.
        let deadline = Instant::now() + drain;
        while Instant::now() < deadline && !self.all_acked() {
            match self.acks.recv_timeout(Duration::from_millis(20)) {
                Ok(a) => self.ack(a),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.take_acks();
        self.save();
        Ok(())
    }

    fn all_acked(&self) -> bool {
        self.files
            .values()
            .chain(&self.retiring)
            .all(|f| f.acked >= f.sent)
    }

    /// `notify` as a wake-up only; failure to watch is not an error.
    fn watch(&self, wake: SyncSender<()>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher;
        let mut w = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
            let _ = wake.try_send(());
        })
        .map_err(|e| tracing::warn!(source = %self.cfg.id, error = %e, "file events unavailable; polling only"))
        .ok()?;
        for pattern in &self.cfg.include {
            let dir = glob_base(pattern);
            if let Err(e) = w.watch(&dir, notify::RecursiveMode::NonRecursive) {
                tracing::debug!(source = %self.cfg.id, dir = %dir.display(), error = %e, "cannot watch directory; polling it");
            }
        }
        Some(w)
    }

    fn take_acks(&mut self) {
        while let Ok(a) = self.acks.try_recv() {
            self.ack(a);
        }
    }

    fn ack(&mut self, a: Ack) {
        let Some(id) = self.by_key.get(&a.file) else {
            return;
        };
        if let Some(f) = self.files.get_mut(id).filter(|f| f.key == a.file) {
            f.acked = f.acked.max(a.offset);
            return;
        }
        if let Some(f) = self.retiring.iter_mut().find(|f| f.key == a.file) {
            f.acked = f.acked.max(a.offset);
        }
    }

    /// The Kubernetes namespace filter. A path in no kubelet layout has no
    /// namespace and is read.
    fn namespace_wanted(&self, p: &Path) -> bool {
        let Some(k) = &self.cfg.kubernetes else {
            return true;
        };
        match PodMeta::from_path(p) {
            Some(m) => k.wants(&m.namespace),
            None => true,
        }
    }

    fn excluded(&self, p: &Path) -> bool {
        self.cfg
            .exclude
            .iter()
            .filter_map(|g| glob::Pattern::new(g).ok())
            .any(|g| g.matches_path(p))
    }

    /// Finds the files the globs match now.
    fn discover(&mut self, initial: bool) -> io::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for pattern in self.cfg.include.clone() {
            let Ok(paths) = glob::glob(&pattern) else {
                continue;
            };
            for p in paths.flatten() {
                if self.excluded(&p) || !self.namespace_wanted(&p) {
                    continue;
                }
                let meta = match std::fs::metadata(&p) {
                    Ok(m) => m,
                    Err(_) => continue, // vanished between glob and stat, or a broken link
                };
                if !meta.file_type().is_file() {
                    if self.warned.insert(p.clone()) {
                        tracing::warn!(source = %self.cfg.id, path = %p.display(), "not a regular file; skipped");
                    }
                    continue;
                }
                let id = FileId {
                    dev: meta.dev(),
                    ino: meta.ino(),
                };
                seen.insert(id);
                if let Some(f) = self.files.get_mut(&id) {
                    f.path = p;
                    f.gone_since = None;
                    continue;
                }
                match self.open_new(&p, id, &meta, initial) {
                    Ok(t) => {
                        self.by_key.insert(t.key, id);
                        self.files.insert(id, t);
                    }
                    Err(e) => {
                        if self.warned.insert(p.clone()) {
                            tracing::warn!(source = %self.cfg.id, path = %p.display(), error = %e, "cannot open file");
                        }
                    }
                }
            }
        }
        let now = Instant::now();
        for (id, f) in self.files.iter_mut() {
            if !seen.contains(id) && f.gone_since.is_none() {
                f.gone_since = Some(now);
                self.stats.rotations.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.stats
            .files
            .store(self.files.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn open_new(
        &mut self,
        p: &Path,
        id: FileId,
        meta: &Metadata,
        initial: bool,
    ) -> io::Result<Tailed> {
        let mut file = File::open(p)?;
        let size = meta.len();
        let mut start = 0;
        let saved = self.store.get(&self.cfg.id, id).cloned();
        let fingerprint;
        match saved {
            Some(e) if Fingerprint::of_len(&mut file, e.fingerprint.len)? == e.fingerprint => {
                // Same content stream as checkpointed: resume (from 0 if it
                // was truncated while we were away).
                start = if e.offset <= size { e.offset } else { 0 };
                fingerprint = if start == 0 {
                    Fingerprint::of(&mut file, size)?
                } else {
                    e.fingerprint
                };
            }
            _ => {
                if initial && self.cfg.start_at == StartAt::End {
                    start = size;
                }
                fingerprint = Fingerprint::of(&mut file, size)?;
            }
        }
        file.seek(SeekFrom::Start(start))?;
        let key = self.next_key;
        self.next_key += 1;
        Ok(Tailed {
            key,
            id,
            path: p.to_path_buf(),
            file,
            fingerprint,
            read_pos: start,
            buf: Vec::new(),
            buf_offset: start,
            in_long_line: false,
            sent: start,
            acked: start,
            gone_since: None,
            last_size: size,
            container: self.cfg.format.container().map(|fmt| {
                let meta = self
                    .cfg
                    .kubernetes
                    .as_ref()
                    .and_then(|k| PodMeta::from_path(p).map(|m| (k, m)));
                Container {
                    decoder: Decoder::new(fmt, self.cfg.max_message_bytes),
                    meta: meta.as_ref().map(|(k, m)| m.to_json(&k.fields)),
                    namespace: meta.map(|(_, m)| m.namespace),
                }
            }),
        })
    }

    /// Reads new data of every file into batches. True if some file had
    /// more to read than one turn allows.
    fn read_all(&mut self) -> io::Result<bool> {
        let mut batch = Batch {
            source: self.index,
            ..Batch::default()
        };
        let mut more = false;
        let mut lag = 0;
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            let Some(mut f) = self.files.remove(&id) else {
                continue;
            };
            // Published as reading goes, so a source blocked by
            // backpressure still shows how much it has not read.
            self.lag_others = lag;
            let r = self.read_file(&mut f, &mut batch);
            let size = f.file.metadata().map(|m| m.len()).unwrap_or(f.read_pos);
            lag += size.saturating_sub(f.read_pos);
            self.by_key.insert(f.key, id);
            self.files.insert(id, f);
            match r {
                Ok(m) => more |= m,
                Err(e) => {
                    tracing::warn!(source = %self.cfg.id, error = %e, "read failed; will retry")
                }
            }
        }
        self.stats.lag_bytes.store(lag, Ordering::Relaxed);
        self.send(batch);
        self.publish_namespaces();
        Ok(more)
    }

    fn send(&mut self, batch: Batch) {
        if !batch.is_empty() {
            // Blocks while the pipeline is full: backpressure on reading.
            let _ = self.out.send(batch);
        }
    }

    fn read_file(&mut self, f: &mut Tailed, batch: &mut Batch) -> io::Result<bool> {
        let size = f.file.metadata()?.len();
        // A truncation that was followed by enough writes to pass the read
        // position before we looked shows only in the first bytes: they no
        // longer match the fingerprint.
        let replaced = size != f.last_size
            && size >= f.read_pos
            && f.fingerprint.len > 0
            && Fingerprint::of_len(&mut f.file, f.fingerprint.len)? != f.fingerprint;
        f.last_size = size;
        if size < f.read_pos || replaced {
            // copytruncate: the content starts over.
            self.stats.truncations.fetch_add(1, Ordering::Relaxed);
            tracing::info!(source = %self.cfg.id, path = %f.path.display(), "file truncated; reading from the start");
            self.by_key.remove(&f.key);
            f.key = self.next_key;
            self.next_key += 1;
            f.file.seek(SeekFrom::Start(0))?;
            f.read_pos = 0;
            f.buf.clear();
            f.buf_offset = 0;
            f.in_long_line = false;
            f.sent = 0;
            f.acked = 0;
            if let Some(c) = &mut f.container {
                c.decoder.reset();
            }
            f.fingerprint = Fingerprint::of(&mut f.file, size)?;
        } else if f.fingerprint.len < super::checkpoint::FINGERPRINT_BYTES
            && size > f.fingerprint.len
        {
            // The file was short when first seen: fingerprint more of it now.
            f.fingerprint = Fingerprint::of(&mut f.file, size)?;
        }
        let mut budget = READ_PER_TURN;
        let mut chunk = vec![0u8; READ_CHUNK];
        while f.read_pos < size && budget > 0 {
            let want = (size - f.read_pos).min(READ_CHUNK as u64) as usize;
            let n = f.file.read(&mut chunk[..want])?;
            if n == 0 {
                break;
            }
            f.read_pos += n as u64;
            budget = budget.saturating_sub(n as u64);
            self.stats
                .lag_bytes
                .store(self.lag_others + (size - f.read_pos), Ordering::Relaxed);
            f.buf.extend_from_slice(&chunk[..n]);
            self.cut_lines(f, batch, false);
        }
        Ok(f.read_pos < size)
    }

    /// Moves complete lines (and pieces of over-long ones) from the file's
    /// buffer into the batch. `eof_final`: the file is done, its last
    /// unterminated line goes too.
    fn cut_lines(&mut self, f: &mut Tailed, batch: &mut Batch, eof_final: bool) {
        let max = self.cfg.max_line_bytes;
        let mut start = 0;
        loop {
            let at = f.buf_offset + start as u64;
            let rest = &f.buf[start..];
            let limit = rest.len().min(max + 1);
            let chunk = if let Some(i) = memchr::memchr(b'\n', &rest[..limit]) {
                let c = if f.in_long_line {
                    Chunk::Piece {
                        data: &rest[..i],
                        first: false,
                        last: true,
                        newline: true,
                    }
                } else {
                    Chunk::Line {
                        data: &rest[..i],
                        newline: true,
                    }
                };
                f.in_long_line = false;
                start += i + 1;
                Some((c, true))
            } else if rest.len() > max {
                let c = Chunk::Piece {
                    data: &rest[..max],
                    first: !f.in_long_line,
                    last: false,
                    newline: false,
                };
                f.in_long_line = true;
                start += max;
                Some((c, false))
            } else if eof_final && !rest.is_empty() {
                // A final line without newline: a record all the same.
                let c = if f.in_long_line {
                    Chunk::Piece {
                        data: rest,
                        first: false,
                        last: true,
                        newline: true,
                    }
                } else {
                    Chunk::Line {
                        data: rest,
                        newline: true,
                    }
                };
                f.in_long_line = false;
                start += rest.len();
                Some((c, true))
            } else {
                None
            };
            let Some((c, line_end)) = chunk else { break };
            let end = f.buf_offset + start as u64;
            match (&mut f.container, &c) {
                (Some(ct), Chunk::Line { data, .. }) => {
                    ct.decoder.feed(data, at, &mut self.records);
                    let records = std::mem::take(&mut self.records);
                    self.emit(ct, &records, batch);
                    self.records = records;
                    self.records.clear();
                }
                // An envelope line over the limit cannot be decoded: its
                // pieces go on as text (redacted, counted as oversize).
                _ => batch.push(&c),
            }
            if line_end {
                let safe = match &f.container {
                    Some(ct) => ct.decoder.safe_offset(end),
                    None => end,
                };
                if safe > f.sent {
                    f.sent = safe;
                    match batch.acks.last_mut() {
                        Some(a) if a.file == f.key => a.offset = safe,
                        _ => batch.acks.push(Ack {
                            source: self.index,
                            file: f.key,
                            offset: safe,
                        }),
                    }
                }
            }
            if batch.is_full() {
                let full = std::mem::replace(
                    batch,
                    Batch {
                        source: self.index,
                        ..Batch::default()
                    },
                );
                self.send(full);
            }
        }
        f.buf.drain(..start);
        f.buf_offset += start as u64;
        if eof_final && let Some(ct) = &mut f.container {
            // Joins the file ended in the middle of go out as they are.
            ct.decoder.finish(&mut self.records);
            let records = std::mem::take(&mut self.records);
            self.emit(ct, &records, batch);
            self.records = records;
            self.records.clear();
            if f.buf_offset > f.sent {
                f.sent = f.buf_offset;
                batch.acks.push(Ack {
                    source: self.index,
                    file: f.key,
                    offset: f.sent,
                });
            }
        }
    }

    /// Writes the events for container records into the batch.
    fn emit(&mut self, ct: &Container, records: &[Record], batch: &mut Batch) {
        let count_ns = self
            .cfg
            .kubernetes
            .as_ref()
            .is_some_and(|k| k.namespace_metric);
        for r in records {
            self.event.clear();
            let lossy =
                container::write_event(r, ct.meta.as_deref(), &self.cfg.fields, &mut self.event);
            if lossy {
                self.stats.invalid_utf8.fetch_add(1, Ordering::Relaxed);
            }
            match r.problem {
                Some(Problem::MalformedEnvelope) => {
                    self.stats
                        .malformed_envelopes
                        .fetch_add(1, Ordering::Relaxed);
                }
                Some(Problem::PartialOverflow) => {
                    self.stats.partial_overflows.fetch_add(1, Ordering::Relaxed);
                }
                None => {}
            }
            if count_ns && let Some(ns) = &ct.namespace {
                match self.ns_counts.get_mut(ns) {
                    Some(n) => *n += 1,
                    None => {
                        self.ns_counts.insert(ns.clone(), 1);
                    }
                }
            }
            batch.push(&Chunk::Line {
                data: &self.event,
                newline: true,
            });
        }
    }

    /// Moves the per-namespace counts into the shared stats, folding names
    /// past the label limit into `_other`.
    fn publish_namespaces(&mut self) {
        let Some(k) = &self.cfg.kubernetes else {
            return;
        };
        if self.ns_counts.is_empty() {
            return;
        }
        let Ok(mut m) = self.stats.namespaces.lock() else {
            return;
        };
        for (ns, n) in self.ns_counts.drain() {
            let key = if m.contains_key(&ns) || m.len() < k.max_label_values {
                ns
            } else {
                "_other".to_string()
            };
            *m.entry(key).or_insert(0) += n;
        }
    }

    /// Releases files whose path is gone and that stopped growing.
    fn retire(&mut self) {
        let wait = Duration::from_millis(self.cfg.rotate_wait_ms);
        let done: Vec<FileId> = self
            .files
            .iter()
            .filter(|(_, f)| f.gone_since.is_some_and(|t| t.elapsed() >= wait))
            .map(|(id, _)| *id)
            .collect();
        let mut batch = Batch {
            source: self.index,
            ..Batch::default()
        };
        for id in done {
            let Some(mut f) = self.files.remove(&id) else {
                continue;
            };
            // Whatever was written last, then the unterminated tail.
            let _ = self.read_file(&mut f, &mut batch);
            self.cut_lines(&mut f, &mut batch, true);
            self.retiring.push(f);
        }
        self.send(batch);
        // Forget retired files once everything they sent is delivered.
        let (gone, keep): (Vec<Tailed>, Vec<Tailed>) = std::mem::take(&mut self.retiring)
            .into_iter()
            .partition(|f| f.acked >= f.sent);
        self.retiring = keep;
        for f in gone {
            self.by_key.remove(&f.key);
            if !self.files.contains_key(&f.id) {
                self.store.remove(&self.cfg.id, f.id);
            }
        }
    }

    /// Writes the checkpoint file. A failure is logged and retried next
    /// time; delivery goes on (a restart would then repeat more lines, never
    /// skip any).
    fn save(&mut self) {
        for f in self.files.values().chain(&self.retiring) {
            self.store.set(Entry {
                source: self.cfg.id.clone(),
                path: f.path.clone(),
                id: f.id,
                fingerprint: f.fingerprint.clone(),
                offset: f.acked,
            });
        }
        match self.store.save() {
            Ok(()) => {
                if self.checkpoint_error_logged.take().is_some() {
                    tracing::info!(source = %self.cfg.id, "checkpoint written again");
                }
            }
            Err(e) => {
                self.stats.checkpoint_errors.fetch_add(1, Ordering::Relaxed);
                if self
                    .checkpoint_error_logged
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
                {
                    self.checkpoint_error_logged = Some(Instant::now());
                    tracing::error!(source = %self.cfg.id, error = %e, "cannot write checkpoint; delivery goes on, a restart would repeat lines since the last checkpoint written");
                }
            }
        }
    }
}

/// The directory part of a glob before its first wildcard.
fn glob_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for comp in Path::new(pattern).components() {
        let s = comp.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[', '{']) {
            break;
        }
        base.push(comp);
    }
    if base.as_os_str().is_empty() || Path::new(pattern) == base {
        base.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        base
    }
}

/// A source id as a directory name.
fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_base_is_the_directory_before_wildcards() {
        assert_eq!(
            glob_base("/var/log/app/*.log"),
            PathBuf::from("/var/log/app")
        );
        assert_eq!(glob_base("/var/log/*/x.log"), PathBuf::from("/var/log"));
        assert_eq!(glob_base("/var/log/a.log"), PathBuf::from("/var/log"));
    }
}
