//! The removal's UID precondition, asked of the real API server: an eviction
//! (or a delete, grace 0 or not) naming a UID other than the pod's is refused
//! (409) and the pod stays; the planned UID removes it. (kube 5's own `evict`
//! puts the precondition where the API server never reads it; the eviction
//! test fails with that body.)

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use node_drain::drain::PodRef;
use node_drain::k8s::pods::{remove, RemovalRequest};
use serde_json::json;
use support::*;

/// A pod that is never scheduled (no node has the label, no NodePool can make
/// one): its removal is answered at once, with no kubelet involved.
async fn unscheduled_pod(pods: &Api<Pod>, name: &str) -> String {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"node-drain.io/test-never-scheduled": "true"},
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}]
        }
    }))
    .unwrap();
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create the pod");
    created.metadata.uid.expect("a UID")
}

/// A removal naming another UID leaves the pod; the planned UID removes it.
async fn only_the_planned_uid_is_removed(
    pods: &Api<Pod>,
    client: &kube::Client,
    ns: &str,
    how: RemovalRequest,
) {
    let name = format!("planned-{how:?}").to_lowercase();
    let uid = unscheduled_pod(pods, &name).await;
    let planned = PodRef {
        namespace: ns.to_string(),
        name: name.clone(),
    };
    let stale = remove(
        client,
        &planned,
        "00000000-0000-0000-0000-000000000000",
        how,
    )
    .await;
    let still = pods.get_opt(&name).await.expect("read the pod");
    assert!(
        still
            .as_ref()
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
        "{how:?} naming another UID must not touch the pod; it answered {:?}, the pod is now {:?}",
        stale
            .as_ref()
            .map_err(|r| node_drain::k8s::api_code(&r.error)),
        still.map(|p| p.metadata.deletion_timestamp)
    );
    let refusal = stale.expect_err("a stale UID is refused");
    assert_eq!(
        node_drain::k8s::api_code(&refusal.error),
        Some(409),
        "{how:?}: {:?}",
        refusal.error
    );
    remove(client, &planned, &uid, how)
        .await
        .unwrap_or_else(|r| panic!("{how:?} of the planned UID: {:?}", r.error));
    wait_for(
        &format!("the pod removed by {how:?} to go"),
        std::time::Duration::from_secs(30),
        || async {
            match pods.get_opt(&name).await {
                Ok(None) => Ok(Some(())),
                Ok(Some(p)) if p.metadata.deletion_timestamp.is_some() => Ok(Some(())),
                other => Err(format!("{:?}", other.map(|p| p.map(|p| p.metadata.uid)))),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn the_api_server_refuses_an_eviction_whose_uid_precondition_names_another_pod() {
    let env = TestEnv::load();
    let client = env.client().await;
    let ns = TestNamespace::create(&client, "uid-pre").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    only_the_planned_uid_is_removed(&pods, &client, &ns.name, RemovalRequest::Evict).await;
    ns.delete().await;
}

#[tokio::test]
async fn the_api_server_refuses_a_delete_whose_uid_precondition_names_another_pod() {
    let env = TestEnv::load();
    let client = env.client().await;
    let ns = TestNamespace::create(&client, "uid-pre-del").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for how in [RemovalRequest::Delete, RemovalRequest::DeleteNow] {
        only_the_planned_uid_is_removed(&pods, &client, &ns.name, how).await;
    }
    ns.delete().await;
}
