//! Arbitrary bytes as a file handle: decoding never panics, and whatever decodes
//! encodes back to the same bytes (one handle per file, byte for byte).
#![no_main]

use keel_nfs::handle::FileHandle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = FileHandle::decode(data) {
        assert_eq!(h.encode(), data);
    }
});
