//! Proves the test environment is the real thing: Karpenter provisions real
//! NodeClaims and KWOK nodes, the API server enforces PodDisruptionBudgets on
//! evictions, Prometheus scrapes Karpenter, and KWOK honours grace periods.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use serde_json::json;
use support::*;

const SMALL: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};

#[tokio::test]
async fn a_deployment_makes_karpenter_create_nodeclaims_and_kwok_nodes() {
    let scene = Scene::new("smoke-provision", "c-4x-amd64-linux", None).await;
    let (client, pool) = (&scene.client, &scene.pool);
    let w = scene.workloads();

    w.deployment("web", 10, SMALL, 2).await;
    let pods = w.wait_running("web", 10, Duration::from_secs(120)).await;

    let claims: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim")),
    );
    let claims = claims
        .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={}", pool.name)))
        .await
        .unwrap()
        .items;
    let nodes = pool.nodes().await;
    // 10 pods of 1 CPU cannot fit on fewer than 3 nodes of 4 CPUs.
    assert!(
        claims.len() >= 3,
        "expected at least 3 NodeClaims, got {}",
        claims.len()
    );
    assert_eq!(nodes.len(), claims.len(), "one node per NodeClaim");
    for node in &nodes {
        let annotations = node.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get("kwok.x-k8s.io/node").map(String::as_str),
            Some("fake"),
            "KWOK manages the node"
        );
        assert!(is_ready(node), "node {:?} Ready", node.metadata.name);
    }
    let node_names: Vec<_> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    for pod in &pods {
        let on = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(
            node_names.contains(&on),
            "pod scheduled onto a node of the NodePool, got {on:?}"
        );
    }
    scene.cleanup().await;
}

#[tokio::test]
async fn evictions_honour_pod_disruption_budgets() {
    let scene = Scene::new("smoke-pdb", "c-4x-amd64-linux", None).await;
    let (client, ns) = (&scene.client, &scene.ns);
    let w = scene.workloads();

    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("web", "web", Some(0), None).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns.name);
    let wait_allowed = |allowed: i32| {
        let pdbs = pdbs.clone();
        async move {
            wait_for(
                &format!("PDB to allow {allowed} disruptions"),
                Duration::from_secs(60),
                || async {
                    let pdb = pdbs.get("web").await.map_err(|e| e.to_string())?;
                    let status = pdb.status.unwrap_or_default();
                    let current = pdb.metadata.generation == status.observed_generation
                        && status.current_healthy == 2;
                    if current && status.disruptions_allowed == allowed {
                        Ok(Some(()))
                    } else {
                        Err(format!(
                            "disruptionsAllowed {}, currentHealthy {}",
                            status.disruptions_allowed, status.current_healthy
                        ))
                    }
                },
            )
            .await
        }
    };
    wait_allowed(0).await;

    let victim = pods[0].clone();
    let victim_name = victim.metadata.name.clone().unwrap();
    let victim_node = victim
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap();
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    match pod_api.evict(&victim_name, &EvictParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 429, "a PDB refusal is a 429: {status:?}")
        }
        other => panic!("eviction against a PDB allowing 0 must be refused, got {other:?}"),
    }

    pdbs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxUnavailable": 1}})),
    )
    .await
    .unwrap();
    wait_allowed(1).await;
    // Cordon the victim's node so the replacement must land elsewhere.
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.cordon(&victim_node).await.unwrap();
    pod_api
        .evict(&victim_name, &EvictParams::default())
        .await
        .expect("eviction allowed by the PDB");

    let original_uids: Vec<_> = pods.iter().map(|p| p.metadata.uid.clone()).collect();
    let replacement = wait_for(
        "a replacement pod on another node",
        Duration::from_secs(120),
        || async {
            let current = w.pods("web").await;
            let fresh: Vec<&Pod> = current
                .iter()
                .filter(|p| !original_uids.contains(&p.metadata.uid))
                .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
                .collect();
            match fresh.first() {
                Some(p) => Ok(Some((*p).clone())),
                None => Err(format!("{} pods, none new and Ready", current.len())),
            }
        },
    )
    .await;
    let on = replacement
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap();
    assert_ne!(
        on, victim_node,
        "the replacement was scheduled onto another node"
    );
    nodes.uncordon(&victim_node).await.unwrap();
    scene.cleanup().await;
}

#[tokio::test]
async fn prometheus_scrapes_karpenter_nodepool_usage() {
    let scene = Scene::new("smoke-prom", "c-4x-amd64-linux", None).await;
    let (env, pool) = (&scene.env, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 1, SMALL, 2).await;
    w.wait_running("web", 1, Duration::from_secs(120)).await;

    let query = format!(
        "karpenter_nodepools_usage{{nodepool=\"{}\",resource_type=\"cpu\"}}",
        pool.name
    );
    let value = wait_prometheus_value(
        env,
        "Prometheus to have the NodePool's usage",
        &query,
        |v| v > 0.0,
    )
    .await;
    assert!(value >= 1.0, "one node of 4 CPUs counted, got {value}");
    scene.cleanup().await;
}

#[tokio::test]
async fn a_deleted_pod_lives_out_its_grace_period() {
    let env = TestEnv::load();
    let client = env.client().await;
    let ns = TestNamespace::create(&client, "smoke-grace").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    // Bound directly to the static KWOK node: no scheduler, no Karpenter needed.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "graceful"},
        "spec": {
            "nodeName": "testenv-static",
            "terminationGracePeriodSeconds": 5,
            "tolerations": [{"key": "node-drain.io/testenv-static", "operator": "Exists"}],
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    wait_for("the pod Running", Duration::from_secs(30), || async {
        let p = pods.get("graceful").await.map_err(|e| e.to_string())?;
        Ok(pod_ready(&p).then_some(()))
    })
    .await;

    pods.delete(
        "graceful",
        &DeleteParams {
            grace_period_seconds: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let deleting = pods
        .get("graceful")
        .await
        .expect("still there right after the delete");
    let deadline = deleting
        .metadata
        .deletion_timestamp
        .clone()
        .expect("deletionTimestamp set")
        .0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = pods.get_opt("graceful").await.unwrap();
    assert!(
        still.is_some(),
        "the pod must still exist 2 s into its 5 s grace period"
    );

    wait_for(
        "the pod gone after its grace period",
        Duration::from_secs(30),
        || async {
            Ok(pods
                .get_opt("graceful")
                .await
                .map_err(|e| e.to_string())?
                .is_none()
                .then_some(()))
        },
    )
    .await;
    // Gone, and not before its deletionTimestamp (the moment of deletion + grace);
    // 1 s of slack for clock resolution between KWOK and this process.
    let gone_at = k8s_openapi::jiff::Timestamp::now();
    assert!(
        gone_at.as_second() >= deadline.as_second() - 1,
        "disappeared at {gone_at} before its deletionTimestamp {deadline}"
    );
    ns.delete().await;
}
