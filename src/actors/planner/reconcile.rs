//! Runs that died: each node whose record says a drain is in progress and whose
//! heartbeat is older than `--orphan-after` is restored before planning, so a
//! SIGKILLed run never leaves a node cordoned for good. And the heartbeat that
//! keeps a live run's nodes from looking orphaned.

use std::time::Duration;

use kube::runtime::events::Recorder;
use kube::Client;
use tracing::warn;

use crate::actors::node_drain::restore::restore_orphan;
use crate::actors::node_drain::RunContext;
use crate::drain::annotations::{heartbeat_patch, Record};
use crate::drain::{Phase, StopReason};
use crate::error::{Error, Result};
use crate::k8s::nodes::{self, NodePatchError};

/// Restores the NodePool's orphaned nodes; returns their names.
pub async fn recover_orphans(
    client: &Client,
    recorder: &Recorder,
    nodepool: &str,
    orphan_after: Duration,
) -> Result<Vec<String>> {
    let listed = nodes::of_nodepool(client, nodepool)
        .await
        .map_err(|e| Error::kube(format!("list nodes of NodePool {nodepool}"), e))?;
    let now = chrono::Utc::now();
    let after = chrono::Duration::from_std(orphan_after).unwrap_or(chrono::Duration::seconds(60));
    let mut recovered = Vec::new();
    for node in listed {
        let record = Record::read(node.metadata.annotations.as_ref());
        if !record.orphaned(now, after) {
            continue;
        }
        let run = record.run_id.clone().unwrap_or_default();
        let beat = record
            .heartbeat
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into());
        let reason = format!("run {run} stopped mid-drain (last heartbeat {beat})");
        let name = node.metadata.name.clone().unwrap_or_default();
        match restore_orphan(client, recorder, &node, &reason).await {
            Ok(true) => recovered.push(name),
            Ok(false) => {}
            Err(e) => {
                return Err(Error::Node {
                    node: name,
                    reason: format!("could not be restored: {e}"),
                })
            }
        }
    }
    Ok(recovered)
}

/// Refreshes the heartbeat of every node `cx`'s run still holds; renews the
/// ownership fence, or stops a node whose record another run changed.
pub async fn heartbeat(cx: &RunContext, stop: impl Fn(&str)) {
    let held: Vec<String> = cx
        .progress
        .iter()
        .filter(|p| {
            p.run_id == cx.run_id && p.outcome.is_none() && p.phase == Some(Phase::Cordoned)
        })
        .map(|p| p.key().clone())
        .collect();
    for node in held {
        let patch = heartbeat_patch(&cx.run_id, chrono::Utc::now());
        match nodes::patch(&cx.client, &node, patch).await {
            Ok(_) => {
                let fence = crate::actors::node_drain::fence(cx);
                if let Some(mut p) = cx.progress.get_mut(&node) {
                    p.owned_until = Some(fence);
                }
            }
            Err(NodePatchError::NotOwned { detail, .. }) => {
                warn!(
                    node = node.as_str(),
                    detail = detail.as_str(),
                    "lost the node to another run"
                );
                if let Some(mut p) = cx.progress.get_mut(&node) {
                    p.stop = Some(StopReason::LostOwnership { detail });
                }
                stop(&node);
            }
            Err(NodePatchError::Gone(_)) => {
                if let Some(mut p) = cx.progress.get_mut(&node) {
                    p.node_gone = true;
                }
                stop(&node);
            }
            Err(e) => warn!(
                node = node.as_str(),
                error = e.to_string().as_str(),
                "could not refresh the drain heartbeat"
            ),
        }
    }
}

/// SIGTERM in the daemon: stops every run without restoring its nodes, waits
/// (10 s at most) for the node actors to end, then marks each node still
/// recorded as cordoned by one of its runs orphaned now (a heartbeat at the
/// epoch, with the run id tested), so the next leader takes it over at once.
impl super::PlannerActor {
    pub(super) fn hand_over(
        &mut self,
        _ctx: &mut actix::Context<Self>,
    ) -> impl std::future::Future<Output = Vec<String>> {
        let reason = StopReason::HandedOver {
            detail: "the daemon is shutting down; the next leader resumes".into(),
        };
        self.cancel_run(None, &reason);
        let mut waits = Vec::new();
        let mut contexts = Vec::new();
        for run in self.runs.values_mut().filter(|r| r.report.is_none()) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            run.waiters.push(tx);
            waits.push(rx);
            contexts.push(run.cx.clone());
        }
        async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(waits))
                .await;
            let mut handed = Vec::new();
            for cx in contexts {
                let held: Vec<String> = cx
                    .progress
                    .iter()
                    .filter(|p| p.run_id == cx.run_id && p.phase == Some(Phase::Cordoned))
                    .map(|p| p.key().clone())
                    .collect();
                for node in held {
                    let patch = heartbeat_patch(&cx.run_id, chrono::DateTime::UNIX_EPOCH);
                    match nodes::patch(&cx.client, &node, patch).await {
                        Ok(_) => handed.push(node),
                        Err(e) => {
                            warn!(node = node.as_str(), error = %e, "could not hand the node over; the next leader waits for its heartbeat to go stale")
                        }
                    }
                }
            }
            handed
        }
    }
}
