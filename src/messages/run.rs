//! Runs: a set of nodes drained together under one run id, owned by the
//! PlannerActor. Fronts start, await, cancel and inspect runs with these.

use std::time::Duration;

use actix::Message;
use serde::Serialize;

use crate::drain::{DrainOutcome, DrainSettings, StopReason};
use crate::error::Result;
use crate::plan::WavePlan;

pub type RunId = String;

/// Starts draining `nodes` of `nodepool`; answers the run id at once.
#[derive(Debug, Message)]
#[rtype(result = "Result<RunId>")]
pub struct StartRun {
    pub nodepool: String,
    pub nodes: Vec<String>,
    pub settings: DrainSettings,
    /// What asked for the run, for Slack and status ("CLI", an alert, the admin socket).
    pub trigger: String,
    /// The plan the nodes came from, when planned (its rates go to Slack).
    pub plan: Option<WavePlan>,
    /// Resuming the nodes of this run, known to be gone (a fenced previous
    /// leader's): taken over without waiting for their heartbeat to go stale.
    pub take_over: Option<RunId>,
}

/// Answers when the run is over, with every node's outcome.
#[derive(Debug, Message)]
#[rtype(result = "Result<RunReport>")]
pub struct AwaitRun {
    pub run_id: RunId,
}

/// Stops a run (or every run): each node not yet drained is restored.
/// Answers how many nodes were told to stop.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CancelRun {
    /// None: every run.
    pub run_id: Option<RunId>,
    pub reason: StopReason,
}

/// Stops the drain of one node (restored); false when no run drains it.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct CancelNode {
    pub node: String,
    pub reason: StopReason,
}

/// Applies the one recovery policy (`drain::recovery`) to every node of
/// `nodepools`: a dead run's node is restored (the CLI) or resumed (the
/// daemon's leader, `lease` set), a recorded retirement that may not have
/// happened is done. Answers what was done.
#[derive(Debug, Message)]
#[rtype(result = "Result<Recovered>")]
pub struct RecoverNodes {
    pub nodepools: Vec<String>,
    /// The daemon's Lease (`namespace/name`); None: the CLI.
    pub lease: Option<String>,
    /// The first reconciliation after this process became the leader.
    pub elected_now: bool,
    /// Read every Karpenter node, not only those of `nodepools` (at election,
    /// and when a NodePool left the config): what was claimed in a NodePool no
    /// longer managed is given back.
    pub all_pools: bool,
    pub orphan_after: Duration,
    /// The settings of a resumed drain whose record names none.
    pub defaults: DrainSettings,
}

#[derive(Debug, Default, Serialize)]
pub struct Recovered {
    pub restored: Vec<String>,
    pub resumed: Vec<String>,
    pub retired: Vec<String>,
    /// Requests an earlier leader of this Lease queued (recorded on their
    /// nodes), oldest first, that this process does not know yet: the daemon
    /// admits them again (`Requeue`) before it takes new alerts.
    #[serde(skip)]
    pub queued: Vec<crate::drain::queued::Found>,
}

/// A NodeDrainActor finished with its node (for good: drained, or not).
#[derive(Debug, Clone, Serialize, Message)]
#[rtype(result = "()")]
pub struct NodeDrainFinished {
    pub run_id: RunId,
    pub node: String,
    pub outcome: DrainOutcome,
    pub pods_evicted: usize,
    pub pods_force_deleted: usize,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: RunId,
    pub nodepool: String,
    pub nodes: Vec<NodeDrainFinished>,
    /// Nodes that never reported (none unless the process is going down).
    pub unfinished: Vec<String>,
    #[serde(with = "secs")]
    pub elapsed: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl RunReport {
    pub fn failed(&self) -> usize {
        self.nodes.iter().filter(|n| !n.outcome.drained()).count() + self.unfinished.len()
    }
}

/// What every run and node is doing now.
#[derive(Debug, Message)]
#[rtype(result = "StatusSnapshot")]
pub struct GetStatus;

#[derive(Debug, Clone, Serialize, Default)]
pub struct StatusSnapshot {
    pub runs: Vec<RunStatus>,
    /// Intake paused (admin socket).
    pub paused: bool,
    /// Nodes waiting for room in their NodePool.
    pub pending: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    pub run_id: RunId,
    pub nodepool: String,
    pub trigger: String,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub step: &'static str,
    pub removed: usize,
    pub planned: usize,
    pub pdbs_refusing: Vec<String>,
    pub restarts: u32,
    pub outcome: Option<DrainOutcome>,
}
