//! The removal step: the planned pods of one tier handed to the evictor pool,
//! each answer recorded, after the node's readiness is read again before any
//! grace-0 delete of a stateful pod; and the test fault that fails the node's
//! actor while an eviction is in flight.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{fault, kube_err, update, RunContext, StepError};
use crate::drain::pods::{classify, stateful, NodeContext, PlannedRemoval, PodAction};
use crate::drain::progress::{NodeProgress, Removal};
use crate::k8s::nodes;
use crate::k8s::pods::RemovalRequest;
use crate::messages::RemovePod;

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
        // Forced deletions have the window of the tier forced, not the node's
        // deadline (past by then): a 429 or 5xx is waited out inside it.
        Some(p) => (
            p.planned.clone().unwrap_or_default(),
            match (force, p.force_window) {
                (true, Some((_, window))) => window,
                _ => p.deadline,
            },
        ),
        None => return Ok(()),
    };
    let wanted: BTreeSet<&String> = uids.iter().collect();
    let pods: Vec<PlannedRemoval> = planned
        .into_iter()
        .filter(|p| wanted.contains(&p.uid))
        .collect();
    if replanned_on_a_ready_node(cx, node, &pods).await? {
        return Ok(()); // the machine decides again from the new plan
    }
    let request = |pod: &PlannedRemoval| {
        let how = match (&pod.action, force) {
            (PodAction::ForceDelete(_), _) => RemovalRequest::DeleteNow,
            (_, true) | (PodAction::DeleteFinished, _) => RemovalRequest::Delete,
            _ => RemovalRequest::Evict,
        };
        RemovePod {
            node: node.to_string(),
            pod: pod.pod.clone(),
            uid: pod.uid.clone(),
            how,
            forced: how == RemovalRequest::DeleteNow || force,
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

/// SPEC §6: never a grace-0 delete of a stateful pod while its node is Ready.
/// The readiness the plan or a wait judged by may be stale (a kubelet back):
/// it is read again right before such a delete. On a Ready node those pods are
/// classified again (evicted, or waited for while terminating) and this step
/// sends nothing; true then. A node that cannot be read sends nothing either.
async fn replanned_on_a_ready_node(
    cx: &RunContext,
    node: &str,
    pods: &[PlannedRemoval],
) -> Result<bool, StepError> {
    let snapshot = match cx.progress.get(node) {
        Some(p) => p.pod_snapshot.clone(),
        None => return Ok(false),
    };
    // A pod not in the snapshot is taken as stateful: read the node anyway.
    let stateful_now: Vec<&PlannedRemoval> = pods
        .iter()
        .filter(|p| matches!(p.action, PodAction::ForceDelete(_)))
        .filter(|p| snapshot.get(&p.uid).is_none_or(stateful))
        .collect();
    if stateful_now.is_empty() {
        return Ok(false);
    }
    let Some(current) = nodes::get(&cx.client, node)
        .await
        .map_err(kube_err(format!("get node {node} before a grace-0 delete")))?
    else {
        update(cx, node, |p| p.node_gone = true);
        return Ok(true);
    };
    let ready = nodes::ready(&current);
    update(cx, node, |p| p.node_ready = ready);
    if !ready {
        return Ok(false);
    }
    let context = NodeContext {
        ready,
        now: chrono::Utc::now(),
        own_pod: cx.own_pod.as_ref(),
    };
    update(cx, node, |p| {
        for pod in &stateful_now {
            let Some(seen) = snapshot.get(&pod.uid) else {
                // Unknown: waited for, never deleted with grace 0 on a Ready node.
                set_action(p, &pod.uid, PodAction::WaitTerminating);
                continue;
            };
            let action = classify(seen, context);
            warn!(
                node,
                pod = %pod.pod,
                now = ?action,
                "the node is Ready again: a stateful pod is not deleted with grace 0"
            );
            set_action(p, &pod.uid, action);
        }
    });
    Ok(true)
}

fn set_action(p: &mut NodeProgress, uid: &str, action: PodAction) {
    if let Some(planned) = p.planned.iter_mut().flatten().find(|x| x.uid == uid) {
        planned.action = action;
        p.removals.remove(uid);
    }
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
