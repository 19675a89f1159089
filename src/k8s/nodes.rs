//! Nodes: read one, list a NodePool's, and change one with a JSON Patch whose
//! `test` operations make the API server check ownership (see
//! `drain::annotations`). A patch answers Gone, NotOwned or an API error.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;

use super::api_code;
use crate::k8s::karpenter::NODEPOOL_LABEL;

/// The highest resourceVersion the API server answered node-drain's own
/// writes to a Node with, by the Node's NodePool (Karpenter's label): the
/// daemon's Node cache answers only once it has seen the events up to it
/// (read-your-writes, `node_cache`). A Node without the label, or a
/// resourceVersion that is not a number, is not recorded: no watch of
/// NodePools would deliver its event.
static WRITTEN: std::sync::Mutex<Option<std::collections::HashMap<String, u64>>> =
    std::sync::Mutex::new(None);

/// Records the resourceVersion a write to `node` was answered with.
pub fn record_write(node: &Node) {
    let Some(pool) = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NODEPOOL_LABEL))
    else {
        return;
    };
    let Some(version) = resource_version(node) else {
        return;
    };
    let mut written = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    let mark = written
        .get_or_insert_with(Default::default)
        .entry(pool.clone())
        .or_default();
    *mark = (*mark).max(version);
}

/// The highest resourceVersion node-drain's writes to the Nodes of these
/// NodePools were answered with (0: none).
pub fn written(pools: &[String]) -> u64 {
    let written = WRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(written) = written.as_ref() else {
        return 0;
    };
    pools
        .iter()
        .filter_map(|p| written.get(p))
        .copied()
        .max()
        .unwrap_or(0)
}

/// A Node's resourceVersion as a number (they are etcd revisions); None when
/// it is missing or not numeric.
pub fn resource_version(node: &Node) -> Option<u64> {
    node.metadata.resource_version.as_deref()?.parse().ok()
}

/// Why a patch of a Node did not apply.
#[derive(Debug, thiserror::Error)]
pub enum NodePatchError {
    #[error("node {0} no longer exists")]
    Gone(String),
    /// A `test` failed (422) or the resourceVersion moved (409): someone else
    /// changed the record first.
    #[error("node {node} changed under us: {detail}")]
    NotOwned { node: String, detail: String },
    #[error(
        "Kubernetes API: could not patch node {node}: {}",
        crate::error::describe_kube(source)
    )]
    Kube { node: String, source: kube::Error },
}

pub async fn get(client: &Client, name: &str) -> kube::Result<Option<Node>> {
    Api::<Node>::all(client.clone()).get_opt(name).await
}

/// Which NodePools' Nodes to list.
pub enum NodePools<'a> {
    /// These (one LIST: `karpenter.sh/nodepool in (...)`).
    Named(&'a [String]),
    /// Every Karpenter Node.
    Every,
}

fn selector(pools: NodePools<'_>) -> Option<String> {
    match pools {
        NodePools::Named([]) => None,
        NodePools::Named(names) => Some(format!("{NODEPOOL_LABEL} in ({})", names.join(","))),
        NodePools::Every => Some(NODEPOOL_LABEL.to_string()),
    }
}

/// The Nodes of some NodePools, in one LIST by Karpenter's label; the
/// selector is returned for errors to name.
pub async fn of_nodepools(
    client: &Client,
    pools: NodePools<'_>,
) -> Result<Vec<Node>, (String, kube::Error)> {
    let Some(selector) = selector(pools) else {
        return Ok(vec![]);
    };
    match Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => Ok(list.items),
        Err(e) => Err((format!("list nodes ({selector})"), e)),
    }
}

/// The metadata only (no spec, no status: `PartialObjectMetadata`) of the
/// Nodes of some NodePools, in one LIST by Karpenter's label. The records
/// live in the annotations, so a reader that acts only on some records
/// (the reconciliation, every 10 s) reads the full Node of those alone.
pub async fn metadata_of_nodepools(
    client: &Client,
    pools: NodePools<'_>,
) -> Result<Vec<ObjectMeta>, (String, kube::Error)> {
    let Some(selector) = selector(pools) else {
        return Ok(vec![]);
    };
    match Api::<Node>::all(client.clone())
        .list_metadata(&ListParams::default().labels(&selector))
        .await
    {
        Ok(list) => Ok(list.items.into_iter().map(|n| n.metadata).collect()),
        Err(e) => Err((format!("list nodes ({selector})"), e)),
    }
}

/// The Nodes of a NodePool (by Karpenter's label).
pub async fn of_nodepool(client: &Client, nodepool: &str) -> kube::Result<Vec<Node>> {
    let params = ListParams::default().labels(&format!("{NODEPOOL_LABEL}={nodepool}"));
    Ok(Api::<Node>::all(client.clone()).list(&params).await?.items)
}

/// Applies a JSON Patch (RFC 6902) to a Node.
pub async fn patch(
    client: &Client,
    name: &str,
    ops: serde_json::Value,
) -> Result<Node, NodePatchError> {
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| NodePatchError::Kube {
            node: name.into(),
            source: kube::Error::SerdeError(e),
        })?;
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes
        .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
    {
        Ok(node) => {
            record_write(&node);
            Ok(node)
        }
        Err(e) => Err(match api_code(&e) {
            Some(404) => NodePatchError::Gone(name.into()),
            Some(409 | 422) => NodePatchError::NotOwned {
                node: name.into(),
                detail: match &e {
                    kube::Error::Api(s) => s.message.clone(),
                    other => other.to_string(),
                },
            },
            _ => NodePatchError::Kube {
                node: name.into(),
                source: e,
            },
        }),
    }
}

pub fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn unschedulable(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// The `cordon` action of an alert rule: cordons the node and says why in
/// `node-drain.io/cordoned-by`. No drain is recorded, so no run restores it:
/// like `kubectl cordon`, an operator uncordons it.
pub async fn cordon_only(client: &Client, name: &str, why: &str) -> kube::Result<Node> {
    let patch = serde_json::json!({
        "spec": {"unschedulable": true},
        "metadata": {"annotations": {"node-drain.io/cordoned-by": why}},
    });
    let node = Api::<Node>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    record_write(&node);
    Ok(node)
}
