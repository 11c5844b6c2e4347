//! The decoders without a socket (`keel_nfs::fuzzing::Fixture`): inputs that broke
//! the upstream server or that the fuzz targets (crates/nfs/fuzz) found, kept as
//! regression tests. Each input goes through exactly the code a connection runs.

mod rpc;

use keel_nfs::fuzzing::Fixture;
use rpc::{parse_reply, Rpc, XdrIn, XdrOut, GARBAGE_ARGS, NFS, SUCCESS};

fn record_mark(rec: &[u8], last: bool) -> Vec<u8> {
    let mut b = ((rec.len() as u32) | if last { 0x8000_0000 } else { 0 })
        .to_be_bytes()
        .to_vec();
    b.extend_from_slice(rec);
    b
}

#[tokio::test]
async fn readdir_counts_under_the_reply_overhead_do_not_underflow() {
    // READDIRPLUS and READDIR computed `count - 128` on u32s from the wire: a panic
    // in debug builds, no size limit at all in release ones.
    let fx = Fixture::new().await;
    for (proc_, args) in [
        (
            17,
            XdrOut::default()
                .opaque(&fx.handles[0])
                .u64(0)
                .u64(0)
                .u32(0)
                .u32(0)
                .0,
        ),
        (
            16,
            XdrOut::default()
                .opaque(&fx.handles[0])
                .u64(0)
                .u64(0)
                .u32(5)
                .0,
        ),
    ] {
        let reply = fx
            .answer(&Rpc::call_bytes(9, NFS, 3, proc_, &args))
            .await
            .expect("answered");
        let r = parse_reply(&reply);
        assert_eq!((r.xid, r.accept_stat), (9, SUCCESS), "proc {proc_}");
    }
}

/// The names READDIR returns from `cookie` on (entry3: fileid, name, cookie).
async fn readdir_names(
    fx: &Fixture,
    cookie: u64,
    dircount: u32,
) -> Result<(Vec<String>, u64, bool), u32> {
    let args = XdrOut::default()
        .opaque(&fx.handles[0])
        .u64(cookie)
        .u64(0)
        .u32(dircount)
        .0;
    let reply = fx
        .answer(&Rpc::call_bytes(1, NFS, 3, 16, &args))
        .await
        .unwrap();
    let r = parse_reply(&reply);
    let mut x = XdrIn::new(&r.body);
    let status = x.u32();
    if status != 0 {
        return Err(status);
    }
    if x.u32() == 1 {
        // post_op_attr: fattr3 is 84 bytes
        for _ in 0..21 {
            x.u32();
        }
    }
    x.u64(); // cookieverf
    let mut names = Vec::new();
    let mut last = 0;
    while x.u32() == 1 {
        x.u64();
        names.push(String::from_utf8(x.opaque()).unwrap());
        last = x.u64();
    }
    let eof = x.u32() == 1;
    Ok((names, last, eof))
}

#[tokio::test]
async fn readdir_continues_from_its_cookie() {
    // READDIR ignored the cookie and listed from the start again: a directory larger
    // than one reply never ended.
    let fx = Fixture::new().await;
    let root = keel_fs::FileService::resolve(&*fx.fs, "vol", "")
        .await
        .unwrap()
        .ino;
    for i in 0..40 {
        keel_fs::FileService::create(&*fx.fs, root, &format!("n{i:02}"), 0o644, true)
            .await
            .unwrap();
    }
    // A reply too small for a single entry is NFS3ERR_TOOSMALL (it was an empty page
    // without eof: the client asked again forever).
    assert_eq!(readdir_names(&fx, 0, 256).await, Err(10005));
    let mut all = Vec::new();
    let mut cookie = 0;
    let mut pages = 0;
    for _ in 0..100 {
        let (names, last, eof) = readdir_names(&fx, cookie, 1024).await.unwrap();
        assert!(!names.is_empty() || eof);
        pages += 1;
        all.extend(names);
        if eof {
            break;
        }
        cookie = last;
    }
    let mut want: Vec<String> = (0..40).map(|i| format!("n{i:02}")).collect();
    want.extend(["d".to_string(), "g".to_string()]);
    want.sort();
    assert_eq!(all, want);
    assert!(pages > 1, "paged: {pages} pages");
}

#[tokio::test]
async fn a_failed_setattr_guard_answers_once_and_changes_nothing() {
    let fx = Fixture::new().await;
    // SETATTR d/f: size := 0, guarded by a ctime it does not have.
    let args = XdrOut::default()
        .opaque(&fx.handles[2])
        .u32(0) // mode
        .u32(0) // uid
        .u32(0) // gid
        .u32(1) // size follows
        .u64(0)
        .u32(0) // atime DONT_CHANGE
        .u32(0) // mtime DONT_CHANGE
        .u32(1) // guard: check ctime
        .u32(1)
        .u32(2)
        .0;
    let reply = fx
        .answer(&Rpc::call_bytes(3, NFS, 3, 2, &args))
        .await
        .unwrap();
    let r = parse_reply(&reply);
    let mut x = XdrIn::new(&r.body);
    assert_eq!(x.u32(), 10002, "NFS3ERR_NOT_SYNC");
    // wcc_data: two absent attributes, then nothing (one reply, not two).
    assert_eq!((x.u32(), x.u32()), (0, 0));
    assert_eq!(r.body.len(), 12);
    let f = keel_fs::FileService::resolve(&*fx.fs, "vol", "d/f")
        .await
        .unwrap();
    assert_eq!(f.size, 16, "the guarded change was not applied");
}

#[tokio::test]
async fn records_over_the_limit_and_truncated_streams_get_no_answer() {
    let fx = Fixture::new().await;
    let null = Rpc::call_bytes(5, NFS, 3, 0, &[]);
    // Within the limit: answered.
    assert_eq!(fx.feed(&record_mark(&null, true), 4096).await.len(), 1);
    // Fragments of one record add up past the limit: refused, nothing answered.
    let mut stream = Vec::new();
    for _ in 0..3 {
        stream.extend(record_mark(&[0u8; 2000], false));
    }
    stream.extend(record_mark(&null, true));
    assert!(fx.feed(&stream, 4096).await.is_empty());
    // A header declaring 2 GiB, then nothing: refused at once, nothing allocated.
    assert!(fx.feed(&[0xff, 0xff, 0xff, 0xff], 4096).await.is_empty());
    // A record cut short by the end of the stream.
    let cut = record_mark(&null, true);
    assert!(fx.feed(&cut[..cut.len() - 3], 4096).await.is_empty());
    // Two calls in one stream: both answered.
    let mut two = record_mark(&null, true);
    two.extend(record_mark(&Rpc::call_bytes(6, NFS, 3, 0, &[]), true));
    assert_eq!(fx.feed(&two, 4096).await.len(), 2);
}

#[tokio::test]
async fn opaque_lengths_past_the_record_are_garbage_not_allocations() {
    // A 4-byte length inside a small record used to be allocated as declared (4 GiB
    // for an opaque, 16 GiB for the u32 array of an AUTH_UNIX credential).
    let fx = Fixture::new().await;
    let mut args = u32::MAX.to_be_bytes().to_vec();
    args.extend_from_slice(&[0; 8]);
    let r = parse_reply(
        &fx.answer(&Rpc::call_bytes(7, NFS, 3, 1, &args))
            .await
            .unwrap(),
    );
    assert_eq!(r.accept_stat, GARBAGE_ARGS);
    // AUTH_UNIX: stamp, machine name "", uid, gid, then gids claiming 2^32 - 1 entries.
    let cred = XdrOut::default()
        .u32(1)
        .opaque(b"")
        .u32(0)
        .u32(0)
        .u32(u32::MAX)
        .0;
    let rec = XdrOut::default()
        .u32(8)
        .u32(0)
        .u32(2)
        .u32(NFS)
        .u32(3)
        .u32(0)
        .u32(1)
        .opaque(&cred)
        .u32(0)
        .opaque(&[])
        .0;
    let r = parse_reply(&fx.answer(&rec).await.unwrap());
    assert_eq!((r.xid, r.accept_stat), (8, GARBAGE_ARGS));
}
