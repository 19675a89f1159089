//! Every message the actors exchange, in one place. A message says what is
//! asked or what happened; its `rtype` is the answer.

use actix::Message;

use crate::error::Result;
use crate::plan::{AllocateRates, WavePlan};

/// Asks the MetricsActor for the NodePool's memory and CPU allocate rates.
#[derive(Debug, Message)]
#[rtype(result = "Result<AllocateRates>")]
pub struct MeasureAllocateRates {
    pub nodepool: String,
}

/// Asks the PlannerActor for one wave's plan.
#[derive(Debug, Message)]
#[rtype(result = "Result<WavePlan>")]
pub struct PlanWave {
    pub nodepool: String,
    /// The measured rates; None when `nodes` names the wave.
    pub rates: Option<AllocateRates>,
    pub target_allocate_rate: u32,
    pub max_nodes: Option<usize>,
    /// Nodes named by the operator (`--nodes`) instead of the formula.
    pub nodes: Vec<String>,
    /// `--force`: blocking pods do not keep a node out of the wave.
    pub force: bool,
}

/// Asks the evictor pool to remove one planned pod: evict it (PDBs apply),
/// delete it with grace 0 (problem pods), or delete it (finished pods).
#[derive(Debug, Message)]
#[rtype(result = "PodRemoval")]
pub struct RemovePod {
    pub node: String,
    pub pod: crate::progress::PlannedRemoval,
    /// Give up (TimedOut) rather than retry past this moment.
    pub deadline: tokio::time::Instant,
}

/// How the removal of one pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodRemoval {
    /// Evicted, deleted, or found already gone.
    Removed,
    /// Cannot be removed without a person (e.g. more than one PDB).
    Blocked {
        reason: String,
    },
    /// Still refused at the deadline; names the PDB when one refused.
    TimedOut {
        pdb: Option<String>,
    },
    Failed {
        reason: String,
    },
}

/// A NodeDrainActor finished with its node (for good: drained, or restored).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct NodeDrainFinished {
    pub node: String,
    pub outcome: crate::progress::DrainOutcome,
    pub pods_evicted: usize,
    pub pods_force_deleted: usize,
}

/// Something to tell Slack; queued, never awaited by the sender.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Notify(pub crate::slack::Notice);

/// Waits (at most `timeout`) until every queued notification was delivered,
/// refused or given up; true when none is left. Used once, before exit.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct FlushNotifications {
    pub timeout: std::time::Duration,
}

/// The notifier's counters.
#[derive(Debug, Message)]
#[rtype(result = "crate::actors::notifier::NotifierStatsSnapshot")]
pub struct GetNotifierStats;
