//! What a run tells people: the log line of each node's outcome, and the
//! Slack notices of a node and of the whole run.

use tracing::{info, warn};

use crate::drain::DrainOutcome;
use crate::messages::{NodeDrainFinished, RunReport};
use crate::slack::Notice;

pub(super) fn log_outcome(done: &NodeDrainFinished) {
    match &done.outcome {
        DrainOutcome::Drained { retired, .. } => info!(
            node = done.node.as_str(),
            retired = retired.as_str(),
            podsEvicted = done.pods_evicted,
            podsForceDeleted = done.pods_force_deleted,
            "node drained"
        ),
        DrainOutcome::RetiredElsewhere => info!(
            node = done.node.as_str(),
            "node deleted by someone else while it was drained (retired elsewhere)"
        ),
        DrainOutcome::Failed { reason, blockers } => warn!(
            node = done.node.as_str(),
            reason = reason.as_str(),
            blockers = blockers.join(", ").as_str(),
            "node not drained"
        ),
    }
}

/// The Slack notice for one node's outcome.
pub(super) fn node_notice(cluster: &str, done: &NodeDrainFinished) -> Notice {
    match &done.outcome {
        DrainOutcome::Drained { retired, .. } => Notice::NodeDrained {
            cluster: cluster.to_string(),
            node: done.node.clone(),
            pods_evicted: done.pods_evicted,
            pods_force_deleted: done.pods_force_deleted,
            retired: retired.clone(),
        },
        DrainOutcome::RetiredElsewhere => Notice::NodeDrained {
            cluster: cluster.to_string(),
            node: done.node.clone(),
            pods_evicted: done.pods_evicted,
            pods_force_deleted: done.pods_force_deleted,
            retired: "deleted by someone else while draining".into(),
        },
        DrainOutcome::Failed { reason, blockers } => Notice::NodeFailed {
            cluster: cluster.to_string(),
            node: done.node.clone(),
            reason: reason.clone(),
            blockers: blockers.clone(),
        },
    }
}

pub(super) fn run_finished_notice(cluster: &str, report: &RunReport) -> Notice {
    let nodes_where = |drained: bool| -> Vec<String> {
        report
            .nodes
            .iter()
            .filter(|r| r.outcome.drained() == drained)
            .map(|r| r.node.clone())
            .collect()
    };
    Notice::RunFinished {
        cluster: cluster.to_string(),
        nodepool: report.nodepool.clone(),
        run_id: report.run_id.clone(),
        duration: report.elapsed,
        pods_evicted: report.nodes.iter().map(|r| r.pods_evicted).sum(),
        pods_force_deleted: report.nodes.iter().map(|r| r.pods_force_deleted).sum(),
        retired: nodes_where(true),
        failed: nodes_where(false),
    }
}
