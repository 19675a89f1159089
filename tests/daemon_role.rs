//! Two replicas as `deploy/` runs them, on the real test environment: two
//! Pods (KWOK runs them, Ready), a Service selecting the leader's role label,
//! and two `node-drain serve` processes, one per Pod (POD_NAME). The follower
//! answers the manifest's readiness probe with 200, so the Deployment is
//! Available and a rolling update finishes; the Service's EndpointSlice (the
//! real endpoint controller) names the leader's Pod alone; an alert sent
//! through that route drains the node once; when the leader is SIGKILLed the
//! next one moves the label (taking it off the dead one's Pod); a leader
//! stopped by SIGTERM takes its label off.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, PostParams};
use serde::Deserialize;
use serde_json::json;
use support::daemon::{alert, Daemon, TOKEN};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};
const ROLE: &str = "node-drain.io/role";

/// The readiness probe path of the Deployment `node-drain` in `deploy/`.
fn manifest_readiness_path() -> String {
    let out = std::process::Command::new(TestEnv::load().kubectl())
        .args(["kustomize", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy")])
        .output()
        .expect("kubectl kustomize deploy/");
    assert!(out.status.success(), "{}", text(&out.stderr));
    for doc in serde_norway::Deserializer::from_slice(&out.stdout) {
        let doc = serde_json::Value::deserialize(doc).unwrap();
        if doc["kind"] == "Deployment" && doc["metadata"]["name"] == "node-drain" {
            let path = &doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
                ["httpGet"]["path"];
            return path.as_str().expect("a readinessProbe httpGet path").into();
        }
    }
    panic!("no Deployment node-drain in deploy/");
}

/// A Pod standing for one replica, on the environment's static node (KWOK
/// runs it and reports it Ready).
async fn replica_pod(client: &kube::Client, ns: &str, name: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "node-drain"}},
        "spec": {
            "nodeName": "testenv-static",
            "tolerations": [{"key": "node-drain.io/testenv-static", "operator": "Exists"}],
            "containers": [{"name": "node-drain", "image": "node-drain:test"}]
        }
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("create the replica's Pod");
}

/// The Pods the Service's EndpointSlices route to (ready endpoints).
async fn routed_to(client: &kube::Client, ns: &str) -> Vec<String> {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("kubernetes.io/service-name=node-drain"))
        .await
        .unwrap();
    let mut pods: Vec<String> = slices
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .filter_map(|e| e.target_ref.as_ref().and_then(|t| t.name.clone()))
        .collect();
    pods.sort();
    pods
}

async fn wait_routed_to(client: &kube::Client, ns: &str, want: &[&str]) {
    let what = format!("the webhook Service to route to {want:?} alone");
    wait_for(&what, Duration::from_secs(60), || async {
        let now = routed_to(client, ns).await;
        if now == want {
            Ok(Some(()))
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await
}

async fn role_label(client: &kube::Client, ns: &str, pod: &str) -> Option<String> {
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .get(pod)
        .await
        .unwrap();
    pod.metadata.labels.unwrap_or_default().get(ROLE).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reach_the_leader_through_its_pod_label_and_every_healthy_replica_is_ready() {
    let readiness = manifest_readiness_path();
    let scene = Scene::new("role", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 1, SMALL, 1).await;
    let pods = w.wait_running("web", 1, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    for name in ["replica-a", "replica-b"] {
        replica_pod(client, &ns.name, name).await;
    }
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "node-drain"},
        "spec": {
            "selector": {"app.kubernetes.io/name": "node-drain", ROLE: "leader"},
            "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]
        }
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();

    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let lease = unique("lease");
    let vars = [("POD_NAMESPACE", ns.name.as_str())];
    let mut a = Daemon::start_with(env, &pool.name, &lease, "replica-a", config, &vars);
    a.wait_ready().await;
    let mut b = Daemon::start_with(env, &pool.name, &lease, "replica-b", config, &vars);
    wait_routed_to(client, &ns.name, &["replica-a"]).await;

    // Both replicas Ready by the manifest's probe; only the leader by /readyz.
    for (who, d) in [("leader", &a), ("follower", &b)] {
        let url = format!("{}{readiness}", d.url);
        wait_for(
            &format!("the {who} Ready at {readiness}"),
            Duration::from_secs(30),
            || async {
                match reqwest::get(&url).await {
                    Ok(r) if r.status() == 200 => Ok(Some(())),
                    other => Err(format!("{:?}", other.map(|r| r.status()))),
                }
            },
        )
        .await;
    }
    let follower_readyz = reqwest::get(format!("{}/readyz", b.url)).await.unwrap();
    assert_eq!(follower_readyz.status(), 503, "/readyz stays the leader's");

    // The alert goes where the Service routes it: the leader, once.
    let routed = routed_to(client, &ns.name).await;
    let target = if routed == ["replica-a"] { &a } else { &b };
    let body = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-29T10:00:00Z",
    );
    assert_eq!(target.post(Some(TOKEN), body.to_string()).await, 202);
    wait_retired(
        client,
        &node,
        "the node drained through the leader-only route",
        Duration::from_secs(150),
    )
    .await;
    let started: Vec<_> = node_events(client, &node)
        .await
        .into_iter()
        .filter(|(reason, _)| reason == "DrainStarted")
        .collect();
    assert_eq!(started.len(), 1, "one drain: {started:?}");
    assert_evicted_at_most_once(env, &ns.name);

    // The leader dies: the next one moves the label.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    b.wait_ready().await;
    wait_routed_to(client, &ns.name, &["replica-b"]).await;
    assert_eq!(role_label(client, &ns.name, "replica-a").await, None);

    // SIGTERM: the leader takes its label off as it hands over.
    assert!(b.terminate().success(), "{}", b.log());
    assert_eq!(role_label(client, &ns.name, "replica-b").await, None);
    scene.cleanup().await;
}
