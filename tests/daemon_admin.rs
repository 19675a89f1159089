//! The admin socket of `node-drain serve` on the real test environment,
//! against bad clients: each gets the one exact answer its limit gives; with
//! `--admin-gid`, a member of the group (another uid) may use it.

mod support;

use std::time::Duration;

use serde_json::json;
use support::daemon::Daemon;
use support::*;

const RULES: &str = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";

/// The admin socket against bad clients: a 10 MB line, a half-written line,
/// clients that connect and never write, a peer with another uid. Each gets the
/// one answer its limit gives (or a closed connection), and the daemon answers
/// the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_clients_get_errors_or_closed_connections_and_hurt_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let scene = Scene::new("daemon-admin", "c-4x-amd64-linux", None).await;
    let daemon = Daemon::start(
        &scene.env,
        &scene.pool.name,
        &unique("lease"),
        &unique("serve"),
        RULES,
    );
    daemon.wait_ready().await;
    let connect = || tokio::net::UnixStream::connect(&daemon.socket);
    // Everything the daemon says until it closes the connection (at most
    // 10 s). Read chunk by chunk: a socket closed with our request unread
    // ends in ECONNRESET after its answer, and the answer must be kept.
    async fn until_closed(read: &mut (impl AsyncReadExt + Unpin)) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let (mut answer, mut chunk) = (Vec::new(), [0u8; 4096]);
        loop {
            match tokio::time::timeout_at(deadline, read.read(&mut chunk)).await {
                Err(_) => {
                    answer.extend_from_slice(b" [still open after 10 s]");
                    break;
                }
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    // A 10 MB line: refused past 64 KiB with one answer, then closed. We write
    // while we read: the daemon closes before we are done writing.
    let (mut read, mut write) = connect().await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&vec![b'x'; 10 << 20]).await;
        write
    });
    assert_eq!(
        until_closed(&mut read).await,
        format!(
            "{}\n",
            json!({"ok": false, "error": "line over 64 KiB; closing"})
        ),
        "a line over 64 KiB"
    );
    drop(writer);

    // A half-written line, then the client goes away: nothing happens.
    let mut s = connect().await.unwrap();
    s.write_all(b"{\"cmd\":\"pau").await.unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 16 idle clients hold the 16 slots; the next client gets the one refusal
    // and is closed, whatever it asks.
    let mut idle = Vec::new();
    for _ in 0..16 {
        idle.push(connect().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut s = connect().await.unwrap();
    let _ = s.write_all(b"{\"cmd\":\"status\"}\n").await;
    assert_eq!(
        until_closed(&mut s).await,
        format!(
            "{}\n",
            json!({"ok": false, "error": "too many connections"})
        ),
        "a 17th client while 16 are connected"
    );
    drop(idle);

    // Another uid, with the file opened up so the kernel lets it connect: the
    // daemon checks SO_PEERCRED and refuses.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let dir_mode = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(&daemon.dir.0, dir_mode).unwrap();
    let socket = daemon.socket.display().to_string();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_node-drain"))
        .args([
            "admin",
            "--admin-socket",
            &socket,
            "--output",
            "json",
            "pause",
        ])
        .output()
        .expect("setpriv");
    assert_eq!(
        out.status.code(),
        Some(1),
        "an error answer exits 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("uid 65534 is not allowed"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Unaffected: not paused, and answering.
    let status = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
    assert_eq!(status["ok"], json!(true), "{status}");
    assert_eq!(status["status"]["paused"], json!(false), "{status}");
    let health = reqwest::get(format!("{}/healthz", daemon.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// `--admin-gid`: the socket is 0660 and the group's; a member of the group
/// (another uid) is answered, a non-member with the file opened up is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_the_admin_group_may_use_the_socket() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let scene = Scene::new("daemon-admin-gid", "c-4x-amd64-linux", None).await;
    let daemon = Daemon::start_with(
        &scene.env,
        &scene.pool.name,
        &unique("lease"),
        &unique("serve"),
        RULES,
        &[("ADMIN_GID", "4242")],
    );
    daemon.wait_ready().await;
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, 4242));
    std::fs::set_permissions(&daemon.dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = daemon.socket.display().to_string();
    let admin_as = |groups: &str| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", groups])
            .arg(env!("CARGO_BIN_EXE_node-drain"))
            .args(["admin", "--admin-socket", &socket, "--output", "json"])
            .arg("status")
            .output()
            .expect("setpriv")
    };
    let member = admin_as("--groups=4242");
    let text = String::from_utf8_lossy(&member.stdout);
    assert!(
        member.status.success() && text.contains("\"ok\":true"),
        "a member of the admin group: {text} {}",
        String::from_utf8_lossy(&member.stderr)
    );
    // A non-member cannot even open the 0660 file; opened up, the daemon refuses it.
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let stranger = admin_as("--clear-groups");
    let text = String::from_utf8_lossy(&stranger.stdout);
    assert!(
        text.contains("uid 65534 is not allowed"),
        "not a member: {text} {}",
        String::from_utf8_lossy(&stranger.stderr)
    );
}
