//! [`NodeRuntime`]: a node process stand-in. Each node runs on its own single-threaded
//! tokio runtime on its own OS thread, so that it can be
//! - paused, like SIGSTOP: the thread blocks, none of the node's tasks or timers run,
//!   and time goes on; when resumed, everything that was due runs late;
//! - killed, like SIGKILL: the runtime is dropped with every task in it, no shutdown
//!   path runs, and the data directory is left as the last completed write left it.
//!
//! Must never: run a node's task on another runtime, or leave a thread behind (a
//! runtime dropped without `kill` is stopped in the background).

use crate::error::HarnessError;
use keel_core::NodeId;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How long `kill` waits for the node's blocking tasks (disk writes) to finish.
const KILL_GRACE: Duration = Duration::from_secs(10);

pub struct NodeRuntime {
    id: NodeId,
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Present while paused: dropping it lets the thread go on.
    release: Option<std::sync::mpsc::Sender<()>>,
}

impl NodeRuntime {
    /// Starts the thread and its runtime.
    pub fn spawn(id: NodeId) -> Result<NodeRuntime, HarnessError> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("node-{id}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stopped.await;
                });
                rt.shutdown_timeout(KILL_GRACE);
            })
            .map_err(|e| HarnessError::Runtime(format!("node {id}: {e}")))?;
        let handle = handle_rx
            .recv()
            .map_err(|e| HarnessError::Runtime(format!("node {id}: {e}")))?
            .map_err(|e| HarnessError::Runtime(format!("node {id}: {e}")))?;
        Ok(NodeRuntime {
            id,
            handle,
            stop: Some(stop),
            thread: Some(thread),
            release: None,
        })
    }

    /// Where the node's tasks run.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub fn is_paused(&self) -> bool {
        self.release.is_some()
    }

    /// Stops the process: returns once its thread is blocked.
    pub async fn pause(&mut self) -> Result<(), HarnessError> {
        if self.release.is_some() {
            return Ok(());
        }
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (blocked_tx, blocked) = oneshot::channel();
        self.handle.spawn(async move {
            let _ = blocked_tx.send(());
            // Blocks the node's only thread on purpose: nothing else of it runs.
            let _ = wait.recv();
        });
        tokio::time::timeout(Duration::from_secs(5), blocked)
            .await
            .map_err(|_| HarnessError::Runtime(format!("node {} did not pause", self.id)))?
            .map_err(|_| HarnessError::Runtime(format!("node {} is gone", self.id)))?;
        self.release = Some(release);
        Ok(())
    }

    /// Lets a paused process go on.
    pub fn resume(&mut self) {
        self.release = None;
    }

    /// Kills the process: every task is dropped where it stands. Returns once the
    /// thread has ended (blocking disk writes in flight complete first).
    pub async fn kill(mut self) {
        self.resume();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        self.release = None;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
