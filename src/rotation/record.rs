//! Where a rotation's progress lives: the NodePool's `node-drain.io/rotation`
//! annotation (JSON of `RotationRecord`). Written when the rotation starts and
//! after every wave, removed when it finishes; a rerun reads it and continues.

use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::error::{Error, Result};
use crate::k8s::karpenter::NodePool;
use crate::plan::rotation::{RotationRecord, ROTATION_ANNOTATION};

/// The recorded rotation of `nodepool`, if one is under way. An unreadable
/// record is an error: guessing could replace nodes twice or not at all.
pub async fn read(client: &Client, nodepool: &str) -> Result<Option<RotationRecord>> {
    let api: Api<NodePool> = Api::all(client.clone());
    let pool = api
        .get_opt(nodepool)
        .await
        .map_err(|e| Error::kube(format!("get NodePool {nodepool}"), e))?
        .ok_or_else(|| Error::NodePoolNotFound(nodepool.to_string()))?;
    let Some(text) = pool
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATION_ANNOTATION))
    else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|e| {
        Error::Usage(format!(
            "NodePool {nodepool} has an unreadable {ROTATION_ANNOTATION} annotation ({e}); \
             remove it (kubectl annotate nodepool {nodepool} {ROTATION_ANNOTATION}-) to start afresh"
        ))
    })
}

/// Records the progress on the NodePool.
pub async fn write(client: &Client, nodepool: &str, record: &RotationRecord) -> Result<()> {
    let text = serde_json::to_string(record).map_err(|e| Error::Internal(e.to_string()))?;
    patch(
        client,
        nodepool,
        json!({"metadata": {"annotations": {ROTATION_ANNOTATION: text}}}),
    )
    .await
}

/// Removes the record: the rotation is over.
pub async fn clear(client: &Client, nodepool: &str) -> Result<()> {
    patch(
        client,
        nodepool,
        json!({"metadata": {"annotations": {ROTATION_ANNOTATION: null}}}),
    )
    .await
}

async fn patch(client: &Client, nodepool: &str, body: serde_json::Value) -> Result<()> {
    let api: Api<NodePool> = Api::all(client.clone());
    api.patch(nodepool, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(|e| {
            Error::kube(
                format!("record the rotation on NodePool {nodepool} ({ROTATION_ANNOTATION})"),
                e,
            )
        })?;
    Ok(())
}

/// The NodePool annotation holding a rotation's pause (`"true"`), beside the
/// record: the admin socket writes it while the engine writes the record, so
/// the two never overwrite each other's progress.
pub const PAUSED_ANNOTATION: &str = "node-drain.io/rotation-paused";

/// Whether the rotation of `nodepool` is recorded as paused.
pub async fn read_paused(client: &Client, nodepool: &str) -> Result<bool> {
    let api: Api<NodePool> = Api::all(client.clone());
    let pool = api
        .get_opt(nodepool)
        .await
        .map_err(|e| Error::kube(format!("get NodePool {nodepool}"), e))?
        .ok_or_else(|| Error::NodePoolNotFound(nodepool.to_string()))?;
    Ok(pool
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .is_some_and(|v| v == "true"))
}

/// Records the pause (or removes it).
pub async fn write_paused(client: &Client, nodepool: &str, paused: bool) -> Result<()> {
    let value = if paused { json!("true") } else { json!(null) };
    patch(
        client,
        nodepool,
        json!({"metadata": {"annotations": {PAUSED_ANNOTATION: value}}}),
    )
    .await
}
