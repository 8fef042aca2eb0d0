//! `redactd run`: the long-running agent, wired as the pipeline it is.
//!
//! ```text
//! sources (threads) ─▶ engine stage (pipeline: dealer, workers, in-order collector)
//!     ▲                    └─▶ one bounded queue per sink (memory buffer, blocks when full)
//!     │                           └─▶ sink thread: write, retry with backoff until delivered
//!     └──────────── acknowledgements (once every sink has a batch) ◀───┘
//! ```
//!
//! Delivery is at-least-once: a source's checkpoint moves only to offsets
//! every sink has delivered. Backpressure is end to end: a slow sink fills
//! its queue, the collector blocks, the workers and the dealer block, and
//! the sources stop reading.
//!
//! Shutdown (SIGTERM/SIGINT, or stdin closing): sources stop reading and
//! wait, up to the grace period, for what they sent to be acknowledged,
//! then write their checkpoints; the stages drain behind them. A second
//! signal exits at once: checkpoint writes are atomic, so the worst case is
//! replaying lines delivered since the last checkpoint.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::buffer::{DiskBuffer, FsyncPolicy, Item as BufItem, MemoryBuffer, Pushed};
use crate::config::{AgentConfig, SourceConfig};
use crate::config::{BufferKind, DiskFsync, WhenFull};
use crate::dlq::{DeadLetter, DeadRecord};
use crate::engine::Ruleset;
use crate::metrics::Metrics;
use crate::pipeline::{
    Ack, Batch, CHANNEL_DEPTH, Dealer, Redacted, collect_in_order, redact_batch,
};
use crate::sinks::{Events, Sink, WriteError};
use crate::sources::file::FileSource;
use crate::sources::kafka::KafkaSource;
use std::path::Path;

/// A redacted batch on its way to every sink; acknowledged when the last
/// sink has delivered it.
struct Delivery {
    data: Vec<u8>,
    /// Where each event ends in `data`, and per-event metadata (Kafka).
    ends: Vec<u32>,
    meta: Vec<crate::pipeline::EventMeta>,
    /// Redactions per line and the ruleset they refer to (for dead-letter
    /// records).
    hits: Vec<(u32, u32)>,
    rules: Option<Arc<Ruleset>>,
    /// Index of the source it came from (for dead-letter records).
    source: usize,
    lines: usize,
    acks: Vec<Ack>,
    remaining: AtomicUsize,
    read_at: Instant,
}

/// Signal handling and the HTTP endpoints, on a small tokio runtime.
/// Installed first thing, so a SIGTERM that arrives while the rules are
/// still compiling is a graceful stop, not a kill.
pub struct Control {
    runtime: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    /// Reload requests (SIGHUP).
    reload: (Sender<()>, Receiver<()>),
}

impl Control {
    pub fn install() -> io::Result<Control> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("redactd-ctl")
            .build()?;
        let stop = Arc::new(AtomicBool::new(false));
        // Register synchronously: from here on the default action is off.
        let (term, int, hup) = runtime.block_on(async {
            Ok::<_, io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::hangup())?,
            ))
        })?;
        runtime.spawn(watch_signals(stop.clone(), term, int));
        let (tx, rx) = channel::<()>();
        let hup_tx = tx.clone();
        runtime.spawn(async move {
            let mut hup = hup;
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading rules");
                let _ = hup_tx.send(());
            }
        });
        Ok(Control {
            runtime,
            stop,
            reload: (tx, rx),
        })
    }
}

/// Builds a fresh ruleset from the configured rule files (for reloads).
/// The error is a message with `file:line`, never log content.
pub type RuleLoader = Box<dyn Fn() -> Result<Ruleset, String> + Send>;

/// The ruleset in use, swapped atomically by a reload. Workers pick up the
/// new one at their next batch.
pub struct SharedRules(RwLock<Arc<Ruleset>>);

impl SharedRules {
    pub fn current(&self) -> Arc<Ruleset> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
    fn swap(&self, rs: Arc<Ruleset>) {
        match self.0.write() {
            Ok(mut g) => *g = rs,
            Err(p) => *p.into_inner() = rs,
        }
    }
}

/// Runs the agent until shutdown.
pub fn run(cfg: AgentConfig, rs: Ruleset, loader: RuleLoader, ctl: Control) -> io::Result<()> {
    let metrics = Metrics::new().map_err(io::Error::other)?;
    metrics.bind_rules(&rs);
    let rules = Arc::new(SharedRules(RwLock::new(Arc::new(rs))));
    let Control {
        runtime,
        stop,
        reload,
    } = ctl;
    spawn_reloader(&cfg, loader, rules.clone(), metrics.clone(), reload)?;
    let grace = cfg.shutdown.grace();
    if !cfg.metrics.address.is_empty() {
        let addr = cfg
            .metrics
            .address
            .parse()
            .map_err(|e| io::Error::other(format!("metrics.address: {e}")))?;
        // Bind now, so a busy port is a startup error, not a silent gap.
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
        drop(listener);
        let m = metrics.clone();
        runtime.spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, m).await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
    }

    if let Some((src, sink)) = cfg.exactly_once() {
        let dlq = open_dead_letter(&cfg, &metrics, &stop)?;
        tracing::info!(source = %src.id, sink = %sink.id, "agent started (exactly-once stream processor)");
        let r = crate::exactly_once::run(
            src,
            sink,
            crate::exactly_once::EosCtx {
                rules,
                metrics,
                stop,
                grace,
                dlq,
            },
        );
        runtime.shutdown_timeout(Duration::from_millis(100));
        return r.map_err(io::Error::other);
    }

    let threads = match cfg.engine.threads {
        0 => thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let queue = cfg.engine.queue_batches.max(1);
    let (src_tx, src_rx) = sync_channel::<Batch>(queue);

    // Sources, each with its acknowledgement channel.
    let mut ack_txs: Vec<Option<Sender<Ack>>> = Vec::new();
    let mut source_threads = Vec::new();
    let mut stdin_thread = None;
    for (i, s) in cfg.sources.iter().enumerate() {
        let tx = src_tx.clone();
        match s {
            SourceConfig::Stdin { id } => {
                ack_txs.push(None);
                let (stop, id, m) = (stop.clone(), id.clone(), metrics.clone());
                m.set_health(&format!("source:{id}"), "ok");
                stdin_thread = Some(thread::Builder::new().name("src-stdin".into()).spawn(
                    move || {
                        let r = read_stdin(i, tx);
                        if let Err(e) = &r {
                            tracing::error!(source = %id, error = %e, "stdin read failed");
                        }
                        // Closing stdin ends the agent: `cmd | redactd run`.
                        stop.store(true, Ordering::SeqCst);
                    },
                )?);
            }
            SourceConfig::File(fc) => {
                let (atx, arx) = channel::<Ack>();
                ack_txs.push(Some(atx));
                let src = FileSource::new(
                    i,
                    (**fc).clone(),
                    &cfg.data_dir,
                    tx,
                    arx,
                    stop.clone(),
                    Duration::from_millis(cfg.shutdown.checkpoint_interval_ms),
                )?;
                metrics.set_health(&format!("source:{}", fc.id), "ok");
                let st = src.stats.clone();
                let (m, id) = (metrics.clone(), fc.id.clone());
                let gauge = m.file_lag_bytes.with_label_values(&[&id]);
                let trunc = m.file_truncations.with_label_values(&[&id]);
                let stop2 = stop.clone();
                // Export the tailer's live numbers: counters as the
                // difference since the last look.
                thread::Builder::new()
                    .name(format!("src-{id}-stats"))
                    .spawn(move || {
                        let decode =
                            |kind: &str| m.secondary_failures.with_label_values(&["decode", kind]);
                        let counters = [
                            (&st.truncations, trunc),
                            (&st.malformed_envelopes, decode("malformed_envelope")),
                            (&st.partial_overflows, decode("partial_overflow")),
                            (&st.invalid_utf8, decode("invalid_utf8")),
                            (
                                &st.checkpoint_errors,
                                m.secondary_failures
                                    .with_label_values(&["source", "checkpoint_write"]),
                            ),
                        ];
                        let mut last = [0u64; 5];
                        let mut last_ns: std::collections::HashMap<String, u64> =
                            Default::default();
                        loop {
                            let stopping = stop2.load(Ordering::SeqCst);
                            gauge.set(st.lag_bytes.load(Ordering::Relaxed) as i64);
                            for ((value, counter), last) in counters.iter().zip(&mut last) {
                                let v = value.load(Ordering::Relaxed);
                                counter.inc_by(v.saturating_sub(*last));
                                *last = v;
                            }
                            if let Ok(ns) = st.namespaces.lock() {
                                for (name, &v) in ns.iter() {
                                    let l = last_ns.entry(name.clone()).or_insert(0);
                                    m.kubernetes_events
                                        .with_label_values(&[&id, name])
                                        .inc_by(v.saturating_sub(*l));
                                    *l = v;
                                }
                            }
                            if stopping {
                                break;
                            }
                            thread::sleep(Duration::from_millis(200));
                        }
                    })?;
                source_threads.push(
                    thread::Builder::new()
                        .name(format!("src-{}", fc.id))
                        .spawn(move || src.run(grace))?,
                );
            }
            SourceConfig::Kafka(kc) => {
                let (atx, arx) = channel::<Ack>();
                ack_txs.push(Some(atx));
                let src = KafkaSource::new(
                    i,
                    (**kc).clone(),
                    tx,
                    arx,
                    stop.clone(),
                    grace.min(Duration::from_secs(10)),
                )
                .map_err(|e| io::Error::other(e.to_string()))?;
                watch_kafka(
                    format!("source:{}", kc.id),
                    Some(kc.id.clone()),
                    src.state.clone(),
                    metrics.clone(),
                    stop.clone(),
                )?;
                source_threads.push(
                    thread::Builder::new()
                        .name(format!("src-{}", kc.id))
                        .spawn(move || {
                            src.run(grace);
                            Ok(())
                        })?,
                );
            }
        }
    }
    drop(src_tx);
    let source_ids: Arc<Vec<String>> =
        Arc::new(cfg.sources.iter().map(|s| s.id().to_string()).collect());
    let dlq = open_dead_letter(&cfg, &metrics, &stop)?;

    // Sinks: a buffer each (memory or disk), drained by its own thread.
    // Each sink with its queue and, per source index, whether it takes that
    // source's events (`inputs`; the config check made sure every source
    // reaches some sink).
    let mut sink_queues: Vec<(String, Arc<SinkQueue>, Vec<bool>)> = Vec::new();
    let mut sink_threads = Vec::new();
    let ack_txs = Arc::new(Mutex::new(ack_txs));
    for sc in cfg.sinks.iter() {
        let b = sc.buffer();
        let q =
            Arc::new(match b.kind {
                BufferKind::Memory => SinkQueue::Memory(MemoryBuffer::new(
                    b.max_events,
                    b.max_bytes as usize,
                    b.when_full == WhenFull::DropNewest,
                )),
                BufferKind::Disk => {
                    let dir = cfg.data_dir.join("buffers").join(sc.id());
                    let fsync = if b.fsync == DiskFsync::Always {
                        FsyncPolicy::Always
                    } else {
                        FsyncPolicy::Never
                    };
                    SinkQueue::Disk(DiskBuffer::open(&dir, b.max_bytes, fsync).map_err(|e| {
                        io::Error::other(format!("disk buffer {}: {e}", dir.display()))
                    })?)
                }
            });
        let takes = cfg.sources.iter().map(|s| sc.takes(s.id())).collect();
        sink_queues.push((sc.id().to_string(), q.clone(), takes));
        let sink = Sink::open(sc)?;
        if let Some(st) = sink.kafka_state() {
            watch_kafka(
                format!("sink:{}", sc.id()),
                None,
                st,
                metrics.clone(),
                stop.clone(),
            )?;
        }
        let ctx = SinkCtx {
            queue: q,
            id: sc.id().to_string(),
            max_retries: sc.max_retries(),
            source_ids: source_ids.clone(),
            dlq: dlq.clone(),
            m: metrics.clone(),
            acks: ack_txs.clone(),
            stop: stop.clone(),
            grace,
        };
        metrics.set_health(&format!("sink:{}", ctx.id), "ok");
        sink_threads.push(
            thread::Builder::new()
                .name(format!("sink-{}", ctx.id))
                .spawn(move || run_sink(sink, ctx))?,
        );
    }

    // The engine stage.
    let mut to_workers = Vec::new();
    let mut from_workers: Vec<Receiver<Redacted>> = Vec::new();
    let mut worker_threads = Vec::new();
    for n in 0..threads {
        let (tx, rx) = sync_channel::<Batch>(CHANNEL_DEPTH);
        let (rtx, rrx) = sync_channel::<Redacted>(CHANNEL_DEPTH);
        to_workers.push(tx);
        from_workers.push(rrx);
        let (rules, m) = (rules.clone(), metrics.clone());
        worker_threads.push(
            thread::Builder::new()
                .name(format!("engine-{n}"))
                .spawn(move || reloadable_worker(&rules, rx, rtx, &m))?,
        );
    }
    let m = metrics.clone();
    let sources_done = Arc::new(AtomicBool::new(false));
    let done = sources_done.clone();
    let (cdlq, cids) = (dlq.clone(), source_ids.clone());
    let dealer = thread::Builder::new()
        .name("dealer".into())
        .spawn(move || {
            let mut d = Dealer::new(to_workers);
            loop {
                let b = match src_rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(b) => b,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                        if done.load(Ordering::SeqCst) =>
                    {
                        break;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                };
                let (lines, bytes) = (b.items.len() as u64, b.data.len() as u64);
                if let Some(id) = source_ids.get(b.source) {
                    m.events_in.with_label_values(&[id]).inc_by(lines);
                    m.bytes_in.with_label_values(&[id]).inc_by(bytes);
                }
                if !d.send(b) {
                    break;
                }
            }
        })?;
    let (cm, cacks, cstop) = (metrics.clone(), ack_txs.clone(), stop.clone());
    let collector = thread::Builder::new()
        .name("collector".into())
        .spawn(move || {
            let r = collect_in_order(from_workers, |r| {
                let Some(mut r) = r else { return Ok(()) };
                dead_letter_poison(&mut r, &cdlq, &cids, &cm, &cstop);
                let d = Arc::new(Delivery {
                    ends: std::mem::take(&mut r.ends),
                    meta: std::mem::take(&mut r.meta),
                    hits: r.hits,
                    rules: r.rules,
                    source: r.source,
                    data: r.data,
                    lines: r.lines,
                    acks: r.acks,
                    remaining: AtomicUsize::new(
                        sink_queues
                            .iter()
                            .filter(|(_, _, t)| t.get(r.source).copied().unwrap_or(true))
                            .count(),
                    ),
                    read_at: Instant::now(),
                });
                for (id, q, takes) in &sink_queues {
                    if !takes.get(d.source).copied().unwrap_or(true) {
                        continue;
                    }
                    enqueue(q, &d, id, &cm, &cacks, &cstop);
                }
                Ok(())
            });
            // No more input: let the sinks drain their buffers and end.
            for (_, q, _) in &sink_queues {
                q.close();
            }
            r
        })?;
    tracing::info!(
        sources = cfg.sources.len(),
        sinks = cfg.sinks.len(),
        threads,
        "agent started"
    );

    for t in source_threads {
        match t.join() {
            Ok(Err(e)) => tracing::error!(error = %e, "file source failed"),
            Err(_) => tracing::error!("file source panicked"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(t) = stdin_thread {
        // Only wait for stdin when it ended on its own; a signal cannot
        // interrupt its read, and it has no checkpoint to write.
        if t.is_finished() {
            let _ = t.join();
        } else {
            drop(t);
        }
    }
    // Every source has stopped (stdin may still sit in a read that no
    // signal interrupts: the dealer stops waiting for it). The stages drain
    // behind; after the grace period we leave regardless, since nothing
    // undelivered was acknowledged.
    sources_done.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + grace;
    wait_until(|| dealer.is_finished(), deadline);
    wait_until(|| collector.is_finished(), deadline);
    for t in sink_threads {
        wait_until(|| t.is_finished(), deadline);
    }
    drop(worker_threads);
    runtime.shutdown_timeout(Duration::from_millis(100));
    tracing::info!("agent stopped");
    Ok(())
}

/// An engine worker that follows reloads: it takes the current ruleset at
/// each batch and rebuilds its scratch space when the ruleset changed.
fn reloadable_worker(
    rules: &SharedRules,
    rx: Receiver<Batch>,
    tx: SyncSender<Redacted>,
    m: &Metrics,
) {
    let mut rs = rules.current();
    let mut scratch = crate::engine::Scratch::new(&rs);
    for batch in rx {
        let cur = rules.current();
        if !Arc::ptr_eq(&cur, &rs) {
            rs = cur;
            scratch = crate::engine::Scratch::new(&rs);
        }
        let mut st = crate::engine::Stats::new(&rs);
        let mut out = redact_batch(&rs, batch, &mut scratch, &mut st);
        out.rules = Some(rs.clone());
        m.observe(&rs, &st);
        if tx.send(out).is_err() {
            break;
        }
    }
}

/// Reloads the rules on SIGHUP and when a configured rule file changes:
/// the new set is compiled and its own tests run on this thread, off the
/// hot path, and swapped in only if both succeed. A broken set keeps the
/// old one running.
fn spawn_reloader(
    cfg: &AgentConfig,
    loader: RuleLoader,
    rules: Arc<SharedRules>,
    m: Arc<Metrics>,
    (tx, rx): (Sender<()>, Receiver<()>),
) -> io::Result<()> {
    use notify::Watcher;
    let watcher = {
        let tx = tx.clone();
        notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if ev.is_ok_and(|e| !e.kind.is_access()) {
                let _ = tx.send(());
            }
        })
    };
    let mut watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch rule files; reload with SIGHUP");
            None
        }
    };
    if let Some(w) = watcher.as_mut() {
        for p in &cfg.rules.paths {
            // Watch the directory holding a file: editors replace files by
            // rename, which a watch on the file itself would not follow.
            let target = if p.is_dir() {
                p.clone()
            } else {
                p.parent().map_or_else(|| p.clone(), Path::to_path_buf)
            };
            if let Err(e) = w.watch(&target, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(path = %p.display(), error = %e, "cannot watch rule path; reload with SIGHUP");
            }
        }
    }
    let ok = m.reloads.with_label_values(&["success"]);
    let failed = m.reloads.with_label_values(&["failure"]);
    thread::Builder::new().name("reloader".into()).spawn(move || {
        let _keep = watcher;
        while rx.recv().is_ok() {
            // Editors write in several steps: let them finish.
            thread::sleep(Duration::from_millis(200));
            while rx.try_recv().is_ok() {}
            let new = loader().and_then(|rs| {
                let report = crate::engine::testing::run_tests(&rs);
                match report.failures.first() {
                    None => Ok(rs),
                    Some(f) => Err(format!("rule tests failed ({} failures), first: {f}", report.failures.len())),
                }
            });
            match new {
                Ok(rs) => {
                    m.bind_rules(&rs);
                    let n = rs.rules().len();
                    rules.swap(Arc::new(rs));
                    ok.inc();
                    tracing::info!(rules = n, "rules reloaded");
                }
                Err(e) => {
                    failed.inc();
                    tracing::error!(error = %e, "rule reload failed; the previous rules stay active");
                }
            }
        }
    })?;
    Ok(())
}

fn wait_until(done: impl Fn() -> bool, deadline: Instant) {
    while !done() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

/// First SIGTERM/SIGINT: graceful stop. Second: exit now.
async fn watch_signals(
    stop: Arc<AtomicBool>,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    let mut count = 0;
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        count += 1;
        if count == 1 {
            tracing::info!("shutting down: draining (signal again to exit at once)");
            stop.store(true, Ordering::SeqCst);
        } else {
            tracing::warn!("second signal: exiting without draining");
            std::process::exit(130);
        }
    }
}

fn read_stdin(index: usize, tx: SyncSender<Batch>) -> io::Result<()> {
    crate::pipeline::read_batches(
        io::stdin().lock(),
        crate::cli::DEFAULT_MAX_LINE_BYTES,
        index,
        |b| tx.send(b).is_ok(),
    )?;
    Ok(())
}

/// A sink's buffer.
enum SinkQueue {
    Memory(MemoryBuffer<Arc<Delivery>>),
    Disk(DiskBuffer),
}

impl SinkQueue {
    fn close(&self) {
        match self {
            SinkQueue::Memory(b) => b.close(),
            SinkQueue::Disk(b) => b.close(),
        }
    }
}

/// Counts one sink's share of a delivery as done; the last share sends the
/// acknowledgements to the sources.
fn ack_share(d: &Delivery, acks: &Mutex<Vec<Option<Sender<Ack>>>>) {
    if d.remaining.fetch_sub(1, Ordering::AcqRel) == 1
        && let Ok(txs) = acks.lock()
    {
        for a in &d.acks {
            if let Some(Some(tx)) = txs.get(a.source) {
                let _ = tx.send(*a);
            }
        }
    }
}

/// Puts a delivery into a sink's buffer. A memory buffer in `block` mode
/// waits while full (backpressure up to the sources); `drop_newest` drops
/// and counts; a disk write acknowledges at once, and if it fails (disk
/// full) it is retried, not skipped: nothing is acknowledged meanwhile.
fn enqueue(
    q: &SinkQueue,
    d: &Arc<Delivery>,
    id: &str,
    m: &Metrics,
    acks: &Mutex<Vec<Option<Sender<Ack>>>>,
    stop: &AtomicBool,
) {
    match q {
        SinkQueue::Memory(b) => {
            if b.push(d.clone(), d.lines.max(1), d.data.len()) == Pushed::Dropped {
                m.buffer_dropped
                    .with_label_values(&[id])
                    .inc_by(d.lines as u64);
                ack_share(d, acks);
            }
            let (_, bytes) = b.level();
            m.buffer_batches
                .with_label_values(&[id])
                .set(b.len() as i64);
            m.buffer_bytes.with_label_values(&[id]).set(bytes as i64);
        }
        SinkQueue::Disk(b) => {
            let item = BufItem {
                data: d.data.clone(),
                lines: d.lines as u32,
                source: d.source as u32,
                ends: if d.meta.is_empty() {
                    Vec::new()
                } else {
                    d.ends.clone()
                },
                meta: d.meta.clone(),
            };
            let mut backoff = Duration::from_millis(100);
            loop {
                match b.push(&item) {
                    Ok(_) => break,
                    Err(e) => {
                        m.secondary_failures
                            .with_label_values(&["buffer", "write_error"])
                            .inc();
                        tracing::error!(sink = %id, error = %e, "disk buffer write failed; not acknowledging, retrying");
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            ack_share(d, acks);
            m.buffer_bytes
                .with_label_values(&[id])
                .set(b.level().0 as i64);
        }
    }
}

/// What a sink thread needs besides its sink.
struct SinkCtx {
    queue: Arc<SinkQueue>,
    id: String,
    max_retries: u32,
    source_ids: Arc<Vec<String>>,
    dlq: Arc<Mutex<DeadLetter>>,
    m: Arc<Metrics>,
    acks: Arc<Mutex<Vec<Option<Sender<Ack>>>>>,
    stop: Arc<AtomicBool>,
    grace: Duration,
}

/// Consecutive failures after which the sink's circuit opens: attempts are
/// spaced by the cooldown, and `/readyz` says `circuit_open`.
const BREAKER_FAILURES: u32 = 5;
const BREAKER_COOLDOWN: Duration = Duration::from_secs(5);

/// One unit of work for a sink, and what to do once it is handled.
enum Work {
    Memory(Arc<Delivery>),
    Disk(BufItem, (u64, u64)),
}

/// A sink's loop: take the next batch from the buffer and write it,
/// retrying with exponential backoff (100 ms to 10 s, with jitter, or the
/// endpoint's `Retry-After`); a permanent rejection, or `max_retries`
/// exhausted, sends the batch to the dead-letter path. Only then is it
/// removed from the buffer (and, for memory buffers, acknowledged). After
/// shutdown began, retrying stops at the grace period: what is undelivered
/// stays unacknowledged (memory) or on disk (disk), and comes again after a
/// restart.
fn run_sink(mut sink: Sink, c: SinkCtx) {
    let m = &c.m;
    let events_counter = m.events_out.with_label_values(&[&c.id]);
    let bytes = m.bytes_out.with_label_values(&[&c.id]);
    let errors = m.sink_errors.with_label_values(&[&c.id]);
    let health = format!("sink:{}", c.id);
    let mut stop_seen: Option<Instant> = None;
    let mut give_up = || {
        c.stop.load(Ordering::SeqCst)
            && stop_seen.get_or_insert_with(Instant::now).elapsed() >= c.grace
    };
    let mut consecutive = 0u32;
    loop {
        let work = match &*c.queue {
            SinkQueue::Memory(b) => match b.peek() {
                Some(d) => Work::Memory(d),
                None => break,
            },
            SinkQueue::Disk(b) => match b.peek() {
                Ok(Some((item, pos))) => Work::Disk(item, pos),
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(sink = %c.id, error = %e, "disk buffer read failed; retrying");
                    if give_up() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(500));
                    continue;
                }
            },
        };
        let (data, lines, source) = match &work {
            Work::Memory(d) => (&d.data, d.lines, d.source),
            Work::Disk(it, _) => (&it.data, it.lines as usize, it.source as usize),
        };
        let computed_ends;
        let (ends, meta): (&[u32], &[crate::pipeline::EventMeta]) = match &work {
            Work::Memory(d) if !d.ends.is_empty() || d.data.is_empty() => (&d.ends, &d.meta),
            Work::Disk(it, _) if !it.ends.is_empty() => (&it.ends, &it.meta),
            _ => {
                computed_ends = crate::sinks::line_ends(data);
                (&computed_ends, &[])
            }
        };
        let events = Events { data, ends, meta };
        // Rule ids per event, for dead-letter records (not kept on disk:
        // replayed batches are dead-lettered without them).
        let rule_ids = |line: usize| -> Vec<String> {
            match &work {
                Work::Memory(d) => match &d.rules {
                    Some(rs) => d
                        .hits
                        .iter()
                        .filter(|(l, _)| *l as usize == line)
                        .filter_map(|(_, r)| rs.rules().get(*r as usize).map(|x| x.id.clone()))
                        .collect(),
                    None => Vec::new(),
                },
                Work::Disk(..) => Vec::new(),
            }
        };
        let more = match &*c.queue {
            SinkQueue::Memory(b) => b.len() > 1,
            SinkQueue::Disk(_) => false,
        };
        let mut backoff = Duration::from_millis(100);
        let mut attempts = 0u32;
        // `Ok(rejected events)`, or `Err(reason)` to dead-letter the batch.
        let outcome: Result<Vec<(usize, String)>, String> = loop {
            if events.is_empty() {
                // Every event of it was dead-lettered upstream: only its
                // acknowledgements travel.
                break Ok(Vec::new());
            }
            let err = match sink.write(&events, more) {
                Ok(rejected) => break Ok(rejected),
                Err(WriteError::Permanent { reason }) => break Err(reason),
                Err(e @ WriteError::Retry { .. }) => e,
            };
            attempts += 1;
            consecutive += 1;
            errors.inc();
            if c.max_retries > 0 && attempts > c.max_retries {
                break Err("retries_exhausted".to_string());
            }
            let open = consecutive >= BREAKER_FAILURES;
            m.set_health(&health, if open { "circuit_open" } else { "failing" });
            let after = match &err {
                WriteError::Retry { after: Some(a), .. } => *a,
                _ if open => backoff.max(BREAKER_COOLDOWN),
                _ => backoff + jitter(backoff),
            };
            tracing::warn!(sink = %c.id, error = %err, retry_in_ms = after.as_millis() as u64, "sink write failed");
            if give_up() {
                return;
            }
            thread::sleep(after);
            backoff = (backoff * 2).min(Duration::from_secs(10));
        };
        consecutive = 0;
        m.set_health(&health, "ok");
        let dead: Vec<(usize, String)> = match outcome {
            Ok(rejected) => {
                events_ok(&events, &rejected, lines, &events_counter, &bytes);
                rejected
            }
            Err(reason) => (0..events.len()).map(|i| (i, reason.clone())).collect(),
        };
        if !dead.is_empty() {
            let source = c.source_ids.get(source).map_or("", String::as_str);
            let recs = events.dead_records(&dead, &c.id, source, rule_ids);
            // The dead-letter write is what allows the ack: retry it until
            // it works (backpressure), never skip it.
            if !write_dead_letters(&c.dlq, &recs, m, &mut give_up) {
                return;
            }
            tracing::warn!(sink = %c.id, events = recs.len(), "events sent to the dead-letter path");
        }
        match work {
            Work::Memory(d) => {
                m.latency.observe(d.read_at.elapsed().as_secs_f64());
                if let SinkQueue::Memory(b) = &*c.queue {
                    b.pop();
                    m.buffer_batches
                        .with_label_values(&[&c.id])
                        .set(b.len() as i64);
                    m.buffer_bytes
                        .with_label_values(&[&c.id])
                        .set(b.level().1 as i64);
                }
                ack_share(&d, &c.acks);
            }
            Work::Disk(_, pos) => {
                if let SinkQueue::Disk(b) = &*c.queue {
                    if let Err(e) = b.commit(pos) {
                        // The batch is delivered; a lost cursor only means
                        // it may be delivered again after a restart.
                        tracing::error!(sink = %c.id, error = %e, "cannot persist the disk buffer cursor");
                    }
                    let (pending, corrupt) = b.level();
                    m.buffer_bytes
                        .with_label_values(&[&c.id])
                        .set(pending as i64);
                    m.buffer_corrupt
                        .with_label_values(&[&c.id])
                        .set(corrupt as i64);
                }
            }
        }
    }
    let _ = sink.flush();
}

/// The dead-letter path of the config, with its readiness exported when
/// it is a Kafka topic.
fn open_dead_letter(
    cfg: &AgentConfig,
    metrics: &Arc<Metrics>,
    stop: &Arc<AtomicBool>,
) -> io::Result<Arc<Mutex<DeadLetter>>> {
    let dlq = DeadLetter::open(&cfg.dead_letter, &cfg.data_dir)?;
    if let Some(st) = dlq.kafka_state() {
        watch_kafka(
            "dead-letter".into(),
            None,
            st,
            metrics.clone(),
            stop.clone(),
        )?;
    }
    Ok(Arc::new(Mutex::new(dlq)))
}

/// Exports a Kafka client's state: readiness under `health`, and for a
/// source (`lag_source`), the consumer lag per partition.
fn watch_kafka(
    health: String,
    lag_source: Option<String>,
    st: Arc<crate::kafka::ClientState>,
    m: Arc<Metrics>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    m.set_health(&health, st.health());
    thread::Builder::new()
        .name(format!("kafka-{health}"))
        .spawn(move || {
            let mut known: std::collections::HashSet<(String, i32)> = Default::default();
            while !stop.load(Ordering::SeqCst) {
                m.set_health(&health, st.health());
                if let (Some(id), Ok(lag)) = (&lag_source, st.lag.lock()) {
                    for ((topic, p), v) in lag.iter() {
                        let part = p.to_string();
                        m.kafka_lag.with_label_values(&[id, topic, &part]).set(*v);
                        known.insert((topic.clone(), *p));
                    }
                    // Revoked partitions: drop their series.
                    known.retain(|(t, p)| {
                        let keep = lag.contains_key(&(t.clone(), *p));
                        if !keep {
                            let _ = m.kafka_lag.remove_label_values(&[id, t, &p.to_string()]);
                        }
                        keep
                    });
                }
                thread::sleep(Duration::from_millis(250));
            }
        })?;
    Ok(())
}

/// Counts what a sink delivered: every event but the rejected ones.
fn events_ok(
    events: &Events<'_>,
    rejected: &[(usize, String)],
    lines: usize,
    counter: &prometheus::IntCounter,
    bytes: &prometheus::IntCounter,
) {
    let rejected_bytes: usize = rejected
        .iter()
        .map(|(i, _)| events.event(*i).len() + 1)
        .sum();
    counter.inc_by(lines.saturating_sub(rejected.len()) as u64);
    bytes.inc_by(events.data.len().saturating_sub(rejected_bytes) as u64);
}

/// Writes dead-letter records, retrying with backoff until it works (the
/// caller's acknowledgement depends on it). False if shutdown gave up.
pub(crate) fn write_dead_letters(
    dlq: &Mutex<DeadLetter>,
    recs: &[DeadRecord<'_>],
    m: &Metrics,
    give_up: &mut dyn FnMut() -> bool,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        let r = dlq
            .lock()
            .map_err(|_| io::Error::other("dead-letter lock poisoned"))
            .and_then(|mut w| w.write(recs));
        match r {
            Ok(_) => {
                for r in recs {
                    m.dlq_events.with_label_values(&[r.reason]).inc();
                }
                return true;
            }
            Err(e) => {
                m.secondary_failures
                    .with_label_values(&["dlq", "write_error"])
                    .inc();
                tracing::error!(error = %e, "dead-letter write failed; not acknowledging");
                if give_up() {
                    return false;
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Moves the events a source flagged as poison (a Kafka message that is
/// not UTF-8 or too large) out of a redacted batch and into the
/// dead-letter path, redacted. The batch keeps its acknowledgements: once
/// dead-lettered, a poison event counts as handled.
fn dead_letter_poison(
    r: &mut Redacted,
    dlq: &Mutex<DeadLetter>,
    source_ids: &[String],
    m: &Metrics,
    stop: &AtomicBool,
) {
    if !r.meta.iter().any(|x| x.poison.is_some()) {
        return;
    }
    let poison = r.take_poison();
    let source = source_ids.get(r.source).map_or("", String::as_str);
    let ids = |rules: &[u32]| -> Vec<String> {
        match &r.rules {
            Some(rs) => rules
                .iter()
                .filter_map(|i| rs.rules().get(*i as usize).map(|x| x.id.clone()))
                .collect(),
            None => Vec::new(),
        }
    };
    let recs: Vec<DeadRecord<'_>> = poison
        .iter()
        .map(|p| DeadRecord::poison(p, source, ids(&p.rules)))
        .collect();
    // Until shutdown, retried; after it, the batch is still acknowledged
    // only if the write worked (see the source's drain).
    let mut give_up = || stop.load(Ordering::SeqCst);
    if write_dead_letters(dlq, &recs, m, &mut give_up) {
        tracing::warn!(
            source,
            events = recs.len(),
            "poison events sent to the dead-letter path"
        );
    } else {
        // Not written: the batch must not be acknowledged.
        r.acks.clear();
    }
}

/// Up to a quarter of `d`, from the clock's nanoseconds (no RNG needed for
/// de-synchronising retries).
fn jitter(d: Duration) -> Duration {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d / 4 * (n % 1000) / 1000
}
