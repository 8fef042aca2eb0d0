//! `redactd run` as a Kafka stream processor, against librdkafka's mock
//! cluster (in this process, real protocol on loopback ports): topic to
//! topic with keys and headers, `kill -9` and restart, a broker outage,
//! poison messages, a rebalance between two processes, exactly-once mode.
//! The same scenarios against a real broker process (Tansu) are in
//! `tests/kafka_broker.rs`.

mod common;

use common::agent::*;
use common::kafka::*;
use rdkafka::message::Message;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Names {
    raw: String,
    clean: String,
    dlq: String,
    group: String,
}

fn names() -> Names {
    Names {
        raw: unique("raw"),
        clean: unique("clean"),
        dlq: unique("dlq"),
        group: unique("group"),
    }
}

/// Fresh topic names, created on `k`: input and output with `partitions`
/// partitions each, the dead-letter topic with one.
fn topics(k: &Kafka, partitions: i32) -> Names {
    let n = names();
    k.create_topic(&n.raw, partitions);
    k.create_topic(&n.clean, partitions);
    k.create_topic(&n.dlq, 1);
    n
}

fn config(dir: &Path, k: &Kafka, n: &Names, metrics_port: u16, sink_extra: &str) -> PathBuf {
    agent_config(
        dir,
        metrics_port,
        &format!(
            r#"[[sources]]
type = "kafka"
id = "raw"
brokers = "{b}"
topics = ["{raw}"]
group_id = "{group}"
commit_interval_ms = 100
max_message_bytes = 4096
# A killed member's partitions move after its session times out.
librdkafka = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
[[sinks]]
type = "kafka"
id = "clean"
brokers = "{b}"
topic = "{clean}"
message_timeout_ms = 5000
{sink_extra}
[dead_letter]
brokers = "{b}"
topic = "{dlq}"
"#,
            b = k.bootstrap,
            raw = n.raw,
            clean = n.clean,
            dlq = n.dlq,
            group = n.group,
        ),
    )
}

/// Input event `i`: JSON or text, with planted secrets, a key, and on
/// every tenth an `authorization` header carrying a bearer token.
fn event(i: usize) -> Rec {
    let payload = if i.is_multiple_of(2) {
        format!(r#"{{"id":{i},"user":"ann{i}@example.com","password":"hunter2","msg":"ok"}}"#)
    } else {
        format!(
            "id={i} login user=bob{i}@example.com password=hunter2 from 10.0.{}.{}",
            i % 250,
            i % 200 + 1
        )
    };
    let mut headers = vec![("trace".to_string(), format!("t-{i}").into_bytes())];
    if i.is_multiple_of(10) {
        headers.push((
            "authorization".into(),
            b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U".to_vec(),
        ));
    }
    Rec {
        key: Some(format!("user-{}", i % 97).into_bytes()),
        payload: payload.into_bytes(),
        headers,
    }
}

/// The id of an output payload (JSON `id` or text `id=`).
fn id_of(p: &str) -> Option<usize> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(p) {
        return v["id"].as_u64().map(|x| x as usize);
    }
    p.strip_prefix("id=")?.split(' ').next()?.parse().ok()
}

/// Checks every output message and counts ids.
fn check_output(msgs: &[rdkafka::message::OwnedMessage]) -> HashMap<usize, usize> {
    let mut seen = HashMap::new();
    for m in msgs {
        let p = payload(m);
        assert!(
            !p.contains("@example.com") && !p.contains("hunter2"),
            "unredacted output: {p}"
        );
        let id = id_of(&p).unwrap_or_else(|| panic!("output without id: {p}"));
        *seen.entry(id).or_default() += 1;
        assert_eq!(
            m.key(),
            Some(format!("user-{}", id % 97).as_bytes()),
            "key changed"
        );
        let h = headers(m);
        assert_eq!(
            h.get("trace").map(String::as_str),
            Some(format!("t-{id}").as_str())
        );
        if id.is_multiple_of(10) {
            let a = &h["authorization"];
            assert!(
                a.starts_with("[REDACTED") || a.contains("[REDACTED"),
                "header not redacted: {a}"
            );
            assert!(!a.contains("eyJhbGciOi"), "header not redacted: {a}");
        }
    }
    seen
}

/// Reads the output until it holds `ids` distinct ids (or `timeout`),
/// checking every message.
fn wait_output(k: &Kafka, topic: &str, ids: usize, timeout: Duration) -> HashMap<usize, usize> {
    let msgs = k.consume_until(topic, timeout, false, |m| {
        let mut distinct = std::collections::HashSet::new();
        for x in m {
            if let Some(id) = id_of(&payload(x)) {
                distinct.insert(id);
            }
        }
        distinct.len() >= ids
    });
    check_output(&msgs)
}

#[test]
fn topic_to_topic_100k_events_all_redacted_none_missing_keys_and_headers_kept() {
    let d = tempfile::tempdir().unwrap();
    let k = mock(3);
    let n = topics(&k, 4);
    let total = 100_000;
    let input: Vec<Rec> = (0..total).map(event).collect();
    k.produce(&n.raw, &input);
    let port = free_port();
    let agent = Agent::start(&config(d.path(), &k, &n, port, ""));
    let t = Instant::now();
    let c = k.consume(&n.clean, total, Duration::from_secs(120), false);
    let secs = t.elapsed().as_secs_f64();
    let seen = check_output(&c);
    assert_eq!(seen.len(), total, "missing events");
    assert!(seen.values().all(|n| *n == 1), "duplicates without a crash");
    wait_metric(
        port,
        r#"redactd_events_out_total{sink="clean"}"#,
        total as u64,
    );
    // Offsets are committed for everything delivered.
    wait_for("offsets committed", Duration::from_secs(20), || {
        k.committed(&n.group, &n.raw) == total as i64
    });
    assert_eq!(agent.term().0, Some(0));
    eprintln!(
        "100k events topic to topic in {secs:.1} s ({:.0} events/s)",
        total as f64 / secs
    );
}

#[test]
fn kill_9_mid_stream_and_restart_loses_nothing_and_duplicates_stay_bounded() {
    let d = tempfile::tempdir().unwrap();
    let k = mock(1);
    let n = topics(&k, 2);
    let total = 40_000;
    let cfg = config(d.path(), &k, &n, free_port(), "");
    // Input keeps arriving while the agent is killed and restarted.
    let writer = {
        let (p, raw) = (k.producer(), n.raw.clone());
        std::thread::spawn(move || {
            for chunk in 0..40 {
                let recs: Vec<Rec> = (chunk * 1000..(chunk + 1) * 1000).map(event).collect();
                produce_with(&p, &raw, &recs);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let agent = Agent::start(&cfg);
    wait_for("some output", Duration::from_secs(60), || {
        k.consume(&n.clean, 3000, Duration::from_secs(1), false)
            .len()
            >= 3000
    });
    agent.kill9();
    let at_kill = k
        .consume(&n.clean, total, Duration::from_secs(2), false)
        .len();
    assert!(at_kill < total, "the kill came after the end of the stream");
    let agent = Agent::start(&cfg);
    writer.join().unwrap();
    let seen = wait_output(&k, &n.clean, total, Duration::from_secs(120));
    assert_eq!(agent.term().0, Some(0));
    let missing: Vec<usize> = (0..total).filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "{} events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let dups: usize = seen.values().map(|c| c - 1).sum();
    // Only what was delivered after the last commit (every 100 ms) is
    // delivered again.
    assert!(dups < at_kill, "{dups} duplicates");
    eprintln!("kill -9 after {at_kill} of {total}: 0 lost, {dups} duplicates");
}

#[test]
fn broker_down_makes_the_agent_not_ready_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let k = mock(1);
    let n = topics(&k, 1);
    let port = free_port();
    let cfg = config(d.path(), &k, &n, port, "");
    k.produce(&n.raw, &(0..1000).map(event).collect::<Vec<_>>());
    let agent = Agent::start(&cfg);
    wait_output(&k, &n.clean, 1000, Duration::from_secs(60));
    wait_for("ready", Duration::from_secs(20), || {
        let r = get(port, "/readyz");
        eprintln!("{r}");
        r.contains(" 200 ")
    });
    let mock = k.mock.as_ref().unwrap();
    mock.broker_down(1).unwrap();
    wait_for(
        "not ready while the broker is down",
        Duration::from_secs(30),
        || {
            let r = get(port, "/readyz");
            r.contains(" 503 ") && r.contains("brokers_down")
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    mock.broker_up(1).unwrap();
    k.produce(&n.raw, &(1000..2000).map(event).collect::<Vec<_>>());
    let seen = wait_output(&k, &n.clean, 2000, Duration::from_secs(60));
    assert_eq!(seen.len(), 2000, "events lost over the outage");
    wait_for("ready again", Duration::from_secs(30), || {
        get(port, "/readyz").contains(" 200 ")
    });
    assert_eq!(agent.term().0, Some(0));
}

#[test]
fn poison_messages_go_to_the_dead_letter_topic_redacted_and_the_partition_keeps_flowing() {
    let d = tempfile::tempdir().unwrap();
    let k = mock(1);
    let n = topics(&k, 1);
    let port = free_port();
    let cfg = config(d.path(), &k, &n, port, "");
    let mut input: Vec<Rec> = (0..100).map(event).collect();
    // Invalid UTF-8 carrying a secret, and one over max_message_bytes.
    input.insert(
        10,
        Rec::text(&b"bad \xff\xfe bytes user=eve@example.com password=hunter2"[..]),
    );
    let mut big = b"huge ".repeat(2000);
    big.extend_from_slice(b" mail=zed@example.com");
    input.insert(50, Rec::text(big));
    k.produce(&n.raw, &input);
    let agent = Agent::start(&cfg);
    let seen = wait_output(&k, &n.clean, 100, Duration::from_secs(60));
    assert_eq!(seen.len(), 100, "the partition stopped at a poison message");
    let dead = k.consume(&n.dlq, 2, Duration::from_secs(30), false);
    assert_eq!(dead.len(), 2);
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|m| headers(m)["redactd.reason"].clone())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["invalid_utf8", "oversize"]);
    for m in &dead {
        let h = headers(m);
        assert_eq!(h["redactd.stage"], "decode");
        assert_eq!(h["redactd.origin_topic"], n.raw);
        assert!(h["redactd.origin_offset"] == "10" || h["redactd.origin_offset"] == "50");
        let p = payload(m);
        assert!(
            !p.contains("@example.com") && !p.contains("hunter2"),
            "unredacted dead letter: {p}"
        );
    }
    wait_metric(
        port,
        r#"redactd_dlq_events_total{reason="invalid_utf8"}"#,
        1,
    );
    // Committed past the poison messages.
    wait_for("offsets committed", Duration::from_secs(20), || {
        k.committed(&n.group, &n.raw) == 102
    });
    assert_eq!(agent.term().0, Some(0));
}

#[test]
fn a_message_the_broker_rejects_for_good_is_dead_lettered_alone() {
    let d = tempfile::tempdir().unwrap();
    let k = mock(1);
    let n = topics(&k, 1);
    // The sink's client refuses messages over 1500 bytes (a stand-in for
    // the broker's message.max.bytes): MSG_SIZE_TOO_LARGE, permanent.
    let cfg = config(
        d.path(),
        &k,
        &n,
        free_port(),
        "librdkafka = { \"message.max.bytes\" = \"1500\" }",
    );
    let mut input: Vec<Rec> = (0..20).map(event).collect();
    input.insert(5, Rec::text(format!("id=5000 {}", "x".repeat(2000))));
    k.produce(&n.raw, &input);
    let agent = Agent::start(&cfg);
    let seen = wait_output(&k, &n.clean, 20, Duration::from_secs(60));
    assert_eq!(seen.len(), 20);
    let dead = k.consume(&n.dlq, 1, Duration::from_secs(30), false);
    assert_eq!(dead.len(), 1);
    let h = headers(&dead[0]);
    assert_eq!(h["redactd.reason"], "kafka_message_size_too_large");
    assert_eq!(h["redactd.stage"], "sink");
    assert_eq!(agent.term().0, Some(0));
}

#[test]
fn two_processes_in_one_group_share_partitions_and_a_rebalance_loses_nothing() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let k = mock(1);
    let n = topics(&k, 6);
    let a = Agent::start(&config(d1.path(), &k, &n, free_port(), ""));
    let b = Agent::start(&config(d2.path(), &k, &n, free_port(), ""));
    let total = 30_000;
    // Produce while the group forms, and keep producing across a member
    // leaving (SIGTERM: revoke, commit, leave).
    k.produce(&n.raw, &(0..total / 3).map(event).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_secs(3));
    k.produce(
        &n.raw,
        &(total / 3..2 * total / 3).map(event).collect::<Vec<_>>(),
    );
    assert_eq!(b.term().0, Some(0));
    k.produce(
        &n.raw,
        &(2 * total / 3..total).map(event).collect::<Vec<_>>(),
    );
    let seen = wait_output(&k, &n.clean, total, Duration::from_secs(120));
    assert_eq!(a.term().0, Some(0));
    let missing = (0..total).filter(|i| !seen.contains_key(i)).count();
    assert_eq!(missing, 0, "events lost in the rebalance");
}

/// Exactly-once run with a `kill -9` in the middle; returns the output
/// counts per id and the group's committed offset total.
fn exactly_once_across_kill_9(
    k: &Kafka,
    total: usize,
    offsets_stored: bool,
) -> (HashMap<usize, usize>, i64) {
    let d = tempfile::tempdir().unwrap();
    let n = topics(k, 2);
    let cfg = config(
        d.path(),
        k,
        &n,
        free_port(),
        &format!(
            "delivery = \"exactly_once\"\ntransactional_id = \"{}\"",
            unique("txn")
        ),
    );
    k.produce(&n.raw, &(0..total / 2).map(event).collect::<Vec<_>>());
    let agent = Agent::start(&cfg);
    wait_for("some output", Duration::from_secs(60), || {
        !k.consume(&n.clean, 100, Duration::from_secs(1), true)
            .is_empty()
    });
    agent.kill9();
    k.produce(&n.raw, &(total / 2..total).map(event).collect::<Vec<_>>());
    let agent = Agent::start(&cfg);
    let seen = wait_output(k, &n.clean, total, Duration::from_secs(120));
    let mut committed = 0;
    let _ = (0..if offsets_stored { 100 } else { 0 }).find(|_| {
        committed = k.committed(&n.group, &n.raw);
        std::thread::sleep(Duration::from_millis(200));
        committed == total as i64
    });
    assert_eq!(agent.term().0, Some(0));
    assert_eq!(
        (0..total).filter(|i| !seen.contains_key(i)).count(),
        0,
        "events lost"
    );
    (seen, committed)
}

#[test]
fn exactly_once_mode_delivers_everything_redacted_across_kill_9_on_the_mock_cluster() {
    // The mock cluster runs the whole transactional protocol but does not
    // store offsets committed in a transaction (TxnOffsetCommit is
    // acknowledged and dropped) and does not hide aborted records: here we
    // can check that nothing is lost and everything is redacted, not the
    // duplicate bound (see the Tansu test for that).
    let (seen, _) = exactly_once_across_kill_9(&mock(1), 10_000, false);
    assert_eq!(seen.len(), 10_000);
}

#[test]
fn tansu_exactly_once_commits_offsets_in_the_transaction_and_resumes_after_kill_9() {
    let k = tansu();
    let total = 10_000;
    let (seen, committed) = exactly_once_across_kill_9(&k, total, true);
    assert_eq!(committed, total as i64, "offsets committed in transactions");
    let dups: usize = seen.values().map(|c| c - 1).sum();
    // Tansu does not hide aborted records from read_committed readers, so
    // the transaction open at the kill (one batch, at most 2048 events)
    // can show; a restart resumed from the offsets of the last committed
    // transaction, so nothing else repeats.
    assert!(
        dups <= 2048,
        "{dups} duplicates: more than the transaction open at the kill"
    );
    eprintln!(
        "tansu exactly-once kill -9: 0 lost, {dups} records of the aborted transaction visible"
    );
}

#[test]
fn tansu_topic_to_topic_with_keys_and_headers_and_kill_9_loses_nothing() {
    let k = tansu();
    let d = tempfile::tempdir().unwrap();
    let n = topics(&k, 3);
    let total = 20_000;
    let cfg = config(d.path(), &k, &n, free_port(), "");
    let mut input: Vec<Rec> = (0..total / 2).map(event).collect();
    input.insert(7, Rec::text(&b"poison \xff user=eve@example.com"[..]));
    k.produce(&n.raw, &input);
    let agent = Agent::start(&cfg);
    wait_for("some output", Duration::from_secs(60), || {
        !k.consume(&n.clean, 1000, Duration::from_secs(1), false)
            .is_empty()
    });
    agent.kill9();
    k.produce(&n.raw, &(total / 2..total).map(event).collect::<Vec<_>>());
    let agent = Agent::start(&cfg);
    let seen = wait_output(&k, &n.clean, total, Duration::from_secs(120));
    let missing = (0..total).filter(|i| !seen.contains_key(i)).count();
    assert_eq!(missing, 0, "events lost");
    let dead = k.consume(&n.dlq, 1, Duration::from_secs(30), false);
    assert_eq!(
        dead.len(),
        1,
        "the poison message is dead-lettered once per delivery"
    );
    assert_eq!(headers(&dead[0])["redactd.reason"], "invalid_utf8");
    assert!(!payload(&dead[0]).contains("@example.com"));
    // A clean stop commits everything; a restart then repeats nothing.
    assert_eq!(agent.term().0, Some(0));
    assert_eq!(k.committed(&n.group, &n.raw), total as i64 + 1);
    let before = k
        .consume(&n.clean, usize::MAX, Duration::from_secs(2), false)
        .len();
    let agent = Agent::start(&cfg);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agent.term().0, Some(0));
    let after = k
        .consume(&n.clean, usize::MAX, Duration::from_secs(2), false)
        .len();
    assert_eq!(
        before, after,
        "a restart after a clean stop delivered again"
    );
    let dups: usize = seen.values().map(|c| c - 1).sum();
    eprintln!("tansu at-least-once kill -9: 0 lost, {dups} duplicates of {total}");
}

/// Throughput, topic to topic, on a Tansu broker process (or the mock
/// cluster with `KAFKA_BENCH_BROKER=mock`): a plain
/// consume→produce copy (this process, no redaction) next to `redactd` in
/// at-least-once and exactly-once mode, on the same input in the same run.
/// Run by `benches/kafka.sh` (release build); ignored in the test suite.
#[test]
#[ignore]
fn throughput_report() {
    let on_mock = std::env::var("KAFKA_BENCH_BROKER").as_deref() == Ok("mock");
    let k = if on_mock { mock(1) } else { tansu() };
    eprintln!(
        "broker: {}",
        if on_mock {
            "librdkafka mock cluster (in the bench process)"
        } else {
            "Tansu process"
        }
    );
    let total: usize = std::env::var("KAFKA_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let raw = unique("bench-raw");
    k.create_topic(&raw, 3);
    let input: Vec<Rec> = (0..total).map(event).collect();
    let bytes: usize = input.iter().map(|r| r.payload.len()).sum();
    k.produce(&raw, &input);
    let report = |name: &str, secs: f64| {
        eprintln!(
            "{name:<28} {total} events, {:.1} MB in {secs:.2} s: {:.0} events/s, {:.1} MB/s",
            bytes as f64 / 1e6,
            total as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    };
    // Waits until `topic` holds `total` records; seconds since `t0`.
    let finish = |topic: &str, committed: bool, t0: Instant| -> f64 {
        let got = k
            .consume(topic, total, Duration::from_secs(600), committed)
            .len();
        assert!(got >= total, "{topic}: only {got} of {total}");
        t0.elapsed().as_secs_f64()
    };

    // 1. Plain copy: a consumer group member and an idempotent producer,
    // on its own thread while the output is read, as for redactd below.
    let copy = unique("bench-copy");
    k.create_topic(&copy, 3);
    let t0 = Instant::now();
    let copier = {
        let (bootstrap, raw, copy) = (k.bootstrap.clone(), raw.clone(), copy.clone());
        let p = k.producer();
        std::thread::spawn(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            use rdkafka::producer::{BaseRecord, Producer};
            let c: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", unique("copy"))
                .set("auto.offset.reset", "earliest")
                .create()
                .unwrap();
            c.subscribe(&[&raw]).unwrap();
            let mut n = 0;
            while n < total {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    let mut rec: BaseRecord<'_, [u8], [u8]> =
                        BaseRecord::to(&copy).payload(m.payload().unwrap_or(&[]));
                    if let Some(key) = m.key() {
                        rec = rec.key(key);
                    }
                    while let Err((_, back)) = p.send(rec) {
                        rec = back;
                        p.poll(Duration::from_millis(5));
                    }
                    p.poll(Duration::ZERO);
                    n += 1;
                }
            }
            p.flush(Duration::from_secs(60)).unwrap();
        })
    };
    report("copy (no redaction)", finish(&copy, false, t0));
    copier.join().unwrap();

    // 2./3. redactd, at-least-once and exactly-once.
    for (name, extra) in [
        ("redactd at-least-once", String::new()),
        (
            "redactd exactly-once",
            format!(
                "delivery = \"exactly_once\"\ntransactional_id = \"{}\"",
                unique("txn")
            ),
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let n = Names {
            raw: raw.clone(),
            clean: unique("bench-clean"),
            dlq: unique("bench-dlq"),
            group: unique("bench-group"),
        };
        k.create_topic(&n.clean, 3);
        let cfg = config(d.path(), &k, &n, free_port(), &extra);
        let t0 = Instant::now();
        let agent = Agent::start(&cfg);
        let secs = finish(&n.clean, !extra.is_empty(), t0);
        assert_eq!(agent.term().0, Some(0));
        report(name, secs);
    }
}
