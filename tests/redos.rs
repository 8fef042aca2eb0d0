//! Cost bounds on adversarial input, rule by rule: for every built-in rule,
//! lines built from the rule's own keywords followed by long runs of the
//! characters patterns loop on (letters, digits, `=`, `:`, quotes, `%`,
//! base64 alphabet), 256 KiB each (32 KiB on the debug build), through the real binary with the whole
//! built-in library. Each must finish within a bound per MB, and come out
//! as one line.
//!
//! Ignored in the debug test pass (the debug build is an order of
//! magnitude slower and the bound is about the shipped binary):
//! `scripts/test.sh` runs it with `--include-ignored` against the release
//! binary (`REDACTD_BIN`). Run by hand on a debug build, the bound is
//! loosened to match.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Instant;

fn rules() -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for f in files {
        let v: toml::Value = toml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for r in v["rules"].as_array().unwrap() {
            let id = r["id"].as_str().unwrap().to_string();
            let category = r
                .get("category")
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_string();
            let mut kws: Vec<String> = r
                .get("keywords")
                .and_then(|k| k.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(keys) = r.get("keys").and_then(|k| k.as_array()) {
                kws.extend(
                    keys.iter()
                        .filter_map(|x| x.as_str())
                        .map(|k| format!("{}=", k.replace('*', "x"))),
                );
            }
            out.push((id, category, kws));
        }
    }
    out
}

/// Adversarial lines for one rule's keywords.
fn inputs(kws: &[String], line: usize) -> Vec<String> {
    let kw = kws.first().cloned().unwrap_or_else(|| "x".into());
    let fill = |unit: &str| -> String {
        let mut s = String::with_capacity(line + 64);
        while s.len() < line {
            s.push_str(unit);
        }
        s
    };
    vec![
        // The keyword again and again with short runs between.
        fill(&format!("{kw}aaaaaaaaA0=")),
        // One keyword, then a very long run of token characters.
        format!("{kw}{}", fill("aB3")),
        // Runs of separators and quotes after the keyword.
        fill(&format!("{kw}=\"\":: %41 ")),
        // Base64-ish with dots and dashes (JWT-like, PEM-like bodies).
        fill(&format!("{kw}eyJhbGci.-_/+")),
    ]
}

#[test]
#[ignore = "run on the release binary by scripts/test.sh"]
fn every_built_in_rule_stays_within_its_cost_bound_on_adversarial_lines() {
    let release = std::env::var("REDACTD_BIN").is_ok();
    // ms per MB, including process start.
    let bound = if release { 1_500.0 } else { 30_000.0 };
    // Smaller lines for the (slow) debug build: the bound is per MB.
    let line = if release { 256 * 1024 } else { 32 * 1024 };
    let mut worst: BTreeMap<String, (f64, String)> = BTreeMap::new();
    let rules = rules();
    assert!(rules.len() >= 200, "{} rules", rules.len());
    for (id, category, kws) in &rules {
        let lines = inputs(kws, line);
        let mut input = Vec::new();
        for l in &lines {
            input.extend_from_slice(l.as_bytes());
            input.push(b'\n');
        }
        let t = Instant::now();
        let o = run(&["--max-line-bytes", "1048576"], &input);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert!(o.status.success(), "{id}: {}", stderr(&o));
        assert_eq!(
            o.stdout.iter().filter(|b| **b == b'\n').count(),
            lines.len(),
            "{id}: line count"
        );
        let per_mb = ms / (input.len() as f64 / 1e6);
        assert!(
            per_mb < bound,
            "{id}: {per_mb:.0} ms/MB on its adversarial input (bound {bound})"
        );
        let e = worst
            .entry(category.clone())
            .or_insert((0.0, String::new()));
        if per_mb > e.0 {
            *e = (per_mb, id.clone());
        }
    }
    for (cat, (ms, id)) in &worst {
        eprintln!("worst {cat}: {ms:.0} ms/MB ({id})");
    }
}
