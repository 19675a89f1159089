//! The admin socket: `run(listener, path, daemon, options, shutdown)`. Only
//! the daemon's own effective uid and the members of `--admin-gid` may talk
//! (`access`: the file's mode, then SO_PEERCRED). Bounded: connections (a
//! semaphore; one more gets one refusal), line length (64 KiB: longer closes
//! the connection), idle time (30 s). Garbage gets an error answer and never
//! hurts the daemon. What each request does: `commands`.

pub mod access;
mod commands;
pub mod protocol;
mod rotation;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::intake::Daemon;
use access::Peer;

/// How the socket is bounded, and who besides the daemon's uid may talk.
#[derive(Debug, Clone)]
pub struct Options {
    /// A client that sends no full line for this long is closed.
    pub idle: Duration,
    /// Clients at once; one more gets one refusal and is closed.
    pub max_connections: usize,
    /// `--admin-gid`: members of this group may talk too.
    pub admin_gid: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30),
            max_connections: 16,
            admin_gid: None,
        }
    }
}

/// Binds the socket at `path` (a stale socket file is replaced): mode 0600,
/// or 0660 and the admin group's with `admin_gid`.
pub fn bind(path: &Path, admin_gid: Option<u32>) -> std::io::Result<UnixListener> {
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
    access::restrict(path, admin_gid)?;
    Ok(listener)
}

pub async fn run(
    listener: UnixListener,
    path: std::path::PathBuf,
    daemon: Arc<Daemon>,
    options: Options,
    shutdown: CancellationToken,
) {
    let own_uid = access::own_uid();
    let slots = Arc::new(Semaphore::new(options.max_connections));
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
        let (daemon, options, shutdown) = (daemon.clone(), options.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = connection(stream, &daemon, own_uid, &options) => {}
            }
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn connection(mut stream: UnixStream, daemon: &Daemon, own_uid: u32, options: &Options) {
    let peer = match stream.peer_cred() {
        Ok(cred) => Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            groups: options
                .admin_gid
                .map(|_| access::supplementary_groups(cred.pid()))
                .unwrap_or_default(),
        },
        Err(_) => return,
    };
    let uid = peer.uid;
    if !access::allowed(&peer, own_uid, options.admin_gid) {
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
            options.idle,
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
                    let result = commands::execute(request, daemon, uid).await;
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
