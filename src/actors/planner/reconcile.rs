//! Recovery and the heartbeat. `recover` applies the one recovery policy
//! (`drain::recovery`) to the managed nodes: a node whose run died is restored
//! (the CLI, before it plans) or resumed by a new run (the daemon's leader), a
//! recorded retirement that may not have happened is done. The heartbeat keeps
//! a live run's nodes from looking orphaned; `hand_over` marks them orphaned
//! at once when the daemon stops.

use std::time::Duration;

use actix::{ActorFutureExt, ResponseActFuture, WrapFuture};
use k8s_openapi::api::core::v1::Node;
use kube::runtime::events::Recorder;
use kube::Client;
use tracing::{info, warn};

use crate::actors::node_drain::restore::restore_orphan;
use crate::actors::node_drain::RunContext;
use crate::drain::annotations::{heartbeat_patch, Record};
use crate::drain::recovery::{recovery, NodeState, Recoverer, Recovery, Retirement};
use crate::drain::{Phase, StopReason};
use crate::error::{Error, Result};
use crate::k8s::events::{node_ref, publish};
use crate::k8s::karpenter::NODEPOOL_LABEL;
use crate::k8s::nodes::{self, NodePatchError};
use crate::messages::{RecoverNodes, Recovered, StartRun};

/// A drain to resume, found by the IO half of `recover`.
struct Resume {
    nodepool: String,
    node: String,
    start: StartRun,
}

impl super::PlannerActor {
    /// Reads the nodes, restores and retires what the policy says (IO), then
    /// starts a run for each drain to resume (in the actor).
    pub(super) fn recover(
        &mut self,
        msg: RecoverNodes,
    ) -> ResponseActFuture<Self, Result<Recovered>> {
        let client = self.client.clone();
        let recorder = self.deps.recorder.clone();
        let cache = self.node_cache.clone();
        Box::pin(
            async move { recover_io(cache.as_deref(), &client, &recorder, &msg).await }
                .into_actor(self)
                .map(|found, act, ctx| {
                    let (mut recovered, resumes) = found?;
                    for r in resumes {
                        match act.start_run(r.start, ctx) {
                            Ok(run) => {
                                info!(
                                    node = r.node.as_str(),
                                    nodepool = r.nodepool.as_str(),
                                    run = run.as_str(),
                                    "resuming a drain an earlier node-drain left"
                                );
                                recovered.resumed.push(r.node);
                            }
                            Err(e) => info!(node = r.node.as_str(), reason = %e, "not resumed now"),
                        }
                    }
                    Ok(recovered)
                }),
        )
    }
}

async fn recover_io(
    cache: Option<&crate::k8s::node_cache::NodeCache>,
    client: &Client,
    recorder: &Recorder,
    msg: &RecoverNodes,
) -> Result<(Recovered, Vec<Resume>)> {
    let who = match &msg.lease {
        None => Recoverer::Cli,
        Some(lease) => Recoverer::Leader {
            lease,
            elected_now: msg.elected_now,
        },
    };
    let after =
        chrono::Duration::from_std(msg.orphan_after).unwrap_or(chrono::Duration::seconds(60));
    let mut recovered = Recovered::default();
    let mut resumes = Vec::new();
    // Every Karpenter node when asked (at election, or when a NodePool left
    // the config): a NodePool no longer managed may hold nodes this Lease's
    // leaders claimed.
    let pools = match msg.all_pools {
        true => nodes::NodePools::Every,
        false => nodes::NodePools::Named(&msg.nodepools),
    };
    // Metadata only: `unschedulable` (the spec) is all recovery reads beyond
    // the record, and it only keeps a drained node from being retired. A node
    // left alone when taken as cordoned is left alone whatever it is; only the
    // others are read in full (one GET each; none on an idle round).
    let listed = crate::k8s::node_cache::metadata_of_nodepools(cache, client, pools)
        .await
        .map_err(|(what, e)| Error::kube(what, e))?;
    // Requests an earlier leader of this Lease queued: admitted again by the
    // daemon, oldest first (the CLI has no queue).
    if let Some(lease) = &msg.lease {
        recovered.queued = super::queue::read_records(client, &listed, lease, &msg.nodepools).await;
    }
    let now = chrono::Utc::now();
    for meta in listed {
        let name = meta.name.clone().unwrap_or_default();
        let pool = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(NODEPOOL_LABEL))
            .cloned()
            .unwrap_or_default();
        let managed = msg.nodepools.contains(&pool);
        let assumed = NodeState {
            unschedulable: true,
            deleting: meta.deletion_timestamp.is_some(),
            managed,
        };
        let record = Record::read(meta.annotations.as_ref());
        if recovery(&record, assumed, who, now, after) == Recovery::Leave {
            continue;
        }
        let Some(node) = nodes::get(client, &name)
            .await
            .map_err(|e| Error::kube(format!("get node {name}"), e))?
        else {
            continue;
        };
        let record = Record::read(node.metadata.annotations.as_ref());
        let state = NodeState {
            unschedulable: nodes::unschedulable(&node),
            deleting: node.metadata.deletion_timestamp.is_some(),
            managed,
        };
        match recovery(&record, state, who, now, after) {
            Recovery::Leave => {}
            Recovery::Restore { reason } => {
                if restore_orphan(client, recorder, &node, &reason)
                    .await
                    .map_err(|e| Error::Node {
                        node: name.clone(),
                        reason: format!("could not be restored: {e}"),
                    })?
                {
                    recovered.restored.push(name);
                }
            }
            Recovery::Retire { retirement } => {
                retire_recorded(client, recorder, &node, &retirement)
                    .await
                    .map_err(|e| Error::Node {
                        node: name.clone(),
                        reason: format!("could not be retired: {e}"),
                    })?;
                recovered.retired.push(name);
            }
            Recovery::Resume {
                dead_run,
                settings,
                why,
            } => {
                let settings = match settings {
                    Some(recorded) => recorded.apply(msg.defaults.clone()),
                    None => msg.defaults.clone(),
                };
                resumes.push(Resume {
                    nodepool: pool.clone(),
                    node: name.clone(),
                    start: StartRun {
                        nodepool: pool.clone(),
                        nodes: vec![name],
                        settings,
                        trigger: format!("takeover of {why}"),
                        plan: None,
                        take_over: Some(dead_run),
                    },
                });
            }
        }
    }
    Ok((recovered, resumes))
}

/// Does the retirement a drained node's record names (a run was stopped
/// between the record and the retirement). Deleting what is already gone is
/// fine; a person who uncordoned the node has taken it back (never here).
async fn retire_recorded(
    client: &Client,
    recorder: &Recorder,
    node: &Node,
    retirement: &Retirement,
) -> kube::Result<()> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let note = match retirement {
        Retirement::NodeClaim(claim) => {
            crate::k8s::karpenter::delete_nodeclaim(client, claim).await?;
            format!("NodeClaim {claim} deleted (recorded drained, not yet retired); Karpenter replaces the capacity")
        }
        Retirement::Node => {
            crate::k8s::gone_is_ok(
                kube::Api::<Node>::all(client.clone())
                    .delete(&name, &Default::default())
                    .await,
            )?;
            "the Node object was deleted (recorded drained, not yet retired)".to_string()
        }
    };
    info!(
        node = name.as_str(),
        note = note.as_str(),
        "finished a recorded retirement"
    );
    publish(
        recorder,
        &node_ref(&name, node.metadata.uid.clone()),
        false,
        "NodeRetired",
        note,
    )
    .await;
    Ok(())
}

/// Whether `node`'s record says this run drained it: the run itself moved
/// it on while a heartbeat was on its way. (Only `drained`: a `restored`
/// record keeps the run id when another run restored the node as orphaned.)
async fn moved_on_by_this_run(cx: &RunContext, node: &str) -> bool {
    let Ok(Some(n)) = nodes::get(&cx.client, node).await else {
        return false;
    };
    let annotations = n.metadata.annotations.unwrap_or_default();
    let get = |k: &str| annotations.get(k).map(String::as_str);
    get(crate::drain::annotations::RUN_ID) == Some(cx.run_id.as_str())
        && get(crate::drain::annotations::STATE) == Some(Phase::Drained.as_str())
}

/// Refreshes the heartbeat of every node `cx`'s run still holds; renews the
/// node ownership, or stops a node whose record another run changed.
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
                let until = crate::actors::node_drain::ownership_confirmed_until(cx);
                if let Some(mut p) = cx.progress.get_mut(&node) {
                    p.ownership_confirmed_until = Some(until);
                }
            }
            Err(NodePatchError::NotOwned { detail, .. }) => {
                // A beat that crossed this run's own next record (drained,
                // restored) was refused by that record, not by another run.
                if moved_on_by_this_run(cx, &node).await {
                    continue;
                }
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

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
