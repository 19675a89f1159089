//! The same path for node drains: node-drain's own eviction of a managed pod
//! (its user among `evictingUsers`) comes back through its webhook and is
//! turned into replace-first. A single-replica Deployment on the drained node
//! keeps a ready endpoint throughout, which a plain eviction cannot
//! (kubernetes#48307).

#[path = "support/graceful.rs"]
mod graceful_support;
mod support;

use std::time::Duration;

use graceful_support::*;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_drain_replaces_a_managed_single_replica_pod_before_it_goes() {
    let scene = Scene::new("graceful-node", "c-4x-amd64-linux", None).await;
    let (client, ns) = (&scene.client, &scene.ns.name);
    let me = whoami(client).await;
    let section = format!(
        "  gracePeriodSeconds: 3\n  namespaceSelector: {{include: [{ns}]}}\n  evictingUsers: ['{me}']\n"
    );
    let (webhook, daemon) = serve_graceful(&scene, &section).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    managed_deployment(&w, "solo", 1, true).await;
    let before = w
        .wait_running("solo", 1, Duration::from_secs(180))
        .await
        .remove(0);
    let node = before
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap();
    let (name, uid) = (
        before.metadata.name.clone().unwrap(),
        before.metadata.uid.clone().unwrap(),
    );
    wait_ready_endpoints(client, ns, "solo", 1).await;

    let sampler = Sampler::start(client, ns, "solo");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answer = daemon
        .admin(format!("{}\n", json!({"cmd": "drain-node", "node": node})).as_bytes())
        .await;
    assert_eq!(answer["ok"], json!(true), "{answer}");
    wait_deleted(client, ns, &name, Duration::from_secs(120)).await;
    let after = w
        .wait_running("solo", 1, Duration::from_secs(60))
        .await
        .remove(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = sampler.take();
    drop(sampler);
    let lowest = samples.iter().map(|s| s.ready.len()).min().unwrap();
    assert!(
        lowest >= 1,
        "the ready count reached 0: {:?}",
        samples.iter().map(|s| s.ready.len()).collect::<Vec<_>>()
    );
    assert_ne!(
        after.metadata.uid.as_deref(),
        Some(uid.as_str()),
        "replaced"
    );
    assert_ne!(
        after.spec.and_then(|s| s.node_name),
        Some(node),
        "elsewhere"
    );
    assert!(
        daemon.log().contains("graceful drain started"),
        "by the graceful path:\n{}",
        daemon.log()
    );
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}
