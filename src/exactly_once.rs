//! Exactly-once stream processing, Kafka topic to Kafka topic.
//!
//! With `delivery = "exactly_once"` on the (only) Kafka sink and one Kafka
//! source, the agent runs this loop instead of the general pipeline: the
//! output messages of a batch and the consumed offsets of that batch are
//! committed in one Kafka transaction (`send_offsets_to_transaction` with
//! the consumer's group metadata, KIP-447), so a downstream consumer with
//! `isolation.level=read_committed` sees each input event's output exactly
//! once, whatever crashes in between: a transaction that did not commit is
//! aborted (by us on an error, or by the broker when the restarted instance
//! with the same `transactional.id` fences it, or when it times out), and
//! its input is read again from the last committed offsets.
//!
//! Per batch: poll up to one batch (or 50 ms) → redact (on this thread) →
//! dead-letter poison events (a separate, non-transactional write that must
//! succeed first: a retried batch may dead-letter them twice) →
//! `begin_transaction` → produce → wait for every delivery report →
//! `send_offsets_to_transaction` → `commit_transaction`. An error aborts
//! the transaction and retries the same batch with backoff; a message the
//! broker rejects for good is dead-lettered and the batch retried without
//! it; a fenced producer (another instance took over the transactional id)
//! stops the agent. A rebalance drops the batch being built (the new
//! assignment starts from the committed offsets).
//!
//! Why a separate loop: the general pipeline acknowledges to sources after
//! delivery and lets sinks and sources run apart (buffers, retries per
//! sink); a transaction needs the produce and the offset commit of the
//! same events in one place.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

use crate::agent::SharedRules;
use crate::config::{KafkaSinkConfig, KafkaSourceConfig, KafkaStart};
use crate::dlq::{DeadLetter, DeadRecord};
use crate::kafka::{ClientState, KafkaConfigError};
use crate::metrics::Metrics;
use crate::pipeline::{Batch, Redacted, redact_batch};
use crate::sinks::Events;
use crate::sinks::kafka::{SinkContext, record};

const BATCH_WAIT: Duration = Duration::from_millis(50);
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

struct EosContext {
    base: crate::kafka::Context,
    /// Set by a revocation; the loop drops the batch it was building.
    revoked: AtomicBool,
}

crate::kafka::delegate_client_context!(EosContext);

impl ConsumerContext for EosContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if tpl.count() > 0 {
                self.revoked.store(true, Ordering::SeqCst);
            }
            tracing::info!(partitions = tpl.count(), "partitions revoked");
        }
    }
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
    }
}

/// Why the loop stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum EosError {
    #[error("{0}")]
    Config(#[from] KafkaConfigError),
    #[error("{0}")]
    Kafka(String),
}

/// What the loop needs from the agent.
pub struct EosCtx {
    pub rules: Arc<SharedRules>,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
    pub grace: Duration,
    pub dlq: Arc<Mutex<DeadLetter>>,
}

/// The default transactional id: stable for a host, unique across hosts.
fn default_transactional_id(sink: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("redactd-{sink}-{host}")
}

/// Runs until `stop`; commits the batch in progress if it can within the
/// grace period, aborts it otherwise.
pub fn run(src: &KafkaSourceConfig, sink: &KafkaSinkConfig, c: EosCtx) -> Result<(), EosError> {
    let source_state = Arc::new(ClientState::default());
    let sink_state = Arc::new(ClientState::default());
    let m = &c.metrics;
    let reset = match src.start_at {
        KafkaStart::Earliest => "earliest",
        KafkaStart::Latest => "latest",
    };
    let why = "offsets are committed in the output transaction";
    let conf = crate::kafka::client_config(
        &src.brokers,
        &[
            ("group.id", &src.group_id),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", reset),
            ("isolation.level", "read_committed"),
            ("client.id", &format!("redactd-{}", src.id)),
        ],
        &src.librdkafka,
        &[
            ("enable.auto.commit", why),
            ("enable.auto.offset.store", why),
            ("group.id", "set group_id"),
            ("bootstrap.servers", "set brokers"),
        ],
    )?;
    let ctx = EosContext {
        base: crate::kafka::Context {
            name: format!("source:{}", src.id),
            state: source_state.clone(),
        },
        revoked: AtomicBool::new(false),
    };
    let consumer: BaseConsumer<EosContext> = conf
        .create_with_context(ctx)
        .map_err(|e| EosError::Kafka(format!("source {:?}: {e}", src.id)))?;
    let topics: Vec<&str> = src.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| EosError::Kafka(format!("source {:?}: subscribe: {e}", src.id)))?;

    let txn_id = sink
        .transactional_id
        .clone()
        .unwrap_or_else(|| default_transactional_id(&sink.id));
    let timeout = sink.message_timeout_ms.to_string();
    let make_producer = || -> Result<(ThreadedProducer<SinkContext>, _), EosError> {
        let (p, reports) = crate::sinks::kafka::producer(
            &format!("sink:{}", sink.id),
            &sink.brokers,
            &[
                ("transactional.id", txn_id.as_str()),
                ("compression.codec", &sink.compression),
                ("message.timeout.ms", &timeout),
                ("transaction.timeout.ms", "60000"),
                ("client.id", &format!("redactd-{}", sink.id)),
            ],
            &sink.librdkafka,
            sink_state.clone(),
        )?;
        // Fences any earlier instance with this id and aborts its open
        // transaction.
        p.init_transactions(TXN_TIMEOUT)
            .map_err(|e| EosError::Kafka(format!("sink {:?}: init_transactions: {e}", sink.id)))?;
        Ok((p, reports))
    };
    let (mut producer, mut reports) = retry_until(&c, "init_transactions", &make_producer)?;
    tracing::info!(sink = %sink.id, transactional_id = %txn_id, "exactly-once mode: transactions ready");

    let source_health = format!("source:{}", src.id);
    let sink_health = format!("sink:{}", sink.id);
    let events_in = m.events_in.with_label_values(&[&src.id]);
    let bytes_in = m.bytes_in.with_label_values(&[&src.id]);
    let events_out = m.events_out.with_label_values(&[&sink.id]);
    let bytes_out = m.bytes_out.with_label_values(&[&sink.id]);
    let errors = m.sink_errors.with_label_values(&[&sink.id]);

    let mut rs = c.rules.current();
    let mut scratch = crate::engine::Scratch::new(&rs);
    let mut stop_seen: Option<Instant> = None;
    'batches: loop {
        if c.stop.load(Ordering::SeqCst) {
            break;
        }
        m.set_health(&source_health, source_state.health());
        if sink_state.health() != "ok" {
            m.set_health(&sink_health, sink_state.health());
        }
        // 1. Poll one batch.
        let mut batch = Batch::default();
        let started = Instant::now();
        while !batch.is_full() && !c.stop.load(Ordering::SeqCst) {
            let wait = if batch.is_empty() {
                Duration::from_millis(100)
            } else {
                BATCH_WAIT.saturating_sub(started.elapsed())
            };
            if !batch.is_empty() && wait.is_zero() {
                break;
            }
            match consumer.poll(wait) {
                Some(Ok(msg)) => crate::sources::kafka::push_message(src, &msg, &mut batch),
                Some(Err(e)) => tracing::warn!(source = %src.id, error = %e, "consume error"),
                None if batch.is_empty() => break,
                None => {}
            }
        }
        if consumer.context().revoked.swap(false, Ordering::SeqCst) {
            // Messages polled before the revocation belong to the old
            // assignment: drop them, the new one starts from committed
            // offsets. (A poll that revoked and reassigned returns only
            // messages of the new assignment after that point, but the
            // batch cannot tell them apart: drop all, read again.)
            continue;
        }
        if batch.is_empty() {
            continue;
        }
        events_in.inc_by(batch.meta.len() as u64);
        bytes_in.inc_by(batch.data.len() as u64);
        // Offsets to commit with this batch: past its last message, per
        // partition.
        let mut offsets: Vec<(Arc<str>, i32, i64)> = Vec::new();
        for o in batch.meta.iter().filter_map(|x| x.origin.as_ref()) {
            match offsets
                .iter_mut()
                .find(|(t, p, _)| *t == o.topic && *p == o.partition)
            {
                Some(e) => e.2 = e.2.max(o.offset + 1),
                None => offsets.push((o.topic.clone(), o.partition, o.offset + 1)),
            }
        }

        // 2. Redact.
        let cur = c.rules.current();
        if !Arc::ptr_eq(&cur, &rs) {
            rs = cur;
            scratch = crate::engine::Scratch::new(&rs);
        }
        let mut st = crate::engine::Stats::new(&rs);
        let mut red: Redacted = redact_batch(&rs, batch, &mut scratch, &mut st);
        m.observe(&rs, &st);
        red.rules = Some(rs.clone());

        // 3. Poison events to the dead-letter path first.
        if red.meta.iter().any(|x| x.poison.is_some()) {
            let poison = red.take_poison();
            let recs: Vec<DeadRecord<'_>> = poison
                .iter()
                .map(|p| DeadRecord::poison(p, &src.id, rule_ids(&red, &p.rules)))
                .collect();
            if !dead_letter(&c, &recs) {
                break;
            }
        }

        // 4. One transaction: produce, offsets, commit. Retried until it
        // commits, the agent stops, or the partitions move.
        let mut backoff = Duration::from_millis(100);
        let mut skip: Vec<bool> = vec![false; red.ends.len()];
        loop {
            let r = transaction(
                &producer, &reports, &consumer, sink, &red, &mut skip, &offsets,
            );
            match r {
                Ok(()) => {
                    let delivered = skip.iter().filter(|s| !**s).count();
                    events_out.inc_by(delivered as u64);
                    bytes_out.inc_by(red.data.len() as u64);
                    m.set_health(&sink_health, "ok");
                    break;
                }
                Err(TxnError::Rejected(rejected)) => {
                    // Messages the broker will never take: dead-letter them
                    // and commit the rest.
                    let events = Events {
                        data: &red.data,
                        ends: &red.ends,
                        meta: &red.meta,
                    };
                    let recs = events.dead_records(&rejected, &sink.id, &src.id, |i| {
                        rule_ids(&red, &hits_of(&red, i))
                    });
                    if !dead_letter(&c, &recs) {
                        break 'batches;
                    }
                    for (i, _) in &rejected {
                        skip[*i] = true;
                    }
                }
                Err(TxnError::Fatal(e)) => {
                    errors.inc();
                    m.set_health(&sink_health, "failing");
                    if e.contains("fenced") {
                        return Err(EosError::Kafka(format!(
                            "sink {:?}: producer fenced: another instance uses transactional_id {txn_id:?}",
                            sink.id
                        )));
                    }
                    tracing::error!(sink = %sink.id, error = %e, "transactional producer failed; rebuilding it");
                    (producer, reports) = retry_until(&c, "init_transactions", &make_producer)?;
                }
                Err(TxnError::Retry(e)) => {
                    errors.inc();
                    m.set_health(&sink_health, "failing");
                    tracing::warn!(sink = %sink.id, error = %e, retry_in_ms = backoff.as_millis() as u64, "transaction aborted; retrying the batch");
                }
            }
            if consumer.context().revoked.load(Ordering::SeqCst) {
                // Partitions moved while we retried: this batch is the new
                // owner's now.
                tracing::info!("rebalance during a retried transaction; dropping the batch");
                continue 'batches;
            }
            if c.stop.load(Ordering::SeqCst)
                && stop_seen.get_or_insert_with(Instant::now).elapsed() >= c.grace
            {
                break 'batches;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(10));
            // Serve rebalance callbacks and heartbeats while retrying; a
            // message polled here would be out of order: seek back to it.
            if let Some(Ok(msg)) = consumer.poll(Duration::ZERO) {
                let (t, p, o) = (msg.topic().to_string(), msg.partition(), msg.offset());
                drop(msg);
                let _ = consumer.seek(&t, p, Offset::Offset(o), Duration::from_secs(5));
            }
        }
    }
    // Leave: nothing is in an open transaction here (each batch commits or
    // aborts inside the loop).
    tracing::info!(sink = %sink.id, "exactly-once loop stopped");
    Ok(())
}

enum TxnError {
    /// Some messages were rejected for good: `(event, reason)`.
    Rejected(Vec<(usize, String)>),
    /// Aborted; try the batch again.
    Retry(String),
    /// The producer must be rebuilt (or, if fenced, the agent must stop).
    Fatal(String),
}

/// One transaction for the batch's events not in `skip`.
fn transaction<C: ConsumerContext>(
    producer: &ThreadedProducer<SinkContext>,
    reports: &crate::sinks::kafka::Reports,
    consumer: &BaseConsumer<C>,
    sink: &KafkaSinkConfig,
    red: &Redacted,
    skip: &mut [bool],
    offsets: &[(Arc<str>, i32, i64)],
) -> Result<(), TxnError> {
    let classify = |what: &str, e: KafkaError| -> TxnError {
        let fatal = match &e {
            KafkaError::Transaction(te) => te.is_fatal(),
            _ => false,
        };
        let msg = format!("{what}: {e}");
        if fatal || msg.to_ascii_lowercase().contains("fenced") {
            TxnError::Fatal(msg)
        } else {
            TxnError::Retry(msg)
        }
    };
    let abort = |err: TxnError| -> TxnError {
        if let Err(e) = producer.abort_transaction(TXN_TIMEOUT) {
            return classify("abort_transaction", e);
        }
        err
    };
    if let Ok(mut r) = reports.lock() {
        r.clear();
    }
    producer
        .begin_transaction()
        .map_err(|e| classify("begin_transaction", e))?;
    let events = Events {
        data: &red.data,
        ends: &red.ends,
        meta: &red.meta,
    };
    let mut sent = 0;
    for (i, skipped) in skip.iter().enumerate() {
        if *skipped {
            continue;
        }
        sent += 1;
        let mut rec = record(&sink.topic, i, events.event(i), red.meta.get(i), &[]);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => {
                    let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Unknown);
                    if crate::kafka::is_permanent(code) {
                        return Err(abort(TxnError::Rejected(vec![(
                            i,
                            crate::sinks::kafka::reason(code),
                        )])));
                    }
                    return Err(abort(classify("produce", e)));
                }
            }
        }
    }
    if !crate::sinks::kafka::wait_reports(producer, reports, sent, TXN_TIMEOUT) {
        return Err(abort(TxnError::Retry("delivery reports timed out".into())));
    }
    let (rejected, failed) = match reports.lock() {
        Ok(r) => {
            let rejected: Vec<(usize, String)> = r
                .iter()
                .filter_map(|(i, res)| match res {
                    Err(code) if crate::kafka::is_permanent(*code) => {
                        Some((*i, crate::sinks::kafka::reason(*code)))
                    }
                    _ => None,
                })
                .collect();
            let failed = r.iter().find_map(|(_, res)| res.err());
            (rejected, failed)
        }
        Err(_) => (Vec::new(), Some(RDKafkaErrorCode::Unknown)),
    };
    if !rejected.is_empty() {
        return Err(abort(TxnError::Rejected(rejected)));
    }
    if let Some(code) = failed {
        return Err(abort(TxnError::Retry(format!("delivery failed: {code:?}"))));
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in offsets {
        if let Err(e) = tpl.add_partition_offset(t, *p, Offset::Offset(*o)) {
            return Err(abort(TxnError::Retry(format!("offsets: {e}"))));
        }
    }
    let Some(group) = consumer.group_metadata() else {
        return Err(abort(TxnError::Retry(
            "no consumer group metadata yet".into(),
        )));
    };
    if let Err(e) = producer.send_offsets_to_transaction(&tpl, &group, TXN_TIMEOUT) {
        return Err(abort(classify("send_offsets_to_transaction", e)));
    }
    if let Err(e) = producer.commit_transaction(TXN_TIMEOUT) {
        return Err(abort(classify("commit_transaction", e)));
    }
    Ok(())
}

/// Calls `f` until it works, with backoff; gives up at shutdown.
fn retry_until<T>(
    c: &EosCtx,
    what: &str,
    f: &dyn Fn() -> Result<T, EosError>,
) -> Result<T, EosError> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(EosError::Config(e)) => return Err(EosError::Config(e)),
            Err(e) => {
                if c.stop.load(Ordering::SeqCst) {
                    return Err(e);
                }
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "{what} failed; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn hits_of(red: &Redacted, line: usize) -> Vec<u32> {
    red.hits
        .iter()
        .filter(|(l, _)| *l as usize == line)
        .map(|(_, r)| *r)
        .collect()
}

fn rule_ids(red: &Redacted, rules: &[u32]) -> Vec<String> {
    match &red.rules {
        Some(rs) => rules
            .iter()
            .filter_map(|i| rs.rules().get(*i as usize).map(|x| x.id.clone()))
            .collect(),
        None => Vec::new(),
    }
}

/// Writes dead-letter records, retrying until it works; false at shutdown.
fn dead_letter(c: &EosCtx, recs: &[DeadRecord<'_>]) -> bool {
    let mut give_up = || c.stop.load(Ordering::SeqCst);
    crate::agent::write_dead_letters(&c.dlq, recs, &c.metrics, &mut give_up)
}
