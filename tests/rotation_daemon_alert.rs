//! The rule action `rotate-nodepool` on the real test environment: an
//! Alertmanager webhook whose alert names a small NodePool (3 nodes, budget 1)
//! in its `nodepool` label starts a rotation that replaces every original
//! node; the alert sent again while it rotates starts no second rotation (the
//! daemon answers "already rotating"); an alert naming a NodePool the daemon
//! does not manage is refused by name and changes nothing.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::{alert, Daemon, TOKEN};
use support::rotation::*;
use support::*;

const ALERT: &str = "RotateRotdAlertPool";

/// `ROTATION_TEST_ALERT_ACTION=drain-nodepool` (one wave, not a rotation):
/// how the every-original-replaced assertion was seen to fail.
fn action() -> String {
    std::env::var("ROTATION_TEST_ALERT_ACTION").unwrap_or_else(|_| "rotate-nodepool".into())
}

/// Posts one firing alert naming `nodepool`; answers the status and the body.
async fn post_alert(daemon: &Daemon, nodepool: &str, starts_at: &str) -> (u16, Value) {
    let mut body = alert(json!({"alertname": ALERT, "nodepool": nodepool}), starts_at);
    // Alertmanager's fingerprint is its labels' hash: one per NodePool here.
    body["alerts"][0]["fingerprint"] = json!(format!("rotd-alert-{nodepool}"));
    let response = reqwest::Client::new()
        .post(format!("{}/v1/alerts", daemon.url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("POST /v1/alerts");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits for a line of the daemon's log containing every one of `needles`.
async fn wait_log(daemon: &Daemon, what: &str, needles: &[&str]) -> String {
    wait_for(what, Duration::from_secs(60), || async {
        let log = daemon.log();
        match log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            Some(line) => Ok(Some(line.to_string())),
            None => Err(log.lines().rev().take(20).collect::<Vec<_>>().join("\n")),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_rotates_its_nodepool_once_and_an_unknown_nodepool_changes_nothing() {
    let (scene, originals) = spread_pool("rotd-alert", 3, json!([{"nodes": "1"}])).await;
    let (client, pool) = (&scene.client, &scene.pool);
    let config = format!("rules:\n  - alertname: {ALERT}\n    action: {}\n", action());
    let lease = unique("rotd-lease");
    let daemon = rotation_daemon(&scene, &lease, &config, &[]).await;

    let (status, body) = post_alert(&daemon, &pool.name, "2026-11-29T10:00:00Z").await;
    assert_eq!((status, &body["queued"]), (202, &json!(1)), "{body}");
    let rotation = wait_for(
        "the alert's rotation running",
        Duration::from_secs(60),
        || async {
            match daemon_rotation(&daemon, &pool.name).await {
                Some(r) if r["runId"].is_string() => Ok(Some(r)),
                other => Err(format!("{other:?}\n{}", daemon.log())),
            }
        },
    )
    .await;
    assert!(
        rotation["trigger"]
            .as_str()
            .is_some_and(|t| t.contains(ALERT)),
        "{rotation}"
    );
    let run = rotation["runId"].clone();
    // Held between waves while the alerts come again: still rotating however
    // fast the waves go.
    let control = |action: &str| {
        json!({"cmd": "rotation", "nodepool": pool.name, "action": action}).to_string() + "\n"
    };
    let paused = daemon.admin(control("pause").as_bytes()).await;
    assert_eq!(paused["ok"], json!(true), "{paused}");

    // The same alert again (Alertmanager's repeat: same startsAt) is a duplicate;
    // the alert firing anew reaches the registry, which answers "already rotating".
    let (status, body) = post_alert(&daemon, &pool.name, "2026-11-29T10:00:00Z").await;
    assert_eq!((status, &body["queued"]), (202, &json!(0)), "{body}");
    let (status, body) = post_alert(&daemon, &pool.name, "2026-11-29T10:05:00Z").await;
    assert_eq!((status, &body["queued"]), (202, &json!(1)), "{body}");
    let refused = format!("already rotating NodePool {}", pool.name);
    wait_log(
        &daemon,
        "the second rotation refused",
        &["NodePool rotation not started", &refused],
    )
    .await;

    // A NodePool this daemon does not manage: refused by name, nothing started.
    let unknown = unique("rotd-alert-nope");
    let (status, body) = post_alert(&daemon, &unknown, "2026-11-29T10:00:00Z").await;
    assert_eq!((status, &body["queued"]), (202, &json!(1)), "{body}");
    let not_managed = format!("NodePool \"{unknown}\" is not managed by this daemon");
    wait_log(&daemon, "the unknown NodePool refused", &[&not_managed]).await;
    let status = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
    let rotating: Vec<&Value> = status["rotations"]
        .as_array()
        .map(|r| r.iter().map(|r| &r["nodepool"]).collect())
        .unwrap_or_default();
    assert_eq!(rotating, vec![&json!(pool.name)], "{status}");
    assert_eq!(
        daemon_rotation(&daemon, &pool.name)
            .await
            .map(|r| r["runId"].clone()),
        Some(run),
        "one rotation, the first"
    );

    // Every original node replaced, by that one rotation.
    let resumed = daemon.admin(control("resume").as_bytes()).await;
    assert_eq!(resumed["ok"], json!(true), "{resumed}");
    wait_no_record(client, &pool.name, Duration::from_secs(600)).await;
    let now: Vec<String> = pool
        .wait_ready_nodes(3, Duration::from_secs(120))
        .await
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let log = daemon.log();
    assert_replaced(&originals, &now, &log);
    let starts = log.matches("rotation starting").count();
    assert_eq!(starts, 1, "rotations started:\n{log}");
    drop(daemon);
    delete_lease(client, &lease).await;
    scene.cleanup().await;
}
