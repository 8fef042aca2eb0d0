//! `redactd run` end to end: real files, real rotation, real signals,
//! `kill -9` and restarts, a real metrics scrape.

mod common;

use common::agent::*;
use common::http::Endpoint;
use common::*;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A file source into a file sink; `extra` adds tables (`[metrics]`,
/// `[rules]`).
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    agent_config(
        dir,
        0,
        &format!("{}{}{extra}", file_source(dir), file_sink(dir)),
    )
}

fn append(path: &Path, lines: &[String]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    f.write_all(s.as_bytes()).unwrap();
}

fn output(dir: &Path) -> String {
    fs::read_to_string(dir.join("out/redacted.log")).unwrap_or_default()
}

/// Waits until the output has at least `n` lines.
fn wait_lines(dir: &Path, n: usize, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        let out = output(dir);
        if out.lines().count() >= n || Instant::now() > end {
            return out;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn line(file: &str, n: usize) -> String {
    format!(
        "{file} event {n} user=ann{n}@example.com from 10.1.{}.{}",
        n % 250,
        n % 200 + 1
    )
}

/// `<file> event <n>`: what identifies a test line, redacted or not.
fn key(l: &str) -> String {
    l.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" ")
}

/// Counts each `<file> event <n>` in the output. A line torn by a
/// `kill -9` in the middle of a write stands alone (the sink starts a new
/// line after it) and is not counted.
fn tally(out: &str) -> HashMap<String, usize> {
    let mut t = HashMap::new();
    for l in out.lines() {
        if !l.ends_with("[REDACTED:ipv4]") {
            continue;
        }
        assert!(
            !l.contains("@example.com"),
            "unredacted line delivered: {l}"
        );
        *t.entry(key(l)).or_default() += 1;
    }
    t
}

#[test]
fn tailing_with_rename_rotation_copytruncate_and_new_files_delivers_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "");
    let logs = d.join("logs");
    // Lines present before start are read from the beginning.
    append(
        &logs.join("a.log"),
        &(0..50).map(|n| line("a", n)).collect::<Vec<_>>(),
    );
    let agent = Agent::start(&cfg);
    let mut expected: Vec<String> = (0..50).map(|n| line("a", n)).collect();
    // The agent is up and tailing before anything is rotated.
    assert_eq!(
        wait_lines(d, 50, Duration::from_secs(20)).lines().count(),
        50
    );
    let mut n = 50;
    for round in 0..6 {
        for f in ["a", "b", "c"] {
            let batch: Vec<String> = (n..n + 40).map(|k| line(f, k)).collect();
            append(&logs.join(format!("{f}.log")), &batch);
            expected.extend(batch);
        }
        n += 40;
        if round == 2 {
            // Rename rotation of a.log while it is being written.
            fs::rename(logs.join("a.log"), logs.join("a.log.1")).unwrap();
        }
        if round == 3 {
            // copytruncate of b.log: wait until it was read, copy, truncate.
            wait_lines(d, expected.len(), Duration::from_secs(20));
            fs::copy(logs.join("b.log"), logs.join("b.log.1")).unwrap();
            OpenOptions::new()
                .write(true)
                .open(logs.join("b.log"))
                .unwrap()
                .set_len(0)
                .unwrap();
            // A new file matched by the glob appears.
            let fresh: Vec<String> = (0..30).map(|k| line("d", k)).collect();
            append(&logs.join("d.log"), &fresh);
            expected.extend(fresh);
        }
        std::thread::sleep(Duration::from_millis(60));
    }
    let out = wait_lines(d, expected.len(), Duration::from_secs(30));
    let (code, log) = agent.term();
    assert_eq!(code, Some(0), "{log}");
    let t = tally(&out);
    let missing: Vec<&String> = expected
        .iter()
        .filter(|l| !t.contains_key(&key(l)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} lines missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    let dups: Vec<_> = t.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        dups.is_empty(),
        "duplicates in a clean run: {:?}",
        &dups[..dups.len().min(3)]
    );
    assert_eq!(out.lines().count(), expected.len());
    assert!(!log.contains("@example.com"), "agent log leaked content");
}

#[test]
fn kill_9_and_restart_delivers_every_line_at_least_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "");
    let logs = d.join("logs");
    let total = 100_000;
    let writer_path = logs.join("app.log");
    let writer = std::thread::spawn(move || {
        for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
            append(
                &writer_path,
                &chunk.iter().map(|&k| line("app", k)).collect::<Vec<_>>(),
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    });
    // Kill at varied points while the agent is delivering, restart each time.
    for pause in [40u64, 110, 15, 170, 75] {
        let before = output(d).lines().count();
        let a = Agent::start(&cfg);
        // Until it delivers (if the writer is already done and everything
        // was checkpointed, nothing new comes: then just kill it).
        let end = Instant::now() + Duration::from_secs(3);
        while output(d).lines().count() <= before && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(pause));
        a.kill9();
    }
    writer.join().unwrap();
    let a = Agent::start(&cfg);
    let end = Instant::now() + Duration::from_secs(60);
    let mut out = output(d);
    while tally(&out).len() < total && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        out = output(d);
    }
    let (code, log) = a.term();
    assert_eq!(code, Some(0), "{log}");
    let t = tally(&out);
    let missing = (0..total)
        .filter(|k| !t.contains_key(&format!("app event {k}")))
        .count();
    let duplicates: usize = t.values().map(|c| c - 1).sum();
    println!("kill -9 x5: {total} lines, {missing} missing, {duplicates} duplicates");
    let _ = std::fs::write(
        std::env::temp_dir().join("redactd-kill9-result.txt"),
        format!("{total} lines, {missing} missing, {duplicates} duplicates\n"),
    );
    assert_eq!(missing, 0);
    // Duplicates come only from what was delivered but not yet
    // checkpointed when a kill hit: a line is repeated at most once per kill.
    let kills = 5;
    assert!(
        t.values().all(|c| *c <= 1 + kills),
        "a line repeated more often than there were kills"
    );
}

#[test]
fn metrics_and_readiness_match_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = write_config(d, &format!("[metrics]\naddress = \"127.0.0.1:{port}\"\n"));
    append(
        &d.join("logs/m.log"),
        &(0..100).map(|n| line("m", n)).collect::<Vec<_>>(),
    );
    let agent = Agent::start(&cfg);
    wait_lines(d, 100, Duration::from_secs(20));
    let get = |path: &str| -> String {
        let mut body = String::new();
        wait_for("the metrics endpoint", Duration::from_secs(10), || {
            body = get(port, path);
            !body.is_empty()
        });
        body
    };
    // Counters are updated right after delivery; give them a moment.
    let mut m = String::new();
    for _ in 0..50 {
        m = get("/metrics");
        if m.contains("redactd_events_out_total{sink=\"out\"} 100") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        m.contains("redactd_events_in_total{source=\"app\"} 100"),
        "{m}"
    );
    assert!(
        m.contains("redactd_events_out_total{sink=\"out\"} 100"),
        "{m}"
    );
    assert!(
        m.contains("redactd_redactions_total{rule=\"email\"} 100"),
        "{m}"
    );
    assert!(
        m.contains("redactd_redactions_total{rule=\"ipv4\"} 100"),
        "{m}"
    );
    assert!(m.contains("redactd_compliance_checked_total 100"), "{m}");
    assert!(!m.contains("@example.com"));
    assert!(get("/healthz").contains("200 OK"));
    let ready = get("/readyz");
    assert!(
        ready.contains("200 OK") && ready.contains("\"ready\":true"),
        "{ready}"
    );
    let (code, _) = agent.term();
    assert_eq!(code, Some(0));
}

#[test]
fn sigterm_drains_writes_the_checkpoint_and_a_restart_resumes_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "");
    let log = d.join("logs/s.log");
    append(&log, &(0..500).map(|n| line("s", n)).collect::<Vec<_>>());
    let a = Agent::start(&cfg);
    wait_lines(d, 500, Duration::from_secs(20));
    let (code, _) = a.term();
    assert_eq!(code, Some(0));
    let cp = fs::read_to_string(d.join("data/checkpoints/app/checkpoints.json")).unwrap();
    assert!(
        cp.contains(&format!(
            "\"offset\": {}",
            fs::metadata(&log).unwrap().len()
        )),
        "{cp}"
    );
    append(&log, &(500..600).map(|n| line("s", n)).collect::<Vec<_>>());
    let a = Agent::start(&cfg);
    let out = wait_lines(d, 600, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let (code, _) = a.term();
    assert_eq!(code, Some(0));
    let t = tally(&output(d));
    assert_eq!(out.lines().count(), 600);
    assert!(t.values().all(|c| *c == 1), "repeats after a clean restart");
}

#[test]
fn run_without_config_is_a_stdin_to_stdout_filter() {
    let o = run(
        &["run"],
        b"{\"password\":\"hunter2\",\"ip\":\"10.1.2.3\"}\nplain ann@example.com\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "{\"password\":\"[REDACTED:secret-fields]\",\"ip\":\"[REDACTED:ipv4]\"}\nplain [REDACTED:email]\n"
    );
    assert!(!stderr(&o).contains("hunter2"));
}

#[test]
fn validate_reports_config_errors_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    fs::write(&p, "[[sources]]\ntype = \"file\"\nid = \"x\"\ninclude = [\"/tmp/*.log\"]\nstart_at = \"middle\"\n").unwrap();
    let o = run(&["validate", "--config", p.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(2));
    // Inside a `[[sources]]` table the line is the table's own.
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml:1: unknown variant `middle`, expected `beginning` or `end`"),
        "{err}"
    );
    let good = dir.path().join("good.toml");
    fs::write(&good, "[[sinks]]\ntype = \"stdout\"\n").unwrap();
    let o = run(&["validate", "--config", good.to_str().unwrap()], b"");
    assert!(
        o.status.success() && stdout(&o).contains("config ok"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn sigterm_while_the_rules_compile_is_still_a_clean_exit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "");
    let a = Agent::start(&cfg);
    // Past process start-up (before `main` no handler can exist), well
    // inside rule compilation (about 400 ms in a debug build).
    std::thread::sleep(Duration::from_millis(80));
    let (code, log) = a.term();
    assert_eq!(code, Some(0), "{log}");
}

fn custom_rule(id: &str, prefix: &str) -> String {
    format!(
        r#"[[rules]]
id = "{id}"
category = "secret"
pattern = '\b{prefix}_[a-z0-9]{{8}}\b'
keywords = ["{prefix}_"]
[[rules.tests]]
hit = "k {prefix}_abcd1234"
[[rules.tests]]
miss = "k {prefix}_x"
"#
    )
}

#[test]
fn hot_reload_applies_valid_edits_and_keeps_the_old_rules_on_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rules = d.join("rules/custom.toml");
    fs::create_dir_all(rules.parent().unwrap()).unwrap();
    fs::write(&rules, custom_rule("acme-key", "acme")).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = write_config(
        d,
        &format!(
            "[metrics]\naddress = \"127.0.0.1:{port}\"\n[rules]\npaths = [\"{}\"]\n",
            rules.display()
        ),
    );
    let log = d.join("logs/r.log");
    let agent = Agent::start(&cfg);
    append(&log, &["one acme_abcd1234 zeta_abcd1234".to_string()]);
    let out = wait_lines(d, 1, Duration::from_secs(20));
    assert_eq!(out, "one [REDACTED:acme-key] zeta_abcd1234\n");

    // A broken edit: counted, old rules stay.
    fs::write(
        &rules,
        "[[rules]]\nid = \"broken\"\ncategory = \"secret\"\npattern = '(unclosed'\n",
    )
    .unwrap();
    let failures = "redactd_rule_reloads_total{result=\"failure\"}";
    let successes = "redactd_rule_reloads_total{result=\"success\"}";
    assert!(wait_metric(port, failures, 1) >= 1);
    assert_eq!(metric(&scrape(port), successes), 0);
    append(&log, &["two acme_abcd1234".to_string()]);
    let out = wait_lines(d, 2, Duration::from_secs(20));
    assert!(out.ends_with("two [REDACTED:acme-key]\n"), "{out}");

    // A valid edit takes effect without a restart.
    fs::write(&rules, custom_rule("zeta-key", "zeta")).unwrap();
    let ok = wait_metric(port, successes, 1);
    assert!(ok >= 1);
    append(&log, &["three acme_abcd1234 zeta_abcd1234".to_string()]);
    let out = wait_lines(d, 3, Duration::from_secs(20));
    assert!(
        out.ends_with("three acme_abcd1234 [REDACTED:zeta-key]\n"),
        "{out}"
    );

    // SIGHUP reloads too.
    let pid = agent.child.id().to_string();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(wait_metric(port, successes, ok + 1) > ok);
    let (code, log) = agent.term();
    assert_eq!(code, Some(0));
    assert!(log.contains("rule reload failed"), "{log}");
}

#[test]
fn the_shipped_example_config_validates() {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/agent.toml");
    let o = run_env(
        &["validate", "--config", p],
        b"",
        &[("REDACTD_HASH_KEY", "k")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A file source into an HTTP sink; `extra` goes into the sink's table.
fn http_config(d: &Path, sink_port: u16, metrics_port: u16, extra: &str) -> PathBuf {
    agent_config(
        d,
        metrics_port,
        &format!("{}{}{extra}", file_source(d), http_sink(sink_port)),
    )
}

#[test]
fn http_sink_outage_loses_nothing_keeps_order_and_flips_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (sink_port, metrics_port) = (free_port(), free_port());
    let cfg = http_config(d, sink_port, metrics_port, "");
    let agent = Agent::start(&cfg);
    let expected: Vec<String> = (0..300).map(|n| line("h", n)).collect();
    append(&d.join("logs/h.log"), &expected[..150]);
    // Nothing listens on the sink's port: the sink fails and readiness drops.
    wait_for("readiness to drop", Duration::from_secs(20), || {
        get(metrics_port, "/readyz").contains("503")
    });
    append(&d.join("logs/h.log"), &expected[150..]);
    std::thread::sleep(Duration::from_millis(300));
    // The endpoint comes up: everything arrives, in order.
    let ep = Endpoint::start(
        std::net::TcpListener::bind(("127.0.0.1", sink_port)).unwrap(),
        200,
    );
    wait_for("all lines", Duration::from_secs(40), || {
        ep.lines().len() >= 300
    });
    wait_for("readiness to return", Duration::from_secs(20), || {
        get(metrics_port, "/readyz").contains("200 OK")
    });
    let got = ep.lines();
    let keys: Vec<String> = got.iter().map(|l| key(l)).collect();
    let want: Vec<String> = (0..300).map(|n| format!("h event {n}")).collect();
    assert_eq!(keys, want, "every line once, in order");
    assert!(got.iter().all(|l| !l.contains("@example.com")));
    let m = get(metrics_port, "/metrics");
    assert!(
        metric(&m, "redactd_sink_errors_total{sink=\"collector\"}") >= 1,
        "{m}"
    );
    let (code, _) = agent.term();
    assert_eq!(code, Some(0));
}

#[test]
fn http_sink_permanent_rejection_goes_to_the_dead_letter_file_redacted_and_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (sink_port, metrics_port) = (free_port(), free_port());
    let ep = Endpoint::start(
        std::net::TcpListener::bind(("127.0.0.1", sink_port)).unwrap(),
        400,
    );
    let cfg = http_config(d, sink_port, metrics_port, "");
    let log = d.join("logs/p.log");
    append(&log, &(0..20).map(|n| line("p", n)).collect::<Vec<_>>());
    let agent = Agent::start(&cfg);
    let dlq = d.join("data/dead-letter.jsonl");
    wait_for("dead-letter records", Duration::from_secs(20), || {
        fs::read_to_string(&dlq).map_or(0, |s| s.lines().count()) >= 20
    });
    let text = fs::read_to_string(&dlq).unwrap();
    for (n, l) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["reason"], "http_400");
        assert_eq!(v["sink"], "collector");
        assert_eq!(v["source"], "app");
        assert_eq!(v["rules"], serde_json::json!(["email", "ipv4"]), "{l}");
        let payload = v["payload"].as_str().unwrap();
        assert!(
            payload.starts_with(&format!("p event {n} user=[REDACTED:email]")),
            "{payload}"
        );
    }
    assert!(
        !text.contains("@example.com"),
        "raw content in the dead-letter file"
    );
    assert!(ep.requests.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // The counter moves right after the file write: wait for it.
    assert_eq!(
        wait_metric(
            metrics_port,
            "redactd_dlq_events_total{reason=\"http_400\"}",
            20
        ),
        20
    );
    let (code, _) = agent.term();
    assert_eq!(code, Some(0));
    // Dead-lettered counts as handled: the checkpoint moved past the lines.
    let cp = fs::read_to_string(d.join("data/checkpoints/app/checkpoints.json")).unwrap();
    assert!(
        cp.contains(&format!(
            "\"offset\": {}",
            fs::metadata(&log).unwrap().len()
        )),
        "{cp}"
    );
}

#[test]
fn disk_buffer_acknowledges_while_the_sink_is_down_survives_kill_9_and_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (sink_port, metrics_port) = (free_port(), free_port());
    let cfg = http_config(
        d,
        sink_port,
        metrics_port,
        "[sinks.buffer]\ntype = \"disk\"\nmax_bytes = 10000000\nfsync = \"always\"\n",
    );
    let log = d.join("logs/k.log");
    let all: Vec<String> = (0..400).map(|n| line("k", n)).collect();
    append(&log, &all[..200]);
    let a = Agent::start(&cfg);
    // Durably buffered counts as acknowledged: the checkpoint reaches the
    // end of the file although nothing was delivered.
    let cp = d.join("data/checkpoints/app/checkpoints.json");
    let size = fs::metadata(&log).unwrap().len();
    wait_for("checkpoint at end of file", Duration::from_secs(20), || {
        fs::read_to_string(&cp).is_ok_and(|c| c.contains(&format!("\"offset\": {size}")))
    });
    a.kill9();
    append(&log, &all[200..]);
    let a = Agent::start(&cfg);
    let size = fs::metadata(&log).unwrap().len();
    wait_for("second checkpoint", Duration::from_secs(20), || {
        fs::read_to_string(&cp).is_ok_and(|c| c.contains(&format!("\"offset\": {size}")))
    });
    // Now the endpoint comes up: the buffer replays everything, in order.
    let ep = Endpoint::start(
        std::net::TcpListener::bind(("127.0.0.1", sink_port)).unwrap(),
        200,
    );
    wait_for("replay", Duration::from_secs(40), || {
        ep.lines().len() >= 400
    });
    let (code, _) = a.term();
    assert_eq!(code, Some(0));
    let keys: Vec<String> = ep.lines().iter().map(|l| key(l)).collect();
    let want: Vec<String> = (0..400).map(|n| format!("k event {n}")).collect();
    assert_eq!(keys, want, "every line once, in order, across a kill -9");
    let buffered: Vec<_> = fs::read_dir(d.join("data/buffers/collector"))
        .unwrap()
        .collect();
    assert!(!buffered.is_empty());
}

#[test]
fn memory_buffer_in_block_mode_stops_the_sources_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (sink_port, metrics_port) = (free_port(), free_port());
    let cfg = http_config(
        d,
        sink_port,
        metrics_port,
        "[sinks.buffer]\ntype = \"memory\"\nmax_events = 100\nwhen_full = \"block\"\n[engine]\nthreads = 1\nqueue_batches = 1\n",
    );
    // About 20 batches' worth (a batch is at most 2048 lines), far more
    // than the stages and the buffer hold.
    let total = 40_000;
    let all: Vec<String> = (0..total).map(|n| line("b", n)).collect();
    append(&d.join("logs/b.log"), &all);
    let a = Agent::start(&cfg);
    // With the sink down, reading stops: the unread part of the file stays
    // (lag > 0) and the read count stays put.
    wait_for("a full buffer", Duration::from_secs(20), || {
        metric(
            &get(metrics_port, "/metrics"),
            "redactd_file_lag_bytes{source=\"app\"}",
        ) > 0
            && metric(
                &get(metrics_port, "/metrics"),
                "redactd_events_in_total{source=\"app\"}",
            ) > 0
    });
    // Reading stops once the stages and the buffer are full: the count
    // holds still across a second (how soon depends on the machine's load).
    let mut last = u64::MAX;
    let mut read = 0;
    wait_for("reading to stop", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(1000));
        read = metric(
            &get(metrics_port, "/metrics"),
            "redactd_events_in_total{source=\"app\"}",
        );
        let stopped = read == last;
        last = read;
        stopped
    });
    assert!(
        read < total as u64,
        "{read} of {total} read while the sink is down"
    );
    let m2 = get(metrics_port, "/metrics");
    assert!(metric(&m2, "redactd_file_lag_bytes{source=\"app\"}") > 0);
    // The sink returns: everything arrives.
    let ep = Endpoint::start(
        std::net::TcpListener::bind(("127.0.0.1", sink_port)).unwrap(),
        200,
    );
    wait_for("all lines", Duration::from_secs(60), || {
        ep.lines().len() >= total
    });
    let (code, _) = a.term();
    assert_eq!(code, Some(0));
    assert_eq!(ep.lines().len(), total);
}

#[test]
fn the_hash_key_is_never_read_from_the_config_nor_shown_in_errors_logs_or_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = "k3y-v4lue-that-must-never-show";
    // A key written into the config in clear is refused, without echoing it.
    let bad = d.join("bad.toml");
    fs::write(&bad, format!("[rules]\nhash_key = \"{key}\"\n")).unwrap();
    let o = run(&["validate", "--config", bad.to_str().unwrap()], b"");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown field `hash_key`"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(key) && !stdout(&o).contains(key));
    // From the environment: used, and never printed.
    let rules = d.join("hash.toml");
    fs::write(
        &rules,
        "[[rules]]\nid = \"user-hash\"\ncategory = \"pii\"\nkeys = [\"user_id\"]\naction = \"hash\"\n\
         [[rules.tests]]\nhit = '{\"user_id\":\"u-1\"}'\n[[rules.tests]]\nmiss = '{\"id\":\"u-1\"}'\n",
    )
    .unwrap();
    let port = free_port();
    let cfg = write_config(
        d,
        &format!(
            "[metrics]\naddress = \"127.0.0.1:{port}\"\n[rules]\npaths = [\"{}\"]\nhash_key_env = \"REDACTD_TEST_HASH_KEY\"\n",
            rules.display()
        ),
    );
    let child = Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("REDACTD_TEST_HASH_KEY", key)
        .env("RUST_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let agent = Agent { child };
    append(
        &d.join("logs/h.log"),
        &["{\"user_id\":\"u-1\"}".to_string()],
    );
    let out = wait_lines(d, 1, Duration::from_secs(20));
    assert!(out.starts_with("{\"user_id\":\"[HASH:user-hash:"), "{out}");
    let pages = ["/metrics", "/healthz", "/readyz"].map(|p| get(port, p));
    let (code, log) = agent.term();
    assert_eq!(code, Some(0));
    assert!(!log.contains(key), "the key is in the agent's log");
    assert!(
        pages.iter().all(|p| !p.contains(key)),
        "the key is on an endpoint"
    );
    assert!(!out.contains(key));
}
