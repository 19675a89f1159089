//! The wait step: one watch of the node's pods until the planned ones of a tier
//! are gone, its changes kept in a `Presence` of every planned pod, and those
//! still there re-classified as time passes (a pod stuck terminating on a
//! NotReady node becomes a grace-0 deletion).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{fault, update, RunContext, StepError};
use crate::drain::pods::{classify, NodeContext, PodAction};
use crate::drain::presence::{Applied, Presence};
use crate::drain::progress::Removal;
use crate::k8s::nodes;

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
/// decision. Every change is applied to every planned pod (`Presence`), so a
/// later tier's pod that goes meanwhile is known gone when its tier comes.
/// Pods still present are classified again as time passes: one stuck
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
    // Resume from what the plan's LIST (or the last wait) saw: no LIST again.
    let Some(mut presence) = cx.progress.get(node).map(|p| {
        let planned = p
            .planned
            .iter()
            .flatten()
            .map(|x| x.uid.clone())
            .filter(|u| !p.gone.contains(u));
        match &p.pods_version {
            Some(version) => Presence::resumed(planned, &p.pod_snapshot, version.clone()),
            None => Presence::unlisted(planned),
        }
    }) else {
        return Ok(());
    };
    let resumed = presence.version().is_some();
    let mut stream = match crate::k8s::pods::changes(&cx.client, node, presence.version()).await {
        Ok(stream) => stream,
        Err(e) if crate::k8s::api_code(&e) == Some(410) => {
            // The version is too old to resume from: the next wait lists again.
            update(cx, node, |p| p.pods_version = None);
            return Ok(());
        }
        Err(e) => {
            return Err(StepError::Transient(format!(
                "watch the pods of node {node}: {e}"
            )))
        }
    };
    let mut ready_checked = Instant::now();
    let result = loop {
        if presence.synced() {
            let gone = presence.gone();
            update(cx, node, |p| p.gone.extend(gone));
            if presence.all_gone(&wanted) {
                break Ok(());
            }
            let present = presence.present_among(&wanted);
            if escalate_stuck(cx, node, &present, &mut ready_checked).await {
                break Ok(());
            }
        }
        if needs_attention(cx, node, &wanted) {
            break Ok(());
        }
        let next = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            _ = tokio::time::sleep_until(until) => break Ok(()),
            _ = tick.tick() => continue,
            next = stream.next() => next,
        };
        let Some(change) = next else {
            if resumed {
                break Ok(()); // the API server closed it: resume next step
            }
            break Err(StepError::Transient(format!(
                "the pod watch of node {node} ended"
            )));
        };
        match presence.apply(change) {
            Applied::Recorded => {}
            Applied::Expired => break Ok(()), // too old: the next wait LISTs again
            Applied::Error(e) => {
                warn!(node, error = e.as_str(), "pod watch error; resuming");
                tokio::time::sleep(Duration::from_millis(500)).await;
                if resumed {
                    break Ok(());
                }
            }
        }
    };
    // Where the next wait resumes (only a resumed watch keeps a version: after
    // a LIST-and-watch the watcher's own versions are not seen here).
    let keep = if resumed {
        presence.version().map(str::to_string)
    } else {
        None
    };
    update(cx, node, |p| {
        p.pods_version = keep;
        if presence.synced() {
            p.pod_snapshot = presence.snapshot().clone();
        }
    });
    result
}

/// Re-classifies the planned pods still present; a pod now stuck terminating is
/// planned for a grace-0 deletion. True when the plan changed. The node's
/// readiness is re-read (at most every 15 s) only while a pod is stuck.
async fn escalate_stuck(
    cx: &RunContext,
    node: &str,
    present: &BTreeMap<&str, &Pod>,
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
            PodAction::ForceDelete(reason) => Some((uid.to_string(), reason)),
            _ => None,
        })
        .collect();
    if stuck.is_empty() {
        return false;
    }
    // True only when a pod is newly planned for a grace-0 deletion: one already
    // deleted that way is waited for here (a `true` for it would end every wait
    // before it reads the event that says the pod is gone).
    update(cx, node, |p| {
        let mut changed = false;
        for (uid, reason) in &stuck {
            if let Some(planned) = p.planned.iter_mut().flatten().find(|x| &x.uid == uid) {
                if !matches!(planned.action, PodAction::ForceDelete(_)) {
                    warn!(node, pod = %planned.pod, "pod stuck terminating: deleting it with grace 0");
                    planned.action = PodAction::ForceDelete(reason.clone());
                    p.removals.remove(uid);
                    changed = true;
                }
            }
        }
        changed
    })
    .unwrap_or(false)
}
