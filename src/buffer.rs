//! Per-sink buffers between the engine and a sink.
//!
//! - **memory**: a bounded queue, bounded by events *and* bytes. When full,
//!   `block` (the default) makes the collector wait, which stops the
//!   sources (backpressure, memory stays flat); `drop_newest` drops the
//!   incoming batch, counts it, and acknowledges it (the user chose to lose
//!   data rather than slow down).
//! - **disk**: a durable queue in segment files. A batch is acknowledged to
//!   its source once it is written (and synced, per `fsync`), so a dead
//!   endpoint no longer holds the sources back until the disk budget is
//!   used up; a restart (even after `kill -9`) replays what the sink had not
//!   delivered.
//!
//! Why the disk queue is written here rather than taken from a crate: it
//! must tie into our acknowledgements (ack on durable write, advance the
//! read cursor only on delivery), survive a torn final record, and skip a
//! corrupt one with a count instead of failing; the embedded-queue crates
//! we looked at either fsync on every operation with no batching, or keep
//! their own notion of delivery. The format is small: records framed as
//! `magic | length | crc32 | payload` in numbered segment files, and a
//! cursor file (segment, offset) written atomically.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

const MAGIC: u32 = 0x5244_4231; // "RDB1"
const MAGIC2: u32 = 0x5244_4232; // "RDB2"
const HEADER: usize = 12;
/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// A batch as buffered: redacted lines, their count, their source, and
/// for sources with per-event metadata (Kafka), the event boundaries and
/// metadata (so a Kafka sink behind a disk buffer still sends keys and
/// headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub data: Vec<u8>,
    pub lines: u32,
    pub source: u32,
    /// Empty when `meta` is (then every line is one event).
    pub ends: Vec<u32>,
    pub meta: Vec<crate::pipeline::EventMeta>,
}

/// What a buffer did with a pushed item.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued in memory: acknowledge once the sink delivered it.
    Queued,
    /// Written to disk: acknowledge now.
    Durable,
    /// Dropped (`drop_newest`, full): acknowledge now, count it.
    Dropped,
}

// ------------------------------------------------------------------ memory

pub struct MemoryBuffer<T> {
    state: Mutex<MemState<T>>,
    cv: Condvar,
    max_events: usize,
    max_bytes: usize,
    drop_newest: bool,
}

struct MemState<T> {
    /// Items with their (events, bytes).
    q: VecDeque<(T, usize, usize)>,
    events: usize,
    bytes: usize,
    closed: bool,
}

impl<T: Clone> MemoryBuffer<T> {
    pub fn new(max_events: usize, max_bytes: usize, drop_newest: bool) -> MemoryBuffer<T> {
        MemoryBuffer {
            state: Mutex::new(MemState {
                q: VecDeque::new(),
                events: 0,
                bytes: 0,
                closed: false,
            }),
            cv: Condvar::new(),
            max_events: max_events.max(1),
            max_bytes: max_bytes.max(1),
            drop_newest,
        }
    }

    /// Queues an item of `events` events and `bytes` bytes. Blocks while
    /// full, unless `drop_newest`. An item larger than the whole budget is
    /// let in when the queue is empty, so it cannot block forever.
    pub fn push(&self, item: T, events: usize, bytes: usize) -> Pushed {
        let mut s = lock(&self.state);
        loop {
            let fits = s.q.is_empty()
                || (s.events + events <= self.max_events && s.bytes + bytes <= self.max_bytes);
            if fits || s.closed {
                break;
            }
            if self.drop_newest {
                return Pushed::Dropped;
            }
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.events += events;
        s.bytes += bytes;
        s.q.push_back((item, events, bytes));
        self.cv.notify_all();
        Pushed::Queued
    }

    /// The next item without removing it; `None` once closed and empty.
    pub fn peek(&self) -> Option<T> {
        let mut s = lock(&self.state);
        loop {
            if let Some(front) = s.q.front() {
                return Some(front.0.clone());
            }
            if s.closed {
                return None;
            }
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Removes the front item (after delivery).
    pub fn pop(&self) {
        let mut s = lock(&self.state);
        if let Some((_, events, bytes)) = s.q.pop_front() {
            s.events -= events;
            s.bytes -= bytes;
        }
        self.cv.notify_all();
    }

    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.cv.notify_all();
    }

    /// (events, bytes) waiting.
    pub fn level(&self) -> (usize, usize) {
        let s = lock(&self.state);
        (s.events, s.bytes)
    }

    pub fn len(&self) -> usize {
        lock(&self.state).q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// -------------------------------------------------------------------- disk

/// When the disk buffer syncs appended records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch, before it is acknowledged: no acknowledged batch
    /// is lost even if the machine loses power.
    Always,
    /// Never explicitly: survives a process crash (`kill -9`), not a power
    /// loss.
    Never,
}

pub struct DiskBuffer {
    dir: PathBuf,
    state: Mutex<DiskState>,
    cv: Condvar,
    max_bytes: u64,
    fsync: FsyncPolicy,
}

struct DiskState {
    /// Segment numbers present, oldest first.
    segments: VecDeque<u64>,
    writer: File,
    write_seg: u64,
    write_off: u64,
    /// Read position (persisted as the cursor once delivered).
    read_seg: u64,
    read_off: u64,
    reader: Option<File>,
    /// Bytes in segments not fully delivered.
    bytes: u64,
    /// Records in the buffer (approximate after a restart: counted on replay).
    closed: bool,
    corrupt: u64,
    /// The live segment has a torn tail that could not be cut off: the next
    /// push starts a new segment.
    torn: bool,
}

impl DiskBuffer {
    /// Opens (or creates, mode 0700) the buffer in `dir` and positions the
    /// reader at the persisted cursor.
    pub fn open(dir: &Path, max_bytes: u64, fsync: FsyncPolicy) -> io::Result<DiskBuffer> {
        crate::fsutil::private_dir(dir)?;
        let mut segments: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.strip_prefix("seg-")?
                    .strip_suffix(".dat")?
                    .parse::<u64>()
                    .ok()
            })
            .collect();
        segments.sort_unstable();
        let (mut read_seg, mut read_off) =
            read_cursor(dir).unwrap_or((segments.first().copied().unwrap_or(0), 0));
        // Segments wholly before the cursor were delivered: remove them.
        segments.retain(|&s| {
            if s < read_seg {
                let _ = fs::remove_file(seg_path(dir, s));
                false
            } else {
                true
            }
        });
        if segments.is_empty() {
            segments.push(read_seg);
            read_off = 0;
        }
        if segments.first().copied() != Some(read_seg) {
            // The cursor's segment is gone (should not happen): start at the oldest.
            read_seg = segments[0];
            read_off = 0;
        }
        let write_seg = *segments.last().unwrap_or(&read_seg);
        // The last segment may end in a torn record (a crash mid-append):
        // cut it back to the last whole record before appending.
        let valid_end = scan_valid_end(&seg_path(dir, write_seg))?;
        let writer = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(seg_path(dir, write_seg))?;
        let torn = writer.metadata()?.len() > valid_end;
        if torn {
            tracing::warn!(
                segment = write_seg,
                valid_bytes = valid_end,
                "disk buffer ends in a torn or corrupt record; cut back"
            );
        }
        writer.set_len(valid_end)?;
        let mut bytes = 0;
        for &s in &segments {
            bytes += fs::metadata(seg_path(dir, s)).map_or(0, |m| m.len());
        }
        bytes = bytes.saturating_sub(read_off);
        let mut st = DiskState {
            segments: segments.into(),
            writer,
            write_seg,
            write_off: valid_end,
            torn: false,
            read_seg,
            read_off,
            reader: None,
            bytes,
            closed: false,
            corrupt: u64::from(torn),
        };
        st.writer.seek(SeekFrom::Start(valid_end))?;
        Ok(DiskBuffer {
            dir: dir.to_path_buf(),
            state: Mutex::new(st),
            cv: Condvar::new(),
            max_bytes,
            fsync,
        })
    }

    /// Appends an item; blocks while the buffer is over its byte budget
    /// (backpressure). Returns once it is durable per the fsync policy.
    pub fn push(&self, item: &Item) -> io::Result<Pushed> {
        let rec = encode(item);
        let mut s = lock(&self.state);
        while !s.closed && s.bytes > 0 && s.bytes + rec.len() as u64 > self.max_bytes {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.write_off >= SEGMENT_BYTES || s.torn {
            if self.fsync == FsyncPolicy::Always {
                s.writer.sync_all()?;
            }
            let next = s.write_seg + 1;
            s.writer = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(seg_path(&self.dir, next))?;
            s.write_seg = next;
            s.write_off = 0;
            s.torn = false;
            s.segments.push_back(next);
        }
        let written = s.writer.write_all(&rec).and_then(|()| {
            if self.fsync == FsyncPolicy::Always {
                s.writer.sync_data()?;
            }
            Ok(())
        });
        if let Err(e) = written {
            // A full disk can take part of the record. Cut it back off, or
            // the next record would land after the torn bytes while the
            // reader expects one at `write_off`: it would see a corrupt
            // record and skip the rest of the segment, losing acknowledged
            // events. If even the cut fails, the next push starts a new
            // segment (the reader skips a torn tail of a closed segment,
            // and nothing acknowledged is after it). The writer of a
            // reopened segment writes at its position, not in append mode:
            // hence the seek.
            let off = s.write_off;
            let cut = s
                .writer
                .set_len(off)
                .and_then(|()| s.writer.seek(SeekFrom::Start(off)));
            if cut.is_err() {
                s.torn = true;
            }
            return Err(e);
        }
        s.write_off += rec.len() as u64;
        s.bytes += rec.len() as u64;
        self.cv.notify_all();
        Ok(Pushed::Durable)
    }

    /// The next record, with the position just past it (to pass to
    /// [`DiskBuffer::commit`] once delivered). `None` once closed and empty.
    /// Corrupt records are skipped (the rest of their segment with them)
    /// and counted.
    pub fn peek(&self) -> io::Result<Option<(Item, (u64, u64))>> {
        let mut s = lock(&self.state);
        loop {
            let at_end = s.read_seg == s.write_seg && s.read_off >= s.write_off;
            if at_end {
                if s.closed {
                    return Ok(None);
                }
                s = self
                    .cv
                    .wait_timeout(s, Duration::from_millis(200))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                continue;
            }
            if s.reader.is_none() {
                let mut f = File::open(seg_path(&self.dir, s.read_seg))?;
                f.seek(SeekFrom::Start(s.read_off))?;
                s.reader = Some(f);
            }
            let seg_len = if s.read_seg == s.write_seg {
                s.write_off
            } else {
                fs::metadata(seg_path(&self.dir, s.read_seg))?.len()
            };
            if s.read_off >= seg_len {
                // This segment is done; move to the next.
                self.advance_segment(&mut s)?;
                continue;
            }
            let (seg, off) = (s.read_seg, s.read_off);
            let reader = s
                .reader
                .as_mut()
                .ok_or_else(|| io::Error::other("reader"))?;
            match read_record(reader, seg_len - off) {
                Ok(item) => {
                    let next = off + (HEADER + item.1) as u64;
                    let item = item.0;
                    return Ok(Some((item, (seg, next))));
                }
                Err(e) => {
                    s.corrupt += 1;
                    tracing::error!(segment = seg, offset = off, error = %e, "corrupt disk-buffer record; skipping the rest of its segment");
                    if s.read_seg == s.write_seg {
                        // Nothing after it can be trusted in the live segment.
                        s.read_off = s.write_off;
                        s.reader = None;
                    } else {
                        self.advance_segment(&mut s)?;
                    }
                }
            }
        }
    }

    fn advance_segment(&self, s: &mut DiskState) -> io::Result<()> {
        let done = s.read_seg;
        s.segments.pop_front();
        s.read_seg = s.segments.front().copied().unwrap_or(s.write_seg);
        s.read_off = 0;
        s.reader = None;
        write_cursor(&self.dir, s.read_seg, 0)?;
        let len = fs::metadata(seg_path(&self.dir, done)).map_or(0, |m| m.len());
        let _ = fs::remove_file(seg_path(&self.dir, done));
        s.bytes = s.bytes.saturating_sub(len);
        self.cv.notify_all();
        Ok(())
    }

    /// Marks everything up to `pos` delivered and persists the cursor.
    pub fn commit(&self, pos: (u64, u64)) -> io::Result<()> {
        let mut s = lock(&self.state);
        if pos.0 == s.read_seg {
            let freed = pos.1.saturating_sub(s.read_off);
            s.read_off = pos.1;
            s.bytes = s.bytes.saturating_sub(freed);
        }
        write_cursor(&self.dir, s.read_seg, s.read_off)?;
        self.cv.notify_all();
        Ok(())
    }

    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.cv.notify_all();
    }

    /// Bytes waiting, and corrupt records skipped so far.
    pub fn level(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.bytes, s.corrupt)
    }
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:020}.dat"))
}

fn encoded_len(item: &Item) -> usize {
    8 + item.data.len()
}

/// Event boundaries and metadata, as stored after the data in an
/// `RDB2` record.
#[derive(serde::Serialize, serde::Deserialize)]
struct Extra {
    ends: Vec<u32>,
    meta: Vec<crate::pipeline::EventMeta>,
}

/// `RDB1`: lines, source, data. `RDB2` (items with event metadata):
/// lines, source, data length, data, then the metadata as JSON.
fn encode(item: &Item) -> Vec<u8> {
    let mut payload = Vec::with_capacity(encoded_len(item));
    payload.extend_from_slice(&item.lines.to_le_bytes());
    payload.extend_from_slice(&item.source.to_le_bytes());
    let magic = if item.meta.is_empty() {
        payload.extend_from_slice(&item.data);
        MAGIC
    } else {
        payload.extend_from_slice(&(item.data.len() as u32).to_le_bytes());
        payload.extend_from_slice(&item.data);
        let extra = Extra {
            ends: item.ends.clone(),
            meta: item.meta.clone(),
        };
        // Serializing plain data to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut payload, &extra);
        MAGIC2
    };
    let mut crc = flate2::Crc::new();
    crc.update(&payload);
    let mut rec = Vec::with_capacity(HEADER + payload.len());
    rec.extend_from_slice(&magic.to_le_bytes());
    rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc.sum().to_le_bytes());
    rec.extend_from_slice(&payload);
    rec
}

/// Reads one record; `avail` bytes remain in the segment. Returns the item
/// and its payload length.
fn read_record(r: &mut File, avail: u64) -> io::Result<(Item, usize)> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    if avail < HEADER as u64 {
        return Err(bad("truncated header"));
    }
    let mut h = [0u8; HEADER];
    r.read_exact(&mut h)?;
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let magic = word(0);
    if magic != MAGIC && magic != MAGIC2 {
        return Err(bad("bad magic"));
    }
    let len = word(4) as u64;
    if len < 8 || len > avail - HEADER as u64 {
        return Err(bad("bad length"));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    let mut crc = flate2::Crc::new();
    crc.update(&payload);
    if crc.sum() != word(8) {
        return Err(bad("checksum mismatch"));
    }
    let lines = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
    let source = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]);
    let len = payload.len();
    if magic == MAGIC {
        payload.drain(..8);
        return Ok((
            Item {
                data: payload,
                lines,
                source,
                ends: Vec::new(),
                meta: Vec::new(),
            },
            len,
        ));
    }
    if payload.len() < 12 {
        return Err(bad("bad length"));
    }
    let n = u32::from_le_bytes([payload[8], payload[9], payload[10], payload[11]]) as usize;
    if payload.len() < 12 + n {
        return Err(bad("bad data length"));
    }
    let extra: Extra =
        serde_json::from_slice(&payload[12 + n..]).map_err(|_| bad("bad event metadata"))?;
    payload.truncate(12 + n);
    payload.drain(..12);
    Ok((
        Item {
            data: payload,
            lines,
            source,
            ends: extra.ends,
            meta: extra.meta,
        },
        len,
    ))
}

/// The end of the last whole, valid record of a segment.
fn scan_valid_end(path: &Path) -> io::Result<u64> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut off = 0;
    while off < len {
        match read_record(&mut f, len - off) {
            Ok((_, len)) => off += (HEADER + len) as u64,
            Err(_) => break,
        }
    }
    Ok(off)
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let s = fs::read_to_string(dir.join("cursor")).ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

fn write_cursor(dir: &Path, seg: u64, off: u64) -> io::Result<()> {
    crate::fsutil::write_atomic(&dir.join("cursor"), format!("{seg} {off}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u32) -> Item {
        Item {
            data: format!("line {n}\n").into_bytes(),
            lines: 1,
            source: 0,
            ends: Vec::new(),
            meta: Vec::new(),
        }
    }

    #[test]
    fn event_metadata_survives_the_disk_buffer() {
        let d = tempfile::tempdir().unwrap();
        let b = DiskBuffer::open(d.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        let meta = crate::pipeline::EventMeta {
            key: Some(b"k\xff".to_vec()),
            headers: vec![("h".into(), Some(b"v".to_vec())), ("n".into(), None)],
            timestamp_ms: Some(7),
            origin: Some(crate::pipeline::Origin {
                topic: "t".into(),
                partition: 2,
                offset: 9,
            }),
            ..Default::default()
        };
        let with = Item {
            data: b"two\nlines\n".to_vec(),
            lines: 1,
            source: 3,
            ends: vec![10],
            meta: vec![meta],
        };
        b.push(&item(1)).unwrap();
        b.push(&with).unwrap();
        let (first, pos) = b.peek().unwrap().unwrap();
        assert_eq!(first, item(1));
        b.commit(pos).unwrap();
        drop(b);
        let b = DiskBuffer::open(d.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        let (second, _) = b.peek().unwrap().unwrap();
        assert_eq!(second, with);
    }

    #[test]
    fn disk_buffer_replays_what_was_not_committed_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = DiskBuffer::open(dir.path(), 1 << 20, FsyncPolicy::Always).unwrap();
            for n in 0..5 {
                b.push(&item(n)).unwrap();
            }
            let (it, pos) = b.peek().unwrap().unwrap();
            assert_eq!(it, item(0));
            b.commit(pos).unwrap();
        }
        let b = DiskBuffer::open(dir.path(), 1 << 20, FsyncPolicy::Always).unwrap();
        b.close();
        let mut got = vec![];
        while let Some((it, pos)) = b.peek().unwrap() {
            got.push(it);
            b.commit(pos).unwrap();
        }
        assert_eq!(got, (1..5).map(item).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_final_record_is_cut_and_a_corrupt_one_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = DiskBuffer::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
            for n in 0..3 {
                b.push(&item(n)).unwrap();
            }
        }
        let seg = seg_path(dir.path(), 0);
        // Tear the last record (a crash mid-append).
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let b = DiskBuffer::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        b.push(&item(9)).unwrap();
        b.close();
        let mut got = vec![];
        while let Some((it, pos)) = b.peek().unwrap() {
            got.push(it);
            b.commit(pos).unwrap();
        }
        assert_eq!(got, vec![item(0), item(1), item(9)]);

        // Flip a payload byte of the first record: it and the rest of the
        // live segment are skipped, counted, and nothing panics.
        let dir = tempfile::tempdir().unwrap();
        {
            let b = DiskBuffer::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
            b.push(&item(0)).unwrap();
        }
        let seg = seg_path(dir.path(), 0);
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        let b = DiskBuffer::open(dir.path(), 1 << 20, FsyncPolicy::Never).unwrap();
        b.close();
        assert!(b.peek().unwrap().is_none());
        assert_eq!(b.level().1, 1, "counted");
    }

    #[test]
    fn memory_buffer_blocks_or_drops_when_full() {
        let b = MemoryBuffer::new(2, 1 << 20, true);
        assert_eq!(b.push(0, 1, 7), Pushed::Queued);
        assert_eq!(b.push(1, 1, 7), Pushed::Queued);
        assert_eq!(b.push(2, 1, 7), Pushed::Dropped);
        assert_eq!(b.level(), (2, 14));
        assert_eq!(b.peek(), Some(0));
        b.pop();
        assert_eq!(b.push(3, 1, 7), Pushed::Queued);
        // Blocking mode: a full buffer makes push wait for a pop.
        let b = std::sync::Arc::new(MemoryBuffer::new(1, 1 << 20, false));
        assert_eq!(b.push(0, 1, 1), Pushed::Queued);
        let b2 = b.clone();
        let t = std::thread::spawn(move || b2.push(1, 1, 1));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "push waits while full");
        b.pop();
        assert_eq!(t.join().unwrap(), Pushed::Queued);
    }
}
