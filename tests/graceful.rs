//! Graceful eviction on testenv: the real API server calls the daemon's
//! admission webhook for `CREATE pods/eviction`. An eviction of a managed pod
//! by the VPA updater is answered 201 while the pod stays; its replacement is
//! Ready before it leaves the Service; it is deleted a grace period later. A
//! PDB refusal comes back as 429 naming the PDB; other pods, other users and
//! a stopped daemon get a plain eviction.

#[path = "support/graceful.rs"]
mod graceful_support;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use graceful_support::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use support::*;

const GRACE: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpa_eviction_replaces_the_pod_before_it_leaves_the_service() {
    let scene = Scene::new("graceful", "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let (webhook, daemon) = serve_graceful(&scene, &section(ns, GRACE)).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    deployment_behind_service(&w, "web", 3, true, true).await;
    let before = w.wait_running("web", 3, Duration::from_secs(180)).await;
    let original: BTreeSet<String> = before
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    wait_for("3 ready endpoints", Duration::from_secs(60), || async {
        let ready = ready_endpoints(client, ns, "web").await;
        if ready == original {
            Ok(Some(()))
        } else {
            Err(format!("{ready:?}"))
        }
    })
    .await;

    let sampler = Sampler::start(client, ns, "web");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = before[0].clone();
    let (name, uid) = (
        victim.metadata.name.clone().unwrap(),
        victim.metadata.uid.clone().unwrap(),
    );
    let vpa = client_as(env, VPA).await;
    let asked = tokio::time::Instant::now();
    let (code, body) = evict(&vpa, ns, &name).await;
    eprintln!("the eviction was answered in {:?}", asked.elapsed());
    for line in daemon
        .log()
        .lines()
        .filter(|l| l.contains("outcome=\"graceful\""))
    {
        eprintln!("{line}");
    }
    assert_eq!(
        code,
        201,
        "the evicter sees success: {body}\n{}",
        daemon.log()
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = pods
        .get(&name)
        .await
        .expect("the evicted pod is still there");
    assert!(
        now.metadata.deletion_timestamp.is_none(),
        "not deleted at once"
    );
    assert_eq!(
        label(&now, "node-drain.io/graceful"),
        Some("draining"),
        "recorded on the pod"
    );

    wait_deleted(client, ns, &name, Duration::from_secs(90)).await;
    let after = w.wait_running("web", 3, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = sampler.take();
    drop(sampler);

    // Ready endpoints never below 3, sampled at 4 Hz throughout.
    let lowest = samples.iter().map(|s| s.ready.len()).min().unwrap();
    assert!(
        lowest >= 3,
        "ready endpoints fell to {lowest}:\n{:#?}\n{}",
        samples.iter().map(|s| s.ready.len()).collect::<Vec<_>>(),
        daemon.log()
    );
    // A replacement existed within 2 s of the eviction.
    let replaced = samples
        .iter()
        .find(|s| s.pods.keys().any(|u| !original.contains(u)))
        .expect("a replacement");
    assert!(
        replaced.at.saturating_duration_since(asked) <= Duration::from_secs(2),
        "the replacement appeared {:?} after the eviction",
        replaced.at.saturating_duration_since(asked)
    );
    // The old pod left the EndpointSlice only once a replacement was ready,
    // and was deleted no sooner than the grace period after.
    let left = samples
        .iter()
        .find(|s| !s.ready.contains(&uid))
        .expect("the old pod left the Service");
    assert!(
        left.ready.iter().any(|u| !original.contains(u)),
        "a replacement was ready when it left"
    );
    let deleted = samples
        .iter()
        .find(|s| s.pods.get(&uid).is_none_or(|terminating| *terminating))
        .expect("the old pod deleted");
    let between = deleted.at.duration_since(left.at);
    eprintln!(
        "eviction → out of the Service {:?}, → deleted {:?}",
        left.at.duration_since(asked),
        deleted.at.duration_since(asked)
    );
    assert!(
        between >= Duration::from_millis(GRACE * 1000 - 500),
        "deleted {between:?} after leaving the Service; the grace period is {GRACE}s"
    );
    // Exactly one replacement; the other pods untouched.
    let now_uids: BTreeSet<String> = after
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    assert_eq!(
        now_uids.difference(&original).count(),
        1,
        "exactly one replacement"
    );
    let every: Vec<Pod> = pods.list(&Default::default()).await.unwrap().items;
    assert_eq!(
        every
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count(),
        3
    );
    for old in before.iter().skip(1) {
        let now = every
            .iter()
            .find(|p| p.metadata.uid == old.metadata.uid)
            .expect("untouched");
        assert_eq!(now.metadata.labels, old.metadata.labels);
        assert_eq!(now.metadata.owner_references, old.metadata.owner_references);
    }
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_pods_other_users_and_a_stopped_daemon_get_a_plain_eviction() {
    let scene = Scene::new("graceful-plain", "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let (webhook, mut daemon) = serve_graceful(&scene, &section(ns, GRACE)).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    managed_deployment(&w, "web", 3, true).await;
    managed_deployment(&w, "plain", 1, false).await;
    let web = w.wait_running("web", 3, Duration::from_secs(180)).await;
    let plain = w.wait_running("plain", 1, Duration::from_secs(180)).await;
    let vpa = client_as(env, VPA).await;
    let name = |p: &Pod| p.metadata.name.clone().unwrap();

    // The webhook is live: a managed pod evicted by the VPA updater stays.
    assert_eq!(
        evicted(client, &vpa, ns, &name(&web[0])).await,
        (false, true)
    );
    // An unmanaged pod: a real eviction.
    assert_eq!(evicted(client, &vpa, ns, &name(&plain[0])).await, PLAIN);
    // Another user's eviction of a managed pod: a real eviction.
    assert_eq!(evicted(client, client, ns, &name(&web[1])).await, PLAIN);
    // The daemon stopped (nothing listens): failurePolicy Ignore, a real eviction.
    daemon.terminate();
    assert_eq!(evicted(client, &vpa, ns, &name(&web[2])).await, PLAIN);
    drop(webhook);
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_never_ready_is_cut_short_at_drain_timeout_with_an_event_and_a_metric() {
    let scene = Scene::new("graceful-timeout", "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let graceful =
        format!("  gracePeriodSeconds: 2\n  drainTimeoutSeconds: 12\n  namespaceSelector: {{include: [{ns}]}}\n");
    let (webhook, daemon) = serve_graceful(&scene, &graceful).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    // One pod a node, and no new node: the replacement stays Pending.
    deployment_behind_service(&w, "web", 3, true, true).await;
    let before = w.wait_running("web", 3, Duration::from_secs(180)).await;
    scene.pool.set_limits(serde_json::json!({"cpu": "1"})).await;

    let name = before[0].metadata.name.clone().unwrap();
    let evicted_at = tokio::time::Instant::now();
    let (code, body) = evict(&client_as(env, VPA).await, ns, &name).await;
    assert_eq!(code, 201, "{body}");
    wait_deleted(client, ns, &name, Duration::from_secs(60)).await;
    let waited = evicted_at.elapsed();
    assert!(
        waited >= Duration::from_secs(11),
        "deleted after {waited:?}, before drainTimeoutSeconds (12 s)"
    );
    // The Event is written after the deletion (it says what was done): the
    // pod may be gone before it lands.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let timed_out = || async {
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("GracefulDrainTimedOut"))
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str()))
            .count()
    };
    wait_for(
        "the GracefulDrainTimedOut Event",
        Duration::from_secs(30),
        || async {
            match timed_out().await {
                0 => Err("none yet".to_string()),
                _ => Ok(Some(())),
            }
        },
    )
    .await;
    assert_eq!(
        timed_out().await,
        1,
        "one GracefulDrainTimedOut Event on the pod"
    );
    let metrics = reqwest::get(format!("{}/metrics", daemon.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("node_drain_graceful_drains_total{result=\"timeout\"} 1"),
        "{metrics}"
    );
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_applies_without_a_restart() {
    let scene = Scene::new("graceful-reload", "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let excluded = format!("  namespaceSelector: {{exclude: [{ns}]}}\n");
    let (webhook, daemon) = serve_graceful(&scene, &excluded).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    managed_deployment(&w, "web", 3, true).await;
    let pods = w.wait_running("web", 3, Duration::from_secs(180)).await;
    let vpa = client_as(env, VPA).await;
    let name = |p: &Pod| p.metadata.name.clone().unwrap();

    // Excluded: a plain eviction.
    assert_eq!(evicted(client, &vpa, ns, &name(&pods[0])).await, PLAIN);
    // Included by a reload (and a bad file in between keeps the last good).
    let path = daemon.dir.0.join("config.yaml");
    std::fs::write(&path, "rules: []\ngraceful:\n  gracePeriodSeconds: 900\n").unwrap();
    wait_for(
        "the bad config refused",
        Duration::from_secs(20),
        || async { Ok(daemon.log().contains("config reload refused").then_some(())) },
    )
    .await;
    assert_eq!(evicted(client, &vpa, ns, &name(&pods[1])).await, PLAIN);
    std::fs::write(
        &path,
        format!("rules: []\ngraceful:\n  namespaceSelector: {{include: [{ns}]}}\n"),
    )
    .unwrap();
    wait_for("the config reloaded", Duration::from_secs(20), || async {
        Ok(daemon.log().contains("config reloaded").then_some(()))
    })
    .await;
    assert_eq!(
        evicted(client, &vpa, ns, &name(&pods[2])).await,
        (false, true)
    );
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_evictions_of_one_pod_are_one_graceful_drain() {
    let scene = Scene::new("graceful-race", "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let (webhook, daemon) = serve_graceful(&scene, &section(ns, GRACE)).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    managed_deployment(&w, "web", 3, true).await;
    let before = w.wait_running("web", 3, Duration::from_secs(180)).await;
    let name = before[0].metadata.name.clone().unwrap();
    let vpa = client_as(env, VPA).await;
    let answers = futures::future::join_all((0..4).map(|_| evict(&vpa, ns, &name))).await;
    for (code, body) in &answers {
        assert_eq!(*code, 201, "{body}");
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = pods.get(&name).await.expect("still there");
    assert!(
        now.metadata.deletion_timestamp.is_none(),
        "no eviction got through: {:?}",
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("admission:"))
            .collect::<Vec<_>>()
    );
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}
