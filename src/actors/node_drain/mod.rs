//! NodeDrainActor: drains one node (SPEC §3) under an actix Supervisor. It
//! decides nothing: it asks `drain::machine::next_step` what to do, runs that
//! step (`steps`, `restore`), records the result in the shared progress and on
//! the Node, and asks again. A step that fails or panics stops the actor; the
//! Supervisor restarts it after a backoff (`actor`) and the same question of
//! the same record resumes the drain.

mod actor;
pub mod fault;
mod remove;
pub mod restore;
mod steps;
mod wait;

pub use steps::ownership_confirmed_until;

use std::sync::Arc;

use actix::Recipient;
use kube::runtime::events::Recorder;
use kube::Client;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::actors::evictor::EvictorPool;
use crate::drain::machine::{next_step, Step};
use crate::drain::progress::{NodeProgress, Progress};
use crate::drain::{DrainOutcome, DrainSettings, PodRef};
use crate::k8s::nodes::NodePatchError;
use crate::messages::NodeDrainFinished;
pub use fault::Fault;

/// Everything the NodeDrainActors of one run share.
pub struct RunContext {
    pub run_id: String,
    /// Who runs the run (pod or host), recorded on each Node it claims.
    pub holder: String,
    pub client: Client,
    pub evictors: EvictorPool,
    pub settings: DrainSettings,
    pub progress: Progress,
    pub recorder: Recorder,
    /// Where each node's outcome is reported (the PlannerActor).
    pub finished: Recipient<NodeDrainFinished>,
    /// node-drain's own pod, never evicted by itself.
    pub own_pod: Option<PodRef>,
    pub fault: Option<Fault>,
    /// The daemon's Lease (`namespace/name`), recorded with each claim; None
    /// for the CLI.
    pub lease: Option<String>,
    /// A run known to be gone (a fenced predecessor's): its nodes are taken
    /// over at once, whatever their heartbeat says.
    pub take_over: Option<String>,
}

pub struct NodeDrainActor {
    node: String,
    cx: Arc<RunContext>,
    /// Cancelled when the node must stop (interrupt, cancel, lost ownership);
    /// the reason is in the node's progress.
    stop: CancellationToken,
}

impl NodeDrainActor {
    /// The node's progress is created by the run that starts this actor.
    pub fn new(node: String, cx: Arc<RunContext>, stop: CancellationToken) -> Self {
        Self { node, cx, stop }
    }
}

/// A step that did not complete: the actor stops and is restarted.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(
        "Kubernetes API: could not {action}: {}",
        crate::error::describe_kube(source)
    )]
    Kube { action: String, source: kube::Error },
    #[error("test fault injected at {0}")]
    Fault(&'static str),
    /// Worth retrying: the API server did not answer, or answered 5xx.
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Other(String),
}

impl StepError {
    /// Worth retrying for as long as the node's deadline allows.
    pub fn transient(&self) -> bool {
        match self {
            StepError::Kube { source, .. } => crate::k8s::transient(source),
            StepError::Fault(_) | StepError::Transient(_) => true,
            StepError::Other(_) => false,
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> StepError {
    let action = action.into();
    move |source| StepError::Kube { action, source }
}

/// Applies `f` to the node's progress (never held across an await).
pub(crate) fn update<R>(
    cx: &RunContext,
    node: &str,
    f: impl FnOnce(&mut NodeProgress) -> R,
) -> Option<R> {
    cx.progress.get_mut(node).map(|mut p| f(&mut p))
}

/// Maps a failed patch of an owned node into progress (gone, lost) or an error.
fn patch_failed(cx: &RunContext, node: &str, e: NodePatchError) -> Result<(), StepError> {
    match e {
        NodePatchError::Gone(_) => {
            update(cx, node, |p| p.node_gone = true);
            Ok(())
        }
        NodePatchError::NotOwned { detail, .. } => {
            warn!(
                node,
                detail = detail.as_str(),
                "this run no longer owns the node; touching nothing more"
            );
            update(cx, node, |p| {
                p.stop = Some(crate::drain::StopReason::LostOwnership { detail })
            });
            Ok(())
        }
        NodePatchError::Kube { node, source } => Err(StepError::Kube {
            action: format!("patch node {node}"),
            source,
        }),
    }
}

/// The drain of one node: the machine's next step, run, until it says Finish.
pub async fn drive(
    cx: Arc<RunContext>,
    node: String,
    stop: CancellationToken,
) -> Result<DrainOutcome, StepError> {
    loop {
        let step = match cx.progress.get(&node) {
            Some(p) => next_step(&p, &cx.settings, Instant::now()),
            None => return Err(StepError::Other(format!("no progress for node {node}"))),
        };
        match step {
            Step::Finish(outcome) => return Ok(outcome),
            Step::Claim => steps::claim(&cx, &node).await?,
            Step::PlanPods => steps::plan_pods(&cx, &node).await?,
            Step::Remove { uids, .. } => remove::remove(&cx, &node, &uids, &stop, false).await?,
            Step::Force { uids, .. } => remove::remove(&cx, &node, &uids, &stop, true).await?,
            Step::Wait { uids, until, .. } => wait::wait(&cx, &node, &uids, until, &stop).await?,
            Step::BeginForce { until } => {
                warn!(
                    node = node.as_str(),
                    "drain timeout: --on-timeout force deletes the remaining pods, tier by tier"
                );
                update(&cx, &node, |p| p.force_deadline = Some(until));
            }
            Step::BeginForceTier { tier, until } => {
                let window = until.saturating_duration_since(Instant::now());
                warn!(
                    node = node.as_str(),
                    tier = ?tier,
                    windowSeconds = window.as_secs(),
                    "--on-timeout force: deleting this tier's remaining pods within its own window"
                );
                update(&cx, &node, |p| p.force_window = Some((tier, until)));
            }
            Step::Retire => steps::retire(&cx, &node).await?,
            Step::Restore {
                cause,
                reason,
                blockers,
            } => restore::restore(&cx, &node, cause, reason, blockers).await?,
        }
    }
}
