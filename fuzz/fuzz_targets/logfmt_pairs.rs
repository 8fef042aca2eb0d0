//! The logfmt pair scanner on arbitrary text: every span lies on character
//! boundaries inside the text, pairs come left to right without overlap,
//! keys are non-empty and hold no `=`, space or quote. Never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut last_end = 0usize;
    for p in redactd::decode::logfmt::pairs(text) {
        let key = text.get(p.key.0..p.key.1).expect("key on char boundaries");
        let value = text.get(p.value.0..p.value.1).expect("value on char boundaries");
        assert!(!key.is_empty() && !key.contains(['=', ' ', '"']));
        assert!(p.key.0 >= last_end, "pairs overlap");
        assert!(p.key.1 < p.value.0 && p.value.0 <= p.value.1);
        if !p.quoted {
            assert!(!value.bytes().any(|b| b.is_ascii_whitespace()));
        }
        last_end = p.value.1;
    }
});
