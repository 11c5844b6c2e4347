//! The gateway on a loopback port, driven over raw TCP by an independent RPC client
//! (tests/rpc): handles across a gateway restart, stale handles, rename and remove,
//! and hostile input (oversized records, malformed XDR) that must be refused while
//! the gateway keeps serving.

mod rpc;

use bytes::Bytes;
use keel_fs::{mem::MemFs, ByteStream, FileService, PutOptions};
use keel_nfs::{NfsConfig, NfsServer};
use rpc::*;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

async fn start(fs: Arc<MemFs>) -> NfsServer {
    keel_nfs::bind(fs, "127.0.0.1:0".parse().unwrap(), NfsConfig::default())
        .await
        .unwrap()
}

async fn put(fs: &MemFs, path: &str, data: &'static [u8]) {
    let body: ByteStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(data))]));
    fs.put_file("vol", path, body, PutOptions::default())
        .await
        .unwrap();
}

async fn mem_with_vol() -> Arc<MemFs> {
    let fs = Arc::new(MemFs::new());
    fs.create_volume("vol").await.unwrap();
    fs
}

/// A NULL call answered on a fresh connection: the gateway still serves.
async fn still_serving(port: u16) {
    let mut c = Rpc::connect(port).await;
    let r = c.call(NFS, 3, 0, &[]).await.expect("NULL answered");
    assert_eq!(r.accept_stat, SUCCESS);
    assert!(c.mount("/vol").await.is_ok());
}

#[tokio::test]
async fn handles_outlive_the_gateway_and_go_stale_on_removal() {
    let fs = mem_with_vol().await;
    put(&fs, "d/f", b"hello").await;
    let a = start(fs.clone()).await;
    let mut c = Rpc::connect(a.local_addr().port()).await;
    let root = c.mount("/vol").await.unwrap();
    let d = c.lookup(&root, "d").await.unwrap();
    let f = c.lookup(&d, "f").await.unwrap();
    assert_eq!(c.getattr(&f).await, (NFS3_OK, 5));
    // Mounting a subdirectory gives the same handle as looking it up.
    assert_eq!(c.mount("/vol/d").await.unwrap(), d);
    assert_eq!(c.mount("/nope").await, Err(2), "MNT3ERR_NOENT");
    assert_eq!(c.mount("/").await, Err(2), "no export above the volumes");
    drop(c);
    a.stop().await;

    // Another gateway process over the same cluster (a restart, a failover): the
    // client's handles keep working, byte for byte the same.
    let b = start(fs.clone()).await;
    let mut c = Rpc::connect(b.local_addr().port()).await;
    assert_eq!(c.getattr(&f).await, (NFS3_OK, 5));
    assert_eq!(c.lookup(&d, "f").await.unwrap(), f);
    assert_eq!(c.mount("/vol").await.unwrap(), root);

    // Rename keeps the handle; remove makes it stale.
    assert_eq!(c.rename(&d, "f", &root, "g").await, NFS3_OK);
    assert_eq!(c.lookup(&d, "f").await, Err(NFS3ERR_NOENT));
    assert_eq!(c.lookup(&root, "g").await.unwrap(), f);
    assert_eq!(c.getattr(&f).await, (NFS3_OK, 5));
    assert_eq!(c.remove(&root, "g").await, NFS3_OK);
    assert_eq!(c.getattr(&f).await.0, NFS3ERR_STALE);
    assert_eq!(c.lookup(&f, "x").await, Err(NFS3ERR_STALE));
    // Bytes that are no handle of ours.
    assert_eq!(c.getattr(&[1, 2, 3, 4]).await.0, NFS3ERR_BADHANDLE);
    let mut forged = root.clone();
    forged[15] ^= 0xff;
    assert_eq!(c.getattr(&forged).await.0, NFS3ERR_BADHANDLE);
    b.stop().await;
}

#[tokio::test]
async fn an_oversized_record_closes_its_connection_only() {
    let fs = mem_with_vol().await;
    let s = start(fs).await;
    let port = s.local_addr().port();

    // One fragment declaring 2 GiB - 1: refused from its header, before any byte of
    // it is allocated (the connection closes; nothing else is sent).
    let mut c = Rpc::connect(port).await;
    c.s.write_all(&0xffff_ffffu32.to_be_bytes()).await.unwrap();
    c.s.write_all(&[0u8; 64]).await.unwrap();
    assert!(c.read_record().await.is_none(), "connection closed");
    still_serving(port).await;

    // Small fragments adding up past the limit (none of them is last).
    let mut c = Rpc::connect(port).await;
    let frag = vec![0u8; 256 << 10];
    let mut closed = false;
    for _ in 0..8 {
        let mut b = (frag.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&frag);
        if c.s.write_all(&b).await.is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        assert!(c.read_record().await.is_none(), "connection closed");
    }
    still_serving(port).await;

    // A WRITE of the largest size offered (wtmax, 1 MiB) is within the limit.
    let mut c = Rpc::connect(port).await;
    let root = c.mount("/vol").await.unwrap();
    let create = XdrOut::default()
        .opaque(&root)
        .opaque(b"big")
        .u32(0) // UNCHECKED
        .u32(0) // mode: don't set
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(0)
        .0;
    let r = c.call(NFS, 3, 8, &create).await.unwrap();
    assert_eq!(
        (r.accept_stat, XdrIn::new(&r.body).u32()),
        (SUCCESS, NFS3_OK)
    );
    let fh = c.lookup(&root, "big").await.unwrap();
    let data = vec![7u8; 1 << 20];
    let write = XdrOut::default()
        .opaque(&fh)
        .u64(0)
        .u32(data.len() as u32)
        .u32(2) // FILE_SYNC
        .opaque(&data)
        .0;
    let r = c.call(NFS, 3, 7, &write).await.unwrap();
    let mut x = XdrIn::new(&r.body);
    assert_eq!((r.accept_stat, x.u32()), (SUCCESS, NFS3_OK));
    assert_eq!(c.getattr(&fh).await, (NFS3_OK, 1 << 20));
    s.stop().await;
}

#[tokio::test]
async fn malformed_xdr_is_garbage_args_and_the_connection_stays() {
    let fs = mem_with_vol().await;
    let s = start(fs).await;
    let port = s.local_addr().port();
    let mut c = Rpc::connect(port).await;
    let root = c.mount("/vol").await.unwrap();

    let cases: Vec<(u32, u32, u32, Vec<u8>)> = vec![
        // GETATTR with no handle at all.
        (NFS, 3, 1, vec![]),
        // LOOKUP whose name claims 4 GiB.
        (NFS, 3, 3, {
            let mut b = XdrOut::default().opaque(&root).0;
            b.extend_from_slice(&u32::MAX.to_be_bytes());
            b
        }),
        // WRITE whose data is shorter than its length.
        (NFS, 3, 7, {
            let mut b = XdrOut::default().opaque(&root).u64(0).u32(100).u32(2).0;
            b.extend_from_slice(&100u32.to_be_bytes());
            b.extend_from_slice(&[1, 2, 3]);
            b
        }),
        // CREATE with a createmode that does not exist.
        (
            NFS,
            3,
            8,
            XdrOut::default().opaque(&root).opaque(b"x").u32(9).0,
        ),
        // READDIRPLUS with counts under the reply overhead (used to underflow).
        (
            NFS,
            3,
            17,
            XdrOut::default()
                .opaque(&root)
                .u64(0)
                .u64(0)
                .u32(0)
                .u32(0)
                .0,
        ),
        // MOUNT with a path shorter than its length.
        (MOUNT, 3, 1, XdrOut::default().u32(50).0),
    ];
    for (i, (prog, vers, proc_, args)) in cases.into_iter().enumerate() {
        let r = c.call(prog, vers, proc_, &args).await;
        let r = r.unwrap_or_else(|| panic!("case {i}: the connection was closed"));
        if proc_ == 17 {
            // Tiny counts are legal: an answer with no entries (not a panic).
            assert_eq!(r.accept_stat, SUCCESS, "case {i}");
        } else {
            assert_eq!(r.accept_stat, GARBAGE_ARGS, "case {i}");
        }
    }
    // A credential of AUTH_UNIX whose body is garbage.
    let rec = XdrOut::default()
        .u32(0x77)
        .u32(0)
        .u32(2)
        .u32(NFS)
        .u32(3)
        .u32(0)
        .u32(1) // AUTH_UNIX
        .opaque(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff])
        .u32(0)
        .opaque(&[])
        .0;
    c.send_record(&rec).await.unwrap();
    let r = parse_reply(&c.read_record().await.expect("answered"));
    assert_eq!((r.xid, r.accept_stat), (0x77, GARBAGE_ARGS));
    // The same connection still serves.
    assert_eq!(c.getattr(&root).await.0, NFS3_OK);

    // A record that is not a call at all closes that connection, not the gateway.
    c.send_record(&[0, 0, 0, 1, 0, 0, 0, 1]).await.unwrap();
    assert!(c.read_record().await.is_none());
    still_serving(port).await;
    s.stop().await;
}

#[tokio::test]
async fn stop_closes_connections_and_frees_the_port() {
    let fs = mem_with_vol().await;
    let s = start(fs.clone()).await;
    let addr = s.local_addr();
    let mut c = Rpc::connect(addr.port()).await;
    assert!(c.mount("/vol").await.is_ok());
    s.stop().await;
    assert!(c.read_record().await.is_none(), "open connection closed");
    // The address can be served again at once (a failover back to this node).
    let again = keel_nfs::bind(fs, addr, NfsConfig::default())
        .await
        .unwrap();
    still_serving(again.local_addr().port()).await;
    again.stop().await;
}

#[tokio::test]
async fn every_volume_is_its_own_export() {
    let fs = mem_with_vol().await;
    fs.create_volume("two").await.unwrap();
    put(&fs, "f", b"one").await;
    let s = start(fs.clone()).await;
    let mut c = Rpc::connect(s.local_addr().port()).await;

    // MOUNT EXPORT lists /vol and /two.
    let r = c.call(MOUNT, 3, 5, &[]).await.unwrap();
    assert_eq!(r.accept_stat, SUCCESS);
    let mut x = XdrIn::new(&r.body);
    let mut exports = Vec::new();
    while x.u32() == 1 {
        exports.push(String::from_utf8(x.opaque()).unwrap());
        while x.u32() == 1 {
            x.opaque(); // groups
        }
    }
    exports.sort();
    assert_eq!(exports, vec!["/two", "/vol"]);

    let vol = c.mount("/vol").await.unwrap();
    let two = c.mount("/two").await.unwrap();
    assert_ne!(vol, two);
    assert!(c.lookup(&vol, "f").await.is_ok());
    assert_eq!(c.lookup(&two, "f").await, Err(NFS3ERR_NOENT));
    // ".." of a volume's root stays in the volume.
    assert_eq!(c.lookup(&two, "..").await.unwrap(), two);
    // A rename between volumes is a rename across file systems.
    assert_eq!(c.rename(&vol, "f", &two, "f").await, 18, "NFS3ERR_XDEV");
    assert!(c.lookup(&vol, "f").await.is_ok());
    s.stop().await;
}
