//! A new leader takes over what a SIGKILLed leader left: at once (the old
//! leader's fence has closed, so its heartbeat need not go stale first), with
//! the settings the drain was asked with (a `retire: none` drain never gets its
//! NodeClaim deleted), never retiring a node a person has uncordoned since, and
//! giving back what it claimed in a NodePool the config no longer names.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use serde_json::json;
use support::daemon::{alert, Daemon, TOKEN};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

fn nodeclaims(client: &kube::Client) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim")),
    )
}

/// Starts a daemon with `fault` that receives an alert for the node of a
/// `web` pod and is SIGKILLed at that point; answers the node and the
/// NodeClaim's name (its `kubernetes.io/hostname`).
async fn killed_leader(
    scene: &Scene,
    nodepool: &str,
    lease: &str,
    config: &str,
    fault: &str,
    args: &[&str],
) -> (String, String) {
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let claim = hostname_of(&scene.client, &node).await;
    let mut first = Daemon::start_args(
        &scene.env,
        nodepool,
        lease,
        &unique("doomed"),
        config,
        &[("NODE_DRAIN_TEST_FAULT", fault)],
        args,
    );
    first.wait_ready().await;
    let a = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T06:00:00Z",
    );
    assert_eq!(first.post(Some(TOKEN), a.to_string()).await, 202);
    let mut died = false;
    for _ in 0..600 {
        if let Ok(Some(_)) = first.child.try_wait() {
            died = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(died, "not killed at {fault}:\n{}", first.log());
    assert!(
        first.log().contains("SIGKILL to this process"),
        "{}",
        first.log()
    );
    (node, claim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retire_none_drain_is_resumed_at_once_and_keeps_its_node_and_nodeclaim() {
    let scene = Scene::new("takeover-none", "c-4x-amd64-linux", None).await;
    let config =
        "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n    retire: none\n";
    let lease = unique("lease");
    // A long --orphan-after: only the lease rule can explain a prompt takeover.
    let args = ["--orphan-after", "300s"];
    let (node, claim) = killed_leader(
        &scene,
        &scene.pool.name,
        &lease,
        config,
        "cordon:kill",
        &args,
    )
    .await;
    let n = get_node(&scene.client, &node).await.expect("the node");
    let dead_run = annotation(&n, "node-drain.io/run-id").expect("recorded");
    assert_eq!(
        annotation(&n, "node-drain.io/state").as_deref(),
        Some("cordoned")
    );

    let second = Daemon::start_args(
        &scene.env,
        &scene.pool.name,
        &lease,
        &unique("next"),
        config,
        &[],
        &args,
    );
    // The lease is only taken once it lapses (15 s); time the takeover from the
    // moment this daemon leads.
    second.wait_ready().await;
    let elected = Instant::now();
    let n = wait_for(
        "the node drained by the next leader",
        Duration::from_secs(90),
        || async {
            let n = get_node(&scene.client, &node)
                .await
                .expect("the node stays");
            match annotation(&n, "node-drain.io/state").as_deref() {
                Some("drained") => Ok(Some(n)),
                other => Err(format!(
                    "{other:?} run {:?}",
                    annotation(&n, "node-drain.io/run-id")
                )),
            }
        },
    )
    .await;
    eprintln!(
        "FIGURE takeover: drained {:?} after the next leader was ready",
        elected.elapsed()
    );
    assert_ne!(annotation(&n, "node-drain.io/run-id"), Some(dead_run));
    assert_eq!(
        annotation(&n, "node-drain.io/retirement").as_deref(),
        Some("none")
    );
    assert!(unschedulable(&n), "retire: none leaves the node cordoned");
    let settings: serde_json::Value =
        serde_json::from_str(&annotation(&n, "node-drain.io/settings").expect("settings recorded"))
            .unwrap();
    assert_eq!(settings["retire"], "none", "{settings}");
    // Nothing retires it afterwards either.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = get_node(&scene.client, &node)
        .await
        .expect("the node is kept");
    assert!(n.metadata.deletion_timestamp.is_none());
    let nc = nodeclaims(&scene.client)
        .get_opt(&claim)
        .await
        .unwrap()
        .expect("the NodeClaim is kept");
    assert!(
        nc.metadata.deletion_timestamp.is_none(),
        "the NodeClaim is not deleted"
    );
    assert!(second.log().contains("takeover"), "{}", second.log());
    assert_evicted_at_most_once(&scene.env, &scene.ns.name);
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_a_person_uncordoned_is_not_retired_by_the_next_leader() {
    let scene = Scene::new("takeover-uncordoned", "c-4x-amd64-linux", None).await;
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let lease = unique("lease");
    // Killed after the `drained` record, before the NodeClaim delete.
    let (node, claim) = killed_leader(
        &scene,
        &scene.pool.name,
        &lease,
        config,
        "drained:kill",
        &[],
    )
    .await;
    let n = get_node(&scene.client, &node).await.expect("the node");
    assert_eq!(
        annotation(&n, "node-drain.io/state").as_deref(),
        Some("drained")
    );
    // A person takes the node back.
    Api::<Node>::all(scene.client.clone())
        .patch(
            &node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": false}})),
        )
        .await
        .unwrap();

    let second = Daemon::start(
        &scene.env,
        &scene.pool.name,
        &lease,
        &unique("next"),
        config,
    );
    // Ready = elected and reconciled: every takeover decision has been made;
    // a run it started would act within seconds.
    second.wait_ready().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let n = get_node(&scene.client, &node)
        .await
        .expect("the node is kept");
    assert!(n.metadata.deletion_timestamp.is_none());
    assert!(!unschedulable(&n));
    let nc = nodeclaims(&scene.client)
        .get_opt(&claim)
        .await
        .unwrap()
        .expect("the NodeClaim is kept");
    assert!(
        nc.metadata.deletion_timestamp.is_none(),
        "the NodeClaim is not deleted: {}",
        second.log()
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_claimed_in_a_nodepool_removed_from_the_config_is_given_back() {
    // The scene's NodePool is managed through the config only; the daemon's
    // --nodepool-name is another one.
    let scene = Scene::new("takeover-removed", "c-4x-amd64-linux", None).await;
    let home = TestNodePool::create(&scene.client, "takeover-home", "c-4x-amd64-linux", None).await;
    let rule = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let with_pool = format!("nodepools: [{}]\n{rule}", scene.pool.name);
    let lease = unique("lease");
    let (node, _) = killed_leader(&scene, &home.name, &lease, &with_pool, "cordon:kill", &[]).await;
    let n = get_node(&scene.client, &node).await.expect("the node");
    assert_eq!(
        annotation(&n, "node-drain.io/state").as_deref(),
        Some("cordoned")
    );

    // The next leader's config no longer names that NodePool.
    let second = Daemon::start(&scene.env, &home.name, &lease, &unique("next"), rule);
    second.wait_ready().await;
    wait_for("the node given back", Duration::from_secs(30), || async {
        let n = get_node(&scene.client, &node)
            .await
            .expect("the node stays");
        let state = annotation(&n, "node-drain.io/state");
        match (state.as_deref(), unschedulable(&n)) {
            (Some("restored"), false) => Ok(Some(())),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let n = get_node(&scene.client, &node)
        .await
        .expect("the node stays");
    assert!(
        n.metadata.deletion_timestamp.is_none(),
        "restored, not drained"
    );
    home.delete().await;
    scene.cleanup().await;
}
