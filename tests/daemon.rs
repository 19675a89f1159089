//! `node-drain serve` on the real test environment: an alert drains the node
//! it names, once (a re-sent alert is a duplicate); bad webhooks get the right
//! status and touch no node; the admin socket answers every command, refuses
//! garbage, and is 0600; SIGTERM exits 0 and releases the lease.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;
use support::daemon::{alert, Daemon, TOKEN};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_drains_the_node_it_names_once_and_bad_requests_touch_nothing() {
    let scene = Scene::new("daemon-alert", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let mut daemon = Daemon::start(env, &pool.name, &unique("lease"), &unique("serve"), config);
    daemon.wait_ready().await;

    // Bad input: the right status each time, and no node touched.
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T03:00:00Z",
    );
    let mut wrong_version = good.clone();
    wrong_version["version"] = json!("3");
    let mut no_alerts = good.clone();
    no_alerts.as_object_mut().unwrap().remove("alerts");
    let cases: Vec<(Option<&str>, Vec<u8>, u16)> = vec![
        (None, good.to_string().into_bytes(), 401),
        (Some("wrong"), good.to_string().into_bytes(), 401),
        (Some(TOKEN), b"{\"version\": \"4\", ".to_vec(), 400),
        (Some(TOKEN), wrong_version.to_string().into_bytes(), 400),
        (Some(TOKEN), no_alerts.to_string().into_bytes(), 400),
        (Some(TOKEN), vec![b' '; 2 << 20], 413),
    ];
    for (token, body, want) in &cases {
        assert_eq!(
            daemon.post(*token, body.clone()).await,
            *want,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
    for i in 0..300 {
        let (token, body, want) = &cases[i % (cases.len() - 1)];
        assert_eq!(daemon.post(*token, body.clone()).await, *want);
    }
    let health = reqwest::get(format!("{}/healthz", daemon.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let n = get_node(client, &node).await.unwrap();
    assert!(
        !unschedulable(&n) && annotation(&n, "node-drain.io/state").is_none(),
        "bad requests touched the node"
    );

    // The admin socket: 0600, every read-only command, garbage refused.
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let status = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
    assert_eq!(status["ok"], json!(true), "{status}");
    assert_eq!(status["role"]["leader"], json!(true), "{status}");
    for garbage in [
        &b"hello\n"[..],
        b"{\"cmd\":\"reboot\"}\n",
        b"{\"cmd\":\"cancel\"}\n",
    ] {
        let answer = daemon.admin(garbage).await;
        assert_eq!(answer["ok"], json!(false), "{answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let dry = daemon
        .admin(
            format!(
                "{}\n",
                json!({"cmd": "drain-node", "node": node, "dry_run": true})
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(dry["ok"], json!(true), "{dry}");
    let paused = daemon.admin(b"{\"cmd\":\"pause\"}\n").await;
    assert_eq!(paused["paused"], json!(true), "{paused}");
    assert_eq!(
        daemon.post(Some(TOKEN), good.to_string()).await,
        503,
        "paused: Alertmanager must retry"
    );
    daemon.admin(b"{\"cmd\":\"resume\"}\n").await;

    // The alert, then Alertmanager sending it again: one drain.
    assert_eq!(daemon.post(Some(TOKEN), good.to_string()).await, 202);
    assert_eq!(daemon.post(Some(TOKEN), good.to_string()).await, 202);
    wait_retired(
        client,
        &node,
        "the node drained and retired",
        Duration::from_secs(120),
    )
    .await;
    assert_evicted_at_most_once(env, &ns.name);
    let metrics = reqwest::get(format!("{}/metrics", daemon.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("node_drain_alerts_total{outcome=\"duplicate\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("node_drain_webhook_requests_total{code=\"401\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("node_drain_leader 1"), "{metrics}");
    let log = daemon.log();
    assert_eq!(
        log.matches("draining the wave").count(),
        1,
        "one drain:\n{log}"
    );

    // A rotated token (the Secret changed): the old one is refused within 2 s.
    std::fs::write(daemon.dir.0.join("token"), "rotated-token\n").unwrap();
    wait_for("the rotated token", Duration::from_secs(10), || async {
        let old = daemon.post(Some(TOKEN), good.to_string()).await;
        let new = daemon.post(Some("rotated-token"), good.to_string()).await;
        if (old, new) == (401, 202) {
            Ok(Some(()))
        } else {
            Err(format!("old {old}, new {new}"))
        }
    })
    .await;

    let status = daemon.terminate();
    assert!(
        status.success(),
        "SIGTERM: exit 0, got {status:?}\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("released the lease"),
        "{}",
        daemon.log()
    );
}

/// Two daemons on one Lease: only the leader acts. The leader is SIGKILLed
/// while a PDB holds its drain; the other takes the lease, takes the node over
/// once its heartbeat is stale, and completes the drain: every pod evicted
/// successfully exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_leaders_drain_is_completed_by_the_next_leader() {
    let scene = Scene::new("daemon-takeover", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let lease = unique("lease");
    let mut first = Daemon::start(env, &pool.name, &lease, &unique("first"), config);
    first.wait_ready().await;
    let second = Daemon::start(env, &pool.name, &lease, &unique("second"), config);
    // The follower is alive, not ready, and refuses webhooks with 503.
    wait_for("the follower up", Duration::from_secs(30), || async {
        match reqwest::get(format!("{}/healthz", second.url)).await {
            Ok(r) if r.status() == 200 => Ok(Some(())),
            other => Err(format!("{:?}", other.map(|r| r.status()))),
        }
    })
    .await;
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T04:00:00Z",
    );
    assert_eq!(
        second.post(Some(TOKEN), good.to_string()).await,
        503,
        "a follower never acts"
    );
    let ready = reqwest::get(format!("{}/readyz", second.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    assert_eq!(first.post(Some(TOKEN), good.to_string()).await, 202);
    wait_state(client, &node, "cordoned").await;
    wait_refused_eviction(env, &ns.name).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    kube::Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
        client.clone(),
        &ns.name,
    )
    .delete("frozen", &Default::default())
    .await
    .unwrap();

    second.wait_ready().await;
    wait_retired(
        client,
        &node,
        "the node drained and retired by the new leader",
        Duration::from_secs(150),
    )
    .await;
    assert!(!successful_evictions(env, &ns.name).is_empty());
    assert_evicted_at_most_once(env, &ns.name);
    assert!(second.log().contains("takeover of run"), "{}", second.log());
}

/// A leader paused (SIGSTOP) past its lease: the other daemon takes the lease
/// and the node and completes the drain; woken (SIGCONT), the paused one sends
/// no write at all (fencing) and exits non-zero (it lost the lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_wakes_up_fenced_and_steps_down() {
    let scene = Scene::new("daemon-fence", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let lease = unique("lease");
    let paused_id = unique("paused");
    let mut first = Daemon::start(env, &pool.name, &lease, &paused_id, config);
    first.wait_ready().await;
    let second = Daemon::start(env, &pool.name, &lease, &unique("second"), config);
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T05:00:00Z",
    );
    assert_eq!(first.post(Some(TOKEN), good.to_string()).await, 202);
    wait_state(client, &node, "cordoned").await;
    wait_refused_eviction(env, &ns.name).await;
    let pid = first.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    kube::Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
        client.clone(),
        &ns.name,
    )
    .delete("frozen", &Default::default())
    .await
    .unwrap();
    second.wait_ready().await;
    wait_retired(
        client,
        &node,
        "the node drained and retired by the new leader",
        Duration::from_secs(150),
    )
    .await;

    let woken = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    let mut status = None;
    for _ in 0..400 {
        if let Ok(Some(s)) = first.child.try_wait() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status =
        status.unwrap_or_else(|| panic!("the woken leader did not step down:\n{}", first.log()));
    assert!(
        !status.success(),
        "a leader that lost its lease exits non-zero"
    );
    // Let the audit log catch up, then: not one write from the woken process.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = writes_by(env, &paused_id, &woken);
    assert!(
        writes.is_empty(),
        "the fenced leader wrote: {writes:#?}\n{}",
        first.log()
    );
    assert!(first.log().contains("leadership lost"), "{}", first.log());
    assert_evicted_at_most_once(env, &ns.name);
}

/// The admin socket against bad clients: a 10 MB line, a half-written line, a
/// client that connects and never writes, a peer with another uid. Each gets an
/// error answer or a closed connection, and the daemon answers the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_clients_get_errors_or_closed_connections_and_hurt_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let scene = Scene::new("daemon-admin", "c-4x-amd64-linux", None).await;
    let daemon = Daemon::start(
        &scene.env,
        &scene.pool.name,
        &unique("lease"),
        &unique("serve"),
        "",
    );
    daemon.wait_ready().await;
    let connect = || tokio::net::UnixStream::connect(&daemon.socket);

    // A 10 MB line: refused past 64 KiB, the connection closed.
    let mut s = connect().await.unwrap();
    let big = vec![b'x'; 10 << 20];
    let _ = s.write_all(&big).await; // the daemon may close while we write
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer).await;
    assert!(answer.is_empty() || answer.contains("64 KiB"), "{answer}");

    // A half-written line, then the client goes away: nothing happens.
    let mut s = connect().await.unwrap();
    s.write_all(b"{\"cmd\":\"pau").await.unwrap();
    drop(s);

    // Idle clients hold a slot each, but never the daemon: 20 of them (more
    // than the 16 slots), and a real client still gets... an answer or a refusal.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(connect().await.unwrap());
    }
    let mut s = connect().await.unwrap();
    s.write_all(b"{\"cmd\":\"status\"}\n").await.unwrap();
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(&mut s)
        .read_line_owned(&mut line)
        .await;
    assert!(
        line.contains("\"ok\""),
        "an answer or a refusal, not silence: {line:?}"
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

trait ReadLineOwned {
    async fn read_line_owned(self, line: &mut String) -> std::io::Result<usize>;
}

impl<R: tokio::io::AsyncBufRead + Unpin> ReadLineOwned for R {
    async fn read_line_owned(mut self, line: &mut String) -> std::io::Result<usize> {
        use tokio::io::AsyncBufReadExt;
        tokio::time::timeout(Duration::from_secs(10), self.read_line(line))
            .await
            .unwrap_or(Ok(0))
    }
}
