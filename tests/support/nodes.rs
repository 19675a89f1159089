//! Reading Nodes and their pods in cluster tests, and starting node-drain in
//! the background.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::Client;

use super::{audit_events, successful_evictions, wait_for, TestEnv};

pub fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

pub async fn get_node(client: &Client, name: &str) -> Option<Node> {
    Api::<Node>::all(client.clone())
        .get_opt(name)
        .await
        .unwrap()
}

pub fn annotation(node: &Node, key: &str) -> Option<String> {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key).cloned())
}

pub fn unschedulable(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// The node's `kubernetes.io/hostname` label (on Karpenter KWOK nodes, the NodeClaim's name).
pub async fn hostname_of(client: &Client, node: &str) -> String {
    get_node(client, node)
        .await
        .and_then(|n| n.metadata.labels)
        .and_then(|l| l.get("kubernetes.io/hostname").cloned())
        .expect("a hostname label")
}

/// Waits until node-drain records `want` on the node (and, for `cordoned`, the
/// node is unschedulable).
pub async fn wait_state(client: &Client, node: &str, want: &str) {
    wait_for(
        &format!("node {node} in state {want}"),
        Duration::from_secs(60),
        || async {
            let n = get_node(client, node).await.ok_or("node gone")?;
            let state = annotation(&n, "node-drain.io/state");
            if state.as_deref() == Some(want) && (want != "cordoned" || unschedulable(&n)) {
                Ok(Some(()))
            } else {
                Err(format!("{state:?}"))
            }
        },
    )
    .await;
}

/// Starts `node-drain drain` in the background (a process the test can signal).
pub fn spawn_drain(env: &TestEnv, args: &[&str]) -> std::process::Child {
    let mut cmd = env.node_drain();
    cmd.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().expect("start node-drain")
}

/// Waits until `node` is gone or being deleted: drained and retired.
pub async fn wait_retired(client: &Client, node: &str, what: &str, timeout: Duration) {
    wait_for(what, timeout, || async {
        match get_node(client, node).await {
            None => Ok(Some(())),
            Some(n) if n.metadata.deletion_timestamp.is_some() => Ok(Some(())),
            Some(n) => Err(format!("{:?}", annotation(&n, "node-drain.io/state"))),
        }
    })
    .await;
}

/// Waits until a PDB refused an eviction of a pod of `namespace` (429 in the
/// audit log): the drain is in its backoff.
pub async fn wait_refused_eviction(env: &TestEnv, namespace: &str) {
    wait_for("a refused eviction", Duration::from_secs(30), || async {
        let refused = audit_events(env, namespace).iter().any(|e| {
            e.object
                .as_ref()
                .is_some_and(|o| o.subresource == "eviction")
                && e.response.as_ref().is_some_and(|r| r.code == 429)
        });
        Ok(refused.then_some(()))
    })
    .await;
}

/// No pod of `namespace` was evicted successfully more than once.
pub fn assert_evicted_at_most_once(env: &TestEnv, namespace: &str) {
    for (pod, count) in successful_evictions(env, namespace) {
        assert_eq!(count, 1, "pod {pod} evicted {count} times");
    }
}
