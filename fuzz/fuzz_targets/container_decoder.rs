//! CRI / Docker / auto decoding of arbitrary lines: every record becomes an
//! event that is valid JSON, and no line is lost (each line is in some
//! record or in an open join).
#![no_main]
use libfuzzer_sys::fuzz_target;
use redactd::decode::container::{Decoder, Fields, Format, write_event};

fuzz_target!(|data: &[u8]| {
    for format in [Format::Cri, Format::Docker, Format::Auto] {
        let mut d = Decoder::new(format, 64);
        let mut out = Vec::new();
        let mut off = 0u64;
        for line in data.split(|b| *b == b'\n') {
            d.feed(line, off, &mut out);
            off += line.len() as u64 + 1;
            assert!(d.safe_offset(off) <= off);
        }
        d.finish(&mut out);
        let merge = Fields {
            merge_json: true,
            ..Fields::default()
        };
        for r in &out {
            for f in [&Fields::default(), &merge] {
                let mut ev = Vec::new();
                write_event(r, Some(br#"{"namespace":"n"}"#), f, &mut ev);
                serde_json::from_slice::<serde_json::Value>(&ev).expect("event is JSON");
            }
        }
    }
});
