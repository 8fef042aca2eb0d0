//! The disk buffer opening a corrupted segment: every record it hands out
//! passed its checksum; corrupt data is skipped, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redactd::buffer::{DiskBuffer, FsyncPolicy};

fuzz_target!(|data: &[u8]| {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join(format!("seg-{:020}.dat", 0)), data).expect("write");
    let Ok(b) = DiskBuffer::open(d.path(), 1 << 20, FsyncPolicy::Never) else {
        return;
    };
    // Closed: `peek` hands out what is there, then None instead of waiting.
    b.close();
    for _ in 0..1000 {
        match b.peek() {
            Ok(Some((_, pos))) => {
                if b.commit(pos).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
});
