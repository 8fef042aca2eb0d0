//! The engine with the built-in rules on arbitrary bytes: no panic, one
//! line out, a JSON object stays a JSON object, redacting twice is
//! redacting once.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redactd::engine::{CompileOptions, Ruleset, Scratch, Stats, spec::builtin_sources};
use std::sync::OnceLock;

static RULES: OnceLock<Ruleset> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    if data.contains(&b'\n') {
        return;
    }
    let rs = RULES.get_or_init(|| {
        Ruleset::compile(
            &builtin_sources(),
            &CompileOptions {
                hash_key: Some(b"fuzz".to_vec()),
                time_budget: None,
            },
        )
        .expect("built-in rules compile")
    });
    let mut scratch = Scratch::new(rs);
    let mut stats = Stats::new(rs);
    let once = rs.redact_line(data, &mut scratch, &mut stats).0.to_vec();
    assert!(!once.contains(&b'\n'));
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data)
        && v.is_object()
    {
        let out: serde_json::Value = serde_json::from_slice(&once).expect("output is JSON");
        assert!(out.is_object());
    }
    let twice = rs.redact_line(&once, &mut scratch, &mut stats).0.to_vec();
    if std::str::from_utf8(data).is_ok() {
        assert_eq!(once, twice, "not idempotent");
    }
});
