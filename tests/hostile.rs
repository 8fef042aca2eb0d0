//! Hostile surroundings for the agent: a full disk (a file size limit set
//! on the running process, then lifted), globs that match directories,
//! FIFOs, symlink loops and a file replaced by a FIFO; the modes of the
//! files the agent creates; huge inputs in bounded memory.

mod common;

use common::agent::*;
use common::http::Endpoint;
use common::*;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// An agent config tailing `logs/*.log` in `dir` into `sink` (a
/// `[[sinks]]` table), with metrics on `port`.
fn config(dir: &Path, port: u16, sink: &str) -> std::path::PathBuf {
    agent_config(dir, port, &format!("{}{sink}", file_source(dir)))
}

/// The config with a file sink at `out/redacted.log`; `extra` goes into
/// the sink's table.
fn write_config(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    config(dir, port, &format!("{}{extra}", file_sink(dir)))
}

/// Starts `redactd run` with files it writes limited to `kib` KiB (a full
/// disk: SIGXFSZ is ignored, so writes past the limit fail with EFBIG).
/// Lift the limit with [`lift_file_limit`]. Stdout is piped when `stdout`.
fn start_on_full_disk(cfg: &Path, kib: u64, stdout: bool) -> Agent {
    let child = Command::new("bash")
        .args([
            "-c",
            &format!(
                "trap '' XFSZ; ulimit -S -f {kib}; exec {} run --config {}",
                bin(),
                cfg.display()
            ),
        ])
        .stdin(Stdio::null())
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Agent { child }
}

/// Space comes back: the agent's file size limit is lifted.
fn lift_file_limit(agent: &Agent) {
    let st = Command::new("prlimit")
        .args(["--pid", &agent.child.id().to_string(), "--fsize=unlimited:"])
        .status()
        .unwrap();
    assert!(st.success());
}

/// The checkpoint file of source `app`: `(path, offset)` pairs.
fn checkpoints(dir: &Path) -> Option<Vec<(String, u64)>> {
    let p = dir.join("data/checkpoints/app/checkpoints.json");
    let bytes = fs::read(p).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("checkpoint file is not valid JSON: {e}"));
    Some(
        v["files"]
            .as_array()
            .expect("files array")
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().expect("path").to_string(),
                    f["offset"].as_u64().expect("offset"),
                )
            })
            .collect(),
    )
}

fn lines(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{prefix} {i} user=ann{i}@example.com password=hunter2 {}\n",
                "x".repeat(60)
            )
        })
        .collect()
}

#[test]
fn a_full_disk_stops_acknowledging_says_why_and_recovers_without_loss_or_torn_lines() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(d.path(), port, "");
    fs::write(d.path().join("logs/a.log"), lines("ev", 2000)).unwrap();
    // Files the agent writes may grow to 64 KiB: the sink's output fills
    // that "disk" early.
    let agent = start_on_full_disk(&cfg, 64, false);
    // The sink fails, the agent says so and is not ready; the checkpoint
    // does not pass what was not written.
    wait_for("sink failing", Duration::from_secs(30), || {
        let r = get(port, "/readyz");
        r.contains(" 503 ") && r.contains("sink:out")
    });
    let errors = wait_metric(port, r#"redactd_sink_errors_total{sink="out"}"#, 2);
    assert!(errors >= 2);
    let out = fs::read_to_string(d.path().join("out/redacted.log")).unwrap_or_default();
    assert!(out.len() <= 64 * 1024);
    assert!(
        out.is_empty() || out.ends_with('\n'),
        "a torn line is left on the full disk"
    );
    // Space comes back.
    lift_file_limit(&agent);
    wait_for("all lines after recovery", Duration::from_secs(60), || {
        fs::read_to_string(d.path().join("out/redacted.log"))
            .unwrap_or_default()
            .lines()
            .count()
            >= 2000
    });
    wait_for("ready again", Duration::from_secs(30), || {
        get(port, "/readyz").contains(" 200 ")
    });
    let (code, log) = agent.term();
    assert_eq!(code, Some(0));
    assert!(
        log.contains("File too large") || log.contains("too large"),
        "the agent did not say why: {log}"
    );
    let out = fs::read_to_string(d.path().join("out/redacted.log")).unwrap();
    let mut ids: Vec<usize> = out
        .lines()
        .map(|l| {
            assert!(
                l.starts_with("ev ") && l.ends_with(&"x".repeat(60)),
                "torn or glued line: {l:.80}"
            );
            l.split(' ').nth(1).unwrap().parse().unwrap()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2000, "lines lost");
}

/// The ids of well-formed `prefix <id> ...` lines, each once.
fn distinct_ids(lines: &[String], prefix: &str) -> std::collections::BTreeSet<usize> {
    lines
        .iter()
        .filter(|l| l.starts_with(prefix) && l.ends_with(&"x".repeat(60)))
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .collect()
}

#[test]
fn a_full_disk_under_the_disk_buffer_stops_acknowledging_and_loses_nothing_when_space_returns() {
    let d = tempfile::tempdir().unwrap();
    let (port, sink_port) = (free_port(), free_port());
    let sink = format!(
        "{}[sinks.buffer]\ntype = \"disk\"\nmax_bytes = 100000000\nfsync = \"always\"\n",
        http_sink(sink_port)
    );
    let cfg = config(d.path(), port, &sink);
    let log = d.path().join("logs/a.log");
    fs::write(&log, lines("db", 3000)).unwrap();
    let log_len = fs::metadata(&log).unwrap().len();
    // The collector is down, so everything goes to the disk buffer, whose
    // segment cannot grow past 64 KiB: a batch record fails part way
    // through. (Found this way: the torn part was cut off, but the writer's
    // position was not moved back, leaving a hole the reader took for a
    // corrupt record — and skipped acknowledged events with it.)
    let agent = start_on_full_disk(&cfg, 64, false);
    let failures = wait_metric(
        port,
        r#"redactd_secondary_failures_total{kind="write_error",stage="buffer"}"#,
        1,
    );
    assert!(failures >= 1, "the buffer write failure is not counted");
    std::thread::sleep(Duration::from_millis(500));
    // Not acknowledged: the checkpoint stays short of what could not be
    // buffered.
    let acked: u64 = checkpoints(d.path())
        .unwrap_or_default()
        .iter()
        .map(|(_, o)| *o)
        .sum();
    assert!(
        acked < log_len / 2,
        "checkpoint at {acked} of {log_len} bytes while the buffer cannot take them"
    );
    let seg_bytes: u64 = fs::read_dir(d.path().join("data/buffers"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|e| fs::read_dir(e.path()).into_iter().flatten().flatten())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(seg_bytes <= 64 * 1024 + 4096, "{seg_bytes}");
    // Space comes back, then the collector.
    lift_file_limit(&agent);
    let ep = Endpoint::start(
        std::net::TcpListener::bind(("127.0.0.1", sink_port)).unwrap(),
        200,
    );
    wait_for(
        "all lines at the collector",
        Duration::from_secs(60),
        || distinct_ids(&ep.lines(), "db ").len() >= 3000,
    );
    wait_for(
        "checkpoint at the end of the file",
        Duration::from_secs(20),
        || checkpoints(d.path()).is_some_and(|c| c.iter().map(|(_, o)| *o).sum::<u64>() == log_len),
    );
    let (code, log) = agent.term();
    assert_eq!(code, Some(0));
    assert!(log.contains("disk buffer write failed"), "{log}");
    let got = ep.lines();
    assert!(
        got.iter()
            .all(|l| !l.contains("hunter2") && !l.contains("@example.com")),
        "unredacted line delivered"
    );
    assert_eq!(distinct_ids(&got, "db ").len(), 3000, "lines lost");
    assert!(
        got.iter()
            .all(|l| l.starts_with("db ") && l.ends_with(&"x".repeat(60))),
        "a torn record was replayed"
    );
}

#[test]
fn a_checkpoint_file_on_a_full_disk_is_retried_until_space_returns_and_then_resumed_from() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        d.path(),
        port,
        "[[sinks]]\ntype = \"stdout\"\nid = \"out\"\n",
    );
    let log = d.path().join("logs/a.log");
    fs::write(&log, lines("ck", 500)).unwrap();
    // No file may grow at all: the checkpoint cannot be written, while
    // delivery to stdout (a pipe) goes on.
    let mut agent = start_on_full_disk(&cfg, 0, true);
    let out = collect_lines(agent.child.stdout.take().unwrap());
    wait_for("500 lines on stdout", Duration::from_secs(30), || {
        out.lock().unwrap().len() >= 500
    });
    let fails = wait_metric(
        port,
        r#"redactd_secondary_failures_total{kind="checkpoint_write",stage="source"}"#,
        2,
    );
    assert!(fails >= 2, "checkpoint failures not counted");
    assert!(
        checkpoints(d.path()).is_none(),
        "a checkpoint appeared on a full disk"
    );
    let log_len = fs::metadata(&log).unwrap().len();
    lift_file_limit(&agent);
    wait_for(
        "checkpoint written once space returns",
        Duration::from_secs(20),
        || checkpoints(d.path()).is_some_and(|c| c.iter().map(|(_, o)| *o).sum::<u64>() == log_len),
    );
    agent.kill9();
    // A restart resumes from that checkpoint: only new lines come out.
    let mut again = start_on_full_disk(&cfg, 1 << 30, true);
    let out2 = collect_lines(again.child.stdout.take().unwrap());
    let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, lines("new", 50).as_bytes()).unwrap();
    wait_for("50 new lines", Duration::from_secs(30), || {
        out2.lock().unwrap().len() >= 50
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = out2.lock().unwrap().clone();
    assert_eq!(got.len(), 50, "lines before the checkpoint were repeated");
    assert!(got.iter().all(|l| l.starts_with("new ")));
    let (code, log) = again.term();
    assert_eq!(code, Some(0));
    let first = out.lock().unwrap().clone();
    assert_eq!(distinct_ids(&first, "ck ").len(), 500);
    assert!(first.iter().chain(&got).all(|l| !l.contains("hunter2")));
    assert!(!log.contains("cannot write checkpoint") || log.contains("written again"));
}

/// Collects the lines of a child's stdout on a thread.
fn collect_lines(
    stdout: std::process::ChildStdout,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            l.lock().unwrap().push(line);
        }
    });
    lines
}

/// An `LD_PRELOAD` shim that stretches the agent's checkpoint writes so a
/// test can kill it inside one: the first `write` to `checkpoints.json.tmp`
/// writes half its bytes and then sleeps, and the `rename` of that file
/// sleeps before renaming (`REDACTD_SLOW_CHECKPOINT_MS` each); each pause
/// is announced as a line (`write`, `rename`) in `REDACTD_SHIM_EVENTS`.
/// Built with the C compiler every Rust toolchain needs as its linker.
fn slow_checkpoint_shim(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("slowckpt.c");
    fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static const char SUFFIX[] = "checkpoints.json.tmp";
static unsigned delay_us(void) {
    const char *v = getenv("REDACTD_SLOW_CHECKPOINT_MS");
    return v ? (unsigned)atoi(v) * 1000u : 0u;
}
static ssize_t (*real_write)(int, const void *, size_t);
static void announce(const char *what) {
    const char *p = getenv("REDACTD_SHIM_EVENTS");
    if (!p) return;
    int fd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0) return;
    real_write(fd, what, strlen(what));
    close(fd);
}
static int is_tmp(const char *p) {
    size_t n = strlen(p), k = sizeof(SUFFIX) - 1;
    return n >= k && strcmp(p + n - k, SUFFIX) == 0;
}
ssize_t write(int fd, const void *buf, size_t n) {
    if (!real_write) real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    ssize_t (*real)(int, const void *, size_t) = real_write;
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t t = readlink(link, target, sizeof target - 1);
    if (n > 1 && t > 0) {
        target[t] = 0;
        if (is_tmp(target) && lseek(fd, 0, SEEK_CUR) == 0) {
            ssize_t w = real(fd, buf, n / 2);
            announce("write\n");
            usleep(delay_us());
            return w;
        }
    }
    return real(fd, buf, n);
}
int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    if (!real_write) real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (is_tmp(from)) {
        announce("rename\n");
        usleep(delay_us());
    }
    return real(from, to);
}
"#,
    )
    .unwrap();
    let so = dir.join("slowckpt.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let st = Command::new(cc)
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .status()
        .unwrap();
    assert!(st.success(), "building the LD_PRELOAD shim failed");
    so
}

#[test]
fn kill_9_inside_a_checkpoint_write_leaves_the_previous_checkpoint_valid_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let shim = slow_checkpoint_shim(d.path());
    let cfg = write_config(d.path(), port, "");
    // Several files, so the checkpoint has several entries to get wrong.
    let logs: Vec<_> = (0..20)
        .map(|i| d.path().join(format!("logs/f{i:02}.log")))
        .collect();
    let mut seq = 0usize;
    let mut write_batch = |n: usize| {
        for _ in 0..n {
            let p = &logs[seq % logs.len()];
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap();
            std::io::Write::write_all(
                &mut f,
                format!("kl {seq} user=ann{seq}@example.com {}\n", "x".repeat(60)).as_bytes(),
            )
            .unwrap();
            seq += 1;
        }
    };
    write_batch(2000);
    let tmp = d.path().join("data/checkpoints/app/checkpoints.json.tmp");
    let events = d.path().join("shim-events");
    let count = |what: &str| {
        fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == what)
            .count()
    };
    let (mut mid_write, mut before_rename) = (0, 0);
    for round in 0..6u32 {
        let child = Command::new(bin())
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("LD_PRELOAD", &shim)
            .env("REDACTD_SLOW_CHECKPOINT_MS", "400")
            .env("REDACTD_SHIM_EVENTS", &events)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = Agent { child };
        // Wait until a checkpoint write pauses, then kill inside it: half
        // written (even rounds) or written but not yet renamed (odd).
        let what = if round % 2 == 0 { "write" } else { "rename" };
        let before = count(what);
        wait_for(
            "a checkpoint write to pause",
            Duration::from_secs(30),
            || count(what) > before,
        );
        std::thread::sleep(Duration::from_millis(100));
        let partial = fs::read(&tmp).unwrap_or_default();
        agent.kill9();
        match serde_json::from_slice::<serde_json::Value>(&partial) {
            Err(_) => mid_write += 1,
            Ok(_) => before_rename += 1,
        }
        // The checkpoint is the previous one, whole, and points nowhere
        // past the end of a file.
        if let Some(c) = checkpoints(d.path()) {
            for (path, off) in c {
                let len = fs::metadata(&path).map_or(0, |m| m.len());
                assert!(off <= len, "round {round}: {path} at {off} > size {len}");
            }
        }
        write_batch(200);
    }
    assert!(
        mid_write >= 2 && before_rename >= 2,
        "kills did not land inside writes: {mid_write} half-written, {before_rename} before rename"
    );
    let total = seq;
    let agent = Agent::start(&cfg);
    let out = d.path().join("out/redacted.log");
    wait_for("every line delivered", Duration::from_secs(60), || {
        let got: Vec<String> = fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        distinct_ids(&got, "kl ").len() >= total
    });
    let (code, _) = agent.term();
    assert_eq!(code, Some(0));
    let text = fs::read_to_string(&out).unwrap();
    assert!(!text.contains("@example.com"));
    eprintln!(
        "kill -9 inside checkpoint writes: {mid_write} with the new checkpoint half written, \
         {before_rename} written but not renamed; {total} lines, {} delivered, 0 lost",
        text.lines().count()
    );
}

#[test]
fn an_unreadable_file_is_skipped_with_a_warning_and_picked_up_once_readable() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(d.path(), port, "");
    let locked = d.path().join("logs/locked.log");
    fs::write(d.path().join("logs/good.log"), lines("ok", 100)).unwrap();
    fs::write(&locked, lines("lk", 50)).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads any file, whatever its mode: run the agent as `nobody`
    // then, in directories it may use.
    let as_root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if as_root {
        for sub in ["", "logs", "data", "out"] {
            let p = d.path().join(sub);
            fs::create_dir_all(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
        }
        fs::set_permissions(
            d.path().join("logs/good.log"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        // The build may sit where `nobody` cannot reach it (under /root):
        // run a copy from the test's directory.
        let copy = d.path().join("redactd");
        fs::copy(bin(), &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&copy);
        c
    } else {
        Command::new(bin())
    };
    let child = cmd
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let agent = Agent { child };
    let out = d.path().join("out/redacted.log");
    let read_out = || -> Vec<String> {
        fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    wait_for("the readable file's lines", Duration::from_secs(30), || {
        distinct_ids(&read_out(), "ok ").len() == 100
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(distinct_ids(&read_out(), "lk ").is_empty());
    // Readable now: picked up without a restart.
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o644)).unwrap();
    wait_for("the unlocked file's lines", Duration::from_secs(30), || {
        distinct_ids(&read_out(), "lk ").len() == 50
    });
    let (code, log) = agent.term();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("cannot open file") && log.contains("locked.log"),
        "no warning naming the file: {log}"
    );
    assert_eq!(
        log.matches("cannot open file").count(),
        1,
        "warned once, not on every scan"
    );
}

#[test]
fn directories_fifos_symlink_loops_and_a_file_replaced_by_a_fifo_are_skipped_and_the_rest_flows() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(d.path(), port, "");
    let logs = d.path().join("logs");
    fs::create_dir_all(logs.join("dir.log")).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(logs.join("fifo.log"))
            .status()
            .unwrap()
            .success()
    );
    symlink(logs.join("loop2.log"), logs.join("loop1.log")).unwrap();
    symlink(logs.join("loop1.log"), logs.join("loop2.log")).unwrap();
    symlink(d.path().join("missing"), logs.join("dangling.log")).unwrap();
    fs::write(logs.join("good.log"), lines("good", 100)).unwrap();
    fs::write(logs.join("replaced.log"), lines("repl", 50)).unwrap();
    let agent = Agent::start(&cfg);
    let out = d.path().join("out/redacted.log");
    let count = || fs::read_to_string(&out).unwrap_or_default().lines().count();
    wait_for("first lines", Duration::from_secs(30), || count() >= 150);
    // replaced.log becomes a FIFO: its old content is already read, the
    // FIFO is skipped (a reader would block forever on it).
    let tmp = logs.join("fifo-tmp");
    assert!(Command::new("mkfifo").arg(&tmp).status().unwrap().success());
    fs::rename(&tmp, logs.join("replaced.log")).unwrap();
    fs::write(logs.join("late.log"), lines("late", 100)).unwrap();
    wait_for("lines after the FIFO", Duration::from_secs(30), || {
        count() >= 250
    });
    assert!(get(port, "/readyz").contains(" 200 "), "not ready");
    let (code, log) = agent.term();
    assert_eq!(code, Some(0));
    assert!(log.contains("not a regular file"), "{log}");
    let text = fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 250);
    assert!(!text.contains("@example.com") && !text.contains("hunter2"));
}

#[test]
fn files_the_agent_creates_are_private() {
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        d.path(),
        port,
        "[sinks.buffer]\ntype = \"disk\"\nmax_bytes = 10485760\n",
    );
    fs::write(d.path().join("logs/a.log"), lines("ev", 100)).unwrap();
    let agent = Agent::start(&cfg);
    wait_for("output", Duration::from_secs(30), || {
        fs::read_to_string(d.path().join("out/redacted.log"))
            .unwrap_or_default()
            .lines()
            .count()
            >= 100
    });
    assert_eq!(agent.term().0, Some(0));
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let data = d.path().join("data");
    let mut checked = 0;
    let mut stack = vec![data.clone()];
    while let Some(p) = stack.pop() {
        let m = mode(&p);
        if p.is_dir() {
            if p != data {
                assert_eq!(m, 0o700, "{} is {m:o}", p.display());
            }
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(m, 0o600, "{} is {m:o}", p.display());
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} paths under the data dir");
    assert_eq!(mode(&d.path().join("out/redacted.log")), 0o600);
    assert_eq!(mode(&data.join("dead-letter.jsonl")), 0o600);
}

/// Peak RSS (KiB) of `redactd args` reading `input` from a file, writing
/// `out`.
///
/// Started from a small `python3` launcher, not from this test process:
/// Linux counts in a child's `ru_maxrss` the high-water mark of the memory
/// image it had before `exec`, which for a child spawned from here is this
/// process's (hundreds of MB, with tests reading whole outputs in parallel).
fn peak_rss_kib(args: &[&str], input: &Path, out: &Path) -> i64 {
    let script = r#"
import resource, subprocess, sys
with open(sys.argv[2], "rb") as i, open(sys.argv[3], "wb") as o:
    r = subprocess.run(sys.argv[1:2] + sys.argv[4:], stdin=i, stdout=o, stderr=subprocess.DEVNULL)
if r.returncode != 0:
    sys.exit("exit %d" % r.returncode)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(bin())
        .arg(input)
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

#[test]
fn a_100_mb_single_line_is_redacted_in_memory_bounded_by_the_line_limit() {
    // 100 MB on the release binary; 24 MB on the slower debug build.
    let size = if std::env::var("REDACTD_BIN").is_ok() {
        100
    } else {
        24
    } << 20;
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("big.log");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(fs::File::create(&input).unwrap());
        let chunk = "word user=ann@example.com password=hunter2 more words here ".repeat(1000);
        let mut n = 0;
        while n < size {
            f.write_all(chunk.as_bytes()).unwrap();
            n += chunk.len();
        }
        f.write_all(b"\nlast line ok\n").unwrap();
    }
    let out = d.path().join("out.log");
    // Memory follows --max-line-bytes (pieces of that size in flight in
    // each pipeline stage), not the line: about 17 times the limit.
    for (args, bound_mib) in [(&["--max-line-bytes", "1048576"][..], 64), (&[][..], 400)] {
        let rss = peak_rss_kib(args, &input, &out);
        assert!(
            rss < bound_mib * 1024,
            "{args:?}: peak RSS {rss} KiB for a {} MB line",
            size >> 20
        );
        let o = fs::read(&out).unwrap();
        assert_eq!(o.iter().filter(|b| **b == b'\n').count(), 2, "line count");
        assert!(
            memchr_find(&o, b"@example.com").is_none() && memchr_find(&o, b"hunter2").is_none()
        );
        assert!(o.ends_with(b"last line ok\n"));
        eprintln!(
            "{} MB line {args:?}: peak RSS {} MiB",
            size >> 20,
            rss / 1024
        );
    }
}

fn memchr_find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

#[test]
fn a_rules_file_with_100000_rules_loads_without_crashing_and_works() {
    // 100,000 on the release binary (about 16 s, 1.8 GB here); 10,000 on
    // the ten times slower debug build.
    let n = if std::env::var("REDACTD_BIN").is_ok() {
        100_000
    } else {
        10_000
    };
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("many.toml");
    let mut s = String::with_capacity(n * 160);
    for i in 0..n {
        s.push_str(&format!(
            "[[rules]]\nid = \"r{i}\"\ndescription = \"generated\"\ncategory = \"secret\"\npattern = 'tok{i}_[a-f0-9]{{8}}'\nkeywords = [\"tok{i}_\"]\n[[rules.tests]]\nhit = \"x tok{i}_0123abcd y\"\n[[rules.tests]]\nmiss = \"x tok{i} y\"\n"
        ));
    }
    fs::write(&p, s).unwrap();
    let o = run_env(
        &["--no-default-rules", "--rules", p.to_str().unwrap()],
        format!("a tok{}_deadbeef b\nclean line\n", n - 1).as_bytes(),
        &[],
    );
    let err = stderr(&o);
    if o.status.success() {
        assert_eq!(
            stdout(&o),
            format!("a [REDACTED:r{}] b\nclean line\n", n - 1)
        );
    } else {
        // Refusing is acceptable only with a clear error, never a crash.
        assert!(err.contains("redactd: error"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Writes `mb` MB of ordinary log lines (JSON and text, about half with
/// something to redact) to `path`.
fn write_log_lines(path: &Path, mb: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut n = 0usize;
    let mut i = 0u64;
    while n < mb * 1_000_000 {
        let line = match i % 4 {
            0 => format!(
                r#"{{"ts":"2024-05-14T08:00:{:02}Z","level":"INFO","msg":"order {i} created","user":{{"email":"u{i}@example.com","id":{i}}},"duration_ms":12.5}}"#,
                i % 60
            ),
            1 => format!(
                "2024-05-14 08:00:01 WARN request {i} from 10.{}.{}.7 took 120 ms, retry 2 of 3",
                i % 250,
                i / 250 % 250
            ),
            2 => format!(
                r#"{{"ts":"2024-05-14T08:00:01Z","level":"DEBUG","msg":"cache hit","key":"orders:{i}","ttl":300}}"#
            ),
            _ => format!(
                "GET /login?user=u{i}&password=pw{i}secret HTTP/1.1 200 \"Mozilla/5.0\" rt=0.003"
            ),
        };
        f.write_all(line.as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
        n += line.len() + 1;
        i += 1;
    }
}

#[test]
fn filter_memory_stays_flat_as_the_input_grows() {
    // 50 and 200 MB on the release binary, 3 and 12 MB on the debug build.
    let (small, large) = if std::env::var("REDACTD_BIN").is_ok() {
        (50, 200)
    } else {
        (3, 12)
    };
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out.log");
    let mut peaks = Vec::new();
    for mb in [small, large] {
        let input = d.path().join(format!("in-{mb}.log"));
        write_log_lines(&input, mb);
        let rss = peak_rss_kib(&["--threads", "2"], &input, &out);
        let o = fs::read(&out).unwrap();
        assert!(memchr_find(&o, b"@example.com").is_none());
        assert!(memchr_find(&o, b"secret HTTP").is_none());
        assert_eq!(
            o.iter().filter(|b| **b == b'\n').count(),
            fs::read(&input)
                .unwrap()
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            "line count"
        );
        fs::remove_file(&input).unwrap();
        eprintln!(
            "{mb} MB through the filter, 2 threads: peak RSS {} MiB",
            rss / 1024
        );
        peaks.push(rss);
    }
    assert!(
        peaks[1] < 64 * 1024,
        "peak RSS {} KiB (bound 64 MiB)",
        peaks[1]
    );
    // No growth with input size: four times the input, within 8 MiB.
    assert!(
        peaks[1] <= peaks[0] + 8 * 1024,
        "peak RSS grew from {} KiB to {} KiB with the input",
        peaks[0],
        peaks[1]
    );
}
