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
    /// List the pods of named nodes too (for a plan a person reads); a planned
    /// wave always lists them (its blockers decide which nodes it takes).
    pub list_named_pods: bool,
}
