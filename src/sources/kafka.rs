//! The Kafka source: a consumer in a consumer group whose offsets are
//! committed only for events that are safe downstream.
//!
//! Contract (the same as the file source's, with offsets for positions):
//! - `enable.auto.commit` and `enable.auto.offset.store` are off; an
//!   offset is committed only once every event before it was delivered by
//!   its sinks, written to a durable buffer, or dead-lettered (an [`Ack`]
//!   comes back through the pipeline). Commits happen every
//!   `commit_interval_ms`, when partitions are revoked, and at shutdown.
//! - Rebalance: before a partition is revoked, the source waits (bounded)
//!   for the events of it already in the pipeline, commits what was
//!   acknowledged and forgets the partition; acknowledgements that arrive
//!   later for it are ignored (each assignment has its own key), so a
//!   partition that moved never gets a commit from its old owner. Events
//!   not acknowledged by then are read again by the new owner: at least
//!   once, never lost.
//! - Backpressure: when the pipeline is full the assigned partitions are
//!   paused and the consumer keeps polling (so the group does not evict us
//!   for missing `max.poll.interval.ms`); they resume as soon as the batch
//!   is taken.
//! - Each message is one event: the payload is the line (a payload may hold
//!   newlines), key, headers and timestamp travel in [`EventMeta`]. A
//!   payload that is not UTF-8, or larger than `max_message_bytes`, is a
//!   poison message: redacted (as text, in pieces) and dead-lettered with
//!   its reason, and its offset is committed like any other, so the
//!   partition keeps flowing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::lines::Chunk;
use crate::config::{KafkaSourceConfig, KafkaStart};
use crate::kafka::{ClientState, KafkaConfigError};
use crate::pipeline::{Ack, Batch, EventMeta, Origin};

/// A batch is handed on after this long even if not full, so a quiet topic
/// still flows promptly.
const BATCH_WAIT: Duration = Duration::from_millis(50);

/// Offsets of one assigned partition. Offsets are "next to read" (the
/// committed offset convention); -1 is "none yet".
#[derive(Debug)]
struct Part {
    key: u64,
    /// After the last event handed to the pipeline.
    sent: i64,
    /// After the last event acknowledged.
    acked: i64,
    committed: i64,
}

/// Partition bookkeeping, shared between the poll loop and the rebalance
/// callback (which librdkafka runs inside `poll`, on the same thread; the
/// mutex is never held across a `poll`).
struct Offsets {
    parts: HashMap<(Arc<str>, i32), Part>,
    by_key: HashMap<u64, (Arc<str>, i32)>,
    /// topic → partition → key: the per-message lookup, by `&str` without
    /// building an owned key.
    keys: HashMap<Arc<str>, HashMap<i32, u64>>,
    next_key: u64,
    acks: Receiver<Ack>,
    source: String,
    revoke_wait: Duration,
}

impl Offsets {
    fn take_acks(&mut self) {
        while let Ok(a) = self.acks.try_recv() {
            self.ack(a);
        }
    }

    fn ack(&mut self, a: Ack) {
        if let Some(tp) = self.by_key.get(&a.file)
            && let Some(p) = self.parts.get_mut(tp)
        {
            p.acked = p.acked.max(a.offset as i64);
        }
    }

    fn all_acked(&self) -> bool {
        self.parts.values().all(|p| p.acked >= p.sent)
    }

    /// Commits acknowledged offsets not committed yet (of `only`, if
    /// given). Synchronous: a commit that failed is retried next time.
    fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        only: Option<&[(Arc<str>, i32)]>,
    ) {
        let mut tpl = TopicPartitionList::new();
        let mut done = Vec::new();
        for ((t, p), part) in &self.parts {
            if only.is_some_and(|o| !o.iter().any(|(ot, op)| ot == t && op == p)) {
                continue;
            }
            if part.acked > part.committed {
                if tpl
                    .add_partition_offset(t, *p, Offset::Offset(part.acked))
                    .is_err()
                {
                    continue;
                }
                done.push(((t.clone(), *p), part.acked));
            }
        }
        if done.is_empty() {
            return;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                for (tp, off) in done {
                    if let Some(part) = self.parts.get_mut(&tp) {
                        part.committed = off;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "offset commit failed; will retry")
            }
        }
    }
}

/// The consumer's context: rebalance handling plus the shared client
/// callbacks.
pub struct SourceContext {
    base: crate::kafka::Context,
    offsets: Arc<Mutex<Offsets>>,
}

crate::kafka::delegate_client_context!(SourceContext);

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let Ok(mut o) = self.offsets.lock() else {
            return;
        };
        let revoked: Vec<(Arc<str>, i32)> = tpl
            .elements()
            .iter()
            .filter_map(|e| {
                o.parts
                    .keys()
                    .find(|(t, p)| &**t == e.topic() && *p == e.partition())
                    .cloned()
            })
            .collect();
        // Let what is in the pipeline for these partitions finish (bounded).
        let deadline = Instant::now() + o.revoke_wait;
        loop {
            o.take_acks();
            let pending = revoked
                .iter()
                .any(|tp| o.parts.get(tp).is_some_and(|p| p.acked < p.sent));
            if !pending || Instant::now() >= deadline {
                break;
            }
            match o.acks.recv_timeout(Duration::from_millis(20)) {
                Ok(a) => o.ack(a),
                Err(_) => continue,
            }
        }
        if !consumer.assignment_lost() {
            o.commit(consumer, Some(&revoked));
        }
        for tp in &revoked {
            if let Some(p) = o.parts.remove(tp) {
                o.by_key.remove(&p.key);
                if let Some(m) = o.keys.get_mut(&tp.0) {
                    m.remove(&tp.1);
                    if m.is_empty() {
                        o.keys.remove(&tp.0);
                    }
                }
                if p.acked < p.sent {
                    tracing::info!(source = %o.source, topic = %tp.0, partition = tp.1, "partition revoked with events in flight; the new owner reads them again");
                }
            }
        }
        tracing::info!(source = %o.source, partitions = revoked.len(), "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let Ok(mut o) = self.offsets.lock() else {
                    return;
                };
                for e in tpl.elements() {
                    let tp: (Arc<str>, i32) = (Arc::from(e.topic()), e.partition());
                    if o.parts.contains_key(&tp) {
                        continue;
                    }
                    let key = o.next_key;
                    o.next_key += 1;
                    o.by_key.insert(key, tp.clone());
                    o.keys.entry(tp.0.clone()).or_default().insert(tp.1, key);
                    o.parts.insert(
                        tp,
                        Part {
                            key,
                            sent: -1,
                            acked: -1,
                            committed: -1,
                        },
                    );
                }
                tracing::info!(source = %o.source, partitions = tpl.count(), "partitions assigned");
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance error");
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

/// A running Kafka source.
pub struct KafkaSource {
    index: usize,
    cfg: KafkaSourceConfig,
    consumer: BaseConsumer<SourceContext>,
    offsets: Arc<Mutex<Offsets>>,
    out: SyncSender<Batch>,
    stop: Arc<AtomicBool>,
    pub state: Arc<ClientState>,
    paused: bool,
}

impl KafkaSource {
    pub fn new(
        index: usize,
        cfg: KafkaSourceConfig,
        out: SyncSender<Batch>,
        acks: Receiver<Ack>,
        stop: Arc<AtomicBool>,
        revoke_wait: Duration,
    ) -> Result<KafkaSource, KafkaConfigError> {
        let reset = match cfg.start_at {
            KafkaStart::Earliest => "earliest",
            KafkaStart::Latest => "latest",
        };
        let why = "offsets are committed only after delivery";
        let conf = crate::kafka::client_config(
            &cfg.brokers,
            &[
                ("group.id", &cfg.group_id),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("auto.offset.reset", reset),
                ("enable.partition.eof", "false"),
                ("client.id", &format!("redactd-{}", cfg.id)),
            ],
            &cfg.librdkafka,
            &[
                ("enable.auto.commit", why),
                ("enable.auto.offset.store", why),
                ("group.id", "set group_id"),
                ("bootstrap.servers", "set brokers"),
            ],
        )?;
        let state = Arc::new(ClientState::default());
        let offsets = Arc::new(Mutex::new(Offsets {
            parts: HashMap::new(),
            by_key: HashMap::new(),
            keys: HashMap::new(),
            next_key: 1,
            acks,
            source: cfg.id.clone(),
            revoke_wait,
        }));
        let ctx = SourceContext {
            base: crate::kafka::Context {
                name: format!("source:{}", cfg.id),
                state: state.clone(),
            },
            offsets: offsets.clone(),
        };
        let consumer: BaseConsumer<SourceContext> = conf
            .create_with_context(ctx)
            .map_err(|e| KafkaConfigError::Client(format!("source {:?}: {e}", cfg.id)))?;
        let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| {
            KafkaConfigError::Client(format!("source {:?}: subscribe: {e}", cfg.id))
        })?;
        Ok(KafkaSource {
            index,
            cfg,
            consumer,
            offsets,
            out,
            stop,
            state,
            paused: false,
        })
    }

    fn new_batch(&self) -> Batch {
        Batch {
            source: self.index,
            ..Batch::default()
        }
    }

    /// Runs until `stop` is set, then waits (up to `drain`) for the last
    /// acknowledgements, commits, and leaves the group.
    pub fn run(mut self, drain: Duration) {
        let commit_every = Duration::from_millis(self.cfg.commit_interval_ms.max(10));
        let mut last_commit = Instant::now();
        let mut batch = self.new_batch();
        let mut batch_started = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            if last_commit.elapsed() >= commit_every {
                self.commit();
                last_commit = Instant::now();
            }
            let wait = if batch.is_empty() {
                Duration::from_millis(100)
            } else {
                BATCH_WAIT.saturating_sub(batch_started.elapsed())
            };
            match self.consumer.poll(wait) {
                Some(Ok(msg)) => {
                    if batch.is_empty() {
                        batch_started = Instant::now();
                    }
                    self.push(&msg, &mut batch);
                }
                Some(Err(e)) => {
                    tracing::warn!(source = %self.cfg.id, error = %e, "consume error");
                }
                None => {}
            }
            if !batch.is_empty() && (batch.is_full() || batch_started.elapsed() >= BATCH_WAIT) {
                let b = std::mem::replace(&mut batch, self.new_batch());
                if !self.send(b) {
                    break;
                }
            }
        }
        if !batch.is_empty() {
            self.send(batch);
        }
        // Draining: nothing new is read; wait for what was sent.
        let deadline = Instant::now() + drain;
        loop {
            let done = match self.offsets.lock() {
                Ok(mut o) => {
                    o.take_acks();
                    o.all_acked()
                }
                Err(_) => true,
            };
            if done || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.commit();
        // Dropping the consumer closes it: it leaves the group (a last
        // revoke, which has nothing left to wait for).
    }

    fn commit(&mut self) {
        if let Ok(mut o) = self.offsets.lock() {
            o.take_acks();
            o.commit(&self.consumer, None);
        }
    }

    /// Hands a batch to the pipeline. While the pipeline is full, pauses
    /// the partitions and keeps polling (messages fetched before the pause
    /// join the held batch). False once the pipeline is gone.
    fn send(&mut self, mut b: Batch) -> bool {
        loop {
            let acks = b.acks.clone();
            match self.out.try_send(b) {
                Ok(()) => {
                    self.mark_sent(&acks);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    b = back;
                    self.pause(true);
                    match self.consumer.poll(Duration::from_millis(20)) {
                        Some(Ok(msg)) => self.push(&msg, &mut b),
                        Some(Err(e)) => {
                            tracing::warn!(source = %self.cfg.id, error = %e, "consume error")
                        }
                        None => {}
                    }
                }
            }
        }
        self.pause(false);
        true
    }

    /// Appends a message to the batch with the acknowledgement that will
    /// let its partition's offset move past it.
    fn push<M: Message>(&self, msg: &M, batch: &mut Batch) {
        push_message(&self.cfg, msg, batch);
        let Ok(o) = self.offsets.lock() else { return };
        let key = o
            .keys
            .get(msg.topic())
            .and_then(|m| m.get(&msg.partition()))
            .copied();
        // A message of a partition not (or no longer) assigned is delivered
        // but never committed by us.
        let Some(key) = key else { return };
        let offset = (msg.offset() + 1) as u64;
        match batch.acks.iter_mut().find(|a| a.file == key) {
            Some(a) => a.offset = a.offset.max(offset),
            None => batch.acks.push(Ack {
                source: self.index,
                file: key,
                offset,
            }),
        }
    }

    /// The batch with these acknowledgements is in the pipeline now.
    fn mark_sent(&self, acks: &[Ack]) {
        let Ok(mut o) = self.offsets.lock() else {
            return;
        };
        for a in acks {
            if let Some(tp) = o.by_key.get(&a.file).cloned()
                && let Some(p) = o.parts.get_mut(&tp)
            {
                p.sent = p.sent.max(a.offset as i64);
            }
        }
    }

    fn pause(&mut self, on: bool) {
        if self.paused == on {
            return;
        }
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let r = if on {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        match r {
            Ok(()) => self.paused = on,
            Err(e) => tracing::warn!(source = %self.cfg.id, error = %e, "pause/resume failed"),
        }
    }
}

/// Appends one message to the batch as one event, with its metadata.
pub(crate) fn push_message<M: Message>(cfg: &KafkaSourceConfig, msg: &M, batch: &mut Batch) {
    let payload = msg.payload().unwrap_or(&[]);
    let poison = if payload.len() > cfg.max_message_bytes {
        Some("oversize")
    } else if std::str::from_utf8(payload).is_err() {
        Some("invalid_utf8")
    } else {
        None
    };
    if payload.len() > cfg.max_message_bytes {
        // Redacted as text in pieces; the whole event is dead-lettered.
        let n = payload.len().div_ceil(cfg.max_message_bytes);
        for (i, piece) in payload.chunks(cfg.max_message_bytes).enumerate() {
            batch.push(&Chunk::Piece {
                data: piece,
                first: i == 0,
                last: i + 1 == n,
                newline: true,
            });
        }
    } else {
        batch.push(&Chunk::Line {
            data: payload,
            newline: true,
        });
    }
    let headers = msg
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    let topic: Arc<str> = Arc::from(msg.topic());
    batch.meta.push(EventMeta {
        key: msg.key().map(<[u8]>::to_vec),
        redact_key: cfg.redact_key,
        headers,
        timestamp_ms: msg.timestamp().to_millis(),
        origin: Some(Origin {
            topic,
            partition: msg.partition(),
            offset: msg.offset(),
        }),
        poison,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

    fn cfg(max: usize) -> KafkaSourceConfig {
        KafkaSourceConfig {
            id: "k".into(),
            brokers: "b".into(),
            topics: vec!["t".into()],
            group_id: "g".into(),
            start_at: KafkaStart::Earliest,
            max_message_bytes: max,
            redact_key: false,
            commit_interval_ms: 1000,
            librdkafka: Default::default(),
        }
    }

    fn msg(payload: &[u8], offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            Some(payload.to_vec()),
            Some(b"k1".to_vec()),
            "t".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            3,
            offset,
            Some(OwnedHeaders::new().insert(Header {
                key: "authorization",
                value: Some("Bearer abc"),
            })),
        )
    }

    #[test]
    fn a_message_is_one_event_with_key_headers_and_origin() {
        let mut b = Batch::default();
        push_message(&cfg(1024), &msg(b"line one\nline two", 41), &mut b);
        assert_eq!(b.items.len(), 1);
        assert_eq!(b.meta.len(), 1);
        let m = &b.meta[0];
        assert_eq!(m.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(m.headers[0].0, "authorization");
        assert_eq!(m.origin.as_ref().map(|o| o.offset), Some(41));
        assert_eq!(m.timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(m.poison, None);
    }

    #[test]
    fn invalid_utf8_and_oversize_payloads_are_marked_poison() {
        let mut b = Batch::default();
        push_message(&cfg(1024), &msg(b"bad \xff byte", 1), &mut b);
        push_message(&cfg(1024), &msg(&vec![b'a'; 3000], 2), &mut b);
        assert_eq!(b.meta[0].poison, Some("invalid_utf8"));
        assert_eq!(b.meta[1].poison, Some("oversize"));
        // The oversize event is redacted in pieces, one meta for all.
        assert_eq!(b.items.len(), 1 + 3);
        assert_eq!(b.meta.len(), 2);
    }
}
