//! Applying a command: the idempotency-token check, then the command's operation.
//!
//! Owns: [`Namespace::apply`], the single entry point that changes a namespace. Must
//! never: apply a command whose token is remembered, or remember a reply that differs
//! from what was returned.

use crate::model::Owner;
use crate::ops::put::Content;
use crate::ops::setattr::Attrs;
use crate::{DirCommand, DirResult, Namespace};

impl Namespace {
    /// Applies one command and returns its reply. Deterministic: the same commands in
    /// the same order give the same replies and the same state on every replica.
    /// Atomic: on error nothing changed (except that a token remembers the error).
    ///
    /// A command carrying a token that is remembered is not applied: the remembered
    /// reply is returned (whatever the command now says, so a token must name one
    /// client request). Replies with a token are remembered, errors included, for the
    /// last [`crate::TOKEN_MEMORY`] token-carrying commands.
    pub fn apply(&mut self, cmd: DirCommand) -> DirResult {
        let token = cmd.token();
        if let Some(remembered) = token.and_then(|t| self.tokens.get(t)) {
            return remembered.response.clone();
        }
        let response = self.apply_once(cmd);
        if let Some(token) = token {
            self.remember(token, response.clone());
        }
        response
    }

    fn apply_once(&mut self, cmd: DirCommand) -> DirResult {
        match cmd {
            DirCommand::CreateVolume {
                name,
                chunk_size,
                replication,
                at,
            } => self.create_volume(name, chunk_size, replication, at),
            DirCommand::DeleteVolume { name, at: _ } => self.delete_volume(&name),
            DirCommand::WriteChunks {
                volume,
                ino,
                changes,
                size,
                at,
                token: _,
            } => self.write_chunks(&volume, ino, &changes, size, at),
            DirCommand::Expect { expect, then } => {
                if matches!(*then, DirCommand::Expect { .. }) {
                    return Err(crate::DirError::invalid_argument(
                        then.volume(),
                        "an Expect inside an Expect",
                    ));
                }
                self.check_expected(then.volume(), &expect)?;
                self.apply_once(*then)
            }
            DirCommand::Mkdir {
                volume,
                path,
                mode,
                uid,
                gid,
                parents,
                at,
                token: _,
            } => self.mkdir(&volume, &path, Owner { mode, uid, gid }, parents, at),
            DirCommand::PutFile {
                volume,
                path,
                size,
                chunks,
                mode,
                uid,
                gid,
                create_parents,
                at,
                token: _,
                md5,
                meta,
            } => self.put_file(
                &volume,
                &path,
                Content {
                    size,
                    chunks,
                    md5,
                    meta,
                },
                Owner { mode, uid, gid },
                create_parents,
                at,
            ),
            DirCommand::Unlink {
                volume,
                path,
                at,
                token: _,
            } => self.unlink(&volume, &path, at),
            DirCommand::Rmdir {
                volume,
                path,
                at,
                token: _,
            } => self.rmdir(&volume, &path, at),
            DirCommand::Rename {
                volume,
                from,
                to,
                at,
                token: _,
            } => self.rename(&volume, &from, &to, at),
            DirCommand::SetAttr {
                volume,
                path,
                mode,
                uid,
                gid,
                size,
                atime,
                mtime,
                at,
                token: _,
            } => self.set_attr(
                &volume,
                &path,
                Attrs {
                    mode,
                    uid,
                    gid,
                    size,
                    atime,
                    mtime,
                },
                at,
            ),
        }
    }
}
