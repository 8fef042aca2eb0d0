//! The HTTP sink: each batch is one POST of NDJSON (one redacted event per
//! line), gzip-compressed by default.
//!
//! Failures are split by what a retry could change: connection errors,
//! timeouts, 408, 429 and 5xx are retried (honouring `Retry-After`); any
//! other 4xx means the endpoint rejects this content for good, so the batch
//! goes to the dead-letter path instead of being retried forever.

use std::io::Write;
use std::time::Duration;

use flate2::{Compression, write::GzEncoder};

use super::WriteError;

pub struct HttpSink {
    agent: ureq::Agent,
    url: String,
    gzip: bool,
    headers: Vec<(String, String)>,
}

impl HttpSink {
    pub fn new(
        url: &str,
        gzip: bool,
        timeout: Duration,
        headers: Vec<(String, String)>,
    ) -> HttpSink {
        HttpSink {
            agent: ureq::AgentBuilder::new().timeout(timeout).build(),
            url: url.to_string(),
            gzip,
            headers,
        }
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), WriteError> {
        let mut req = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/x-ndjson");
        for (k, v) in &self.headers {
            req = req.set(k, v);
        }
        let body = if self.gzip {
            let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::fast());
            enc.write_all(data)
                .and_then(|_| enc.finish())
                .map_err(|e| WriteError::Retry {
                    error: format!("gzip: {e}"),
                    after: None,
                })?
        } else {
            data.to_vec()
        };
        if self.gzip {
            req = req.set("Content-Encoding", "gzip");
        }
        match req.send_bytes(&body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, resp)) => {
                // Only the status code: a response body could echo content.
                if code == 408 || code == 429 || code >= 500 {
                    let after = resp
                        .header("Retry-After")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(300)));
                    Err(WriteError::Retry {
                        error: format!("HTTP {code}"),
                        after,
                    })
                } else {
                    Err(WriteError::Permanent {
                        reason: format!("http_{code}"),
                    })
                }
            }
            Err(ureq::Error::Transport(t)) => Err(WriteError::Retry {
                error: format!("{}", t.kind()),
                after: None,
            }),
        }
    }
}
