//! Sinks: where redacted batches go.
//!
//! Contract: [`Sink::write`] returns `Ok` only once the batch is as safe as
//! the sink can make it (written to stdout and flushed; appended to a file,
//! and fsynced if configured; accepted by the HTTP endpoint with a 2xx).
//! Only then is the batch acknowledged to its source, which is what lets
//! checkpoints advance. [`WriteError::Retry`] means "not delivered, try
//! again"; [`WriteError::Permanent`] means "this endpoint will never take
//! it": the batch goes to the dead-letter path.

pub mod http;
pub mod kafka;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::config::SinkConfig;
use crate::pipeline::EventMeta;

pub enum Sink {
    Stdout(io::BufWriter<io::Stdout>),
    File(FileSink),
    Http(http::HttpSink),
    Kafka(Box<kafka::KafkaSink>),
}

/// A redacted batch as sinks see it: newline-terminated lines, where each
/// event ends (an event may hold newlines), and per-event metadata (Kafka
/// keys and headers) when the source had any.
pub struct Events<'a> {
    pub data: &'a [u8],
    pub ends: &'a [u32],
    pub meta: &'a [EventMeta],
}

impl Events<'_> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Event `i` without its final newline (empty past the last event).
    ///
    /// Ends come from our own pipeline or from a CRC-checked disk-buffer
    /// record we wrote; they are still clamped to the data, so that no
    /// buffer file, however made, can panic a sink thread.
    pub fn event(&self, i: usize) -> &[u8] {
        let len = self.data.len();
        let at = |k: usize| self.ends.get(k).map_or(len, |e| (*e as usize).min(len));
        let start = if i == 0 { 0 } else { at(i - 1) };
        let end = if i < self.ends.len() { at(i) } else { start };
        let e = &self.data[start.min(end)..end];
        e.strip_suffix(b"\n").unwrap_or(e)
    }

    /// Dead-letter records for events a sink rejected for good: `(index,
    /// reason)` pairs, with the rule ids that fired on each.
    pub fn dead_records<'a>(
        &'a self,
        rejected: &'a [(usize, String)],
        sink: &'a str,
        source: &'a str,
        rules_of: impl Fn(usize) -> Vec<String>,
    ) -> Vec<crate::dlq::DeadRecord<'a>> {
        rejected
            .iter()
            .map(|(i, reason)| crate::dlq::DeadRecord {
                payload: self.event(*i),
                reason,
                stage: "sink",
                sink,
                source,
                rules: rules_of(*i),
                meta: self.meta.get(*i),
            })
            .collect()
    }
}

/// Line ends of newline-terminated `data`: the event boundaries of batches
/// that did not keep them (disk-buffered batches of line sources).
pub fn line_ends(data: &[u8]) -> Vec<u32> {
    let mut ends: Vec<u32> = memchr::memchr_iter(b'\n', data)
        .map(|i| i as u32 + 1)
        .collect();
    if ends.last().map_or(0, |e| *e as usize) < data.len() {
        ends.push(data.len() as u32);
    }
    ends
}

/// Why a write did not deliver.
#[derive(Debug)]
pub enum WriteError {
    /// Worth retrying (I/O error, timeout, 429, 5xx); `after` is the
    /// endpoint's `Retry-After`, if it said.
    Retry {
        error: String,
        after: Option<std::time::Duration>,
    },
    /// Will never succeed (a 4xx rejection); `reason` names it for the
    /// dead-letter record and metrics (a bounded set: `http_<code>`).
    Permanent { reason: String },
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Retry { error, .. } => write!(f, "{error}"),
            WriteError::Permanent { reason } => write!(f, "rejected for good ({reason})"),
        }
    }
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Retry {
            error: e.to_string(),
            after: None,
        }
    }
}

impl Sink {
    pub fn open(cfg: &SinkConfig) -> io::Result<Sink> {
        Ok(match cfg {
            SinkConfig::Stdout { .. } => {
                Sink::Stdout(io::BufWriter::with_capacity(256 * 1024, io::stdout()))
            }
            SinkConfig::File {
                path,
                max_bytes,
                fsync,
                ..
            } => Sink::File(FileSink::open(path.clone(), *max_bytes, *fsync)?),
            SinkConfig::Http {
                url,
                compression,
                timeout_ms,
                headers,
                ..
            } => Sink::Http(http::HttpSink::new(
                url,
                compression == "gzip",
                std::time::Duration::from_millis(*timeout_ms),
                headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )),
            SinkConfig::Kafka(k) => Sink::Kafka(Box::new(
                kafka::KafkaSink::new(k).map_err(|e| io::Error::other(e.to_string()))?,
            )),
        })
    }

    /// Writes one batch. `more_queued`: another batch is waiting, so
    /// stdout may stay unflushed until it is written too. `Ok` carries the
    /// events the sink rejected for good (only the Kafka sink judges
    /// events one by one); they go to the dead-letter path.
    pub fn write(
        &mut self,
        ev: &Events<'_>,
        more_queued: bool,
    ) -> Result<Vec<(usize, String)>, WriteError> {
        match self {
            Sink::Stdout(w) => {
                w.write_all(ev.data)?;
                if !more_queued {
                    w.flush()?;
                }
                Ok(Vec::new())
            }
            Sink::File(f) => {
                f.write(ev.data)?;
                Ok(Vec::new())
            }
            Sink::Http(h) => h.write(ev.data).map(|()| Vec::new()),
            Sink::Kafka(k) => k.write(ev),
        }
    }

    /// The sink's client state, for sinks that have one (Kafka).
    pub fn kafka_state(&self) -> Option<std::sync::Arc<crate::kafka::ClientState>> {
        match self {
            Sink::Kafka(k) => Some(k.state.clone()),
            _ => None,
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(w) => w.flush(),
            Sink::File(f) => f.file.flush(),
            Sink::Http(_) => Ok(()),
            Sink::Kafka(k) => {
                k.flush();
                Ok(())
            }
        }
    }
}

/// Appends to a file; rotates by size (the full file is renamed to
/// `<path>.<unix-nanos>` and a new one started).
pub struct FileSink {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    fsync: bool,
}

impl FileSink {
    fn open(path: PathBuf, max_bytes: u64, fsync: bool) -> io::Result<FileSink> {
        // A crash mid-write leaves a torn last line: the helper starts a
        // new line so it cannot glue onto the next record.
        let (file, size) = crate::fsutil::open_append_lines(&path)?;
        Ok(FileSink {
            path,
            file,
            size,
            max_bytes,
            fsync,
        })
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.max_bytes > 0 && self.size > 0 && self.size + data.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        if let Err(e) = self.write_whole(data) {
            // A full disk (or a file size limit) can cut a batch anywhere:
            // cut the file back to where the batch started, so the retry
            // does not leave a torn line in front of it.
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.size += data.len() as u64;
        Ok(())
    }

    fn write_whole(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        if self.fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(format!(".{stamp}"));
        self.file.sync_all()?;
        std::fs::rename(&self.path, &rotated)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_sliced_by_their_ends_and_bad_ends_cannot_panic() {
        let data = b"one\ntwo\nthree\n";
        let ends = line_ends(data);
        let ev = Events {
            data,
            ends: &ends,
            meta: &[],
        };
        assert_eq!(ev.len(), 3);
        assert_eq!(ev.event(1), b"two");
        assert_eq!(ev.event(2), b"three");
        assert_eq!(ev.event(7), b"", "past the last event");
        // Ends a hand-made buffer file could hold: past the data, out of
        // order.
        let bad = [3u32, 400, 2, u32::MAX];
        let ev = Events {
            data,
            ends: &bad,
            meta: &[],
        };
        assert_eq!(ev.event(0), b"one");
        assert_eq!(ev.event(1), b"\ntwo\nthree");
        assert_eq!(ev.event(2), b"", "an end before its start");
        assert_eq!(ev.event(3), b"e\ntwo\nthree", "an end past the data");
    }
}
