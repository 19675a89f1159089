//! The steps that change the Node: the claim, planning the pods, and the
//! retirement. Each talks to the API server, records what happened in the
//! node's progress, and returns; none decides what comes next.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{fault, kube_err, patch_failed, update, RunContext, StepError};
use crate::drain::annotations::{
    claim_patch, drained_patch, ownership, Claimant, Ownership, Record, RecordedSettings,
};
use crate::drain::pods::{plan_removals, NodeContext, PlannedRemoval, PodAction};
use crate::drain::{Phase, Retire, StopReason};
use crate::k8s::events::{node_ref, publish};
use crate::k8s::{karpenter, nodes};

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Node ownership (not leadership: that is `k8s::fence`) after a successful
/// write of the record: until then the run may mutate the node without
/// confirming its record again; the heartbeat renews it.
pub fn ownership_confirmed_until(cx: &RunContext) -> Instant {
    Instant::now() + cx.settings.orphan_after / 2
}

/// Reads the Node and claims it: intent and cordon in one PATCH with its
/// resourceVersion as precondition; or resumes what it records for this run;
/// or stops when another live run holds it.
pub async fn claim(cx: &RunContext, node: &str) -> Result<(), StepError> {
    fault::fire(cx, node, "intent")?;
    let seen = update(cx, node, |p| p.seen.take()).flatten();
    let current = match seen {
        Some(node) => *node,
        None => match nodes::get(&cx.client, node)
            .await
            .map_err(kube_err(format!("get node {node}")))?
        {
            Some(current) => current,
            None => {
                update(cx, node, |p| p.node_gone = true);
                return Ok(());
            }
        },
    };
    let record = Record::read(current.metadata.annotations.as_ref());
    let now = chrono::Utc::now();
    let owner = ownership(
        &record,
        &cx.run_id,
        cx.take_over.as_deref(),
        now,
        chrono_of(cx.settings.orphan_after),
    );
    let nodeclaim = karpenter::owner_nodeclaim(&current);
    let ready = nodes::ready(&current);
    let was_unschedulable = match &owner {
        Ownership::HeldBy { run } => {
            warn!(
                node,
                run = run.as_str(),
                "another live node-drain run holds this node; not touching it"
            );
            update(cx, node, |p| {
                p.stop = Some(StopReason::LostOwnership {
                    detail: format!("run {run} holds it (fresh heartbeat)"),
                })
            });
            return Ok(());
        }
        Ownership::Ours => {
            // A restart of this run: resume what the Node records.
            update(cx, node, |p| {
                p.phase = record.phase;
                p.cordoned_by_us = Some(record.was_unschedulable == Some(false));
                p.ownership_confirmed_until = Some(ownership_confirmed_until(cx));
                p.node_ready = ready;
                p.nodeclaim = nodeclaim;
            });
            return Ok(());
        }
        // An orphan's record says whether the node was cordoned before it.
        Ownership::Orphaned { run } => {
            warn!(
                node,
                run = run.as_str(),
                "taking over a node whose run stopped beating"
            );
            record.was_unschedulable.unwrap_or(false)
        }
        Ownership::Free => nodes::unschedulable(&current),
    };
    let resource_version = current
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let settings = RecordedSettings::of(&cx.settings);
    let who = Claimant {
        run_id: &cx.run_id,
        holder: &cx.holder,
        lease: cx.lease.as_deref(),
        settings: &settings,
    };
    let patch = claim_patch(
        &resource_version,
        current.metadata.annotations.as_ref(),
        &who,
        was_unschedulable,
        now,
    );
    match nodes::patch(&cx.client, node, patch).await {
        Ok(_) => {}
        Err(nodes::NodePatchError::NotOwned { detail, .. }) => {
            // The Node changed between the read and the claim: read it again.
            return Err(StepError::Transient(format!(
                "node {node} changed while claiming it ({detail}); retrying"
            )));
        }
        Err(e) => return patch_failed(cx, node, e),
    }
    update(cx, node, |p| {
        p.phase = Some(Phase::Cordoned);
        p.cordoned_by_us = Some(!was_unschedulable);
        p.ownership_confirmed_until = Some(ownership_confirmed_until(cx));
        p.node_ready = ready;
        p.nodeclaim = nodeclaim;
    });
    info!(nodeName = node, "노드 Cordon 완료");
    publish(
        &cx.recorder,
        &node_ref(node, current.metadata.uid.clone()),
        false,
        "DrainStarted",
        format!(
            "node-drain run {} cordoned the node and starts draining it",
            cx.run_id
        ),
    )
    .await;
    fault::fire(cx, node, "cordon")
}

/// Lists the node's pods and plans their removal, once per run.
pub async fn plan_pods(cx: &RunContext, node: &str) -> Result<(), StepError> {
    info!(nodeName = node, "노드에서 pod evict 시작");
    let (listed, version) = crate::k8s::pods::listed_at(&cx.client, node)
        .await
        .map_err(kube_err(format!("list pods of node {node}")))?;
    let ready = cx.progress.get(node).map(|p| p.node_ready).unwrap_or(true);
    let context = NodeContext {
        ready,
        now: chrono::Utc::now(),
        own_pod: cx.own_pod.as_ref(),
    };
    let planned: Vec<PlannedRemoval> = plan_removals(&listed, context)
        .into_iter()
        .filter(|p| !matches!(p.action, PodAction::Skip(_)))
        .collect();
    for p in &planned {
        if let PodAction::Block { reason, .. } = &p.action {
            crate::telemetry::metrics::get().blocked_pod(reason.metric_label());
        }
    }
    let uids: std::collections::BTreeSet<&String> = planned.iter().map(|p| &p.uid).collect();
    let snapshot: std::collections::BTreeMap<String, k8s_openapi::api::core::v1::Pod> = listed
        .iter()
        .filter_map(|pod| {
            let uid = pod.metadata.uid.clone()?;
            uids.contains(&uid).then(|| (uid, pod.clone()))
        })
        .collect();
    update(cx, node, |p| {
        if p.planned.is_none() {
            p.planned = Some(planned);
            // The first wait watches from this list: nothing is listed twice.
            p.pods_version = version;
            p.pod_snapshot = snapshot;
        }
    });
    Ok(())
}

/// Records `drained` with the retirement (one PATCH, only while owned), then
/// retires the node as `--retire` says.
pub async fn retire(cx: &RunContext, node: &str) -> Result<(), StepError> {
    fault::fire(cx, node, "retire")?;
    let known_claim = cx.progress.get(node).and_then(|p| p.nodeclaim.clone());
    let claim = match (cx.settings.retire, known_claim) {
        (Retire::Nodeclaim, Some(c)) => Some(c),
        (Retire::Nodeclaim, None) => match nodes::get(&cx.client, node)
            .await
            .map_err(kube_err(format!("get node {node}")))?
        {
            Some(n) => karpenter::nodeclaim_of(&cx.client, &n)
                .await
                .map_err(kube_err("list NodeClaims"))?,
            None => {
                update(cx, node, |p| p.node_gone = true);
                return Ok(());
            }
        },
        _ => None,
    };
    let retirement = match (cx.settings.retire, &claim) {
        (Retire::Nodeclaim, Some(c)) => format!("nodeclaim/{c}"),
        (Retire::Nodeclaim, None) => "none: no NodeClaim".into(),
        (Retire::Node, _) => "node".into(),
        (Retire::None, _) => "none".into(),
    };
    // Recorded already when a restarted actor resumes the retirement: the
    // record's state is no longer `cordoned`, so the patch would be refused.
    let recorded = cx.progress.get(node).and_then(|p| p.phase) == Some(Phase::Drained);
    if !recorded {
        let patch = drained_patch(&cx.run_id, &retirement);
        if let Err(e) = nodes::patch(&cx.client, node, patch).await {
            return patch_failed(cx, node, e);
        }
        update(cx, node, |p| p.phase = Some(Phase::Drained));
    }
    fault::fire(cx, node, "drained")?;
    info!(
        nodeName = node,
        "노드에서 데몬셋을 제외한 모든 Pod가 종료됨"
    );
    let reference = node_ref(node, None);
    publish(
        &cx.recorder,
        &reference,
        false,
        "DrainSucceeded",
        "every planned pod is gone".into(),
    )
    .await;
    let silenced = match (cx.settings.retire, &claim) {
        (Retire::Node, _) | (Retire::Nodeclaim, Some(_)) => silence(cx, node).await,
        _ => vec![],
    };
    let (retired, note) = match (cx.settings.retire, claim) {
        (Retire::None, _) => ("none (left cordoned)".to_string(), None),
        (Retire::Node, _) => {
            crate::k8s::gone_is_ok(
                kube::Api::<k8s_openapi::api::core::v1::Node>::all(cx.client.clone())
                    .delete(node, &Default::default())
                    .await,
            )
            .map_err(kube_err(format!("delete node {node}")))?;
            publish(
                &cx.recorder,
                &reference,
                false,
                "NodeRetired",
                "the Node object was deleted".into(),
            )
            .await;
            (format!("node {node} deleted"), None)
        }
        (Retire::Nodeclaim, Some(claim)) => {
            karpenter::delete_nodeclaim(&cx.client, &claim)
                .await
                .map_err(kube_err(format!("delete NodeClaim {claim}")))?;
            info!(
                nodeName = node,
                nodeclaim = claim.as_str(),
                "NodeClaim deleted: Karpenter terminates the instance"
            );
            publish(
                &cx.recorder,
                &reference,
                false,
                "NodeRetired",
                format!("NodeClaim {claim} deleted; Karpenter replaces the capacity"),
            )
            .await;
            (format!("NodeClaim {claim} deleted"), None)
        }
        (Retire::Nodeclaim, None) => {
            let note = "NOT retired: no NodeClaim owns this node (--retire nodeclaim); it stays cordoned, recorded as drained, and no later wave takes it".to_string();
            warn!(nodeName = node, "{note}");
            publish(
                &cx.recorder,
                &reference,
                true,
                "RetireSkipped",
                note.clone(),
            )
            .await;
            (
                "not retired: no NodeClaim found (left cordoned)".to_string(),
                Some(note),
            )
        }
    };
    if let Some(silencer) = crate::silences::get() {
        silencer.expire_when_gone(cx.client.clone(), node.to_string(), silenced);
    }
    update(cx, node, |p| {
        p.retired = Some(retired);
        p.retire_note = note;
    });
    Ok(())
}

/// Silences the node's alerts for its retirement (daemon with `silences`
/// configured); never fails the drain.
async fn silence(cx: &RunContext, node: &str) -> Vec<String> {
    let Some(silencer) = crate::silences::get() else {
        return vec![];
    };
    match nodes::get(&cx.client, node).await {
        Ok(Some(n)) => {
            let comment = format!("node-drain run {} retires {node}", cx.run_id);
            silencer.silence(&n, &comment).await
        }
        _ => vec![],
    }
}
