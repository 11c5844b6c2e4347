//! Arbitrary bytes as a TCP stream into one connection's record reader (record
//! marking, fragments, the record limit) and on to the XDR decoding of each call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    rt().block_on(async {
        let fx = keel_nfs::fuzzing::Fixture::new().await;
        // A small limit so that the fuzzer reaches it.
        let _ = fx.feed(data, 4096).await;
    });
});
