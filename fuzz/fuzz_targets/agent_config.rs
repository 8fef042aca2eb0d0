//! The agent config loader on arbitrary text: loads or reports errors.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("agent.toml");
    std::fs::write(&p, data).expect("write");
    if let Ok(c) = redactd::config::AgentConfig::load(&p) {
        let _ = c.exactly_once();
    }
});
