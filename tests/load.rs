//! Sustained load against a slow sink: the agent is fed faster than its
//! HTTP collector accepts. It must hold memory flat (backpressure leaves
//! the backlog in the log file, not in the agent), lose nothing, redact
//! everything, and report how long lines took from write to collector.
//!
//! Bounded in time: a 5 s phase at a quarter of the collector's pace, then
//! a 10 s phase at twice its pace (`REDACTD_LOAD_SECS` sets the second
//! phase's length for a longer manual run), then the backlog drains.

mod common;

use common::agent::*;
use common::http::{Endpoint, unix_micros};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// RSS bound the agent must stay under for the whole run (MiB). The
/// memory buffer holds at most 10,000 events and the pipeline a few
/// 256 KiB batches per stage; the rest is the compiled rules.
const RSS_BOUND_MIB: u64 = 160;

fn config(d: &Path, sink_port: u16, metrics_port: u16) -> std::path::PathBuf {
    let tables = format!(
        "{}{}[sinks.buffer]\ntype = \"memory\"\nmax_events = 10000\n",
        file_source(d),
        http_sink(sink_port)
    );
    agent_config(d, metrics_port, &tables)
}

/// Peak and current resident set of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn percentile(sorted: &[u128], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[test]
fn sustained_load_against_a_slow_sink_keeps_memory_bounded_and_loses_nothing() {
    let overload_secs: u64 = std::env::var("REDACTD_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (sink_port, metrics_port) = (free_port(), free_port());
    // A collector that takes 5 ms per request plus 50 µs per line: it
    // accepts at most 20,000 lines/s.
    let ep = Endpoint::slow(
        std::net::TcpListener::bind(("127.0.0.1", sink_port)).unwrap(),
        200,
        Duration::from_millis(5),
        Duration::from_micros(50),
    );
    let cfg = config(d, sink_port, metrics_port);
    let agent = Agent::start(&cfg);
    let pid = agent.child.id();
    wait_for("agent up", Duration::from_secs(20), || {
        get(metrics_port, "/healthz").contains("200")
    });

    let written = Arc::new(AtomicUsize::new(0));
    let steady_end = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let log = d.join("logs/app.log");
    let writer = {
        let (written, steady_end, done) = (written.clone(), steady_end.clone(), done.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            let pad = "x".repeat(40);
            let mut seq = 0usize;
            // (lines per second, seconds)
            for (phase, (rate, secs)) in [(5_000usize, 5u64), (40_000, overload_secs)]
                .into_iter()
                .enumerate()
            {
                let start = Instant::now();
                let per_tick = rate / 100;
                let mut tick = 0u32;
                while start.elapsed() < Duration::from_secs(secs) {
                    let mut chunk = String::with_capacity(per_tick * 120);
                    let t = unix_micros();
                    for _ in 0..per_tick {
                        chunk.push_str(&format!(
                            "ld {seq} t={t} user=ann{seq}@example.com password=hunter2 {pad}\n"
                        ));
                        seq += 1;
                    }
                    f.write_all(chunk.as_bytes()).unwrap();
                    written.store(seq, Ordering::SeqCst);
                    tick += 1;
                    let next = start + Duration::from_millis(10) * tick;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                if phase == 0 {
                    steady_end.store(seq, Ordering::SeqCst);
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    // Watch memory and the backlog while the writer runs and the agent
    // drains.
    let mut max_lag = 0u64;
    let mut max_rss = 0u64;
    let started = Instant::now();
    let deadline = Duration::from_secs(60 + overload_secs * 4);
    loop {
        let (_, rss) = rss_kib(pid);
        max_rss = max_rss.max(rss);
        let m = scrape(metrics_port);
        max_lag = max_lag.max(metric(&m, r#"redactd_file_lag_bytes{source="app"}"#));
        let total = written.load(Ordering::SeqCst);
        if done.load(Ordering::SeqCst) && ep.line_count() >= total {
            break;
        }
        assert!(
            started.elapsed() < deadline,
            "collector has {} of {total} lines after {:?}",
            ep.line_count(),
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    writer.join().unwrap();
    let (hwm, _) = rss_kib(pid);
    let (code, _log) = agent.term();
    assert_eq!(code, Some(0));

    let total = written.load(Ordering::SeqCst);
    let steady = steady_end.load(Ordering::SeqCst);
    let arrivals = ep.arrivals();
    let mut seen = vec![false; total];
    let (mut lat_steady, mut lat_over) = (Vec::new(), Vec::new());
    for (at, line) in &arrivals {
        assert!(
            !line.contains("@example.com") && !line.contains("hunter2"),
            "unredacted line at the collector: {line:.100}"
        );
        let mut parts = line.split(' ');
        assert_eq!(parts.next(), Some("ld"), "{line:.100}");
        let seq: usize = parts.next().and_then(|s| s.parse().ok()).expect("seq");
        let t: u128 = parts
            .next()
            .and_then(|s| s.strip_prefix("t="))
            .and_then(|s| s.parse().ok())
            .expect("time");
        if !seen[seq] {
            seen[seq] = true;
            let lat = at.saturating_sub(t);
            if seq < steady {
                lat_steady.push(lat);
            } else {
                lat_over.push(lat);
            }
        }
    }
    let missing = seen.iter().filter(|s| !**s).count();
    lat_steady.sort_unstable();
    lat_over.sort_unstable();
    let peak_mib = hwm.max(max_rss) / 1024;
    eprintln!(
        "load: {total} lines ({} MB) in {:.1} s; collector ≤ 20,000 lines/s; \
         peak backlog in the file {:.1} MB; peak RSS {peak_mib} MiB (bound {RSS_BOUND_MIB}); \
         {} duplicates, {missing} missing",
        total * 105 / 1_000_000,
        started.elapsed().as_secs_f64(),
        max_lag as f64 / 1e6,
        arrivals.len() - (total - missing),
    );
    for (phase, lat) in [
        ("steady 5,000 lines/s", &lat_steady),
        ("overload 40,000 lines/s", &lat_over),
    ] {
        let [p50, p90, p99, max] = [0.5, 0.9, 0.99, 1.0].map(|p| percentile(lat, p));
        eprintln!(
            "load: latency write→collector, {phase}: p50 {p50:.0} ms, p90 {p90:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"
        );
    }
    assert_eq!(missing, 0, "lines lost");
    assert!(
        peak_mib < RSS_BOUND_MIB,
        "peak RSS {peak_mib} MiB over the {RSS_BOUND_MIB} MiB bound"
    );
    assert!(
        max_lag > 1_000_000,
        "the collector never fell behind (peak backlog {max_lag} bytes): not a load test"
    );
}
