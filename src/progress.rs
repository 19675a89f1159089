//! Shared live state: drain progress per node, in a DashMap that outlives any
//! one NodeDrainActor. A restarted actor resumes from here; the evictor pool
//! records here which pod UIDs it is removing and has removed, so nothing is
//! evicted twice. Status readers take copies; no entry is held across an await.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;
use tokio::time::Instant;

use crate::pods::PodAction;

/// How the drain of one node ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum DrainOutcome {
    /// Every planned pod is gone and the node was retired as asked.
    Drained { retired: String },
    /// The node was restored (uncordoned if node-drain cordoned it).
    Failed {
        reason: String,
        blockers: Vec<String>,
    },
}

/// The phases of one node's drain, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Intent,
    Cordon,
    Evict,
    Wait,
    Retire,
    Done,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Intent => "intent",
            Phase::Cordon => "cordon",
            Phase::Evict => "evict",
            Phase::Wait => "wait",
            Phase::Retire => "retire",
            Phase::Done => "done",
        }
    }
}

/// One pod the drain planned to remove, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRemoval {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub action: PodAction,
}

#[derive(Debug, Clone)]
pub struct NodeProgress {
    pub phase: Phase,
    /// When the drain of this node must be over (`--drain-timeout` from its start).
    pub deadline: Instant,
    /// The plan, made once: a restart never re-plans, so only planned UIDs are touched.
    pub planned: Option<Vec<PlannedRemoval>>,
    pub blockers: Vec<String>,
    /// UIDs sent to the evictor pool and not yet answered.
    pub in_flight: BTreeSet<String>,
    /// UIDs the evictor pool removed (evicted, deleted, or found gone).
    pub removed: BTreeSet<String>,
    /// Whether node-drain cordoned the node (so a restore uncordons it).
    pub cordoned_by_us: Option<bool>,
    pub restarts: u32,
    /// Test-only fault hook: phases whose fault has fired.
    pub faults_fired: BTreeSet<&'static str>,
    /// PDBs that refused evictions, with how often (named once in logs).
    pub pdb_refusals: BTreeMap<String, u32>,
    pub outcome: Option<DrainOutcome>,
}

impl NodeProgress {
    pub fn new(deadline: Instant) -> Self {
        Self {
            phase: Phase::Intent,
            deadline,
            planned: None,
            blockers: vec![],
            in_flight: BTreeSet::new(),
            removed: BTreeSet::new(),
            cordoned_by_us: None,
            restarts: 0,
            faults_fired: BTreeSet::new(),
            pdb_refusals: BTreeMap::new(),
            outcome: None,
        }
    }
}

/// Drain progress of every node of this process, keyed by node name.
pub type Progress = Arc<DashMap<String, NodeProgress>>;
