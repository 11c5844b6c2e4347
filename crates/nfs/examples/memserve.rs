//! Serves an in-memory file service over NFSv3 for trying clients by hand:
//! `cargo run -p keel-nfs --example memserve -- 127.0.0.1:2049 vol`, then e.g.
//! `nfs-ls 'nfs://127.0.0.1/vol?nfsport=2049&mountport=2049&version=3'`.

use keel_fs::{mem::MemFs, FileService};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let fs = Arc::new(MemFs::new());
    for v in args {
        fs.create_volume(&v).await?;
    }
    let server = keel_nfs::bind(fs, addr.parse()?, keel_nfs::NfsConfig::default()).await?;
    println!("serving on {}", server.local_addr());
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}
