//! The admin socket: `run(listener, daemon, allowed uids, shutdown)`. Only the
//! daemon's own uid (the socket file's owner) and `--admin-uids` may talk
//! (SO_PEERCRED); the file is 0600. Bounded: connections (a semaphore), line
//! length (64 KiB: longer closes the connection), idle time (30 s). Garbage
//! gets an error answer and never hurts the daemon.

pub mod protocol;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::intake::{mailbox, Daemon};
use crate::alerts::rules::Action;
use crate::drain::StopReason;
use crate::error::{Error, Result};
use crate::messages::{CancelNode, CancelRun, PlanWave, SetPaused, Target};
use protocol::Request;

const MAX_CONNECTIONS: usize = 16;
const IDLE: Duration = Duration::from_secs(30);

/// Binds the socket at `path` (a stale socket file is replaced) with mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a socket",
                path.display()
            )));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn run(
    listener: UnixListener,
    path: std::path::PathBuf,
    daemon: Arc<Daemon>,
    mut allowed: Vec<u32>,
    shutdown: CancellationToken,
) {
    if let Ok(meta) = std::fs::metadata(&path) {
        allowed.push(meta.uid());
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "admin socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            let mut stream = stream;
            let _ = stream
                .write_all(format!("{}\n", protocol::error("too many connections")).as_bytes())
                .await;
            continue;
        };
        let (daemon, allowed, shutdown) = (daemon.clone(), allowed.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = connection(stream, &daemon, &allowed) => {}
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn connection(mut stream: UnixStream, daemon: &Daemon, allowed: &[u32]) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(_) => return,
    };
    if !allowed.contains(&uid) {
        warn!(uid, "admin socket: a peer with a uid not allowed; closed");
        let _ = stream
            .write_all(
                format!(
                    "{}\n",
                    protocol::error(&format!("uid {uid} is not allowed"))
                )
                .as_bytes(),
            )
            .await;
        return;
    }
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let read = tokio::time::timeout(
            IDLE,
            (&mut reader)
                .take(protocol::MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line),
        )
        .await;
        let answer = match read {
            Err(_) | Ok(Err(_)) | Ok(Ok(0)) => return,
            Ok(Ok(_)) if line.len() > protocol::MAX_LINE => {
                let _ = write
                    .write_all(
                        format!("{}\n", protocol::error("line over 64 KiB; closing")).as_bytes(),
                    )
                    .await;
                return;
            }
            // A half-written line (no newline before the end) is not a request.
            Ok(Ok(_)) if line.last() != Some(&b'\n') => return,
            Ok(Ok(_)) => match protocol::parse(&line) {
                Ok(request) => {
                    let name = request.name();
                    let result = execute(request, daemon, uid).await;
                    crate::telemetry::metrics::get().admin_request(name, result.is_ok());
                    match result {
                        Ok(v) => protocol::ok(v),
                        Err(e) => protocol::error(&e.to_string()),
                    }
                }
                Err(e) => {
                    crate::telemetry::metrics::get().admin_request("invalid", false);
                    protocol::error(&e)
                }
            },
        };
        if write
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

fn available(daemon: &Daemon) -> Result<()> {
    match daemon.unavailable() {
        None => Ok(()),
        Some(why) => Err(Error::Usage(format!("not now: {why}"))),
    }
}

async fn execute(request: Request, daemon: &Daemon, uid: u32) -> Result<serde_json::Value> {
    let by = format!("the admin socket (uid {uid})");
    info!(cmd = request.name(), uid, "admin request");
    let planner = &daemon.actors.planner;
    match request {
        Request::Status => crate::ingress::http::status_json(daemon).await,
        Request::Plan { nodepool } => {
            let pool = nodepool.unwrap_or_else(|| daemon.nodepool.clone());
            daemon
                .drain_nodepool(&pool, daemon.settings(None), by, true)
                .await
        }
        Request::DrainNode {
            node,
            dry_run: true,
        } => {
            let plan = planner
                .send(PlanWave {
                    nodepool: daemon.nodepool.clone(),
                    rates: None,
                    target_allocate_rate: 99,
                    max_nodes: None,
                    nodes: vec![node],
                    force: false,
                    list_named_pods: true,
                })
                .await
                .map_err(mailbox)??;
            Ok(json!({ "plan": plan }))
        }
        Request::DrainNode {
            node,
            dry_run: false,
        } => {
            available(daemon)?;
            let admit = daemon.admit(
                Action::DrainNode,
                Target::Node(node),
                daemon.settings(None),
                by,
                None,
            );
            let admitted = planner.send(admit).await.map_err(mailbox)??;
            Ok(json!({ "admitted": admitted }))
        }
        Request::DrainNodepool { nodepool, dry_run } => {
            if !dry_run {
                available(daemon)?;
            }
            daemon
                .drain_nodepool(&nodepool, daemon.settings(None), by, dry_run)
                .await
        }
        Request::Pause | Request::Resume => {
            let paused = matches!(request, Request::Pause);
            daemon
                .paused
                .store(paused, std::sync::atomic::Ordering::SeqCst);
            planner.send(SetPaused(paused)).await.map_err(mailbox)?;
            Ok(json!({ "paused": paused }))
        }
        Request::Cancel { run: Some(run), .. } => {
            let told = planner
                .send(CancelRun {
                    run_id: Some(run),
                    reason: StopReason::Cancelled { by },
                })
                .await
                .map_err(mailbox)?;
            Ok(json!({ "nodes_stopped": told }))
        }
        Request::Cancel {
            node: Some(node), ..
        } => {
            let stopped = planner
                .send(CancelNode {
                    node,
                    reason: StopReason::Cancelled { by },
                })
                .await
                .map_err(mailbox)?;
            Ok(json!({ "stopped": stopped }))
        }
        Request::Cancel { .. } => Err(Error::Usage("cancel needs run or node".into())),
    }
}
