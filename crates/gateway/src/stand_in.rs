//! A stand-in protocol server: on every connection it answers one line naming the
//! export, the protocol and the node, then closes. Lets the role and the failover
//! tests run before (and independently of) the NFS and S3 servers.
//!
//! Owns: its listener. Must never: answer once its [`OwnerGuard`] says the node no
//! longer owns the endpoint.

use crate::error::ServeError;
use crate::server::{ExportServers, ServeRequest, Serving};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The stand-in's answer: `keel-gateway export=NAME protocol=P node=N\n`.
pub fn answer_line(req: &ServeRequest) -> String {
    format!(
        "keel-gateway export={} protocol={} node={}\n",
        req.export, req.protocol, req.node
    )
}

/// Starts [`answer_line`] servers.
#[derive(Clone, Copy, Debug, Default)]
pub struct StandInServers;

struct StandIn {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

#[async_trait::async_trait]
impl ExportServers for StandInServers {
    async fn start(&self, req: ServeRequest) -> Result<Box<dyn Serving>, ServeError> {
        let listener = TcpListener::bind(req.addr)
            .await
            .map_err(|e| ServeError::from_bind(req.addr, &e))?;
        let (stop, mut stopped) = oneshot::channel();
        let line = answer_line(&req);
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = &mut stopped => break,
                    a = listener.accept() => a,
                };
                let Ok((mut conn, _)) = accepted else {
                    continue;
                };
                if !req.owner.owns() {
                    continue; // dropped unanswered
                }
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), conn.write_all(line.as_bytes()))
                        .await;
            }
            drop(listener);
        });
        Ok(Box::new(StandIn {
            stop: Some(stop),
            task: Some(task),
        }))
    }
}

#[async_trait::async_trait]
impl Serving for StandIn {
    async fn stop(mut self: Box<Self>) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Protocol;
    use crate::server::OwnerGuard;
    use tokio::io::AsyncReadExt;

    fn req(addr: std::net::SocketAddr, owner: OwnerGuard) -> ServeRequest {
        ServeRequest {
            export: "default".into(),
            volume: "default".into(),
            protocol: Protocol::Nfs,
            addr,
            node: 7,
            owner,
        }
    }

    async fn read_line(addr: std::net::SocketAddr) -> String {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = String::new();
        let _ = c.read_to_string(&mut s).await;
        s
    }

    #[tokio::test]
    async fn answers_names_itself_and_frees_the_address_on_stop() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let owner = OwnerGuard::new(None);
        let s = StandInServers
            .start(req(addr, owner.clone()))
            .await
            .unwrap();
        assert_eq!(
            read_line(addr).await,
            "keel-gateway export=default protocol=nfs node=7\n"
        );
        // A second server on the same address is refused as "in use".
        let again = StandInServers.start(req(addr, OwnerGuard::new(None))).await;
        assert!(matches!(again, Err(ServeError::AddressInUse { .. })));
        // Revoked: connections go unanswered.
        owner.revoke();
        assert_eq!(read_line(addr).await, "");
        s.stop().await;
        // Stopped: the address is free at once.
        let s2 = StandInServers
            .start(req(addr, OwnerGuard::new(None)))
            .await
            .unwrap();
        s2.stop().await;
    }
}
