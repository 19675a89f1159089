//! A request the leader queued (its NodePool had no room) survives the
//! leader: it is recorded on its Node, and the next leader admits it again,
//! in order, before it takes new alerts. A queued request never cordons its
//! node by itself, and the node is drained exactly once.

mod support;

use std::time::Duration;

use serde_json::json;
use support::daemon::{alert, Daemon, TOKEN};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

/// Waits (240 s at most: a loaded machine) until `node` is drained and
/// retired; the daemon's log on failure.
async fn retired(client: &kube::Client, node: &str, daemon: &Daemon) {
    for _ in 0..480 {
        match get_node(client, node).await {
            None => return,
            Some(n) if n.metadata.deletion_timestamp.is_some() => return,
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let n = get_node(client, node).await.expect("the node");
    panic!(
        "{node} not retired: {:?}\n{}",
        n.metadata.annotations,
        daemon.log()
    );
}

const CONFIG: &str = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";

/// Two daemons on one Lease, `--max-nodes 1`, two alerted nodes: the first
/// drains (held by a PDB), the second is queued. The leader is SIGKILLed; the
/// other takes over, shows the queued node in `status`, and once the first
/// drain ends drains the second node, each pod evicted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_request_survives_a_sigkilled_leader() {
    let scene = Scene::new("queue-takeover", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment("web", 2, SMALL).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let (first_node, second_node) = (node_of(&pods[0]), node_of(&pods[1]));
    assert_ne!(first_node, second_node, "one pod per node");
    let second_pod = pods[1].metadata.name.clone().unwrap();
    let lease = unique("lease");
    let args = ["--max-nodes", "1"];
    let first_id = unique("first");
    let mut first = Daemon::start_args(env, &pool.name, &lease, &first_id, CONFIG, &[], &args);
    first.wait_ready().await;
    let next = Daemon::start_args(env, &pool.name, &lease, &unique("next"), CONFIG, &[], &args);

    let alert_for = |node: &str, at: &str| {
        alert(json!({"alertname": "NodeDiskPressure", "node": node}), at).to_string()
    };
    assert_eq!(
        first
            .post(Some(TOKEN), alert_for(&first_node, "2026-11-29T01:00:00Z"))
            .await,
        202
    );
    wait_state(client, &first_node, "cordoned").await;
    wait_refused_eviction(env, &ns.name).await;
    let queued_alert = alert_for(&second_node, "2026-11-29T01:00:01Z");
    assert_eq!(first.post(Some(TOKEN), queued_alert.clone()).await, 202);
    wait_for(
        "the second node queued",
        Duration::from_secs(30),
        || async {
            let status = first.admin(b"{\"cmd\":\"status\"}\n").await;
            let pending = status
                .pointer("/status/pending")
                .cloned()
                .unwrap_or_default();
            match pending
                .as_array()
                .is_some_and(|p| p.contains(&json!(second_node)))
            {
                true => Ok(Some(())),
                false => Err(format!("{status}")),
            }
        },
    )
    .await;
    // Let the record land, then check that queuing touched no cordon.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = get_node(client, &second_node).await.expect("the node");
    assert!(!unschedulable(&n), "a queued request never cordons");
    assert_eq!(annotation(&n, "node-drain.io/state"), None);
    let record: serde_json::Value = serde_json::from_str(
        &annotation(&n, "node-drain.io/queued").expect("the queued request recorded"),
    )
    .unwrap();
    assert_eq!(record["holder"], json!(first_id), "{record}");
    assert_eq!(record["action"], "drain-node", "{record}");

    first.child.kill().unwrap();
    first.child.wait().unwrap();
    next.wait_ready().await;
    // The next leader knows the queue before it takes any alert.
    let status = next.admin(b"{\"cmd\":\"status\"}\n").await;
    let pending = status
        .pointer("/status/pending")
        .cloned()
        .unwrap_or_default();
    assert!(
        pending
            .as_array()
            .is_some_and(|p| p.contains(&json!(second_node))),
        "the next leader does not know the queued node: {status}\n{}",
        next.log()
    );
    // Alertmanager's repeat to the new leader is a duplicate of the queue.
    assert_eq!(next.post(Some(TOKEN), queued_alert).await, 202);
    let n = get_node(client, &second_node).await.expect("the node");
    assert!(!unschedulable(&n), "still queued: the cap is full");

    kube::Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
        client.clone(),
        &ns.name,
    )
    .delete("frozen", &Default::default())
    .await
    .unwrap();
    retired(client, &first_node, &next).await;
    retired(client, &second_node, &next).await;
    let evicted = successful_evictions(env, &ns.name);
    assert_eq!(evicted.get(&second_pod), Some(&1), "{evicted:?}");
    assert_evicted_at_most_once(env, &ns.name);
    let claims = next
        .log()
        .lines()
        .filter(|l| l.contains(&second_node) && l.contains("queued request admitted again"))
        .count();
    assert_eq!(claims, 1, "{}", next.log());
    scene.cleanup().await;
}

/// What a leader does with the records it finds at its election: its Lease's,
/// in a managed NodePool, queued again oldest first (a budget of 0: they wait);
/// another Lease's left alone; its Lease's in a NodePool it no longer manages
/// removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_requests_are_queued_in_order_left_or_removed() {
    let budgets = json!([{"nodes": "0"}]);
    let scene = Scene::new("queue-records", "c-4x-amd64-linux", Some(budgets)).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment("web", 4, SMALL).await;
    let pods = w.wait_running("web", 4, Duration::from_secs(120)).await;
    let nodes: Vec<String> = pods.iter().map(node_of).collect();
    let lease = unique("lease");
    let lease_id = format!("default/{lease}");
    let record = |at: &str, lease: &str| {
        json!({"action": "drain-node", "trigger": "alert NodeDiskPressure (test)",
               "queuedAt": at, "holder": "gone-leader", "lease": lease,
               "settings": {"force": false, "onTimeout": "restore",
                            "drainTimeoutSeconds": 60, "retire": "none"}})
        .to_string()
    };
    let recorded = [
        (&nodes[0], record("2026-11-29T10:00:00.2Z", &lease_id)),
        (&nodes[1], record("2026-11-29T10:00:00.1Z", &lease_id)),
        (&nodes[2], record("2026-11-29T09:00:00Z", "elsewhere/other")),
    ];
    // The cap (`--max-nodes 1`) is full: a live run of another daemon holds
    // nodes[3] (its heartbeat never goes stale). The budget of 0 alone is not
    // enough: a NotReady node takes no budget, and a loaded machine's KWOK
    // nodes can be NotReady for a moment.
    let in_flight = json!({"metadata": {"annotations": {
        "node-drain.io/state": "cordoned", "node-drain.io/run-id": "other-run",
        "node-drain.io/heartbeat": "2099-01-01T00:00:00Z",
        "node-drain.io/lease": "elsewhere/other"}}});
    kube::Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .patch(
            &nodes[3],
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(in_flight),
        )
        .await
        .unwrap();
    for (node, value) in &recorded {
        kube::Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
            .patch(
                node,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(
                    json!({"metadata": {"annotations": {"node-drain.io/queued": value}}}),
                ),
            )
            .await
            .unwrap();
    }
    let mut daemon = Daemon::start(env, &pool.name, &lease, &unique("leader"), CONFIG);
    daemon.wait_ready().await;
    let status = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
    assert_eq!(
        status.pointer("/status/pending"),
        Some(&json!([nodes[1], nodes[0]])),
        "oldest first, another Lease's left out: {status}\n{}",
        daemon.log()
    );
    for node in &nodes[..3] {
        let n = get_node(client, node).await.expect("the node");
        assert!(!unschedulable(&n), "queued, never cordoned: {node}");
    }
    assert_eq!(daemon.terminate().code(), Some(0));

    // The next leader manages another NodePool only.
    let home = TestNodePool::create(client, "queue-home", "c-4x-amd64-linux", None).await;
    let next = Daemon::start(env, &home.name, &lease, &unique("next"), CONFIG);
    next.wait_ready().await;
    let queued = |node: &String| {
        let node = node.clone();
        async move {
            get_node(client, &node)
                .await
                .and_then(|n| annotation(&n, "node-drain.io/queued"))
        }
    };
    assert_eq!(queued(&nodes[0]).await, None, "{}", next.log());
    assert_eq!(queued(&nodes[1]).await, None, "{}", next.log());
    assert_eq!(queued(&nodes[2]).await, Some(recorded[2].1.clone()));
    let status = next.admin(b"{\"cmd\":\"status\"}\n").await;
    assert_eq!(
        status.pointer("/status/pending"),
        Some(&json!([])),
        "{status}"
    );
    home.delete().await;
    scene.cleanup().await;
}
