//! Helpers shared by the integration tests: run the real `redactd` binary.
#![allow(dead_code)]

pub mod agent;
pub mod http;
pub mod kafka;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test: cargo's build of it, or `$REDACTD_BIN` (CI sets
/// it to the release binary that the Dockerfile's build script produced,
/// and runs the end-to-end tests again against that).
pub fn bin() -> String {
    std::env::var("REDACTD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_redactd").to_string())
}

pub fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(p)
}

/// Runs `redactd args...` with `input` on stdin.
pub fn run(args: &[&str], input: &[u8]) -> Output {
    run_env(args, input, &[])
}

pub fn run_env(args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn redactd");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let read_all = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr")));
    // A hung process fails the test instead of hanging the whole suite.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait redactd") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("redactd {args:?} did not finish within 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    writer.join().expect("writer thread");
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Redacts `input` with the built-in rules; panics on a non-zero exit.
pub fn redact(input: &str) -> String {
    let o = run(&[], input.as_bytes());
    assert!(o.status.success(), "redactd failed: {}", stderr(&o));
    stdout(&o)
}

/// All key paths of a JSON value, in document order (array indices omitted).
pub fn key_paths(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{prefix}/{k}");
                out.push(p.clone());
                key_paths(v, &p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for v in a {
                key_paths(v, prefix, out);
            }
        }
        _ => {}
    }
}
