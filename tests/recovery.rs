//! The CLI's recovery of what an earlier run left (one policy with the
//! daemon's, `drain::recovery`): a run that was only slow (stopped, a laptop
//! lid) loses a node another run restored and touches it no more; a run killed
//! between the `drained` record and the retirement gets its node retired by
//! the next run.

mod support;

use std::time::Duration;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
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

fn signal(child: &std::process::Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig}");
}

/// Two nodes, each with one `web` pod.
async fn two_nodes(scene: &Scene) -> (String, String) {
    let w = scene.workloads();
    w.spread_deployment("web", 2, SMALL).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(180)).await;
    let (a, b) = (node_of(&pods[0]), node_of(&pods[1]));
    assert_ne!(a, b);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_run_whose_node_was_restored_touches_it_no_more() {
    let scene = Scene::new("slow-run", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool.name);
    let (a, b) = two_nodes(&scene).await;
    let claim_a = hostname_of(client, &a).await;
    scene.workloads().pdb("web", "web", None, Some(2)).await;
    let first = spawn_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            pool,
            "--nodes",
            &a,
            "--orphan-after",
            "6s",
        ],
    );
    wait_refused_eviction(env, &scene.ns.name).await;
    // The run stops answering (a laptop lid) past --orphan-after.
    signal(&first, "-STOP");
    tokio::time::sleep(Duration::from_secs(8)).await;
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &scene.ns.name)
        .delete("web", &Default::default())
        .await
        .unwrap();

    // The next run restores the node the stopped run left, then drains its own.
    let second = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            pool,
            "--nodes",
            &b,
            "--retire",
            "none",
            "--orphan-after",
            "6s",
        ],
    )
    .await;
    let log = text(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{log}");
    assert!(
        log.contains("restored a node an earlier node-drain left"),
        "{log}"
    );
    let n = get_node(client, &a).await.expect("node a");
    assert_eq!(
        annotation(&n, "node-drain.io/state").as_deref(),
        Some("restored")
    );
    assert!(!unschedulable(&n));

    // The slow run wakes up: it lost the node, and changes nothing more.
    signal(&first, "-CONT");
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("another run owns the node"), "{log}");
    let n = get_node(client, &a).await.expect("node a is kept");
    assert_eq!(
        annotation(&n, "node-drain.io/state").as_deref(),
        Some("restored"),
        "the woken run wrote over the restore: {log}"
    );
    assert!(!unschedulable(&n));
    assert!(n.metadata.deletion_timestamp.is_none());
    let nc = nodeclaims(client)
        .get_opt(&claim_a)
        .await
        .unwrap()
        .expect("NodeClaim");
    assert!(
        nc.metadata.deletion_timestamp.is_none(),
        "the woken run deleted the NodeClaim: {log}"
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_the_drained_record_gets_its_node_retired_by_the_next() {
    let scene = Scene::new("killed-drained", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool.name);
    let (a, b) = two_nodes(&scene).await;
    let claim_a = hostname_of(client, &a).await;
    let mut cmd = env.node_drain();
    cmd.env("NODE_DRAIN_TEST_FAULT", "drained:kill").args([
        "drain",
        "--nodepool-name",
        pool,
        "--nodes",
        &a,
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out.stderr));
    let n = get_node(client, &a).await.expect("node a");
    assert_eq!(
        annotation(&n, "node-drain.io/state").as_deref(),
        Some("drained")
    );
    assert!(unschedulable(&n));
    let nc = nodeclaims(client)
        .get_opt(&claim_a)
        .await
        .unwrap()
        .expect("NodeClaim");
    assert!(
        nc.metadata.deletion_timestamp.is_none(),
        "killed before the retirement"
    );

    let next = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            pool,
            "--nodes",
            &b,
            "--retire",
            "none",
        ],
    )
    .await;
    let log = text(&next.stderr);
    assert_eq!(next.status.code(), Some(0), "{log}");
    assert!(
        log.contains("retired a node an earlier node-drain drained"),
        "{log}"
    );
    wait_retired(
        client,
        &a,
        "node a retired by the next run",
        Duration::from_secs(60),
    )
    .await;
    scene.cleanup().await;
}
