//! The agent as a node's log collector: a temporary directory laid out like
//! a Kubernetes node's `/var/log/pods` + `/var/log/containers` (symlinks
//! included), CRI and Docker json-file writers with partial lines, kubelet
//! rotation, a container restart and a pod deletion while the agent runs.

mod common;

use common::agent::*;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One container's log as the kubelet and the runtime lay it out.
struct Container {
    ns: &'static str,
    pod: &'static str,
    uid: &'static str,
    name: &'static str,
    root: PathBuf,
    restart: u32,
    id: String,
    docker: bool,
    seq: u64,
}

impl Container {
    fn new(
        root: &Path,
        ns: &'static str,
        pod: &'static str,
        uid: &'static str,
        name: &'static str,
        docker: bool,
    ) -> Container {
        let mut c = Container {
            ns,
            pod,
            uid,
            name,
            root: root.to_path_buf(),
            restart: 0,
            id: String::new(),
            docker,
            seq: 0,
        };
        c.start();
        c
    }

    fn dir(&self) -> PathBuf {
        self.root
            .join("var/log/pods")
            .join(format!("{}_{}_{}", self.ns, self.pod, self.uid))
            .join(self.name)
    }

    fn file(&self) -> PathBuf {
        self.dir().join(format!("{}.log", self.restart))
    }

    fn link(&self) -> PathBuf {
        self.root.join("var/log/containers").join(format!(
            "{}_{}_{}-{}.log",
            self.pod, self.ns, self.name, self.id
        ))
    }

    /// (Re)starts the container: a new `<n>.log` and a new symlink, as the
    /// kubelet does; the old symlink goes.
    fn start(&mut self) {
        if !self.id.is_empty() {
            let _ = fs::remove_file(self.link());
            self.restart += 1;
        }
        self.id = format!(
            "{:064x}",
            (self.restart as u64 + 1) * 0x9e37_79b9 + self.name.len() as u64
        );
        fs::create_dir_all(self.dir()).unwrap();
        fs::create_dir_all(self.root.join("var/log/containers")).unwrap();
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file())
            .unwrap();
        symlink(self.file(), self.link()).unwrap();
    }

    fn time(&mut self) -> String {
        self.seq += 1;
        format!(
            "2026-11-22T10:00:{:02}.{:09}Z",
            self.seq / 1_000_000 % 60,
            self.seq
        )
    }

    /// Writes one application line, split into `parts` runtime records.
    fn write(&mut self, message: &str, parts: usize, stderr: bool) {
        let stream = if stderr { "stderr" } else { "stdout" };
        let chunks = split(message, parts);
        let mut out = String::new();
        for (i, c) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let t = self.time();
            if self.docker {
                let log = if last {
                    format!("{c}\n")
                } else {
                    c.to_string()
                };
                out.push_str(
                    &serde_json::json!({"log": log, "stream": stream, "time": t}).to_string(),
                );
            } else {
                out.push_str(&format!(
                    "{t} {stream} {} {c}",
                    if last { "F" } else { "P" }
                ));
            }
            out.push('\n');
        }
        let mut f = OpenOptions::new().append(true).open(self.file()).unwrap();
        f.write_all(out.as_bytes()).unwrap();
    }

    fn raw(&self, line: &str) {
        let mut f = OpenOptions::new().append(true).open(self.file()).unwrap();
        writeln!(f, "{line}").unwrap();
    }

    /// Kubelet rotation: `0.log` → `0.log.<timestamp>`, a new `0.log`.
    fn rotate(&self, stamp: &str) -> PathBuf {
        let rotated = PathBuf::from(format!("{}.{stamp}", self.file().display()));
        fs::rename(self.file(), &rotated).unwrap();
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.file())
            .unwrap();
        rotated
    }
}

/// Splits `s` into `n` pieces at character boundaries (the last gets the
/// rest).
fn split(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The application line number `n` of container `c`: text or JSON, with
/// planted secrets.
fn message(c: &str, n: usize) -> String {
    if n.is_multiple_of(3) {
        format!(r#"{{"evt":"{c}-{n}","user":"ann{n}@example.com","password":"hunter2","ok":true}}"#)
    } else {
        format!(
            "evt {c}-{n} login user=ann{n}@example.com password=hunter2 from 10.2.3.{}",
            n % 250
        )
    }
}

struct Event {
    key: String,
    v: serde_json::Value,
}

fn events(out: &str) -> Vec<Event> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("output line not JSON ({e}): {l}"));
            let key = match &v["message"] {
                serde_json::Value::String(s) => s.split(' ').nth(1).unwrap_or("").to_string(),
                o => o["evt"].as_str().unwrap_or("").to_string(),
            };
            Event { key, v }
        })
        .collect()
}

#[test]
fn node_layout_with_cri_and_docker_partials_rotation_restart_and_pod_deletion_delivers_every_line_once_with_metadata()
 {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let port = free_port();
    let cfg = agent_config(
        root,
        port,
        &format!(
            r#"[[sources]]
type = "file"
id = "containers"
include = ["{r}/var/log/containers/*.log"]
format = "auto"
poll_interval_ms = 20
rotate_wait_ms = 300
[sources.fields]
merge_json = true
[sources.kubernetes]
exclude_namespaces = ["kube-*"]
namespace_metric = true
[[sinks]]
type = "file"
id = "out"
path = "{r}/out/events.jsonl"
"#,
            r = root.display()
        ),
    );
    let mut web = Container::new(root, "shop", "web-7d4b9c-x2x", "uid-web", "nginx", false);
    let mut app = Container::new(root, "shop", "web-7d4b9c-x2x", "uid-web", "app", false);
    let mut api = Container::new(root, "payments", "api-0", "uid-api", "api", true);
    let mut dns = Container::new(
        root,
        "kube-system",
        "coredns-1",
        "uid-dns",
        "coredns",
        false,
    );

    let agent = Agent::start(&cfg);
    let out_file = root.join("out/events.jsonl");
    let count = || {
        fs::read_to_string(&out_file)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let mut expected: HashMap<String, (&str, &str, &str)> = HashMap::new();
    let mut expect = |c: &Container, key: String| {
        expected.insert(key, (c.ns, c.pod, c.name));
    };

    // Phase 1: whole lines, partial lines (a secret split across parts),
    // stderr interleaved with an open stdout join.
    for n in 0..60 {
        for c in [&mut web, &mut app, &mut api, &mut dns] {
            let parts = 1 + n % 4;
            c.write(&message(c.name, n), parts, n % 5 == 0);
            if c.ns != "kube-system" {
                expect(c, format!("{}-{n}", c.name));
            }
        }
    }
    // A line in neither format: still an event, redacted as text, counted.
    web.raw("garbage password=hunter2 evt-less");
    wait_for("phase 1", Duration::from_secs(30), || count() >= 181);

    // Phase 2: kubelet rotation of web's 0.log, later gzipped; more lines
    // before and after.
    for n in 60..80 {
        web.write(&message("nginx", n), 2, false);
        expect(&web, format!("nginx-{n}"));
    }
    let rotated = web.rotate("20261122-100000");
    for n in 80..100 {
        web.write(&message("nginx", n), 3, false);
        expect(&web, format!("nginx-{n}"));
    }
    // Phase 3: app restarts (1.log, new symlink, old one removed).
    for n in 60..70 {
        app.write(&message("app", n), 1, false);
        expect(&app, format!("app-{n}"));
    }
    app.start();
    for n in 70..100 {
        app.write(&message("app", n), 2, n % 2 == 0);
        expect(&app, format!("app-{n}"));
    }
    wait_for("rotation and restart", Duration::from_secs(30), || {
        count() >= 181 + 80
    });
    // Gzip the rotated file as the kubelet does later.
    {
        let data = fs::read(&rotated).unwrap();
        let gz = fs::File::create(format!("{}.gz", rotated.display())).unwrap();
        let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
        enc.write_all(&data).unwrap();
        enc.finish().unwrap();
        fs::remove_file(&rotated).unwrap();
    }

    // Phase 4: the payments pod writes its last lines and is deleted.
    for n in 60..80 {
        api.write(&message("api", n), 2, false);
        expect(&api, format!("api-{n}"));
    }
    fs::remove_file(api.link()).unwrap();
    fs::remove_dir_all(root.join("var/log/pods/payments_api-0_uid-api")).unwrap();
    for n in 100..110 {
        web.write(&message("nginx", n), 1, false);
        expect(&web, format!("nginx-{n}"));
    }
    let total = expected.len() + 1;
    wait_for("every line", Duration::from_secs(30), || count() >= total);
    std::thread::sleep(Duration::from_millis(500)); // room for duplicates to show
    wait_metric(
        port,
        r#"redactd_secondary_failures_total{kind="malformed_envelope",stage="decode"}"#,
        1,
    );
    let metrics = scrape(port);
    let (code, _log) = agent.term();
    assert_eq!(code, Some(0));

    let out = fs::read_to_string(&out_file).unwrap();
    assert!(
        !out.contains("@example.com") && !out.contains("hunter2"),
        "secret delivered"
    );
    assert!(
        !out.contains("kube-system") && !out.contains("coredns"),
        "excluded namespace delivered"
    );
    let evs = events(&out);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &evs {
        if e.v.get("stream").is_none() {
            // The malformed line: no time, no stream, but its metadata.
            assert_eq!(e.v["kubernetes"]["container"], "nginx", "{}", e.v);
            assert!(e.v.get("time").is_none(), "{}", e.v);
            assert!(
                e.v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("garbage "))
            );
            continue;
        }
        *seen.entry(e.key.clone()).or_default() += 1;
        let (ns, pod, container) = expected
            .get(&e.key)
            .unwrap_or_else(|| panic!("unexpected event {}", e.v));
        let k = &e.v["kubernetes"];
        assert_eq!(
            (
                k["namespace"].as_str(),
                k["pod"].as_str(),
                k["container"].as_str()
            ),
            (Some(*ns), Some(*pod), Some(*container)),
            "{}",
            e.v
        );
        // Through the symlink's target: the pod uid too.
        assert!(
            k["pod_uid"].as_str().is_some_and(|u| u.starts_with("uid-")),
            "{}",
            e.v
        );
        assert!(
            k["container_id"].as_str().is_some_and(|u| u.len() == 64),
            "{}",
            e.v
        );
        assert!(
            e.v["time"]
                .as_str()
                .is_some_and(|t| t.starts_with("2026-11-22T")),
            "{}",
            e.v
        );
        assert!(matches!(e.v["stream"].as_str(), Some("stdout" | "stderr")));
        // JSON payloads are objects (merge_json) with the same keys,
        // redacted field by field.
        if let Some(o) = e.v["message"].as_object() {
            let keys: Vec<&str> = o.keys().map(String::as_str).collect();
            assert_eq!(keys, ["evt", "user", "password", "ok"]);
            assert_eq!(o["password"], "[REDACTED:secret-fields]");
        }
    }
    let missing: Vec<&String> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert!(missing.is_empty(), "missing events: {missing:?}");
    let dups: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated events: {dups:?}");
    // A stderr event really is marked so.
    assert!(
        evs.iter()
            .any(|e| e.key == "nginx-0" && e.v["stream"] == "stderr")
    );

    assert!(
        metrics.contains(
            r#"redactd_secondary_failures_total{kind="malformed_envelope",stage="decode"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"redactd_kubernetes_events_total{namespace="shop",source="containers"}"#),
        "{metrics}"
    );
    assert!(!metrics.contains("kube-system"), "{metrics}");
}

#[test]
fn a_join_past_max_message_bytes_is_cut_counted_and_still_redacted() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let port = free_port();
    let cfg = agent_config(
        root,
        port,
        &format!(
            r#"[[sources]]
type = "file"
id = "cri"
include = ["{r}/logs/*.log"]
format = "cri"
max_message_bytes = 1024
poll_interval_ms = 20
[[sinks]]
type = "file"
id = "out"
path = "{r}/out/events.jsonl"
"#,
            r = root.display()
        ),
    );
    fs::create_dir_all(root.join("logs")).unwrap();
    // 40 partial records of 100 bytes, each with a secret, then the end.
    let mut s = String::new();
    for i in 0..40 {
        s.push_str(&format!(
            "2026-11-22T10:00:00.{i:09}Z stdout P {:<100}",
            format!("part{i} user{i}@example.com")
        ));
        s.push('\n');
    }
    s.push_str("2026-11-22T10:00:01Z stdout F the end\n");
    fs::write(root.join("logs/c.log"), s).unwrap();
    let agent = Agent::start(&cfg);
    let out_file = root.join("out/events.jsonl");
    wait_for("output", Duration::from_secs(30), || {
        fs::read_to_string(&out_file)
            .unwrap_or_default()
            .contains("the end")
    });
    let overflows = wait_metric(
        port,
        r#"redactd_secondary_failures_total{kind="partial_overflow",stage="decode"}"#,
        3,
    );
    assert_eq!(agent.term().0, Some(0));
    let out = fs::read_to_string(&out_file).unwrap();
    assert!(!out.contains("@example.com"), "e-mail delivered: {out}");
    let evs = events(&out);
    // 4000 bytes in cuts of at least 1024: four events, plus the rest.
    assert!(evs.len() >= 4, "{out}");
    let joined: String = evs
        .iter()
        .map(|e| e.v["message"].as_str().unwrap())
        .collect();
    for i in 0..40 {
        assert!(joined.contains(&format!("part{i} ")), "part {i} lost");
    }
    assert!(overflows >= 3, "{overflows} overflows counted");
}

#[test]
fn kill_9_with_a_join_open_resumes_at_its_first_part() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let cfg = agent_config(
        root,
        0,
        &format!(
            r#"[[sources]]
type = "file"
id = "cri"
include = ["{r}/var/log/containers/*.log"]
format = "cri"
poll_interval_ms = 20
[sources.kubernetes]
[[sinks]]
type = "file"
id = "out"
path = "{r}/out/events.jsonl"
"#,
            r = root.display()
        ),
    );
    let mut c = Container::new(root, "shop", "web-1", "uid-1", "app", false);
    c.write("evt first user=ann@example.com", 1, false);
    // Half of the next line: its e-mail split across the two parts.
    c.raw("2026-11-22T10:00:01Z stdout P evt second user=bob@exa");
    let agent = Agent::start(&cfg);
    let out_file = root.join("out/events.jsonl");
    let read = || fs::read_to_string(&out_file).unwrap_or_default();
    wait_for("first line", Duration::from_secs(30), || {
        read().contains("evt first")
    });
    std::thread::sleep(Duration::from_millis(300)); // several checkpoints
    agent.kill9();
    c.raw("2026-11-22T10:00:01Z stdout F mple.com done");
    let agent = Agent::start(&cfg);
    wait_for("second line", Duration::from_secs(30), || {
        read().contains("done")
    });
    assert_eq!(agent.term().0, Some(0));
    let out = read();
    assert!(!out.contains("@example.com"), "{out}");
    let second: Vec<_> = events(&out)
        .into_iter()
        .filter(|e| e.key == "second")
        .collect();
    assert_eq!(second.len(), 1, "{out}");
    assert_eq!(
        second[0].v["message"], "evt second user=[REDACTED:email] done",
        "the join lost its first part across the restart"
    );
    assert_eq!(second[0].v["kubernetes"]["pod"], "web-1");
}

#[test]
fn sources_split_by_namespace_route_to_their_own_sinks() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let cfg = agent_config(
        root,
        0,
        &format!(
            r#"[[sources]]
type = "file"
id = "shop"
include = ["{r}/var/log/containers/*.log"]
format = "cri"
poll_interval_ms = 20
[sources.kubernetes]
include_namespaces = ["shop"]
[[sources]]
type = "file"
id = "others"
include = ["{r}/var/log/containers/*.log"]
format = "cri"
poll_interval_ms = 20
[sources.kubernetes]
exclude_namespaces = ["shop"]
[[sinks]]
type = "file"
id = "shop-out"
path = "{r}/out/shop.jsonl"
inputs = ["shop"]
[[sinks]]
type = "file"
id = "others-out"
path = "{r}/out/others.jsonl"
inputs = ["others"]
"#,
            r = root.display()
        ),
    );
    let mut shop = Container::new(root, "shop", "web-1", "uid-1", "app", false);
    let mut pay = Container::new(root, "payments", "api-1", "uid-2", "api", false);
    for n in 0..50 {
        shop.write(&message("shop", n), 1 + n % 2, false);
        pay.write(&message("pay", n), 1 + n % 3, false);
    }
    let agent = Agent::start(&cfg);
    let read = |f: &str| fs::read_to_string(root.join("out").join(f)).unwrap_or_default();
    wait_for("both sinks", Duration::from_secs(30), || {
        read("shop.jsonl").lines().count() >= 50 && read("others.jsonl").lines().count() >= 50
    });
    assert_eq!(agent.term().0, Some(0));
    for (file, ns) in [("shop.jsonl", "shop"), ("others.jsonl", "payments")] {
        let evs = events(&read(file));
        assert_eq!(evs.len(), 50, "{file}");
        assert!(
            evs.iter().all(|e| e.v["kubernetes"]["namespace"] == ns),
            "{file} has events of another namespace"
        );
    }
}
