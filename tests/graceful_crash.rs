//! Graceful eviction survives the daemon: killed (SIGKILL) while an evicted
//! pod waits out its grace period, the next daemon of the same Lease finds
//! the pod by its label and finishes the drain, or, if its config no longer
//! includes the namespace, gives the pod back its labels and ownership.
//! Either way no pod is left with its labels or ownerReferences changed.

#[path = "support/graceful.rs"]
mod graceful_support;
mod support;

use std::time::Duration;

use graceful_support::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use support::*;

fn section(namespace: &str, grace: u64, include: bool) -> String {
    let selector = if include {
        format!("{{include: [{namespace}]}}")
    } else {
        format!("{{exclude: [{namespace}]}}")
    };
    format!(
        "  gracePeriodSeconds: {grace}\n  drainTimeoutSeconds: 180\n  namespaceSelector: {selector}\n"
    )
}

fn step(pod: &Pod) -> Option<String> {
    let text = pod
        .metadata
        .annotations
        .as_ref()?
        .get("node-drain.io/graceful-drain")?;
    let record: serde_json::Value = serde_json::from_str(text).ok()?;
    record["step"].as_str().map(str::to_string)
}

/// The caBundle of the test's webhook configuration.
async fn ca_bundle(client: &kube::Client, name: &str) -> Vec<u8> {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
    let config = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(name)
        .await
        .expect("the webhook configuration");
    config
        .webhooks
        .into_iter()
        .flatten()
        .next()
        .and_then(|w| w.client_config.ca_bundle)
        .map(|b| b.0)
        .unwrap_or_default()
}

/// Every live pod of the namespace is its ReplicaSet's, with no trace of a drain.
async fn all_pods_whole(client: &kube::Client, ns: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for("3 whole pods", Duration::from_secs(60), || async {
        let live: Vec<Pod> = pods
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let whole = |p: &Pod| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            let controlled = p
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "ReplicaSet" && o.controller == Some(true));
            controlled
                && !labels.contains_key("node-drain.io/graceful")
                && labels
                    .get("pod-template-hash")
                    .is_some_and(|h| h != "node-drain-graceful")
                && step(p).is_none()
        };
        if live.len() == 3 && live.iter().all(whole) {
            Ok(Some(()))
        } else {
            Err(format!(
                "{:?}",
                live.iter()
                    .map(|p| (p.metadata.name.clone(), p.metadata.labels.clone(), step(p)))
                    .collect::<Vec<_>>()
            ))
        }
    })
    .await
}

/// Evicts one managed pod as the VPA updater and kills the daemon (SIGKILL)
/// once the pod is out of its Service, waiting out the grace period.
/// Returns the scene, the Lease, the port, the webhook and the evicted pod.
async fn kill_mid_drain(prefix: &str) -> (Scene, String, u16, Webhook, Pod) {
    let scene = Scene::new(prefix, "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, scene.ns.name.clone());
    let port = admission_port();
    let lease = unique("graceful-lease");
    let webhook = Webhook::create(client, &ns, port).await;
    let mut daemon = start_daemon_on(
        env,
        &scene.pool.name,
        &lease,
        port,
        &webhook.name,
        &section(&ns, 120, true),
    );
    let log = LogOnPanic::of(&daemon);
    daemon.wait_ready().await;
    webhook.wait_ca_bundle().await;
    allow_vpa_updater(client, &ns).await;
    let w = scene.workloads();
    managed_deployment(&w, "web", 3, true).await;
    let before = w.wait_running("web", 3, Duration::from_secs(180)).await;
    let victim = before[0].clone();
    let name = victim.metadata.name.clone().unwrap();
    let (code, body) = evict(&client_as(env, VPA).await, &ns, &name).await;
    assert_eq!(code, 201, "{body}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_for(
        "the pod out of its Service",
        Duration::from_secs(60),
        || async {
            let p = pods.get(&name).await.map_err(|e| e.to_string())?;
            let s = step(&p);
            if s.as_deref() == Some("isolated") {
                Ok(Some(()))
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await;
    daemon.child.kill().expect("SIGKILL the daemon");
    let _ = daemon.child.wait();
    drop(log);
    let p = pods.get(&name).await.expect("the pod outlives the daemon");
    assert!(p.metadata.deletion_timestamp.is_none());
    (scene, lease, port, webhook, victim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_drain_is_finished_by_the_next() {
    let (scene, lease, port, webhook, victim) = kill_mid_drain("graceful-crash").await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let name = victim.metadata.name.clone().unwrap();
    let first_ca = ca_bundle(client, &webhook.name).await;
    let daemon = start_daemon_on(
        env,
        &scene.pool.name,
        &lease,
        port,
        &webhook.name,
        &section(ns, 3, true),
    );
    let _log = LogOnPanic::of(&daemon);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        "the next daemon to delete the pod",
        Duration::from_secs(90),
        || async {
            match pods.get_opt(&name).await.map_err(|e| e.to_string())? {
                Some(p) if p.metadata.deletion_timestamp.is_none() => {
                    Err(format!("step {:?}", step(&p)))
                }
                _ => Ok(Some(())),
            }
        },
    )
    .await;
    all_pods_whole(client, ns).await;
    // The new leader serves with a CA of its own and wrote it into the caBundle.
    wait_for(
        "the new leader's caBundle",
        Duration::from_secs(60),
        || async {
            let now = ca_bundle(client, &webhook.name).await;
            Ok((now != first_ca && !now.is_empty()).then_some(()))
        },
    )
    .await;
    assert!(
        daemon
            .log()
            .contains("resuming a pod an earlier process marked"),
        "{}",
        daemon.log()
    );
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_its_namespace_left_is_restored_by_the_next_daemon() {
    let (scene, lease, port, webhook, victim) = kill_mid_drain("graceful-restore").await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let name = victim.metadata.name.clone().unwrap();
    let daemon = start_daemon_on(
        env,
        &scene.pool.name,
        &lease,
        port,
        &webhook.name,
        &section(ns, 3, false),
    );
    let _log = LogOnPanic::of(&daemon);
    wait_for("the restore", Duration::from_secs(60), || async {
        Ok(daemon
            .log()
            .contains("labels and ownership restored")
            .then_some(()))
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    // Its ReplicaSet has one pod too many now and removes one; if the victim
    // is still there it is exactly as it was.
    if let Some(p) = pods.get_opt(&name).await.unwrap() {
        if p.metadata.deletion_timestamp.is_none() {
            assert_eq!(p.metadata.labels, victim.metadata.labels);
            assert_eq!(
                p.metadata.owner_references,
                victim.metadata.owner_references
            );
        }
    }
    all_pods_whole(client, ns).await;
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}
