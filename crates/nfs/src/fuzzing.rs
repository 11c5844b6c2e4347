//! Entry points into the gateway's decoders without a socket: for the fuzz targets
//! (`crates/nfs/fuzz`) and the regression tests that keep what they found.
//!
//! Owns: nothing but glue. Must never: be used to serve clients (no limits on how
//! much a caller feeds in one call beyond those of the server itself).

use crate::{KeelNfs, NfsConfig};
use keel_fs::{mem::MemFs, FileService, Ino, PutOptions};
use std::sync::Arc;

/// A gateway over a small in-memory cluster: volume `vol` with `d/` and `d/f` (16
/// bytes) and `g` (empty); files are capped at 16 MiB so that a fuzzed WRITE offset
/// cannot make the in-memory service allocate the 1 TiB a real cluster allows.
pub struct Fixture {
    pub nfs: Arc<KeelNfs>,
    pub fs: Arc<MemFs>,
    /// Handles of the volume root, `d`, `d/f`, `g`, and a removed file.
    pub handles: Vec<Vec<u8>>,
}

impl Fixture {
    pub async fn new() -> Fixture {
        use nfsserve::vfs::NFSFileSystem;
        let fs = Arc::new(MemFs::new());
        let root = fs.create_volume("vol").await.expect("volume").root;
        let body: keel_fs::ByteStream = Box::pin(futures::stream::iter(vec![Ok(
            bytes::Bytes::from_static(b"0123456789abcdef"),
        )]));
        let f = fs
            .put_file("vol", "d/f", body, PutOptions::default())
            .await
            .expect("put");
        let g = fs.create(root, "g", 0o644, true).await.expect("create");
        let gone = fs.create(root, "gone", 0o644, true).await.expect("create");
        fs.remove(root, "gone").await.expect("remove");
        let config = NfsConfig {
            max_file_size: 16 << 20,
            ..NfsConfig::default()
        };
        let nfs = Arc::new(KeelNfs::new(fs.clone(), &config));
        let mut handles = Vec::new();
        for ino in [root, f.parent, f.ino, g.ino, gone.ino] {
            // Learn the volume of each first, as a lookup would.
            let _ = nfs.getattr(ino).await;
            handles.push(nfs.id_to_fh(ino as Ino).data);
        }
        Fixture { nfs, fs, handles }
    }

    /// Answers one RPC record (no record mark) as a connection would: `Some(reply)`,
    /// or `None` when the record is not a call (the connection would be closed).
    pub async fn answer(&self, record: &[u8]) -> Option<Vec<u8>> {
        let ctx = nfsserve::tcp::test_context(self.nfs.clone());
        nfsserve::rpcwire::process_record(record, ctx)
            .await
            .ok()
            .flatten()
    }

    /// Feeds a byte stream to the record reader of one connection with a record limit
    /// of `max_record`, as if a client had sent it and closed; returns the replies.
    pub async fn feed(&self, bytes: &[u8], max_record: usize) -> Vec<Vec<u8>> {
        use tokio::io::AsyncWriteExt;
        let mut ctx = nfsserve::tcp::test_context(self.nfs.clone());
        ctx.max_record = max_record;
        let (mut handler, mut sock, mut replies) =
            nfsserve::rpcwire::SocketMessageHandler::new(&ctx);
        let bytes = bytes.to_vec();
        let writer = tokio::spawn(async move {
            let _ = sock.write_all(&bytes).await;
            // Dropping `sock` is the client closing the connection.
        });
        let reader = tokio::spawn(async move { while handler.read().await.is_ok() {} });
        let mut out = Vec::new();
        while let Some(r) = replies.recv().await {
            match r {
                Ok((reply, _permit)) => out.push(reply),
                // The connection would be closed here; keep the replies of calls
                // already being served.
                Err(_) => continue,
            }
        }
        reader.abort();
        writer.abort();
        out
    }
}
