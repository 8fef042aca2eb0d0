//! The rule loader on arbitrary text: compiles or reports errors.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redactd::engine::{CompileOptions, Ruleset, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let src = Source {
        name: "fuzz.toml".into(),
        text: text.to_string(),
    };
    let _ = Ruleset::compile(&[src], &CompileOptions::default());
});
