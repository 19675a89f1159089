//! Pods: the pods bound to a node (one LIST with a field selector), a watch of
//! them, and the one request that removes a planned pod — an eviction (PDBs
//! apply) or a delete — always with the planned UID as a precondition, so a new
//! pod under the same name is never touched.

use futures::Stream;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, Preconditions};
use kube::runtime::watcher;
use kube::Client;

use crate::drain::PodRef;

fn on_node(node: &str) -> String {
    format!("spec.nodeName={node}")
}

/// The pods bound to a node (no cluster-wide cache).
pub async fn of_node(client: &Client, node: &str) -> kube::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::all(client.clone());
    Ok(pods
        .list(&ListParams::default().fields(&on_node(node)))
        .await?
        .items)
}

/// A watch of the pods bound to a node (the watcher re-lists after errors).
pub fn watch_node(
    client: &Client,
    node: &str,
) -> impl Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send + 'static {
    let pods: Api<Pod> = Api::all(client.clone());
    watcher(pods, watcher::Config::default().fields(&on_node(node)))
}

/// How a planned pod is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalRequest {
    /// The Eviction API: PodDisruptionBudgets apply.
    Evict,
    /// A delete with the pod's own grace period (finished pods, `--on-timeout force`).
    Delete,
    /// A delete with grace period 0 (problem pods, stuck terminating pods).
    DeleteNow,
}

/// Sends one removal request for `pod` with `uid` as precondition.
pub async fn remove(
    client: &Client,
    pod: &PodRef,
    uid: &str,
    how: RemovalRequest,
) -> kube::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let delete = DeleteParams {
        grace_period_seconds: (how == RemovalRequest::DeleteNow).then_some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match how {
        RemovalRequest::Evict => {
            let params = EvictParams {
                delete_options: Some(delete),
                ..Default::default()
            };
            api.evict(&pod.name, &params).await.map(|_| ())
        }
        RemovalRequest::Delete | RemovalRequest::DeleteNow => {
            api.delete(&pod.name, &delete).await.map(|_| ())
        }
    }
}
