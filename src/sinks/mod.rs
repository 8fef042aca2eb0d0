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

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::config::SinkConfig;

pub enum Sink {
    Stdout(io::BufWriter<io::Stdout>),
    File(FileSink),
    Http(http::HttpSink),
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
        })
    }

    /// Writes one batch of complete lines. `more_queued`: another batch is
    /// waiting, so stdout may stay unflushed until it is written too.
    pub fn write(&mut self, data: &[u8], more_queued: bool) -> Result<(), WriteError> {
        match self {
            Sink::Stdout(w) => {
                w.write_all(data)?;
                if !more_queued {
                    w.flush()?;
                }
                Ok(())
            }
            Sink::File(f) => Ok(f.write(data)?),
            Sink::Http(h) => h.write(data),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(w) => w.flush(),
            Sink::File(f) => f.file.flush(),
            Sink::Http(_) => Ok(()),
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
        self.file.write_all(data)?;
        if self.fsync {
            self.file.sync_data()?;
        }
        self.size += data.len() as u64;
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
