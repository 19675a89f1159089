//! One async function per step the machine names: each talks to the API server,
//! records what happened in the node's progress, and returns. None decides what
//! comes next.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{fault, kube_err, patch_failed, update, RunContext, StepError};
use crate::drain::annotations::{claim_patch, drained_patch, ownership, Ownership, Record};
use crate::drain::pods::{classify, plan_removals, NodeContext, PlannedRemoval, PodAction};
use crate::drain::progress::Removal;
use crate::drain::{Phase, Retire, StopReason};
use crate::k8s::events::{node_ref, publish};
use crate::k8s::pods::RemovalRequest;
use crate::k8s::{karpenter, nodes};
use crate::messages::RemovePod;

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The fence after a successful write of the record: the heartbeat renews it.
pub fn fence(cx: &RunContext) -> Instant {
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
        now,
        chrono_of(cx.settings.orphan_after),
    );
    let nodeclaim = current
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "NodeClaim")
        .map(|o| o.name.clone());
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
                p.owned_until = Some(fence(cx));
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
    let patch = claim_patch(
        &resource_version,
        current.metadata.annotations.is_some(),
        &cx.run_id,
        &cx.holder,
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
        p.owned_until = Some(fence(cx));
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
    let listed = crate::k8s::pods::of_node(&cx.client, node)
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
    update(cx, node, |p| {
        if p.planned.is_none() {
            p.planned = Some(planned);
        }
    });
    Ok(())
}

/// Sends the removal of `uids` through the evictor pool (bounded per node) and
/// records each answer. `force`: delete with the pod's own grace period.
pub async fn remove(
    cx: &RunContext,
    node: &str,
    uids: &[String],
    stop: &CancellationToken,
    force: bool,
) -> Result<(), StepError> {
    let (planned, deadline) = match cx.progress.get(node) {
        Some(p) => (p.planned.clone().unwrap_or_default(), p.deadline),
        None => return Ok(()),
    };
    let wanted: BTreeSet<&String> = uids.iter().collect();
    let pods: Vec<PlannedRemoval> = planned
        .into_iter()
        .filter(|p| wanted.contains(&p.uid))
        .collect();
    let request = |pod: &PlannedRemoval| {
        let how = match (&pod.action, force) {
            (_, true) | (PodAction::DeleteFinished, _) => RemovalRequest::Delete,
            (PodAction::ForceDelete(_), _) => RemovalRequest::DeleteNow,
            _ => RemovalRequest::Evict,
        };
        RemovePod {
            node: node.to_string(),
            pod: pod.pod.clone(),
            uid: pod.uid.clone(),
            how,
            reason: match &pod.action {
                PodAction::ForceDelete(reason) => Some(reason.clone()),
                _ => None,
            },
            deadline,
            stop: stop.clone(),
        }
    };
    let mut pods = pods;
    let fault_due = cx.fault.is_some_and(|f| f.point == "evict")
        && cx
            .progress
            .get(node)
            .is_some_and(|p| !p.faults_fired.contains("evict"));
    if fault_due && !pods.is_empty() {
        let first = pods.remove(0);
        fail_while_in_flight(cx, node, cx.evictors.remove(request(&first)), &first.uid).await?;
    }
    let answers: Vec<Removal> = futures::stream::iter(pods)
        .map(|pod| cx.evictors.remove(request(&pod)))
        .buffer_unordered(cx.settings.node_in_flight.max(1))
        .collect()
        .await;
    let failures: Vec<(String, Option<u16>)> = answers
        .iter()
        .filter_map(|a| match a {
            Removal::Failed { reason, code } => Some((reason.clone(), *code)),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        // No answer, a 5xx, or an unconfirmed ownership (the heartbeat could not
        // reach the API server) is worth waiting out; a 4xx is not.
        let transient = failures
            .iter()
            .all(|(_, code)| code.is_none_or(|c| c >= 500));
        let text = format!(
            "{} removal(s) failed: {}",
            failures.len(),
            failures
                .iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        return Err(if transient {
            StepError::Transient(text)
        } else {
            StepError::Other(text)
        });
    }
    Ok(())
}

/// The test fault for eviction: fail the node's actor while its first removal
/// is in flight (handed to the evictor, not yet answered), so the restarted
/// actor must neither lose nor repeat it.
async fn fail_while_in_flight(
    cx: &RunContext,
    node: &str,
    answer: impl std::future::Future<Output = Removal>,
    uid: &str,
) -> Result<(), StepError> {
    let give_up = Instant::now() + Duration::from_secs(5);
    while Instant::now() < give_up {
        let recorded = cx
            .progress
            .get(node)
            .and_then(|p| p.removals.get(uid).cloned());
        if recorded.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    fault::fire(cx, node, "evict")?;
    answer.await;
    Ok(())
}

/// Whether something the machine must decide on happened to `uids`.
fn needs_attention(cx: &RunContext, node: &str, uids: &BTreeSet<String>) -> bool {
    cx.progress.get(node).is_none_or(|p| {
        p.stop.is_some()
            || uids.iter().any(|u| {
                matches!(
                    p.removals.get(u),
                    Some(
                        Removal::Refused { .. }
                            | Removal::Blocked { .. }
                            | Removal::Failed { .. }
                            | Removal::Stopped
                    )
                )
            })
    })
}

/// Watches the node's pods (one watch, no per-pod polling) until none of `uids`
/// is present, `until` passes, the node is stopped, or a removal needs a
/// decision. Pods still present are classified again as time passes: one stuck
/// terminating (a NotReady node confirms nothing) is turned into a grace-0
/// deletion, which the machine sends next.
pub async fn wait(
    cx: &RunContext,
    node: &str,
    uids: &[String],
    until: Instant,
    stop: &CancellationToken,
) -> Result<(), StepError> {
    fault::fire(cx, node, "wait")?;
    let wanted: BTreeSet<String> = uids.iter().cloned().collect();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    if until <= Instant::now() {
        // Past the deadline with a removal still answering: wait for its answer.
        let give_up = Instant::now() + Duration::from_secs(30);
        while !needs_attention(cx, node, &wanted) && Instant::now() < give_up {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
        }
        return Ok(());
    }
    let mut stream = crate::k8s::pods::watch_node(&cx.client, node).boxed();
    let mut present: BTreeMap<String, Pod> = BTreeMap::new();
    let mut init: BTreeMap<String, Pod> = BTreeMap::new();
    let mut synced = false;
    let mut ready_checked = Instant::now();
    loop {
        if synced {
            let gone: Vec<String> = wanted
                .iter()
                .filter(|u| !present.contains_key(*u))
                .cloned()
                .collect();
            update(cx, node, |p| p.gone.extend(gone));
            if present.is_empty() {
                return Ok(());
            }
            if escalate_stuck(cx, node, &present, &mut ready_checked).await {
                return Ok(());
            }
        }
        if needs_attention(cx, node, &wanted) {
            return Ok(());
        }
        let next = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(until) => return Ok(()),
            _ = tick.tick() => continue,
            next = stream.try_next() => next,
        };
        match next {
            Err(e) => {
                // The watcher re-lists by itself after an error; keep waiting.
                warn!(
                    node,
                    error = e.to_string().as_str(),
                    "pod watch error; resuming"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(None) => {
                return Err(StepError::Other(format!(
                    "the pod watch of node {node} ended"
                )))
            }
            Ok(Some(watcher::Event::Init)) => init.clear(),
            Ok(Some(watcher::Event::InitApply(p))) => {
                if let Some(uid) = p.metadata.uid.clone().filter(|u| wanted.contains(u)) {
                    init.insert(uid, p);
                }
            }
            Ok(Some(watcher::Event::InitDone)) => {
                present = std::mem::take(&mut init);
                synced = true;
            }
            Ok(Some(watcher::Event::Apply(p))) => {
                if let Some(uid) = p.metadata.uid.clone().filter(|u| wanted.contains(u)) {
                    present.insert(uid, p);
                }
            }
            Ok(Some(watcher::Event::Delete(p))) => {
                if let Some(uid) = p.metadata.uid.as_ref() {
                    present.remove(uid);
                }
            }
        }
    }
}

/// Re-classifies the planned pods still present; a pod now stuck terminating is
/// planned for a grace-0 deletion. True when the plan changed. The node's
/// readiness is re-read (at most every 15 s) only while a pod is stuck.
async fn escalate_stuck(
    cx: &RunContext,
    node: &str,
    present: &BTreeMap<String, Pod>,
    ready_checked: &mut Instant,
) -> bool {
    let now = chrono::Utc::now();
    let stuck_candidate = present.values().any(|p| {
        p.metadata.deletion_timestamp.as_ref().is_some_and(|d| {
            crate::time::to_utc(d)
                + chrono::Duration::seconds(crate::drain::pods::STUCK_TERMINATING_AFTER)
                < now
        })
    });
    if !stuck_candidate {
        return false;
    }
    if ready_checked.elapsed() > Duration::from_secs(15) {
        *ready_checked = Instant::now();
        if let Ok(Some(n)) = nodes::get(&cx.client, node).await {
            let ready = nodes::ready(&n);
            update(cx, node, |p| p.node_ready = ready);
        }
    }
    let ready = cx.progress.get(node).map(|p| p.node_ready).unwrap_or(true);
    let context = NodeContext {
        ready,
        now,
        own_pod: cx.own_pod.as_ref(),
    };
    let stuck: Vec<(String, String)> = present
        .iter()
        .filter_map(|(uid, pod)| match classify(pod, context) {
            PodAction::ForceDelete(reason) => Some((uid.clone(), reason)),
            _ => None,
        })
        .collect();
    if stuck.is_empty() {
        return false;
    }
    update(cx, node, |p| {
        for (uid, reason) in &stuck {
            if let Some(planned) = p.planned.iter_mut().flatten().find(|x| &x.uid == uid) {
                if !matches!(planned.action, PodAction::ForceDelete(_)) {
                    warn!(node, pod = %planned.pod, "pod stuck terminating: deleting it with grace 0");
                    planned.action = PodAction::ForceDelete(reason.clone());
                    p.removals.remove(uid);
                }
            }
        }
    });
    true
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
    if let Err(e) = nodes::patch(&cx.client, node, drained_patch(&cx.run_id, &retirement)).await {
        return patch_failed(cx, node, e);
    }
    update(cx, node, |p| p.phase = Some(Phase::Drained));
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
    update(cx, node, |p| {
        p.retired = Some(retired);
        p.retire_note = note;
    });
    Ok(())
}
