//! The node node-drain runs on goes last in its wave (SPEC §2): it is claimed
//! only after every other node of the run is drained, not merely listed last.
//! Seen in the API server's audit log: the first write to the own node comes
//! after the last write to the other.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// (node, requestReceivedTimestamp) of every node write node-drain made since `since`.
fn node_writes(env: &TestEnv, since: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(env.var("TESTENV_AUDIT_LOG")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter(|e| {
            e["userAgent"]
                .as_str()
                .is_some_and(|a| a.starts_with("node-drain/"))
        })
        .filter(|e| e["objectRef"]["resource"] == "nodes" && e["verb"] == "patch")
        .filter_map(|e| {
            let at = e["requestReceivedTimestamp"].as_str()?.to_string();
            let node = e["objectRef"]["name"].as_str()?.to_string();
            (at.as_str() >= since).then_some((node, at))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_node_drain_runs_on_is_claimed_after_the_others_are_drained() {
    let scene = Scene::new(
        "own-last",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "100%"}])),
    )
    .await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    pool.set_limits(json!({"cpu": "8"})).await;
    w.spread_deployment(
        "web",
        2,
        Requests {
            cpu: "1",
            memory: "1Gi",
        },
    )
    .await;
    let nodes = pool.wait_ready_nodes(2, Duration::from_secs(180)).await;
    w.wait_running("web", 2, Duration::from_secs(60)).await;
    let own = nodes[0].metadata.name.clone().unwrap();
    let other = nodes[1].metadata.name.clone().unwrap();
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    let mut cmd = env.node_drain();
    cmd.env("NODE_NAME", &own).args([
        "drain",
        "--nodepool-name",
        &pool.name,
        "--nodes",
        &format!("{own},{other}"),
        "--retire",
        "none",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for node in [&own, &other] {
        let n = get_node(client, node).await.unwrap();
        assert_eq!(
            annotation(&n, "node-drain.io/state").as_deref(),
            Some("drained"),
            "{node}"
        );
    }
    // The audit log is written as requests complete: give it a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes: Vec<(String, String)> = node_writes(env, &since)
        .into_iter()
        .filter(|(n, _)| *n == own || *n == other)
        .collect();
    let first_own = writes
        .iter()
        .filter(|(n, _)| *n == own)
        .map(|(_, at)| at)
        .min();
    let last_other = writes
        .iter()
        .filter(|(n, _)| *n == other)
        .map(|(_, at)| at)
        .max();
    let (Some(first_own), Some(last_other)) = (first_own, last_other) else {
        panic!("both nodes written: {writes:#?}");
    };
    assert!(
        first_own > last_other,
        "the own node is claimed ({first_own}) only after the other is drained ({last_other}): {writes:#?}"
    );
    scene.cleanup().await;
}
