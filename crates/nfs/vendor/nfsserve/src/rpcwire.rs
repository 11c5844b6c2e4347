use std::io::{Cursor, Read};

use anyhow::anyhow;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tracing::{debug, error, trace, warn};

use crate::context::RPCContext;
use crate::rpc::*;
use crate::xdr::*;
use crate::{mount, mount_handlers, nfs, nfs_handlers, portmap, portmap_handlers};

// Information from RFC 5531
// https://datatracker.ietf.org/doc/html/rfc5531

const NFS_ACL_PROGRAM: u32 = 100227;
const NFS_ID_MAP_PROGRAM: u32 = 100270;
const NFS_METADATA_PROGRAM: u32 = 200024;

async fn handle_rpc(
    input: &mut impl Read,
    output: &mut Vec<u8>,
    mut context: RPCContext,
) -> Result<bool, anyhow::Error> {
    let mut recv = rpc_msg::default();
    recv.deserialize(input)?;
    let xid = recv.xid;
    if let rpc_body::CALL(call) = recv.body {
        if let auth_flavor::AUTH_UNIX = call.cred.flavor {
            let mut auth = auth_unix::default();
            // keel: a malformed credential is answered GARBAGE_ARGS (below), not a
            // dropped connection.
            if auth.deserialize(&mut Cursor::new(&call.cred.body)).is_err() {
                warn!("xid {} bad AUTH_UNIX credential", xid);
                garbage_args_reply_message(xid).serialize(output)?;
                return Ok(true);
            }
            context.auth = auth;
        }
        if call.rpcvers != 2 {
            warn!("Invalid RPC version {} != 2", call.rpcvers);
            rpc_vers_mismatch(xid).serialize(output)?;
            return Ok(true);
        }

        if context.transaction_tracker.is_retransmission(xid, &context.client_addr) {
            // This is a retransmission
            // Drop the message and return
            debug!("Retransmission detected, xid: {}, client_addr: {}, call: {:?}", xid, context.client_addr, call);
            return Ok(false);
        }

        let start = output.len();
        let res = {
            if call.prog == nfs::PROGRAM {
                nfs_handlers::handle_nfs(xid, call, input, output, &context).await
            } else if call.prog == portmap::PROGRAM {
                portmap_handlers::handle_portmap(xid, call, input, output, &context)
            } else if call.prog == mount::PROGRAM {
                mount_handlers::handle_mount(xid, call, input, output, &context).await
            } else if call.prog == NFS_ACL_PROGRAM
                || call.prog == NFS_ID_MAP_PROGRAM
                || call.prog == NFS_METADATA_PROGRAM
            {
                trace!("ignoring NFS_ACL packet");
                prog_unavail_reply_message(xid).serialize(output)?;
                Ok(())
            } else {
                warn!("Unknown RPC Program number {} != {}", call.prog, nfs::PROGRAM);
                prog_unavail_reply_message(xid).serialize(output)?;
                Ok(())
            }
        };
        context.transaction_tracker.mark_processed(xid, &context.client_addr);
        // keel: arguments that do not decode (short, bad enum, ...) are answered
        // GARBAGE_ARGS, whatever the handler had written so far is dropped, and the
        // connection stays up (it used to be closed).
        if let Err(e) = res {
            warn!("xid {} garbage arguments: {:?}", xid, e);
            output.truncate(start);
            garbage_args_reply_message(xid).serialize(output)?;
        }
        Ok(true)
    } else {
        error!("Unexpectedly received a Reply instead of a Call");
        Err(anyhow!("Bad RPC Call format"))
    }
}

/// keel: decodes and answers one whole RPC record (without its record marks), as
/// the server does for every record a connection sends: `Ok(Some(reply))`,
/// `Ok(None)` for a retransmission left unanswered, `Err` when the record is not an
/// RPC call at all (the server then closes the connection). For fuzzing and tests.
pub async fn process_record(record: &[u8], context: RPCContext) -> Result<Option<Vec<u8>>, anyhow::Error> {
    let mut out = Vec::new();
    if handle_rpc(&mut Cursor::new(record), &mut out, context).await? {
        Ok(Some(out))
    } else {
        Ok(None)
    }
}

/// RFC 1057 Section 10
/// When RPC messages are passed on top of a byte stream transport
/// protocol (like TCP), it is necessary to delimit one message from
/// another in order to detect and possibly recover from protocol errors.
/// This is called record marking (RM).  Sun uses this RM/TCP/IP
/// transport for passing RPC messages on TCP streams.  One RPC message
/// fits into one RM record.
///
/// A record is composed of one or more record fragments.  A record
/// fragment is a four-byte header followed by 0 to (2**31) - 1 bytes of
/// fragment data.  The bytes encode an unsigned binary number; as with
/// XDR integers, the byte order is from highest to lowest.  The number
/// encodes two values -- a boolean which indicates whether the fragment
/// is the last fragment of the record (bit value 1 implies the fragment
/// is the last fragment) and a 31-bit unsigned binary value which is the
/// length in bytes of the fragment's data.  The boolean value is the
/// highest-order bit of the header; the length is the 31 low-order bits.
/// (Note that this record specification is NOT in XDR standard form!)
async fn read_fragment(
    socket: &mut DuplexStream,
    append_to: &mut Vec<u8>,
    max_record: usize,
) -> Result<bool, anyhow::Error> {
    let mut header_buf = [0_u8; 4];
    socket.read_exact(&mut header_buf).await?;
    let fragment_header = u32::from_be_bytes(header_buf);
    let is_last = (fragment_header & (1 << 31)) > 0;
    let length = (fragment_header & ((1 << 31) - 1)) as usize;
    trace!("Reading fragment length:{}, last:{}", length, is_last);
    // keel: refuse a record over the limit before allocating anything for it (the
    // length used to be allocated as declared: up to 2 GiB per fragment, unbounded
    // over fragments). The caller closes the connection.
    if append_to.len().saturating_add(length) > max_record {
        return Err(anyhow!(
            "RPC record of over {} bytes refused (limit {})",
            append_to.len().saturating_add(length),
            max_record
        ));
    }
    // keel: grow with the bytes that arrive, not by the declared length.
    let got = (&mut *socket).take(length as u64).read_to_end(append_to).await?;
    if got != length {
        return Err(anyhow!("connection closed inside an RPC fragment"));
    }
    trace!("Finishing Reading fragment length:{}, last:{}", length, is_last);
    Ok(is_last)
}

pub async fn write_fragment(socket: &mut tokio::net::TcpStream, buf: &[u8]) -> Result<(), anyhow::Error> {
    // TODO: split into many fragments
    assert!(buf.len() < (1 << 31));
    // set the last flag
    let fragment_header = buf.len() as u32 + (1 << 31);
    let header_buf = u32::to_be_bytes(fragment_header);
    socket.write_all(&header_buf).await?;
    trace!("Writing fragment length:{}", buf.len());
    socket.write_all(buf).await?;
    Ok(())
}

/// keel: a reply travels with the in-flight permit of its call, released only once
/// the reply is written (so a client that does not read its replies stops the
/// server from reading more of its calls, instead of queueing replies unbounded).
pub type SocketMessageType = Result<(Vec<u8>, tokio::sync::OwnedSemaphorePermit), anyhow::Error>;

/// The Socket Message Handler reads from a TcpStream and spawns off
/// subtasks to handle each message. replies are queued into the
/// reply_send_channel.
#[derive(Debug)]
pub struct SocketMessageHandler {
    cur_fragment: Vec<u8>,
    socket_receive_channel: DuplexStream,
    reply_send_channel: mpsc::UnboundedSender<SocketMessageType>,
    context: RPCContext,
    inflight: std::sync::Arc<tokio::sync::Semaphore>,
}

impl SocketMessageHandler {
    /// Creates a new SocketMessageHandler with the receiver for queued message replies
    pub fn new(context: &RPCContext) -> (Self, DuplexStream, mpsc::UnboundedReceiver<SocketMessageType>) {
        let (socksend, sockrecv) = tokio::io::duplex(256000);
        let (msgsend, msgrecv) = mpsc::unbounded_channel();
        (
            Self {
                cur_fragment: Vec::new(),
                socket_receive_channel: sockrecv,
                reply_send_channel: msgsend,
                context: context.clone(),
                inflight: std::sync::Arc::new(tokio::sync::Semaphore::new(context.max_inflight.max(1))),
            },
            socksend,
            msgrecv,
        )
    }

    /// Reads a fragment from the socket. This should be looped.
    pub async fn read(&mut self) -> Result<(), anyhow::Error> {
        let is_last = match read_fragment(&mut self.socket_receive_channel, &mut self.cur_fragment, self.context.max_record).await {
            Ok(l) => l,
            Err(e) => {
                // keel: tell the socket loop, which closes the connection (it used to
                // keep reading and discarding the client's bytes forever).
                let _ = self.reply_send_channel.send(Err(anyhow!("{e}")));
                return Err(e);
            },
        };
        if is_last {
            let fragment = std::mem::take(&mut self.cur_fragment);
            let context = self.context.clone();
            let send = self.reply_send_channel.clone();
            // keel: at most max_inflight calls of this connection at once.
            let permit = self.inflight.clone().acquire_owned().await?;
            tokio::spawn(async move {
                let mut write_buf: Vec<u8> = Vec::new();
                let maybe_reply = handle_rpc(&mut Cursor::new(fragment), &mut write_buf, context).await;
                match maybe_reply {
                    Err(e) => {
                        error!("RPC Error: {:?}", e);
                        let _ = send.send(Err(e));
                    },
                    Ok(true) => {
                        let _ = send.send(Ok((write_buf, permit)));
                    },
                    Ok(false) => {
                        // do not reply
                    },
                }
            });
        }
        Ok(())
    }
}
