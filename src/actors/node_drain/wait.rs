//! The wait step: one watch of the node's pods until the planned ones are gone,
//! re-classifying those still there as time passes (a pod stuck terminating on
//! a NotReady node becomes a grace-0 deletion).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{fault, update, RunContext, StepError};
use crate::drain::pods::{classify, NodeContext, PodAction};
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
