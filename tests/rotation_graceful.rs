//! Zero-dip rotation: the daemon rotates a NodePool capacity first while its
//! graceful webhook is on, and the PDB-guarded Deployment's pods carry
//! `node-drain.io/graceful: "true"`. Each of node-drain's evictions comes back
//! through its webhook and is turned into replace-first, so the Service never
//! has fewer ready endpoints than replicas (watched on its EndpointSlices, and
//! sampled at 4 Hz pod by pod) and every original node is replaced.
//!
//! `ROTATION_GRACEFUL_ANNOTATE=false` runs the same test with the pods not
//! annotated (plain evictions): how the zero-dip assertion was seen to fail.

#[path = "support/graceful.rs"]
mod graceful_support;
#[path = "support/rotation_graceful.rs"]
mod rotation_graceful_support;
mod support;

use std::time::Duration;

use graceful_support::{whoami, LogOnPanic, Webhook};
use rotation_graceful_support::*;
use serde_json::json;
use support::rotation::*;
use support::*;

const NODES: usize = 4;

fn annotate() -> bool {
    std::env::var("ROTATION_GRACEFUL_ANNOTATE").map_or(true, |v| v != "false")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_rotation_never_drops_a_ready_endpoint_and_replaces_every_node() {
    let (scene, originals) =
        graceful_spread_pool("rotg", NODES, json!([{"nodes": "2"}]), annotate()).await;
    let (client, ns, pool) = (&scene.client, &scene.ns.name, &scene.pool);
    let port = graceful_support::admission_port();
    let webhook = Webhook::create(client, ns, port).await;
    let me = whoami(client).await;
    let config = format!(
        "rules: []\ngraceful:\n  gracePeriodSeconds: 2\n  drainTimeoutSeconds: 120\n  \
         namespaceSelector: {{include: [{ns}]}}\n  evictingUsers: ['{me}']\n"
    );
    let lease = unique("rotg-lease");
    let admission = format!("127.0.0.1:{port}");
    let daemon = rotation_daemon(
        &scene,
        &lease,
        &config,
        &[
            "--admission-address",
            &admission,
            "--admission-webhook-configuration",
            &webhook.name,
        ],
    )
    .await;
    let _log = LogOnPanic::of(&daemon);
    webhook.wait_ca_bundle().await;

    let watch = EndpointWatch::start(client, ns, "web");
    wait_for(
        "every replica a ready endpoint",
        Duration::from_secs(60),
        || async {
            match watch.current() {
                Some(n) if n >= NODES => Ok(Some(())),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let replicas = ReadyReplicasWatch::start(client, ns, "web");
    let sampler = PoolSampler::start(client, &pool.name, ns, "web", Duration::from_millis(250));
    let started = std::time::Instant::now();
    let answer = admin_rotate(&daemon, &pool.name).await;
    assert_eq!(answer["started"], json!(true), "{answer}");
    // The registry holds the rotation from its start (the record is written a
    // moment later): over when the daemon no longer lists it and no record is left.
    wait_for("the rotation over", Duration::from_secs(900), || async {
        match daemon_rotation(&daemon, &pool.name).await {
            None => Ok(Some(())),
            Some(r) => Err(r.to_string()),
        }
    })
    .await;
    wait_no_record(client, &pool.name, Duration::from_secs(30)).await;
    let elapsed = started.elapsed();
    let now: Vec<String> = pool
        .wait_ready_nodes(NODES, Duration::from_secs(120))
        .await
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    w_wait_running(&scene).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = sampler.stop().await;
    let changes = watch.stop();
    let deployment = replicas.stop();
    let log = daemon.log();

    let lowest = min_after_full(&changes, NODES).expect("the watch saw the Service full");
    let first = changes.iter().position(|(_, n)| *n >= NODES).unwrap();
    let dipped = dips(&changes[first..], NODES);
    eprintln!(
        "rotation {elapsed:.1?}; ready endpoints (watched): min {lowest}/{NODES}, dips {dipped:?}; \
         ready pods (sampled at {:.1} Hz, {} samples): min {}; Deployment readyReplicas min {}; \
         max disrupted {}; Deployment readyReplicas (watched): min {:?}, dips {:?}",
        rate_hz(&samples),
        samples.len(),
        min_ready(&samples),
        min_deployment_ready(&samples),
        max_disrupted(&samples),
        min_after_full(&deployment, NODES),
        deployment
            .iter()
            .position(|(_, n)| *n >= NODES)
            .map(|i| dips(&deployment[i..], NODES)),
    );
    assert_replaced(&originals, &now, &log);
    assert!(
        max_disrupted(&samples) <= 2,
        "max disrupted {}",
        max_disrupted(&samples)
    );
    assert_eq!(
        lowest, NODES,
        "the Service's ready endpoints dipped: {dipped:?} (changes {changes:?})"
    );
    assert_eq!(
        min_ready(&samples),
        NODES,
        "a 4 Hz sample saw fewer ready pods: {:?}",
        samples.iter().map(|s| s.ready).collect::<Vec<_>>()
    );
    assert!(
        log.contains("graceful drain started"),
        "by the graceful path:\n{log}"
    );
    assert!(
        log.contains(&format!("replaced={NODES} skipped=0 waves=2")),
        "every node replaced, in two waves:\n{log}"
    );
    drop(daemon);
    drop(webhook);
    delete_lease(client, &lease).await;
    scene.cleanup().await;
}

async fn w_wait_running(scene: &Scene) {
    scene
        .workloads()
        .wait_running("web", NODES, Duration::from_secs(120))
        .await;
}
