//! The Kafka sink (at-least-once): each event becomes one message, with the
//! source event's key, (redacted) headers and timestamp when it has them.
//!
//! The producer is idempotent (`enable.idempotence=true`, `acks=all`), so
//! librdkafka's own retries never duplicate or reorder within a partition.
//! A batch counts as delivered only when the broker acknowledged every one
//! of its messages (delivery reports). Per message:
//! - delivered: done;
//! - rejected for good (too large, invalid record, policy): handed back to
//!   the agent, which dead-letters that message alone;
//! - anything else (timeout, broker down, not enough replicas): the write
//!   fails as retriable, and the retry sends only the messages of the batch
//!   not yet delivered.
//!
//! A fatal producer error (idempotence state lost) rebuilds the producer;
//! messages without a delivery report are sent again (duplicates are
//! possible there, loss is not).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::{Events, WriteError};
use crate::config::KafkaSinkConfig;
use crate::kafka::{ClientState, KafkaConfigError};
use crate::pipeline::EventMeta;

/// Delivery reports of the messages in flight: `(index in batch, result)`.
pub type Reports = Arc<Mutex<Vec<(usize, Result<(), RDKafkaErrorCode>)>>>;

pub struct SinkContext {
    base: crate::kafka::Context,
    reports: Reports,
}

crate::kafka::delegate_client_context!(SinkContext);

impl ProducerContext for SinkContext {
    type DeliveryOpaque = usize;
    fn delivery(&self, r: &DeliveryResult<'_>, index: usize) {
        let res = match r {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown)),
        };
        if let Ok(mut v) = self.reports.lock() {
            v.push((index, res));
        }
    }
}

/// Builds an idempotent producer for `cfg` (also used by the dead-letter
/// topic and, with a transactional id, by exactly-once mode).
pub fn producer(
    name: &str,
    brokers: &str,
    extra: &[(&str, &str)],
    user: &std::collections::BTreeMap<String, String>,
    state: Arc<ClientState>,
) -> Result<(ThreadedProducer<SinkContext>, Reports), KafkaConfigError> {
    let mut ours: Vec<(&str, &str)> = vec![
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("linger.ms", "5"),
    ];
    ours.extend_from_slice(extra);
    let conf = crate::kafka::client_config(
        brokers,
        &ours,
        user,
        &[
            ("enable.idempotence", "delivery guarantees depend on it"),
            ("acks", "delivery guarantees depend on it"),
            ("bootstrap.servers", "set brokers"),
            ("transactional.id", "set transactional_id"),
        ],
    )?;
    let reports: Reports = Arc::default();
    let ctx = SinkContext {
        base: crate::kafka::Context {
            name: name.to_string(),
            state,
        },
        reports: reports.clone(),
    };
    let p = conf
        .create_with_context(ctx)
        .map_err(|e| KafkaConfigError::Client(format!("{name}: {e}")))?;
    Ok((p, reports))
}

/// Waits until `sent` delivery reports are in, or `timeout`. True if all
/// arrived.
///
/// Why not `Producer::flush`: with the threaded producer, the background
/// thread takes the delivery events, and `flush` then sleeps in 100 ms
/// polls of its own: one batch would cost at least 100 ms. Here we nudge
/// librdkafka to send now (a zero-timeout flush ends any linger) and watch
/// the reports the callback collects.
pub fn wait_reports<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    reports: &Reports,
    sent: usize,
    timeout: Duration,
) -> bool {
    let _ = producer.flush(Duration::ZERO);
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        let n = reports.lock().map_or(0, |r| r.len());
        if n >= sent {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Builds a record for event `i` of `ev`, carrying its key, headers and
/// timestamp.
pub fn record<'a>(
    topic: &'a str,
    i: usize,
    payload: &'a [u8],
    meta: Option<&'a EventMeta>,
    extra_headers: &[(&str, &[u8])],
) -> BaseRecord<'a, [u8], [u8], usize> {
    let mut rec = BaseRecord::with_opaque_to(topic, i).payload(payload);
    let mut headers = OwnedHeaders::new();
    let mut any = false;
    if let Some(m) = meta {
        if let Some(k) = &m.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(ts) = m.timestamp_ms {
            rec = rec.timestamp(ts);
        }
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
            any = true;
        }
    }
    for (k, v) in extra_headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(*v),
        });
        any = true;
    }
    if any {
        rec = rec.headers(headers);
    }
    rec
}

/// Progress on the batch being written, kept across retries.
struct Progress {
    /// Identity of the batch (its data's address and length).
    id: (usize, usize),
    done: Vec<bool>,
    rejected: Vec<(usize, String)>,
}

pub struct KafkaSink {
    cfg: KafkaSinkConfig,
    producer: ThreadedProducer<SinkContext>,
    reports: Reports,
    pub state: Arc<ClientState>,
    progress: Option<Progress>,
}

impl KafkaSink {
    pub fn new(cfg: &KafkaSinkConfig) -> Result<KafkaSink, KafkaConfigError> {
        let state = Arc::new(ClientState::default());
        let (producer, reports) = Self::build(cfg, state.clone())?;
        Ok(KafkaSink {
            cfg: cfg.clone(),
            producer,
            reports,
            state,
            progress: None,
        })
    }

    fn build(
        cfg: &KafkaSinkConfig,
        state: Arc<ClientState>,
    ) -> Result<(ThreadedProducer<SinkContext>, Reports), KafkaConfigError> {
        let timeout = cfg.message_timeout_ms.to_string();
        producer(
            &format!("sink:{}", cfg.id),
            &cfg.brokers,
            &[
                ("compression.codec", &cfg.compression),
                ("message.timeout.ms", &timeout),
                ("client.id", &format!("redactd-{}", cfg.id)),
            ],
            &cfg.librdkafka,
            state,
        )
    }

    /// Sends the events of `ev` not delivered yet and waits for their
    /// delivery reports. `Ok` carries the events rejected for good.
    pub fn write(&mut self, ev: &Events<'_>) -> Result<Vec<(usize, String)>, WriteError> {
        if self
            .state
            .fatal
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(sink = %self.cfg.id, "fatal producer error; rebuilding the producer");
            let (p, r) =
                Self::build(&self.cfg, self.state.clone()).map_err(|e| WriteError::Retry {
                    error: e.to_string(),
                    after: None,
                })?;
            self.producer = p;
            self.reports = r;
        }
        let id = (ev.data.as_ptr() as usize, ev.data.len());
        let n = ev.len();
        if self.progress.as_ref().is_none_or(|p| p.id != id) {
            self.progress = Some(Progress {
                id,
                done: vec![false; n],
                rejected: Vec::new(),
            });
        }
        let Some(progress) = self.progress.as_mut() else {
            return Err(WriteError::Retry {
                error: "no progress".into(),
                after: None,
            });
        };
        if let Ok(mut r) = self.reports.lock() {
            r.clear();
        }
        let mut sent = 0usize;
        for i in 0..n {
            if progress.done[i] {
                continue;
            }
            let mut rec = record(&self.cfg.topic, i, ev.event(i), ev.meta.get(i), &[]);
            loop {
                match self.producer.send(rec) {
                    Ok(()) => {
                        sent += 1;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        rec = back;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => {
                        let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown);
                        if crate::kafka::is_permanent(code) {
                            progress.done[i] = true;
                            progress.rejected.push((i, reason(code)));
                            break;
                        }
                        // Wait for what was sent, then retry the rest.
                        let _ = self
                            .producer
                            .flush(Duration::from_millis(self.cfg.message_timeout_ms + 5000));
                        Self::apply_reports(&self.reports, progress);
                        return Err(WriteError::Retry {
                            error: format!("produce: {e}"),
                            after: None,
                        });
                    }
                }
            }
        }
        let wait = Duration::from_millis(self.cfg.message_timeout_ms + 5000);
        let all_in = wait_reports(&self.producer, &self.reports, sent, wait);
        let failed = Self::apply_reports(&self.reports, progress);
        if let Some(e) = failed {
            return Err(WriteError::Retry {
                error: format!("delivery failed: {e:?}"),
                after: None,
            });
        }
        if !all_in {
            return Err(WriteError::Retry {
                error: "delivery reports timed out".into(),
                after: None,
            });
        }
        if progress.done.iter().any(|d| !d) {
            return Err(WriteError::Retry {
                error: format!(
                    "{} of {sent} messages without a delivery report",
                    progress.done.iter().filter(|d| !**d).count()
                ),
                after: None,
            });
        }
        let rejected = std::mem::take(&mut progress.rejected);
        self.progress = None;
        Ok(rejected)
    }

    /// Marks delivered and permanently rejected messages; returns a
    /// retriable error if some message failed with one.
    fn apply_reports(reports: &Reports, progress: &mut Progress) -> Option<RDKafkaErrorCode> {
        let mut retry = None;
        let Ok(mut r) = reports.lock() else {
            return Some(RDKafkaErrorCode::Unknown);
        };
        for (i, res) in r.drain(..) {
            let Some(done) = progress.done.get_mut(i) else {
                continue;
            };
            match res {
                Ok(()) => *done = true,
                Err(code) if crate::kafka::is_permanent(code) => {
                    *done = true;
                    progress.rejected.push((i, reason(code)));
                }
                Err(code) => retry = Some(code),
            }
        }
        retry
    }

    pub fn flush(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(10));
    }
}

/// A dead-letter reason for a rejected message (a bounded set).
pub fn reason(code: RDKafkaErrorCode) -> String {
    let name = format!("{code:?}");
    let mut out = String::from("kafka_");
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_snake_case_error_names() {
        assert_eq!(
            reason(RDKafkaErrorCode::MessageSizeTooLarge),
            "kafka_message_size_too_large"
        );
    }
}
