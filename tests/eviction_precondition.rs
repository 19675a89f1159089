//! The eviction's UID precondition, asked of the real API server: an eviction
//! naming a UID other than the pod's is refused (409) and the pod stays; the
//! planned UID evicts it. (kube 5's own `evict` puts the precondition where
//! the API server never reads it; this test fails with that body.)

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use node_drain::drain::PodRef;
use node_drain::k8s::pods::{remove, RemovalRequest};
use serde_json::json;
use support::*;

#[tokio::test]
async fn the_api_server_refuses_an_eviction_whose_uid_precondition_names_another_pod() {
    let env = TestEnv::load();
    let client = env.client().await;
    let ns = TestNamespace::create(&client, "uid-pre").await;
    // Never scheduled (no node has the label, no NodePool can make one): an
    // eviction of it is answered at once, with no kubelet involved.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "planned"},
        "spec": {
            "nodeSelector": {"node-drain.io/test-never-scheduled": "true"},
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}]
        }
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create the pod");
    let uid = created.metadata.uid.clone().expect("a UID");
    let planned = PodRef {
        namespace: ns.name.clone(),
        name: "planned".into(),
    };

    let stale = remove(
        &client,
        &planned,
        "00000000-0000-0000-0000-000000000000",
        RemovalRequest::Evict,
    )
    .await;
    let still = pods.get_opt("planned").await.expect("read the pod");
    assert!(
        still
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
        "an eviction naming another UID must not touch the pod; it answered {:?}, the pod is now {:?}",
        stale.as_ref().map_err(|r| node_drain::k8s::api_code(&r.error)),
        still.map(|p| p.metadata.deletion_timestamp)
    );
    let refusal = stale.expect_err("a stale UID is refused");
    assert_eq!(
        node_drain::k8s::api_code(&refusal.error),
        Some(409),
        "{:?}",
        refusal.error
    );

    remove(&client, &planned, &uid, RemovalRequest::Evict)
        .await
        .expect("the planned UID is evicted");
    wait_for(
        "the evicted pod to go",
        std::time::Duration::from_secs(30),
        || async {
            match pods.get_opt("planned").await {
                Ok(None) => Ok(Some(())),
                Ok(Some(p)) if p.metadata.deletion_timestamp.is_some() => Ok(Some(())),
                other => Err(format!("{:?}", other.map(|p| p.map(|p| p.metadata.uid)))),
            }
        },
    )
    .await;
    ns.delete().await;
}
