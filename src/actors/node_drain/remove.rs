//! The removal step: the planned pods of one tier handed to the evictor pool,
//! each answer recorded; and the test fault that fails the node's actor while
//! an eviction is in flight.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{fault, RunContext, StepError};
use crate::drain::pods::{PlannedRemoval, PodAction};
use crate::drain::progress::Removal;
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
