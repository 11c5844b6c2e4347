//! Random command sequences from a seed: a small name space (two volumes, four names,
//! three levels) so that commands collide, hostile paths now and then, and tokens from
//! a small range so that some are replayed.

use keel_core::ObjectId;
use keel_dir::{ChunkChange, ChunkRef, DirCommand, Expected, Replication};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::CS;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];
const HOSTILE: [&str; 6] = ["/a/..", "//", "/a//b", "", "/a\0b", "/./a"];

/// `count` commands drawn from `seed`; time grows by one per command.
pub fn commands(seed: u64, count: usize) -> Vec<DirCommand> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = vec![DirCommand::CreateVolume {
        name: "v".into(),
        chunk_size: Some(CS),
        replication: Replication::Sync,
        at: 0,
    }];
    for at in 1..count as i64 {
        out.push(command(&mut rng, at));
    }
    out
}

fn command(rng: &mut StdRng, at: i64) -> DirCommand {
    let volume = if rng.gen_bool(0.9) { "v" } else { "w" }.to_string();
    let path = path(rng);
    let token = rng.gen_bool(0.3).then(|| rng.gen_range(0..40u128));
    if rng.gen_bool(0.04) {
        return by_inode(rng, volume, path, at, token);
    }
    match rng.gen_range(0..100) {
        0..=2 => DirCommand::CreateVolume {
            name: volume,
            chunk_size: rng.gen_bool(0.5).then_some(CS),
            replication: Replication::Async,
            at,
        },
        3..=14 => DirCommand::Mkdir {
            volume,
            path,
            mode: 0o755,
            uid: rng.gen_range(0..3),
            gid: 0,
            parents: rng.gen_bool(0.3),
            at,
            token,
        },
        15..=52 => {
            let n = rng.gen_range(0..4u64);
            let chunks: Vec<ChunkRef> = (0..n)
                .map(|_| ChunkRef {
                    object: ObjectId(rng.gen()),
                    len: rng.gen_range(1..=CS),
                })
                .collect();
            let size = match n {
                0 => rng.gen_range(0..3 * CS),
                n => (n - 1) * CS + CS + rng.gen_range(0..CS),
            };
            DirCommand::PutFile {
                volume,
                path,
                size,
                chunks,
                mode: 0o644,
                uid: 1,
                gid: 1,
                create_parents: rng.gen_bool(0.3),
                at,
                token,
                md5: None,
                meta: Default::default(),
            }
        }
        53..=64 => DirCommand::Unlink {
            volume,
            path,
            at,
            token,
        },
        65..=74 => DirCommand::Rmdir {
            volume,
            path,
            at,
            token,
        },
        75..=89 => DirCommand::Rename {
            volume,
            from: path,
            to: self::path(rng),
            at,
            token,
        },
        _ => DirCommand::SetAttr {
            volume,
            path,
            mode: rng.gen_bool(0.5).then(|| rng.gen_range(0..0o10000)),
            uid: rng.gen_bool(0.3).then_some(7),
            gid: None,
            size: rng.gen_bool(0.5).then(|| rng.gen_range(0..4 * CS)),
            atime: rng.gen_bool(0.3).then_some(at - 1),
            mtime: None,
            at,
            token,
        },
    }
}

/// The commands gateways that name files by inode send: `DeleteVolume`,
/// `WriteChunks` (appending to a file's list, or swapping a chunk it may hold) and
/// `Expect` around a path command.
fn by_inode(
    rng: &mut StdRng,
    volume: String,
    path: String,
    at: i64,
    token: Option<u128>,
) -> DirCommand {
    let chunk = |rng: &mut StdRng| ChunkRef {
        object: ObjectId(rng.gen_range(0..64)),
        len: rng.gen_range(1..=CS),
    };
    match rng.gen_range(0..3) {
        // Mostly the second volume: deleting the first (while it is empty) would
        // leave most later commands nothing to act on.
        0 => DirCommand::DeleteVolume {
            name: if rng.gen_bool(0.9) { "w" } else { "v" }.into(),
            at,
        },
        1 => {
            let index = rng.gen_range(0..3);
            let expect = rng.gen_bool(0.5).then(|| chunk(rng));
            let new = ChunkRef {
                object: ObjectId(rng.gen()),
                ..chunk(rng)
            };
            DirCommand::WriteChunks {
                volume,
                ino: rng.gen_range(1..30),
                changes: vec![ChunkChange {
                    index,
                    expect,
                    chunk: new,
                }],
                size: (index + 1) * CS,
                at,
                token,
            }
        }
        _ => DirCommand::Expect {
            expect: vec![Expected {
                path: self::path(rng),
                ino: rng.gen_range(0..30),
            }],
            then: Box::new(DirCommand::Unlink {
                volume,
                path,
                at,
                token,
            }),
        },
    }
}

fn path(rng: &mut StdRng) -> String {
    if rng.gen_bool(0.03) {
        return HOSTILE[rng.gen_range(0..HOSTILE.len())].to_string();
    }
    let depth = if rng.gen_bool(0.03) {
        0
    } else {
        rng.gen_range(1..=3)
    };
    let mut path: String = (0..depth)
        .map(|_| format!("/{}", NAMES[rng.gen_range(0..NAMES.len())]))
        .collect();
    if path.is_empty() || rng.gen_bool(0.05) {
        path.push('/');
    }
    path
}
