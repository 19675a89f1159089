//! Graceful eviction under PodDisruptionBudgets, on testenv: a PDB that
//! allows no disruption is answered 429 naming it; a burst of evictions at
//! once starts no more graceful drains than the PDB allows (a dry-run
//! eviction records nothing in the PDB, so each of them alone would pass),
//! and the others are refused as the API would refuse them; a drain whose
//! pod was deleted at its timeout counts on until the PDB's status shows
//! the deletion.

#[path = "support/graceful.rs"]
mod graceful_support;
mod support;

use std::time::Duration;

use graceful_support::*;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
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
async fn wait_pdb(client: &Client, ns: &str, name: &str, allowed: i32, healthy: i32) {
    wait_pdb_where(client, ns, name, |s| {
        s.disruptions_allowed == allowed && s.current_healthy == healthy
    })
    .await;
}

/// Waits until the PDB's status (observed at its generation) satisfies `ok`.
async fn wait_pdb_where(
    client: &Client,
    ns: &str,
    name: &str,
    ok: impl Fn(&PodDisruptionBudgetStatus) -> bool,
) -> PodDisruptionBudgetStatus {
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    wait_for("the PDB's status", Duration::from_secs(60), || async {
        let p = pdbs.get(name).await.map_err(|e| e.to_string())?;
        let s = p.status.clone().unwrap_or_default();
        if s.observed_generation == p.metadata.generation && ok(&s) {
            Ok(Some(s))
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
    room(&scene, false).await;
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

/// Holds a PDB's status as it is: every update of a PodDisruptionBudget's
/// status in the namespace is refused (a validating webhook on a port
/// nothing listens on, `failurePolicy: Fail`), so the disruption controller
/// cannot write what it sees. The window between a pod's deletion and the
/// status showing it, which lasts milliseconds, held open. Deleted when
/// dropped (and by name at the test's end).
struct FrozenPdbStatus {
    name: String,
}

impl FrozenPdbStatus {
    async fn create(client: &Client, namespace: &str, pdb: &str) -> Self {
        let name = unique("graceful-test-freeze");
        let object: ValidatingWebhookConfiguration = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"node-drain.io/test": "true"}},
            "webhooks": [{
                "name": "freeze.graceful-test.node-drain.io",
                "clientConfig": {"url": format!("https://127.0.0.1:{}/freeze", admission_port())},
                "rules": [{"operations": ["UPDATE"], "apiGroups": ["policy"], "apiVersions": ["v1"],
                           "resources": ["poddisruptionbudgets/status"], "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 1
            }]
        }))
        .unwrap();
        Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &object)
            .await
            .expect("create ValidatingWebhookConfiguration");
        // In force once an update of the status is refused by it.
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), namespace);
        wait_for("the status frozen", Duration::from_secs(30), || async {
            let p = pdbs.get(pdb).await.map_err(|e| e.to_string())?;
            let same = json!({"status": {"observedGeneration": p.status.and_then(|s| s.observed_generation)}});
            match pdbs
                .patch_status(pdb, &PatchParams::default(), &Patch::Merge(&same))
                .await
            {
                Err(e) if e.to_string().contains("freeze.graceful-test") => Ok(Some(())),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        Self { name }
    }
}

impl Drop for FrozenPdbStatus {
    fn drop(&mut self) {
        let env = TestEnv::load();
        let _ = std::process::Command::new(env.kubectl())
            .env("KUBECONFIG", env.kubeconfig())
            .args(["delete", "validatingwebhookconfiguration", &self.name])
            .args(["--ignore-not-found", "--wait=false"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_deleted_at_its_timeout_counts_until_the_pdb_status_shows_the_deletion() {
    const N: usize = 5;
    let scene = Scene::new("graceful-window", "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let graceful = format!(
        "  gracePeriodSeconds: 2\n  drainTimeoutSeconds: 10\n  namespaceSelector: {{include: [{ns}]}}\n"
    );
    let (webhook, daemon) = serve_graceful(&scene, &graceful).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();
    managed_deployment(&w, "web", N as i32, true).await;
    let before = w.wait_running("web", N, Duration::from_secs(180)).await;
    // The replacement never Ready (no room): the drain ends at its timeout.
    room(&scene, false).await;
    w.pdb("web-budget", "web", None, Some(N as i32 - 1)).await;
    wait_pdb(client, ns, "web-budget", 1, N as i32).await;
    let vpa = client_as(env, VPA).await;
    let name = |i: usize| before[i].metadata.name.clone().unwrap();
    let (code, body) = evict(&vpa, ns, &name(0)).await;
    assert_eq!(code, 201, "{body}");
    // The (Pending) replacement seen by the controller, then its status held.
    wait_pdb_where(client, ns, "web-budget", |s| {
        s.expected_pods == N as i32 + 1 && s.disruptions_allowed == 1
    })
    .await;
    let frozen = FrozenPdbStatus::create(client, ns, "web-budget").await;

    wait_deleted(client, ns, &name(0), Duration::from_secs(60)).await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    wait_for(
        "the GracefulDrainTimedOut Event",
        Duration::from_secs(30),
        || async {
            let list = events
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let found = list.items.iter().any(|e| {
                e.reason.as_deref() == Some("GracefulDrainTimedOut")
                    && e.regarding.as_ref().and_then(|r| r.name.clone()) == Some(name(0))
            });
            Ok(found.then_some(()))
        },
    )
    .await;
    // The task ends just after its Event.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let held = pdbs.get("web-budget").await.unwrap().status.unwrap();
    assert_eq!(
        (held.current_healthy, held.disruptions_allowed),
        (N as i32, 1),
        "the status does not show the deletion yet"
    );
    let untouched_before: Vec<Pod> = (w.pods("web").await.into_iter())
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let (code, body) = evict(&vpa, ns, &name(1)).await;
    assert_eq!(
        code,
        429,
        "the deleted pod's drain still counts: {body}\n{}",
        daemon.log()
    );
    assert!(body.contains("web-budget"), "names the PDB: {body}");
    assert!(body.contains("being drained gracefully"), "{body}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    untouched(&untouched_before, &w.pods("web").await);

    // The status written at last: the deletion is in it, the drain counts
    // no more, and the refusal is the PDB's own.
    drop(frozen);
    wait_pdb(client, ns, "web-budget", 0, N as i32 - 1).await;
    let (code, body) = evict(&vpa, ns, &name(2)).await;
    assert_eq!(code, 429, "{body}");
    assert!(body.contains("web-budget"), "names the PDB: {body}");
    assert!(!body.contains("being drained gracefully"), "{body}");
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}
