//! `node-drain serve` on the real test environment: an alert drains the node
//! it names, once (a re-sent alert is a duplicate); bad webhooks get the right
//! status and touch no node; the admin socket answers every command, refuses
//! garbage, and is 0600; SIGTERM exits 0 and releases the Lease (its holder
//! is empty). Two daemons: `daemon_leader.rs`; bad admin clients: `daemon_admin.rs`.

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
    let lease = unique("lease");
    let mut daemon = Daemon::start(env, &pool.name, &lease, &unique("serve"), config);
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
    // Released: the Lease itself names no holder (the next leader need not
    // wait 15 s).
    let released = kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        client.clone(),
        "default",
    )
    .get(&lease)
    .await
    .unwrap();
    let holder = released.spec.and_then(|s| s.holder_identity);
    assert!(
        holder.as_deref().unwrap_or("").is_empty(),
        "after SIGTERM the Lease is still held by {holder:?}\n{}",
        daemon.log()
    );
}
