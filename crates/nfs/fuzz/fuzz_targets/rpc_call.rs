//! One RPC call with fuzzed arguments, aimed deep into the handlers: the first byte
//! picks the program and procedure, the second which valid handle (or none) leads
//! the arguments, the rest are the arguments as sent. Every reply must be a reply.
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
    if data.len() < 2 {
        return;
    }
    rt().block_on(async {
        let fx = keel_nfs::fuzzing::Fixture::new().await;
        let (prog, vers, proc_) = match data[0] % 32 {
            p @ 0..=21 => (100003u32, 3u32, p as u32),
            p @ 22..=27 => (100005, 3, (p - 22) as u32),
            p => (100000, 2, (p - 28) as u32),
        };
        let mut rec = Vec::new();
        for v in [0x1234u32, 0, 2, prog, vers, proc_, 0, 0, 0, 0] {
            rec.extend_from_slice(&v.to_be_bytes());
        }
        let pick = data[1] as usize;
        if pick < fx.handles.len() {
            let h = &fx.handles[pick];
            rec.extend_from_slice(&(h.len() as u32).to_be_bytes());
            rec.extend_from_slice(h);
        }
        rec.extend_from_slice(&data[2..]);
        let reply = fx.answer(&rec).await.expect("a call is always answered");
        assert_eq!(
            &reply[0..4],
            &0x1234u32.to_be_bytes(),
            "the reply carries the xid"
        );
    });
});
