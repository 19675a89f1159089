//! Shared live state: the progress of every node this process drains, in a
//! DashMap that outlives any one NodeDrainActor. A restarted actor resumes from
//! here; the evictor pool records here how each planned pod's removal went, so
//! nothing is sent twice and an answer that arrives while the node's actor is
//! restarting is not lost. Status readers take copies; no entry is held across
//! an await.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;
use tokio::time::Instant;

use super::pods::{PlannedRemoval, PodAction};
use super::{DrainOutcome, Phase, StopReason};

/// How the removal of one planned pod went, as the evictor pool recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "removal", rename_all = "kebab-case")]
pub enum Removal {
    /// A request is being made (or retried after a refusal).
    InFlight,
    /// Evicted or deleted (or found already gone); `forced`: deleted past its PDB
    /// or with grace 0.
    Removed { forced: bool },
    /// Cannot be removed without a person (e.g. more than one PDB selects it).
    Blocked { reason: String },
    /// Still refused by a PodDisruptionBudget at the node's deadline.
    Refused { pdb: Option<String> },
    /// The run or the node was stopped while it was being removed.
    Stopped,
    /// A refusal that is not transient (e.g. 403): the step fails and is retried.
    Failed { reason: String, code: Option<u16> },
}

/// The live progress of one node.
#[derive(Debug, Clone)]
pub struct NodeProgress {
    pub run_id: String,
    /// What the Node records; None before the claim.
    pub phase: Option<Phase>,
    /// When the drain of this node must be over (`--drain-timeout` from its start).
    pub deadline: Instant,
    /// Set once `--on-timeout force` began: when the forced deletions must be gone.
    pub force_deadline: Option<Instant>,
    /// The tier being forced and when its own window ends.
    pub force_window: Option<(super::Tier, Instant)>,
    /// The node's pods to remove, planned once: a restart never re-plans, so only
    /// planned UIDs are touched. (A new process re-plans from the Node.)
    pub planned: Option<Vec<PlannedRemoval>>,
    /// The resourceVersion the node's pods were last seen at: a wait resumes
    /// its watch there instead of listing them again. None: list first.
    pub pods_version: Option<String>,
    /// The planned pods as last seen, by UID (what a resumed watch starts from).
    pub pod_snapshot: BTreeMap<String, k8s_openapi::api::core::v1::Pod>,
    /// Per planned UID, how its removal went.
    pub removals: BTreeMap<String, Removal>,
    /// Planned UIDs confirmed gone from the node.
    pub gone: BTreeSet<String>,
    /// Whether node-drain cordoned the node (so a restore uncordons it).
    pub cordoned_by_us: Option<bool>,
    /// Why the drain must stop (interrupt, cancel, lost ownership), if it must.
    pub stop: Option<StopReason>,
    /// A step kept failing past its restarts: the machine restores the node.
    pub failure: Option<String>,
    /// The NodeClaim named by the Node's owner reference, read at the claim.
    pub nodeclaim: Option<String>,
    /// The Node disappeared (deleted by someone else, or by the retirement).
    pub node_gone: bool,
    /// Retirement done (the NodeClaim or Node delete was accepted).
    pub retired: Option<String>,
    /// Retirement could not be done as asked; the reason, shown as a warning.
    pub retire_note: Option<String>,
    /// Node ownership (not leadership, see `k8s::fence`): until when the last
    /// successful claim or heartbeat lets this run mutate the node without
    /// confirming its record again.
    pub ownership_confirmed_until: Option<Instant>,
    /// The Node as the plan read it, used once by the claim instead of a GET.
    pub seen: Option<Box<k8s_openapi::api::core::v1::Node>>,
    /// The node's Ready condition, as last read.
    pub node_ready: bool,
    pub restarts: u32,
    /// Test-only fault hook: faults that have fired.
    pub faults_fired: BTreeSet<&'static str>,
    /// PDBs that refused evictions, with how often (named once in logs).
    pub pdb_refusals: BTreeMap<String, u32>,
    pub outcome: Option<DrainOutcome>,
}

impl NodeProgress {
    pub fn new(run_id: String, deadline: Instant) -> Self {
        Self {
            run_id,
            phase: None,
            deadline,
            force_deadline: None,
            force_window: None,
            planned: None,
            pods_version: None,
            pod_snapshot: BTreeMap::new(),
            removals: BTreeMap::new(),
            gone: BTreeSet::new(),
            cordoned_by_us: None,
            stop: None,
            failure: None,
            nodeclaim: None,
            node_gone: false,
            retired: None,
            retire_note: None,
            ownership_confirmed_until: None,
            seen: None,
            node_ready: true,
            restarts: 0,
            faults_fired: BTreeSet::new(),
            pdb_refusals: BTreeMap::new(),
            outcome: None,
        }
    }

    /// Pods evicted and pods force-deleted so far, for summaries and bars.
    pub fn counts(&self) -> (usize, usize) {
        let mut evicted = 0;
        let mut forced = 0;
        for planned in self.planned.iter().flatten() {
            match self.removals.get(&planned.uid) {
                Some(Removal::Removed { forced: true }) => forced += 1,
                Some(Removal::Removed { forced: false }) => match planned.action {
                    PodAction::ForceDelete(_) => forced += 1,
                    PodAction::DeleteFinished => {}
                    _ => evicted += 1,
                },
                _ => {}
            }
        }
        (evicted, forced)
    }

    /// Planned pods with a removal recorded as done, and how many are planned.
    pub fn removed_of_planned(&self) -> (usize, usize) {
        let planned = self.planned.as_ref().map(Vec::len).unwrap_or(0);
        let removed = self
            .removals
            .values()
            .filter(|r| matches!(r, Removal::Removed { .. }))
            .count();
        (removed, planned)
    }

    /// A short name of where the drain is, for bars and status.
    pub fn step_name(&self) -> &'static str {
        match (&self.outcome, self.phase) {
            (Some(o), _) if o.drained() => "drained",
            (Some(_), _) => "not drained",
            (None, None) => "claiming",
            (None, Some(Phase::Cordoned)) if self.planned.is_none() => "cordoned",
            (None, Some(Phase::Cordoned)) if self.force_deadline.is_some() => "forcing",
            (None, Some(Phase::Cordoned)) => "evicting",
            (None, Some(Phase::Drained)) => "retiring",
            (None, Some(Phase::Restored)) => "restored",
        }
    }
}

/// Drain progress of every node of this process, keyed by node name.
pub type Progress = Arc<DashMap<String, NodeProgress>>;
