//! The dead-letter path: where events go that no sink will ever accept.
//!
//! One JSON line per event: `ts_unix_ms`, `reason` (bounded set, e.g.
//! `http_400`, `retries_exhausted`), `stage`, `sink`, `source`, `rules`
//! (ids of the rules that redacted something in it), and the
//! `payload`, which is always the engine's *redacted* output: the raw input
//! never reaches this file. Each write is fsynced before it counts, because
//! writing here is what allows the source to be acknowledged. If the file
//! cannot be written, the caller does not acknowledge (backpressure).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

pub struct DeadLetter {
    file: File,
}

impl DeadLetter {
    pub fn open(path: &Path) -> io::Result<DeadLetter> {
        let (file, _) = crate::fsutil::open_append_lines(path)?;
        Ok(DeadLetter { file })
    }

    /// Writes one record per line of `redacted` (newline-terminated lines)
    /// and syncs. Returns the number of records.
    pub fn write(
        &mut self,
        redacted: &[u8],
        reason: &str,
        sink: &str,
        source: &str,
        rules_of_line: &dyn Fn(usize) -> Vec<String>,
    ) -> io::Result<usize> {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut out = Vec::with_capacity(redacted.len() + 128);
        let mut n = 0;
        let mut lines: Vec<&[u8]> = redacted.split(|b| *b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for (i, line) in lines.into_iter().enumerate() {
            let rec = serde_json::json!({
                "ts_unix_ms": ts as u64,
                "reason": reason,
                "stage": "sink",
                "sink": sink,
                "source": source,
                "rules": rules_of_line(i),
                "payload": String::from_utf8_lossy(line),
            });
            serde_json::to_writer(&mut out, &rec)?;
            out.push(b'\n');
            n += 1;
        }
        self.file.write_all(&out)?;
        self.file.sync_data()?;
        Ok(n)
    }
}
