//! Reading Nodes and their pods in cluster tests, and starting node-drain in
//! the background.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::Client;

use super::{wait_for, TestEnv};

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
