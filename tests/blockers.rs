//! A blocker blocks whatever it tolerates (SPEC §3), on the real test
//! environment: a bare pod that tolerates every taint (what `kubectl debug
//! node/…` makes), and a do-not-disrupt pod that tolerates the cordon, each
//! pinned to the oldest node of a NodePool. The plan shows that node blocked,
//! naming the pod and why, and the drain takes the next oldest instead; the
//! blocked node and its pod are left alone.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};
use support::*;

const ONE_CPU: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};

const BLOCKER: Requests = Requests {
    cpu: "100m",
    memory: "64Mi",
};

/// How the blocker is made.
enum Blocker {
    /// A bare pod bound to the node, tolerating every taint.
    BarePodToleratingEverything,
    /// A Deployment's pod on the node, `karpenter.sh/do-not-disrupt: "true"`,
    /// tolerating the unschedulable taint.
    DoNotDisruptToleratingTheCordon,
}

async fn create_blocker(w: &Workloads<'_>, blocker: &Blocker, node: &str, hostname: &str) {
    match blocker {
        Blocker::BarePodToleratingEverything => {
            let mut spec = pod_spec(w.nodepool, BLOCKER, 2);
            spec["nodeName"] = json!(node);
            spec["tolerations"] = json!([{"operator": "Exists"}]);
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": "blocker", "labels": {"app": "blocker"}},
                "spec": spec
            }))
            .unwrap();
            Api::<Pod>::namespaced(w.client.clone(), w.namespace)
                .create(&PostParams::default(), &pod)
                .await
                .expect("create the bare pod");
        }
        Blocker::DoNotDisruptToleratingTheCordon => {
            let mut spec = pod_spec(w.nodepool, BLOCKER, 2);
            spec["nodeSelector"]["kubernetes.io/hostname"] = json!(hostname);
            spec["tolerations"] = json!([{"key": "node.kubernetes.io/unschedulable",
                                          "operator": "Exists", "effect": "NoSchedule"}]);
            let deployment: Deployment = serde_json::from_value(json!({
                "metadata": {"name": "blocker"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "blocker"}},
                    "template": {
                        "metadata": {"labels": {"app": "blocker"},
                                     "annotations": {"karpenter.sh/do-not-disrupt": "true"}},
                        "spec": spec
                    }
                }
            }))
            .unwrap();
            Api::<Deployment>::namespaced(w.client.clone(), w.namespace)
                .create(&PostParams::default(), &deployment)
                .await
                .expect("create the do-not-disrupt Deployment");
        }
    }
}

/// A NodePool of 3 nodes, the blocker on the oldest: the plan skips it as
/// blocked (`why` in its reason) and the drain takes the second oldest.
async fn the_oldest_node_is_skipped_as_blocked(prefix: &str, blocker: Blocker, why: &str) {
    let scene = Scene::new(prefix, "c-4x-amd64-linux", Some(json!([{"nodes": "100%"}]))).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    // Exactly 3 nodes of 4 CPUs, one pod of 1 CPU on each.
    pool.set_limits(json!({"cpu": "12"})).await;
    w.spread_deployment("web", 3, ONE_CPU).await;
    let nodes = pool.wait_ready_nodes(3, Duration::from_secs(180)).await;
    w.wait_running("web", 3, Duration::from_secs(60)).await;
    let names: Vec<String> = nodes
        .iter()
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    let (oldest, second) = (&names[0], &names[1]);
    let hostname = hostname_of(client, oldest).await;
    create_blocker(&w, &blocker, oldest, &hostname).await;
    let running = w.wait_running("blocker", 1, Duration::from_secs(60)).await;
    assert_eq!(
        &node_of(&running[0]),
        oldest,
        "the blocker is on the oldest node"
    );
    let blocker_uid = running[0].metadata.uid.clone();
    // 3 × 4 CPUs, 3.1 CPUs requested: about 26 %, so the formula allows 2 of 3.
    wait_nodepool_cpu_metrics(env, &pool.name, Some(12.0), None).await;

    let args = ["--nodepool-name", &pool.name, "--max-nodes", "1"];
    let plan = run_node_drain(
        env,
        &[&["drain", "--dry-run", "--output", "json"], &args[..]].concat(),
    )
    .await;
    assert!(plan.status.success(), "dry run: {}", text(&plan.stderr));
    let plan: Value = serde_json::from_slice(&plan.stdout).expect("the plan is JSON");
    let entry = |name: &str| -> Value {
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == json!(name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} in the plan: {plan:#}"))
    };
    let blocked = entry(oldest);
    assert_eq!(blocked["chosen"], json!(false), "{plan:#}");
    assert_eq!(
        blocked["skipped"]["skip"],
        json!("blocking-pods"),
        "{plan:#}"
    );
    let reasons = blocked["skipped"]["pods"].to_string();
    assert!(
        reasons.contains(&format!("{}/blocker", ns.name)) && reasons.contains(why),
        "the plan names the pod and why: {reasons}"
    );
    assert_eq!(entry(second)["chosen"], json!(true), "{plan:#}");

    let out = run_node_drain(env, &[&["drain", "--retire", "none"], &args[..]].concat()).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the next node is drained:\n{stdout}\n{}",
        text(&out.stderr)
    );
    let drained = get_node(client, second).await.unwrap();
    assert_eq!(
        annotation(&drained, "node-drain.io/state").as_deref(),
        Some("drained"),
        "{stdout}"
    );
    let untouched = get_node(client, oldest).await.unwrap();
    assert!(
        !unschedulable(&untouched),
        "the blocked node is not cordoned"
    );
    assert_eq!(
        annotation(&untouched, "node-drain.io/state"),
        None,
        "node-drain never touched the blocked node"
    );
    let still = w.pods("blocker").await;
    assert!(
        still
            .iter()
            .any(|p| p.metadata.uid == blocker_uid && node_of(p) == *oldest),
        "the blocker stays where it is"
    );
    let evicted = successful_evictions(env, &ns.name);
    assert!(!evicted.contains_key("blocker"), "{evicted:?}");
    assert!(
        !evicted.keys().any(|p| p.starts_with("blocker-")),
        "{evicted:?}"
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_pod_that_tolerates_everything_blocks_its_node() {
    the_oldest_node_is_skipped_as_blocked(
        "blk-bare",
        Blocker::BarePodToleratingEverything,
        "no controller",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_do_not_disrupt_pod_that_tolerates_the_cordon_blocks_its_node() {
    the_oldest_node_is_skipped_as_blocked(
        "blk-dnd",
        Blocker::DoNotDisruptToleratingTheCordon,
        "karpenter.sh/do-not-disrupt",
    )
    .await;
}
