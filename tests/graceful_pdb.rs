//! Graceful eviction under PodDisruptionBudgets, on testenv: a PDB that
//! allows no disruption is answered 429 naming it; a burst of evictions at
//! once starts no more graceful drains than the PDB allows (a dry-run
//! eviction records nothing in the PDB, so each of them alone would pass),
//! and the others are refused as the API would refuse them.

#[path = "support/graceful.rs"]
mod graceful_support;
mod support;

use std::time::Duration;

use graceful_support::*;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::*;

const MARK: &str = "node-drain.io/graceful";

/// Every pod of `before` is still there, not terminating, its labels,
/// ownership and annotations as they were.
fn untouched(before: &[Pod], now: &[Pod]) {
    for old in before {
        let now = now
            .iter()
            .find(|p| p.metadata.uid == old.metadata.uid)
            .expect("still there");
        assert!(now.metadata.deletion_timestamp.is_none());
        assert_eq!(now.metadata.labels, old.metadata.labels, "labels untouched");
        assert_eq!(now.metadata.owner_references, old.metadata.owner_references);
        assert_eq!(
            now.metadata.annotations, old.metadata.annotations,
            "no record"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_allowing_no_disruption_is_answered_429_naming_it_and_nothing_changes() {
    let scene = Scene::new("graceful-pdb", "c-4x-amd64-linux", None).await;
    let (env, _, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let (webhook, daemon) = serve_graceful(&scene, &section(ns, 5)).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    managed_deployment(&w, "web", 3, true).await;
    w.pdb("web-budget", "web", None, Some(3)).await;
    let before = w.wait_running("web", 3, Duration::from_secs(180)).await;

    let vpa = client_as(env, VPA).await;
    let name = before[0].metadata.name.clone().unwrap();
    let (code, body) = evict(&vpa, ns, &name).await;
    assert_eq!(code, 429, "{body}\n{}", daemon.log());
    assert!(
        body.contains("admission webhook"),
        "refused by the webhook: {body}"
    );
    assert!(body.contains("web-budget"), "names the PDB: {body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = w.pods("web").await;
    assert_eq!(after.len(), 3, "no replacement");
    untouched(&before, &after);
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}

/// Waits until the PDB's status (observed at its generation) allows `allowed`
/// disruptions with `healthy` healthy pods.
async fn wait_pdb(client: &kube::Client, ns: &str, name: &str, allowed: i32, healthy: i32) {
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    wait_for("the PDB's status", Duration::from_secs(60), || async {
        let p = pdbs.get(name).await.map_err(|e| e.to_string())?;
        let s = p.status.clone().unwrap_or_default();
        let seen = s.observed_generation == p.metadata.generation;
        let ok = seen && s.disruptions_allowed == allowed && s.current_healthy == healthy;
        if ok {
            Ok(Some(()))
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_evictions_starts_no_more_graceful_drains_than_the_pdb_allows() {
    const N: usize = 5;
    let scene = Scene::new("graceful-burst", "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let (webhook, daemon) = serve_graceful(&scene, &section(ns, 5)).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    managed_deployment(&w, "web", N as i32, true).await;
    let before = w.wait_running("web", N, Duration::from_secs(180)).await;
    // No room for a replacement (no new node, the nodes cordoned): the PDB
    // allows exactly one disruption throughout, as it did before the burst.
    scene.pool.set_limits(json!({"cpu": "1"})).await;
    let nodes: Api<Node> = Api::all(client.clone());
    for node in scene.pool.nodes().await {
        let cordon = json!({"spec": {"unschedulable": true}});
        nodes
            .patch(
                node.metadata.name.as_deref().unwrap(),
                &PatchParams::default(),
                &Patch::Merge(&cordon),
            )
            .await
            .expect("cordon");
    }
    w.pdb("web-budget", "web", None, Some(N as i32 - 1)).await;
    wait_pdb(client, ns, "web-budget", 1, N as i32).await;

    let vpa = client_as(env, VPA).await;
    let names: Vec<String> = before
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    let answers = futures::future::join_all(names.iter().map(|n| evict(&vpa, ns, n))).await;
    let log = || {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains("admission:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let allowed = answers.iter().filter(|(code, _)| *code == 201).count();
    assert_eq!(allowed, 1, "one eviction allowed: {answers:#?}\n{}", log());
    for (code, body) in answers.iter().filter(|(code, _)| *code != 201) {
        assert_eq!(*code, 429, "{body}");
        assert!(body.contains("web-budget"), "names the PDB: {body}");
        assert!(
            body.contains("disruption budget"),
            "as the API words it: {body}"
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = pods.list(&Default::default()).await.unwrap().items;
    let marked: Vec<&Pod> = now
        .iter()
        .filter(|p| label(p, MARK) == Some("draining"))
        .collect();
    assert_eq!(marked.len(), 1, "exactly one graceful drain");
    let (evicted, refused): (Vec<Pod>, Vec<Pod>) = before
        .into_iter()
        .partition(|p| p.metadata.uid == marked[0].metadata.uid);
    assert_eq!(evicted.len(), 1, "the drained pod is one of the evicted");
    untouched(&refused, &now);
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}
