//! The JSON tokenizer on arbitrary text: tokens or an error, never a panic
//! or a hang (it is iterative, so depth cannot overflow the stack).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut s = redactd::decode::json::Scanner::new(text);
    let mut n = 0usize;
    while let Ok(Some(_)) = s.next() {
        n += 1;
        assert!(n <= text.len() + 1, "more tokens than bytes");
    }
});
