//! A `redactd run` process under test, and the HTTP helpers to watch it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::bin;

pub struct Agent {
    pub child: Child,
}

impl Agent {
    pub fn start(config: &Path) -> Agent {
        let child = Command::new(bin())
            .args(["run", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent");
        Agent { child }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status and the agent's own log.
    pub fn term(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait agent") {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        // Whatever the scenario, the agent's own log never carries content.
        for planted in ["@example.com", "acme_abcd1234", "zeta_abcd1234", "hunter2"] {
            assert!(!err.contains(planted), "agent log leaked {planted}: {err}");
        }
        (status.code(), err)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn scrape(port: u16) -> String {
    get(port, "/metrics")
}

pub fn metric(m: &str, series: &str) -> u64 {
    m.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map_or(0, |v| v as u64)
}

/// Waits until `series` reaches at least `at_least`; returns its value.
pub fn wait_metric(port: u16, series: &str, at_least: u64) -> u64 {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let v = metric(&scrape(port), series);
        if v >= at_least || Instant::now() > end {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET on the metrics port; empty while it is not up yet.
pub fn get(port: u16, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `dir/agent.toml`: data under `dir/data`, the given `[[sources]]`
/// and `[[sinks]]` tables, metrics on `port` (none when 0), a 50 ms
/// checkpoint interval and a 5 s drain; creates `dir/logs`.
pub fn agent_config(dir: &Path, port: u16, tables: &str) -> PathBuf {
    let metrics = if port == 0 {
        String::new()
    } else {
        format!("[metrics]\naddress = \"127.0.0.1:{port}\"\n")
    };
    let p = dir.join("agent.toml");
    std::fs::write(
        &p,
        format!(
            "data_dir = \"{d}/data\"\n{tables}\n{metrics}[shutdown]\ncheckpoint_interval_ms = 50\ngrace_period_ms = 5000\n",
            d = dir.display()
        ),
    )
    .expect("write agent config");
    std::fs::create_dir_all(dir.join("logs")).expect("logs dir");
    p
}

/// A file source `app` tailing `dir/logs/*.log`, polled every 20 ms.
pub fn file_source(dir: &Path) -> String {
    format!(
        "[[sources]]\ntype = \"file\"\nid = \"app\"\ninclude = [\"{}/logs/*.log\"]\npoll_interval_ms = 20\nrotate_wait_ms = 300\n",
        dir.display()
    )
}

/// A file sink `out` writing `dir/out/redacted.log`.
pub fn file_sink(dir: &Path) -> String {
    format!(
        "[[sinks]]\ntype = \"file\"\nid = \"out\"\npath = \"{}/out/redacted.log\"\n",
        dir.display()
    )
}

/// An HTTP sink `collector` posting to `127.0.0.1:port/ingest`.
pub fn http_sink(port: u16) -> String {
    format!(
        "[[sinks]]\ntype = \"http\"\nid = \"collector\"\nurl = \"http://127.0.0.1:{port}/ingest\"\ntimeout_ms = 2000\n"
    )
}
