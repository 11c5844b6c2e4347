//! A minimal ONC RPC client over TCP for the tests: record marking, AUTH_NULL calls,
//! and just enough XDR to build MOUNT/NFS arguments and read the replies. Written
//! from RFC 5531 / RFC 1813, independently of the server's code.

#![allow(dead_code)]

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PORTMAP: u32 = 100000;
pub const MOUNT: u32 = 100005;
pub const NFS: u32 = 100003;
/// accept_stat values.
pub const SUCCESS: u32 = 0;
pub const GARBAGE_ARGS: u32 = 4;
/// nfsstat3 values.
pub const NFS3_OK: u32 = 0;
pub const NFS3ERR_NOENT: u32 = 2;
pub const NFS3ERR_STALE: u32 = 70;
pub const NFS3ERR_BADHANDLE: u32 = 10001;

/// Every wait in these tests is bounded by this deadline.
pub const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct XdrOut(pub Vec<u8>);

impl XdrOut {
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn opaque(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
        self
    }
}

pub struct XdrIn<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> XdrIn<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        XdrIn { b, pos: 0 }
    }
    pub fn u32(&mut self) -> u32 {
        let v = u32::from_be_bytes(self.b[self.pos..self.pos + 4].try_into().unwrap());
        self.pos += 4;
        v
    }
    pub fn u64(&mut self) -> u64 {
        let v = u64::from_be_bytes(self.b[self.pos..self.pos + 8].try_into().unwrap());
        self.pos += 8;
        v
    }
    pub fn opaque(&mut self) -> Vec<u8> {
        let n = self.u32() as usize;
        let v = self.b[self.pos..self.pos + n].to_vec();
        self.pos += n.div_ceil(4) * 4;
        v
    }
}

pub struct Reply {
    pub xid: u32,
    pub accept_stat: u32,
    /// The results after accept_stat.
    pub body: Vec<u8>,
}

pub struct Rpc {
    pub s: TcpStream,
    xid: u32,
}

impl Rpc {
    pub async fn connect(port: u16) -> Rpc {
        let s = tokio::time::timeout(DEADLINE, TcpStream::connect(("127.0.0.1", port)))
            .await
            .expect("connect deadline")
            .expect("connect");
        Rpc { s, xid: 0x1000 }
    }

    /// The bytes of a CALL (without record mark).
    pub fn call_bytes(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        let mut b = XdrOut::default()
            .u32(xid)
            .u32(0) // CALL
            .u32(2) // RPC version
            .u32(prog)
            .u32(vers)
            .u32(proc_)
            .u32(0) // cred AUTH_NULL
            .opaque(&[])
            .u32(0) // verf AUTH_NULL
            .opaque(&[])
            .0;
        b.extend_from_slice(args);
        b
    }

    pub async fn send_record(&mut self, rec: &[u8]) -> std::io::Result<()> {
        let mut b = ((rec.len() as u32) | 0x8000_0000).to_be_bytes().to_vec();
        b.extend_from_slice(rec);
        self.s.write_all(&b).await
    }

    /// Reads one reply record; `None` when the server closed the connection.
    pub async fn read_record(&mut self) -> Option<Vec<u8>> {
        let mut rec = Vec::new();
        loop {
            let mut h = [0u8; 4];
            match tokio::time::timeout(DEADLINE, self.s.read_exact(&mut h))
                .await
                .expect("reply deadline")
            {
                Ok(_) => {}
                Err(_) => return None,
            }
            let h = u32::from_be_bytes(h);
            let mut frag = vec![0u8; (h & 0x7fff_ffff) as usize];
            tokio::time::timeout(DEADLINE, self.s.read_exact(&mut frag))
                .await
                .expect("reply deadline")
                .ok()?;
            rec.extend_from_slice(&frag);
            if h & 0x8000_0000 != 0 {
                return Some(rec);
            }
        }
    }

    pub async fn call(&mut self, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Option<Reply> {
        self.xid += 1;
        let xid = self.xid;
        self.send_record(&Self::call_bytes(xid, prog, vers, proc_, args))
            .await
            .ok()?;
        let rec = self.read_record().await?;
        Some(parse_reply(&rec))
    }

    /// MOUNT3 MNT: the root handle of an export, or the mountstat3 error.
    pub async fn mount(&mut self, path: &str) -> Result<Vec<u8>, u32> {
        let r = self
            .call(MOUNT, 3, 1, &XdrOut::default().opaque(path.as_bytes()).0)
            .await
            .expect("mount reply");
        assert_eq!(r.accept_stat, SUCCESS);
        let mut x = XdrIn::new(&r.body);
        match x.u32() {
            0 => Ok(x.opaque()),
            e => Err(e),
        }
    }

    /// NFS3 LOOKUP: the handle of a name, or the nfsstat3.
    pub async fn lookup(&mut self, dir: &[u8], name: &str) -> Result<Vec<u8>, u32> {
        let args = XdrOut::default().opaque(dir).opaque(name.as_bytes()).0;
        let r = self.call(NFS, 3, 3, &args).await.expect("lookup reply");
        assert_eq!(r.accept_stat, SUCCESS);
        let mut x = XdrIn::new(&r.body);
        match x.u32() {
            0 => Ok(x.opaque()),
            e => Err(e),
        }
    }

    /// NFS3 GETATTR: the status, and the size when OK.
    pub async fn getattr(&mut self, fh: &[u8]) -> (u32, u64) {
        let r = self
            .call(NFS, 3, 1, &XdrOut::default().opaque(fh).0)
            .await
            .expect("getattr reply");
        assert_eq!(r.accept_stat, SUCCESS);
        let mut x = XdrIn::new(&r.body);
        let st = x.u32();
        if st != 0 {
            return (st, 0);
        }
        // fattr3: type, mode, nlink, uid, gid, size
        for _ in 0..5 {
            x.u32();
        }
        (st, x.u64())
    }

    /// NFS3 REMOVE: the status.
    pub async fn remove(&mut self, dir: &[u8], name: &str) -> u32 {
        let args = XdrOut::default().opaque(dir).opaque(name.as_bytes()).0;
        let r = self.call(NFS, 3, 12, &args).await.expect("remove reply");
        assert_eq!(r.accept_stat, SUCCESS);
        XdrIn::new(&r.body).u32()
    }

    /// NFS3 RENAME: the status.
    pub async fn rename(&mut self, from_dir: &[u8], from: &str, to_dir: &[u8], to: &str) -> u32 {
        let args = XdrOut::default()
            .opaque(from_dir)
            .opaque(from.as_bytes())
            .opaque(to_dir)
            .opaque(to.as_bytes())
            .0;
        let r = self.call(NFS, 3, 14, &args).await.expect("rename reply");
        assert_eq!(r.accept_stat, SUCCESS);
        XdrIn::new(&r.body).u32()
    }
}

pub fn parse_reply(rec: &[u8]) -> Reply {
    let mut x = XdrIn::new(rec);
    let xid = x.u32();
    assert_eq!(x.u32(), 1, "a REPLY");
    assert_eq!(x.u32(), 0, "MSG_ACCEPTED");
    x.u32(); // verf flavor
    x.opaque(); // verf body
    let accept_stat = x.u32();
    Reply {
        xid,
        accept_stat,
        body: rec[x.pos..].to_vec(),
    }
}
