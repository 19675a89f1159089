//! What happens to one node, decided without IO: the recorded state on the Node
//! (`annotations`), the pod classification (`pods`), the eviction answer policy
//! (`eviction`), which planned pods a watch still sees (`presence`), the live
//! progress of a node (`progress`), and the state machine
//! that names the next step from them (`machine`). The NodeDrainActor runs the
//! steps; it decides nothing.

pub mod annotations;
pub mod eviction;
pub mod machine;
pub mod pods;
pub mod presence;
pub mod progress;
pub mod queued;
pub mod recovery;

use std::time::Duration;

use serde::Serialize;

pub use pods::{PlannedRemoval, PodRef, Tier};

/// What node-drain records on a Node (`node-drain.io/state`), and what a
/// restarted process reads back to know where to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Owned by a run and cordoned (one PATCH: the intent and the cordon).
    /// A restart re-lists the node's pods and carries on draining.
    Cordoned,
    /// Every planned pod is gone; the retirement named beside it is pending or done.
    /// Not a candidate again (a drained node that was not retired stays empty).
    Drained,
    /// Given back: uncordoned if node-drain cordoned it. Terminal.
    Restored,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Cordoned => "cordoned",
            Phase::Drained => "drained",
            Phase::Restored => "restored",
        }
    }

    /// Reads the annotation value; the names of earlier versions are understood.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "cordoned" | "cordoning" | "draining" | "evicting" => Some(Phase::Cordoned),
            "drained" => Some(Phase::Drained),
            "restored" | "failed" => Some(Phase::Restored),
            _ => None,
        }
    }

    /// A run owns the node while this is its state.
    pub fn in_progress(self) -> bool {
        self == Phase::Cordoned
    }
}

/// Why a drain stopped before its end; never a timeout (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "stop", rename_all = "kebab-case")]
pub enum StopReason {
    /// SIGINT or SIGTERM.
    Interrupted { signal: String },
    /// Cancelled by a person (admin socket) or a front.
    Cancelled { by: String },
    /// Another run (or leader) took the node over: touch nothing more.
    LostOwnership { detail: String },
    /// The daemon is shutting down (SIGTERM): the node stays as recorded and
    /// the next leader resumes it. Never a restore, never a timeout.
    HandedOver { detail: String },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Interrupted { signal } => write!(f, "interrupted ({signal})"),
            StopReason::Cancelled { by } => write!(f, "cancelled by {by}"),
            StopReason::LostOwnership { detail } => write!(f, "no longer owned: {detail}"),
            StopReason::HandedOver { detail } => write!(f, "handed over: {detail}"),
        }
    }
}

/// How the drain of one node ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum DrainOutcome {
    /// Every planned pod is gone; `retired` says what was done with the node.
    Drained {
        retired: String,
        retirement_done: bool,
    },
    /// Someone else deleted the node while it was drained (Karpenter, a person).
    RetiredElsewhere,
    /// The node was not drained: restored (uncordoned if node-drain cordoned it),
    /// or left to the run that owns it.
    Failed {
        reason: String,
        blockers: Vec<String>,
    },
}

impl DrainOutcome {
    pub fn drained(&self) -> bool {
        !matches!(self, DrainOutcome::Failed { .. })
    }

    /// The label of `node_drain_drains_total{result}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DrainOutcome::Drained { .. } => "drained",
            DrainOutcome::RetiredElsewhere => "retired-elsewhere",
            DrainOutcome::Failed { .. } => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OnTimeout {
    /// Give up, uncordon (if node-drain cordoned it), report.
    Restore,
    /// Delete the remaining pods with their own grace period (PDBs bypassed), tier by tier.
    Force,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Retire {
    /// Delete the Karpenter NodeClaim: Karpenter terminates the instance and replaces capacity.
    Nodeclaim,
    /// Delete the Node object.
    Node,
    /// Leave the drained node cordoned.
    None,
}

/// How one run drains its nodes; the same for every node of the run.
#[derive(Debug, Clone, Serialize)]
pub struct DrainSettings {
    /// Blocking pods are evicted anyway (in their own tier).
    pub force: bool,
    pub on_timeout: OnTimeout,
    /// Bounds the whole drain of one node.
    pub drain_timeout: Duration,
    pub retire: Retire,
    /// Evictions of one node in flight at once.
    pub node_in_flight: usize,
    /// A recorded drain whose heartbeat is older than this has lost its run.
    pub orphan_after: Duration,
}
