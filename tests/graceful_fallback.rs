//! Where replace-first cannot apply, graceful eviction falls back to "out of
//! the Services first" and says so in an Event on the pod: a Deployment whose
//! Service selects `pod-template-hash` (changing it would take the pod out of
//! the Service at once), and a StatefulSet's pod (its replacement takes the
//! same name, so it can only follow the delete). Either way the pod leaves
//! the Service a grace period before it is deleted, and is replaced.

#[path = "support/graceful.rs"]
mod graceful_support;
mod support;

use std::time::Duration;

use graceful_support::*;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, PostParams};
use serde_json::json;
use support::*;

const GRACE: u64 = 4;

async fn events_of(client: &kube::Client, ns: &str, pod: &str) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Evicts `victim` as the VPA updater; returns (left the Service, deleted)
/// instants sampled at 4 Hz, with the Events on the pod.
async fn evict_and_watch(
    client: &kube::Client,
    env: &TestEnv,
    ns: &str,
    service: &str,
    victim: &Pod,
) -> (Duration, Vec<(String, String)>) {
    let (name, uid) = (
        victim.metadata.name.clone().unwrap(),
        victim.metadata.uid.clone().unwrap(),
    );
    let sampler = Sampler::start(client, ns, service);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, body) = evict(&client_as(env, VPA).await, ns, &name).await;
    assert_eq!(code, 201, "{body}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for("the pod deleted", Duration::from_secs(90), || async {
        match pods.get_opt(&name).await.map_err(|e| e.to_string())? {
            Some(p)
                if p.metadata.deletion_timestamp.is_none()
                    && p.metadata.uid.as_deref() == Some(uid.as_str()) =>
            {
                Err(format!("labels {:?}", p.metadata.labels))
            }
            _ => Ok(Some(())),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = sampler.take();
    drop(sampler);
    let left = samples
        .iter()
        .find(|s| !s.ready.contains(&uid))
        .expect("left the Service")
        .at;
    let deleted = samples
        .iter()
        .find(|s| s.pods.get(&uid).is_none_or(|terminating| *terminating))
        .expect("deleted")
        .at;
    (
        deleted.duration_since(left),
        events_of(client, ns, &name).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_selecting_pod_template_hash_and_a_statefulset_fall_back_and_say_so() {
    let scene = Scene::new("graceful-fallback", "c-4x-amd64-linux", None).await;
    let (env, client, ns) = (&scene.env, &scene.client, &scene.ns.name);
    let (webhook, daemon) = serve_graceful(&scene, &section(ns, GRACE)).await;
    let _log = LogOnPanic::of(&daemon);
    let w = scene.workloads();

    // A Deployment whose (second) Service selects its pod-template-hash.
    managed_deployment(&w, "web", 2, true).await;
    let web = w.wait_running("web", 2, Duration::from_secs(180)).await;
    let hash = web[0].metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web-pinned"},
        "spec": {"selector": {"app": "web", "pod-template-hash": hash}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    wait_for("2 ready endpoints", Duration::from_secs(60), || async {
        let n = ready_endpoints(client, ns, "web-pinned").await.len();
        if n == 2 {
            Ok(Some(()))
        } else {
            Err(format!("{n}"))
        }
    })
    .await;
    let (grace, events) = evict_and_watch(client, env, ns, "web-pinned", &web[0]).await;
    assert!(
        grace >= Duration::from_millis(GRACE * 1000 - 500),
        "deleted {grace:?} after leaving the Service"
    );
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "GracefulDrainFallback" && n.contains("pod-template-hash")),
        "{events:?}"
    );
    w.wait_running("web", 2, Duration::from_secs(60)).await;

    // A StatefulSet's pod, behind a Service.
    w.statefulset(
        "db",
        2,
        Requests {
            cpu: "100m",
            memory: "128Mi",
        },
    )
    .await;
    let mut db = w.wait_running("db", 2, Duration::from_secs(180)).await;
    db.sort_by_key(|p| p.metadata.name.clone());
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let name = db[0].metadata.name.clone().unwrap();
    // Managed by VPA's annotation this time.
    pods.patch(
        &name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            json!({"metadata": {"annotations": {"vpa.k8s.io/resource-name": "db"}}}),
        ),
    )
    .await
    .unwrap();
    wait_for("2 ready endpoints", Duration::from_secs(60), || async {
        let n = ready_endpoints(client, ns, "db").await.len();
        if n == 2 {
            Ok(Some(()))
        } else {
            Err(format!("{n}"))
        }
    })
    .await;
    let (grace, events) = evict_and_watch(client, env, ns, "db", &db[0]).await;
    assert!(
        grace >= Duration::from_millis(GRACE * 1000 - 500),
        "deleted {grace:?} after leaving the Service"
    );
    assert!(
        events
            .iter()
            .any(|(r, n)| r == "GracefulDrainFallback" && n.contains("not a ReplicaSet's pod")),
        "{events:?}"
    );
    // The StatefulSet recreates it under the same name, whole again.
    wait_for("db-0 back", Duration::from_secs(120), || async {
        match pods.get_opt(&name).await.map_err(|e| e.to_string())? {
            Some(p) if p.metadata.uid != db[0].metadata.uid && pod_ready(&p) => Ok(Some(p)),
            other => Err(format!("{:?}", other.map(|p| p.metadata.labels))),
        }
    })
    .await;
    drop(daemon);
    drop(webhook);
    scene.cleanup().await;
}
