//! A second alert for a node whose request already waits for room is merged
//! into it, never lost: a forced rule's alert takes the place of a plain one,
//! so a blocker that appears on the node meanwhile (a `do-not-disrupt` pod)
//! does not turn the forced alert away when the room comes.

mod support;

use std::time::Duration;

use serde_json::json;
use support::daemon::{alert, Daemon, TOKEN};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

const CONFIG: &str = "rules:
  - alertname: NodeDiskPressure
    action: drain-node
  - alertname: NodeFilesystemFull
    action: drain-node
    force: true
";

/// `--max-nodes 1`: the first node's drain is held by a PDB, so the second
/// node's plain alert is queued. A do-not-disrupt pod then starts on the
/// second node and a forced rule's alert names it too (merged into the
/// waiting request). Once the PDB goes, the second node is drained through the
/// blocker. Before the merge kept the forced request, the waiting plain one
/// came back blocked and was dropped with the forced alert in it: the second
/// node was never cordoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_alert_merged_into_a_queued_request_drains_through_a_blocker() {
    let scene = Scene::new("queue-merge", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment("web", 2, SMALL).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(180)).await;
    let (first_node, second_node) = (node_of(&pods[0]), node_of(&pods[1]));
    assert_ne!(first_node, second_node, "one pod per node");
    let daemon = Daemon::start_args(
        env,
        &pool.name,
        &unique("lease"),
        &unique("merge"),
        CONFIG,
        &[],
        &["--max-nodes", "1"],
    );
    daemon.wait_ready().await;
    let daemon = &daemon;
    let post = |name: &str, node: &str, at: &str| {
        let body = alert(json!({"alertname": name, "node": node}), at).to_string();
        async move { daemon.post(Some(TOKEN), body).await }
    };
    assert_eq!(
        post("NodeDiskPressure", &first_node, "2026-11-29T01:00:00Z").await,
        202
    );
    wait_state(client, &first_node, "cordoned").await;
    wait_refused_eviction(env, &ns.name).await;
    assert_eq!(
        post("NodeDiskPressure", &second_node, "2026-11-29T01:00:01Z").await,
        202
    );
    let pending = || async {
        let status = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
        status
            .pointer("/status/pending")
            .cloned()
            .unwrap_or_default()
    };
    wait_for(
        "the second node queued",
        Duration::from_secs(30),
        || async {
            let p = pending().await;
            match p
                .as_array()
                .is_some_and(|p| p.contains(&json!(second_node)))
            {
                true => Ok(Some(())),
                false => Err(format!("{p}")),
            }
        },
    )
    .await;

    // A do-not-disrupt pod starts on the second node.
    let hostname = hostname_of(client, &second_node).await;
    w.pinned(
        "keep",
        SMALL,
        &hostname,
        json!({"karpenter.sh/do-not-disrupt": "true"}),
        json!({}),
    )
    .await;
    w.wait_running("keep", 1, Duration::from_secs(180)).await;
    assert_eq!(
        post("NodeFilesystemFull", &second_node, "2026-11-29T01:00:02Z").await,
        202
    );
    wait_for(
        "the forced alert merged",
        Duration::from_secs(30),
        || async {
            let admitted = daemon
                .log()
                .lines()
                .any(|l| l.contains("alert admitted") && l.contains("NodeFilesystemFull"));
            match admitted {
                true => Ok(Some(())),
                false => Err(daemon.log()),
            }
        },
    )
    .await;
    assert_eq!(
        pending().await,
        json!([second_node]),
        "one request per node"
    );

    kube::Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
        client.clone(),
        &ns.name,
    )
    .delete("frozen", &Default::default())
    .await
    .unwrap();
    // The forced request drains the second node, do-not-disrupt pod and all.
    wait_for(
        "the second node drained through its blocker",
        Duration::from_secs(240),
        || async {
            let Some(n) = get_node(client, &second_node).await else {
                return Ok(Some(()));
            };
            match annotation(&n, "node-drain.io/state").as_deref() {
                Some("drained") => Ok(Some(())),
                _ if n.metadata.deletion_timestamp.is_some() => Ok(Some(())),
                state => Err(format!(
                    "state {state:?}, pending {}\n{}",
                    pending().await,
                    daemon.log()
                )),
            }
        },
    )
    .await;
    assert_evicted_at_most_once(env, &ns.name);
    scene.cleanup().await;
}
