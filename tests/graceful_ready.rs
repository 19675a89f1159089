//! The replacement's readiness is watched, not polled: a pod drained
//! replace-first leaves its Services on the watch's news that its
//! replacement is Ready. Counted with the daemon's own HTTP client (kube's
//! request log, `kube_client=debug`): between the eviction and the pod's
//! isolation, the daemon reads the ReplicaSet's pods from the API at the
//! first step, after each write and at each backstop (30 s) — not once a
//! tick while the replacement is Pending.

#[path = "support/graceful.rs"]
mod graceful_support;
mod support;

use std::time::Duration;

use graceful_support::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use support::daemon::Daemon;
use support::*;

/// `src/graceful/worker.rs`: how often a waiting drain reads the API anyway.
const BACKSTOP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_leaves_its_services_on_the_replacements_ready_event_not_a_poll() {
    let scene = Scene::new("graceful-ready", "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let port = admission_port();
    let webhook = Webhook::create(client, ns, port).await;
    let config = format!("rules: []\ngraceful:\n{}", section(ns, 2));
    let daemon = Daemon::start_args(
        env,
        &scene.pool.name,
        &unique("graceful-lease"),
        "",
        &config,
        &[("RUST_LOG", "info,kube_client=debug")],
        &[
            "--admission-address",
            &format!("127.0.0.1:{port}"),
            "--admission-webhook-configuration",
            &webhook.name,
        ],
    );
    let _log = LogOnPanic::of(&daemon);
    daemon.wait_ready().await;
    webhook.wait_ca_bundle().await;
    allow_vpa_updater(client, ns).await;
    let w = scene.workloads();
    managed_deployment(&w, "web", 3, true).await;
    let before = w.wait_running("web", 3, Duration::from_secs(180)).await;
    // The replacement stays Pending until the test makes room.
    room(&scene, false).await;
    let name = before[0].metadata.name.clone().unwrap();
    let hash = label(&before[0], "pod-template-hash").unwrap().to_string();
    // The daemon's requests that read the ReplicaSet's pods (by its hash).
    let reads = || -> Vec<String> {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("requesting") && l.contains(&format!("/namespaces/{ns}/pods")))
            .filter(|l| l.contains(&format!("pod-template-hash%3D{hash}")))
            .map(str::to_string)
            .collect()
    };

    let evicted_at = tokio::time::Instant::now();
    let (code, body) = evict(&client_as(env, VPA).await, ns, &name).await;
    assert_eq!(code, 201, "{body}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        "the replacement Pending",
        Duration::from_secs(60),
        || async {
            let all = w.pods("web").await;
            let pending = all
                .iter()
                .filter(|p| !before.iter().any(|b| b.metadata.uid == p.metadata.uid))
                .count();
            Ok((pending == 1).then_some(()))
        },
    )
    .await;
    // A while Pending: a drain polling its replacement reads the ReplicaSet's
    // pods every tick meanwhile; a watching one does not.
    tokio::time::sleep(Duration::from_secs(6)).await;
    room(&scene, true).await;
    let isolated = wait_for(
        "the pod out of its Service",
        Duration::from_secs(120),
        || async {
            let p = pods.get(&name).await.map_err(|e| e.to_string())?;
            Ok(label(&p, "app").is_none().then_some(p))
        },
    )
    .await;
    let window = evicted_at.elapsed();
    let reads = reads();

    // In order: the replacement's Ready transition, then the isolation.
    let replacement = w
        .pods("web")
        .await
        .into_iter()
        .find(|p| !before.iter().any(|b| b.metadata.uid == p.metadata.uid))
        .expect("the replacement");
    let ready_at = replacement
        .status
        .and_then(|s| s.conditions)
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .and_then(|c| c.last_transition_time)
        .expect("the replacement Ready")
        .0;
    let record: serde_json::Value = serde_json::from_str(
        &isolated.metadata.annotations.unwrap()["node-drain.io/graceful-drain"],
    )
    .unwrap();
    let isolated_at: jiff::Timestamp = record["isolatedAt"].as_str().unwrap().parse().unwrap();
    assert!(
        ready_at <= isolated_at,
        "out of the Service at {isolated_at}, the replacement Ready at {ready_at}"
    );
    // One read at the first step, one after each of two writes (the last
    // may precede the look above), one more should a write meet a conflict,
    // one per backstop: never one per tick.
    let allowed = 4 + (window.as_secs() / BACKSTOP.as_secs()) as usize;
    assert!(
        reads.len() <= allowed,
        "{} reads of the ReplicaSet's pods in {window:?} (at most {allowed}):\n{}",
        reads.len(),
        reads.join("\n")
    );
    eprintln!(
        "{} reads of the ReplicaSet's pods in {window:?}:\n{}",
        reads.len(),
        reads.join("\n")
    );
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}
