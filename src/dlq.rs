//! The dead-letter path: where events go that no sink will ever accept, and
//! poison events a source flagged (a Kafka message that is not UTF-8 or too
//! large).
//!
//! Record-level: one record per event with `reason` (bounded set, e.g.
//! `http_400`, `retries_exhausted`, `kafka_message_size_too_large`,
//! `invalid_utf8`, `oversize`), `stage` (`decode` or `sink`), `sink`,
//! `source`, `rules` (ids of the rules that redacted something in it), the
//! Kafka origin (topic, partition, offset) when there is one, and the
//! payload, which is always the engine's *redacted* output: the raw input
//! never reaches the dead-letter path.
//!
//! Two targets:
//! - a JSON-lines file (default `<data_dir>/dead-letter.jsonl`, mode 0600),
//!   fsynced before a write counts;
//! - a Kafka topic: the payload as the value, the event's key and its
//!   (redacted) headers, plus `redactd.*` headers with the fields above; a
//!   write counts once the broker acknowledged every record (`acks=all`).
//!
//! Writing here is what allows the source to be acknowledged, so a failed
//! write is an error the caller retries (backpressure), never a skip.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::ThreadedProducer;

use crate::config::DeadLetterConfig;
use crate::kafka::ClientState;
use crate::pipeline::EventMeta;
use crate::sinks::kafka::{SinkContext, record};

/// One event for the dead-letter path.
pub struct DeadRecord<'a> {
    /// The redacted event, without a trailing newline.
    pub payload: &'a [u8],
    pub reason: &'a str,
    pub stage: &'a str,
    pub sink: &'a str,
    pub source: &'a str,
    pub rules: Vec<String>,
    pub meta: Option<&'a EventMeta>,
}

impl<'a> DeadRecord<'a> {
    /// The record of an event the decoder could not take (invalid UTF-8,
    /// oversize): its redacted payload, with the rule ids that fired.
    pub fn poison(p: &'a crate::pipeline::Poison, source: &'a str, rules: Vec<String>) -> Self {
        DeadRecord {
            payload: &p.payload,
            reason: p.meta.poison.unwrap_or("poison"),
            stage: "decode",
            sink: "",
            source,
            rules,
            meta: Some(&p.meta),
        }
    }
}

pub enum DeadLetter {
    File(File),
    Kafka(Box<KafkaDlq>),
}

pub struct KafkaDlq {
    topic: String,
    producer: ThreadedProducer<SinkContext>,
    reports: crate::sinks::kafka::Reports,
    pub state: Arc<ClientState>,
}

impl DeadLetter {
    /// The file at `path`.
    pub fn open_file(path: &Path) -> io::Result<DeadLetter> {
        let (file, _) = crate::fsutil::open_append_lines(path)?;
        Ok(DeadLetter::File(file))
    }

    /// The target `cfg` names: a Kafka topic if `topic` is set, else the
    /// file (default `<data_dir>/dead-letter.jsonl`).
    pub fn open(cfg: &DeadLetterConfig, data_dir: &Path) -> io::Result<DeadLetter> {
        if let Some(topic) = &cfg.topic {
            let brokers = cfg.brokers.as_deref().unwrap_or_default();
            let state = Arc::new(ClientState::default());
            let (producer, reports) = crate::sinks::kafka::producer(
                "dead-letter",
                brokers,
                &[
                    ("message.timeout.ms", "30000"),
                    ("client.id", "redactd-dead-letter"),
                ],
                &cfg.librdkafka,
                state.clone(),
            )
            .map_err(|e| io::Error::other(e.to_string()))?;
            return Ok(DeadLetter::Kafka(Box::new(KafkaDlq {
                topic: topic.clone(),
                producer,
                reports,
                state,
            })));
        }
        let path = cfg
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("dead-letter.jsonl"));
        DeadLetter::open_file(&path)
            .map_err(|e| io::Error::other(format!("dead-letter {}: {e}", path.display())))
    }

    /// The Kafka client state, if the target is a topic (for readiness).
    pub fn kafka_state(&self) -> Option<Arc<ClientState>> {
        match self {
            DeadLetter::Kafka(k) => Some(k.state.clone()),
            DeadLetter::File(_) => None,
        }
    }

    /// Writes the records durably. Returns how many were written.
    pub fn write(&mut self, recs: &[DeadRecord<'_>]) -> io::Result<usize> {
        if recs.is_empty() {
            return Ok(0);
        }
        match self {
            DeadLetter::File(f) => write_file(f, recs),
            DeadLetter::Kafka(k) => k.write(recs),
        }
    }
}

fn write_file(file: &mut File, recs: &[DeadRecord<'_>]) -> io::Result<usize> {
    let ts = now_ms();
    let mut out = Vec::with_capacity(recs.iter().map(|r| r.payload.len() + 200).sum());
    for r in recs {
        let mut rec = serde_json::json!({
            "ts_unix_ms": ts,
            "reason": r.reason,
            "stage": r.stage,
            "sink": r.sink,
            "source": r.source,
            "rules": r.rules,
            "payload": String::from_utf8_lossy(r.payload),
        });
        if let Some(o) = r.meta.and_then(|m| m.origin.as_ref()) {
            rec["origin"] = serde_json::json!({
                "topic": &*o.topic,
                "partition": o.partition,
                "offset": o.offset,
            });
        }
        serde_json::to_writer(&mut out, &rec)?;
        out.push(b'\n');
    }
    file.write_all(&out)?;
    file.sync_data()?;
    Ok(recs.len())
}

impl KafkaDlq {
    fn write(&mut self, recs: &[DeadRecord<'_>]) -> io::Result<usize> {
        if let Ok(mut r) = self.reports.lock() {
            r.clear();
        }
        let ts = now_ms().to_string();
        for (i, r) in recs.iter().enumerate() {
            let rules = r.rules.join(",");
            let origin = r.meta.and_then(|m| m.origin.as_ref());
            let (otopic, opart, ooff) = match origin {
                Some(o) => (
                    o.topic.to_string(),
                    o.partition.to_string(),
                    o.offset.to_string(),
                ),
                None => Default::default(),
            };
            let mut extra: Vec<(&str, &[u8])> = vec![
                ("redactd.reason", r.reason.as_bytes()),
                ("redactd.stage", r.stage.as_bytes()),
                ("redactd.sink", r.sink.as_bytes()),
                ("redactd.source", r.source.as_bytes()),
                ("redactd.rules", rules.as_bytes()),
                ("redactd.ts_unix_ms", ts.as_bytes()),
            ];
            if origin.is_some() {
                extra.push(("redactd.origin_topic", otopic.as_bytes()));
                extra.push(("redactd.origin_partition", opart.as_bytes()));
                extra.push(("redactd.origin_offset", ooff.as_bytes()));
            }
            let mut rec = record(&self.topic, i, r.payload, r.meta, &extra);
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        rec = back;
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(io::Error::other(format!("dead-letter topic: {e}"))),
                }
            }
        }
        crate::sinks::kafka::wait_reports(
            &self.producer,
            &self.reports,
            recs.len(),
            Duration::from_secs(35),
        );
        let reports = self
            .reports
            .lock()
            .map_err(|_| io::Error::other("dead-letter reports lock"))?;
        let ok = reports.iter().filter(|(_, r)| r.is_ok()).count();
        if ok < recs.len() {
            let err = reports.iter().find_map(|(_, r)| r.err());
            return Err(io::Error::other(format!(
                "dead-letter topic: {} of {} records not acknowledged ({err:?})",
                recs.len() - ok,
                recs.len()
            )));
        }
        Ok(recs.len())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
