//! `drain --dry-run` against real Karpenter, Prometheus and the API server: it
//! changes nothing (every resourceVersion a drain could touch is the same
//! after) and names the oldest nodes. Unusable Prometheus answers: `plan.rs`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use node_drain::units::parse_quantity;
use serde_json::{json, Value};
use support::run_node_drain as run;
use support::*;

fn node_capacity(node: &Node, name: &str) -> f64 {
    node.status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get(name))
        .and_then(|q| parse_quantity(&q.0))
        .unwrap_or(0.0)
}

/// resourceVersion of every object a drain could touch: the NodePool, its
/// NodeClaims and nodes, and the pods of the namespace.
async fn versions(
    client: &kube::Client,
    pool: &TestNodePool,
    ns: &str,
) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let rv = |kind: &str, name: Option<String>, v: Option<String>| {
        (
            format!("{kind}/{}", name.unwrap_or_default()),
            v.unwrap_or_default(),
        )
    };
    let selector = ListParams::default().labels(&format!("karpenter.sh/nodepool={}", pool.name));
    for node in pool.nodes().await {
        all.extend([rv(
            "node",
            node.metadata.name,
            node.metadata.resource_version,
        )]);
    }
    let claims: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim")),
    );
    for claim in claims.list(&selector).await.unwrap().items {
        all.extend([rv(
            "nodeclaim",
            claim.metadata.name,
            claim.metadata.resource_version,
        )]);
    }
    let pools: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool")),
    );
    let np = pools.get(&pool.name).await.unwrap();
    all.extend([rv(
        "nodepool",
        np.metadata.name,
        np.metadata.resource_version,
    )]);
    for pod in Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        all.extend([rv("pod", pod.metadata.name, pod.metadata.resource_version)]);
    }
    all
}

#[tokio::test]
async fn dry_run_changes_nothing_and_names_the_oldest_nodes() {
    let scene = Scene::new(
        "plan-dry",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "100%"}])),
    )
    .await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();

    // Four nodes first, four more later: the oldest are known.
    w.spread_deployment(
        "old",
        4,
        Requests {
            cpu: "1",
            memory: "1Gi",
        },
    )
    .await;
    let old_nodes = pool.wait_ready_nodes(4, Duration::from_secs(120)).await;
    w.wait_running("old", 4, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // creationTimestamp has 1 s resolution
    w.spread_deployment(
        "new",
        4,
        Requests {
            cpu: "1",
            memory: "1Gi",
        },
    )
    .await;
    let nodes = pool.wait_ready_nodes(8, Duration::from_secs(120)).await;
    w.wait_running("new", 4, Duration::from_secs(60)).await;
    let want: f64 = nodes.iter().map(|n| node_capacity(n, "cpu")).sum();
    // 8 pods of 1 CPU.
    wait_nodepool_cpu_metrics(env, &pool.name, Some(want), Some(8.0)).await;

    let before = versions(client, pool, &ns.name).await;
    let out = run(
        env,
        &[
            "drain",
            "--dry-run",
            "--nodepool-name",
            &pool.name,
            "--max-nodes",
            "2",
            "--output",
            "json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "dry run failed: {}",
        text(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text_out = run(
        env,
        &[
            "drain",
            "--dry-run",
            "--nodepool-name",
            &pool.name,
            "--max-nodes",
            "2",
        ],
    )
    .await;
    assert!(text_out.status.success());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = versions(client, pool, &ns.name).await;
    // Karpenter may have launched a spare node while the pods were pending: count
    // what is there, each node with its NodeClaim.
    let count = |kind: &str| before.keys().filter(|k| k.starts_with(kind)).count();
    assert!(count("node/") >= 8, "8 nodes or more: {before:?}");
    assert_eq!(count("node/"), count("nodeclaim/"), "a NodeClaim per node");
    assert_eq!(
        (count("nodepool/"), count("pod/")),
        (1, 8),
        "the NodePool, 8 pods"
    );
    assert_eq!(before, after, "a dry run must change nothing");

    let chosen: Vec<String> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["chosen"] == true)
        .map(|n| n["node"].as_str().unwrap().to_string())
        .collect();
    let oldest: Vec<String> = nodes
        .iter()
        .take(2)
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(chosen, oldest, "the two oldest nodes are chosen");
    let old_names: Vec<String> = old_nodes
        .iter()
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    assert!(
        chosen.iter().all(|c| old_names.contains(c)),
        "chosen from the first four nodes"
    );
    assert_eq!(plan["wave"]["waveSize"], 2);
    assert_eq!(plan["wave"]["limitedBy"][0]["cap"], "max-nodes");
    // Each chosen node lists the pod that would be evicted.
    for node in plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["chosen"] == true)
    {
        let pods = node["pods"].as_array().unwrap();
        assert!(
            pods.iter()
                .any(|p| p["action"] == "evict" && p["reason"] == "stateless"),
            "{node}"
        );
    }
    let printed = text(&text_out.stdout);
    for name in &oldest {
        assert!(
            printed.contains(&format!("{name}  created")) && printed.contains("DRAIN"),
            "{printed}"
        );
    }
    scene.cleanup().await;
}
