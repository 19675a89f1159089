//! Giving a node back: uncordon (only if node-drain cordoned it) and record
//! `restored` in one PATCH that only applies while this run owns the node, then
//! an Event. Restore is terminal: the machine never touches a restored node.

use k8s_openapi::api::core::v1::Node;
use kube::runtime::events::Recorder;
use kube::Client;
use tracing::warn;

use super::{patch_failed, update, RunContext, StepError};
use crate::drain::annotations::{orphan_restore_patch, restore_patch, Record};
use crate::drain::machine::RestoreCause;
use crate::drain::{DrainOutcome, Phase};
use crate::k8s::events::{node_ref, publish};
use crate::k8s::nodes::{self, NodePatchError};

/// The restore step of a node this run owns.
pub async fn restore(
    cx: &RunContext,
    node: &str,
    cause: RestoreCause,
    reason: String,
    blockers: Vec<String>,
) -> Result<(), StepError> {
    let uncordon = cx
        .progress
        .get(node)
        .and_then(|p| p.cordoned_by_us)
        .unwrap_or(false);
    let patch = restore_patch(&cx.run_id, uncordon, &reason);
    if let Err(e) = nodes::patch(&cx.client, node, patch).await {
        return patch_failed(cx, node, e);
    }
    announce(&cx.recorder, node, cause, &reason, &blockers, uncordon).await;
    update(cx, node, |p| {
        p.phase = Some(Phase::Restored);
        p.outcome = Some(DrainOutcome::Failed { reason, blockers });
    });
    Ok(())
}

async fn announce(
    recorder: &Recorder,
    node: &str,
    cause: RestoreCause,
    reason: &str,
    blockers: &[String],
    uncordoned: bool,
) {
    warn!(
        node,
        reason,
        blockers = blockers.join(", ").as_str(),
        uncordoned,
        "drain failed; node restored"
    );
    let note = format!(
        "{reason}; restored{}: {}",
        if uncordoned { " and uncordoned" } else { "" },
        blockers.join(", ")
    );
    publish(
        recorder,
        &node_ref(node, None),
        true,
        cause.event_reason(),
        note,
    )
    .await;
}

/// Restores a node whose run died (its record is in progress, its heartbeat
/// stale): one PATCH that tests the record exactly as judged (run, state,
/// heartbeat), so a run that was merely slow and beat since is not overruled;
/// and once restored, every later patch of that run fails (they test the state).
pub async fn restore_orphan(
    client: &Client,
    recorder: &Recorder,
    node: &Node,
    reason: &str,
) -> Result<bool, NodePatchError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let record = Record::read(node.metadata.annotations.as_ref());
    let uncordon = record.was_unschedulable == Some(false);
    let version = node.metadata.resource_version.clone().unwrap_or_default();
    let patch = orphan_restore_patch(&record, &version, uncordon, reason);
    match nodes::patch(client, &name, patch).await {
        Ok(_) => {}
        Err(NodePatchError::Gone(_) | NodePatchError::NotOwned { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    announce(recorder, &name, RestoreCause::Failed, reason, &[], uncordon).await;
    Ok(true)
}
