//! Throughput of JSON parsers on the JSON lines of a log file (one JSON
//! document a line), best of 5 rounds. Each parser does the least that
//! would serve redaction: validate and visit every member, or build its
//! DOM where that is all it offers. See `src/decode/json.rs` for what the
//! engine needs beyond speed (byte spans, no recursion).

use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: json-parsers-bench FILE");
        std::process::exit(2);
    };
    let data = std::fs::read_to_string(&path).expect("read the file");
    let lines: Vec<&str> = data.lines().filter(|l| l.starts_with('{')).collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    println!(
        "{} JSON lines, {:.1} MB (of {:.1} MB)",
        lines.len(),
        bytes as f64 / 1e6,
        data.len() as f64 / 1e6
    );
    let run = |name: &str, f: &mut dyn FnMut(&str) -> usize| {
        let mut best = f64::MAX;
        let mut n = 0;
        for _ in 0..5 {
            let t = Instant::now();
            n = lines.iter().map(|l| f(l)).sum::<usize>();
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name:52} {:8.1} MB/s  ({n})", bytes as f64 / best / 1e6);
    };
    run("redactd decode::json::Scanner (tokens + spans)", &mut |l| {
        let mut sc = redactd::decode::json::Scanner::new(l);
        let mut n = 0;
        while let Ok(Some(_)) = sc.next() {
            n += 1;
        }
        n
    });
    run("serde_json -> IgnoredAny (validate, no DOM)", &mut |l| {
        serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok() as usize
    });
    run("serde_json -> Value (DOM)", &mut |l| {
        serde_json::from_str::<serde_json::Value>(l).map_or(0, |v| v.as_object().map_or(0, |o| o.len()))
    });
    let mut buf = Vec::new();
    run("simd-json tape (copy of the line + tape)", &mut |l| {
        buf.clear();
        buf.extend_from_slice(l.as_bytes());
        simd_json::to_tape(&mut buf).map_or(0, |t| t.0.len())
    });
    let mut buf = Vec::new();
    run("simd-json borrowed DOM (copy of the line + DOM)", &mut |l| {
        buf.clear();
        buf.extend_from_slice(l.as_bytes());
        simd_json::to_borrowed_value(&mut buf).map_or(0, |_| 1)
    });
    run("sonic-rs -> Value (DOM)", &mut |l| {
        sonic_rs::from_str::<sonic_rs::Value>(l).map_or(0, |_| 1)
    });
    run("sonic-rs lazy top-level members (raw values)", &mut |l| {
        sonic_rs::to_object_iter(l).filter(|r| r.is_ok()).count()
    });
}
