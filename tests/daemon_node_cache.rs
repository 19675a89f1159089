//! `node-drain serve` on the real test environment with its watched Node
//! cache (issue 17): once the cache is synced, plans, an admitted alert and
//! the reconciliation's rounds make no LIST of nodes (the API server's audit
//! log, by the daemon's User-Agent); a node Karpenter would taint as
//! disrupted (`kubectl taint`) is shown skipped by a following plan, from the
//! watch.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::{alert, Daemon, TOKEN};
use support::observe::AuditEvent;
use support::*;

/// LISTs of nodes (not watches) the node-drain process `holder` made at or
/// after `since` (RFC 3339, as the audit log writes it).
fn node_lists_by(env: &TestEnv, holder: &str, since: &str) -> Vec<String> {
    let text = std::fs::read_to_string(env.var("TESTENV_AUDIT_LOG")).unwrap_or_default();
    let tag = format!("({holder})");
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| e.stage == "ResponseComplete" && e.user_agent.ends_with(&tag))
        .filter(|e| e.verb == "list")
        .filter(|e| e.object.as_ref().is_some_and(|o| o.resource == "nodes"))
        .filter(|e| e.received.as_str() >= since)
        .map(|e| format!("{} {:?} at {}", e.verb, e.object, e.received))
        .collect()
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// A dry-run plan of `node` through the admin socket: its entry.
async fn plan_of(daemon: &Daemon, node: &str) -> Value {
    let answer = daemon
        .admin(
            format!(
                "{}\n",
                json!({"cmd": "drain-node", "node": node, "dry_run": true})
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(answer["ok"], json!(true), "{answer}");
    answer["plan"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == json!(node)).cloned())
        .unwrap_or_else(|| panic!("{node} is not in the plan: {answer}"))
}

/// Nodes of the test's own, made directly (KWOK manages them): on a cluster
/// busy with a scale run Karpenter may take minutes to provision. Deleted on drop.
struct Nodes(Vec<String>, TestEnv);

impl Drop for Nodes {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = std::process::Command::new(self.1.kubectl())
                .env("KUBECONFIG", self.1.kubeconfig())
                .args(["delete", "node", name, "--wait=false", "--ignore-not-found"])
                .output();
        }
    }
}

async fn make_nodes(client: &kube::Client, pool: &str, count: usize) -> Nodes {
    use k8s_openapi::api::core::v1::Node;
    let api: kube::Api<Node> = kube::Api::all(client.clone());
    let mut names = Vec::new();
    for _ in 0..count {
        let name = unique("ncache-node");
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name,
                         "labels": {"karpenter.sh/nodepool": pool, "karpenter.sh/initialized": "true",
                                    "kubernetes.io/hostname": name, "type": "kwok"},
                         "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": {}
        }))
        .unwrap();
        api.create(&Default::default(), &node)
            .await
            .expect("create node");
        names.push(name);
    }
    Nodes(names, TestEnv::load())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_and_alerts_read_the_watched_nodes_and_a_taint_arrives_by_the_watch() {
    let scene = Scene::new("ncache", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let made = make_nodes(client, &pool.name, 2).await;
    let (tainted, drained) = (made.0[0].clone(), made.0[1].clone());
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let identity = unique("ncache-serve");
    let daemon = Daemon::start(env, &pool.name, &unique("ncache-lease"), &identity, config);
    daemon.wait_ready().await;
    wait_for("the node cache synced", Duration::from_secs(60), || async {
        Ok(daemon
            .log()
            .contains("the node cache is synced")
            .then_some(()))
    })
    .await;
    let since = now();

    for _ in 0..3 {
        let entry = plan_of(&daemon, &tainted).await;
        assert_ne!(entry["skipped"]["skip"], json!("disrupted"), "{entry}");
    }
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": drained}),
        "2026-11-29T03:00:00Z",
    );
    assert_eq!(daemon.post(Some(TOKEN), good.to_string()).await, 202);
    wait_for(
        "the alert's node claimed",
        Duration::from_secs(60),
        || async {
            let node = get_node(client, &drained).await;
            Ok(node
                .filter(|n| annotation(n, "node-drain.io/state").is_some())
                .map(|_| ()))
        },
    )
    .await;

    let out = std::process::Command::new(env.kubectl())
        .env("KUBECONFIG", env.kubeconfig())
        .args([
            "taint",
            "node",
            &tainted,
            "karpenter.sh/disrupted:NoSchedule",
        ])
        .output()
        .expect("kubectl taint");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let skipped = wait_for(
        "the plan shows the taint",
        Duration::from_secs(10),
        || async {
            let entry = plan_of(&daemon, &tainted).await;
            Ok((entry["skipped"]["skip"] == json!("disrupted")).then_some(entry))
        },
    )
    .await;
    assert_eq!(skipped["skipped"]["skip"], json!("disrupted"), "{skipped}");
    // A reconciliation round (every 10 s) reads the cache too; the audit log
    // is written as requests complete.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let lists = node_lists_by(env, &identity, &since);
    assert!(
        lists.is_empty(),
        "node LISTs after the cache synced: {lists:#?}\n{}",
        daemon.log()
    );
    drop(daemon);
    drop(made);
    scene.cleanup().await;
}
