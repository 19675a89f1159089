//! Capacity first, the decisions (sans-IO): where each placeholder of a wave
//! stands, and when one is created again. A reservation stalls whenever a
//! placeholder is in a state nothing else will get it out of:
//! - gone (preempted, deleted by someone, its node deleted and the pod
//!   collected): no pending pod is left for Karpenter to provision for;
//! - bound to a node that cannot take the wave's pods (NotReady, cordoned,
//!   being deleted, tainted by a disruption): the placeholder holds nothing
//!   useful, and being bound it is no pending pod either;
//! - unbound for a while: the scheduler parks an unschedulable pod (for up to
//!   5 minutes) even once Karpenter's node for it is Ready, and Karpenter
//!   provisions nothing for a pod that carries a nomination.
//!
//! A fresh pod is scheduled at once and, when nothing fits, is a pending pod
//! Karpenter provisions for: creating the placeholder again is the remedy in
//! every case. A real lack of capacity (a NodePool limit) keeps it unbound
//! whatever is done, and the bound turns it into the fallback.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::placeholder::PLACEHOLDER_INDEX_LABEL;

/// How long a placeholder may stay unbound, or on a node that cannot take
/// the wave, before it is created again (long enough for Karpenter to launch
/// and register a node on a busy cluster, short against the capacity timeout).
pub const RECREATE_AFTER: Duration = Duration::from_secs(10);

/// Node taints that say the node is going away or cannot run pods.
const UNUSABLE_TAINTS: [&str; 4] = [
    "karpenter.sh/disrupted",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unschedulable",
];

/// Where one placeholder (one index of the wave) stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// Bound to a Ready node that can take the wave's pods: capacity reserved.
    OnReadyNode,
    /// No live pod for this index.
    Missing,
    /// Not bound to a node; what the scheduler said, and a nomination if any.
    Unbound {
        scheduler: Option<String>,
        nominated: Option<String>,
    },
    /// Bound to a node that cannot take the wave's pods.
    OnUnusableNode { node: String, why: String },
}

impl Standing {
    /// What a user reads in the fallback's reason and the logs.
    pub fn describe(&self) -> String {
        match self {
            Standing::OnReadyNode => "on a Ready node".into(),
            Standing::Missing => "gone (deleted or preempted)".into(),
            Standing::Unbound {
                scheduler,
                nominated,
            } => {
                let mut text = "not scheduled".to_string();
                if let Some(n) = nominated {
                    text.push_str(&format!(", nominated to {n}"));
                }
                if let Some(s) = scheduler {
                    text.push_str(&format!(" (scheduler: {s})"));
                }
                text
            }
            Standing::OnUnusableNode { node, why } => format!("on node {node}, which is {why}"),
        }
    }
}

/// Why a node cannot hold a wave's replacement capacity, if it cannot: gone,
/// being deleted, NotReady, cordoned, or tainted as going away.
pub fn unusable(node: Option<&Node>) -> Option<String> {
    let Some(node) = node else {
        return Some("gone".into());
    };
    if node.metadata.deletion_timestamp.is_some() {
        return Some("being deleted".into());
    }
    if !crate::k8s::nodes::ready(node) {
        return Some("not Ready".into());
    }
    if crate::k8s::nodes::unschedulable(node) {
        return Some("cordoned".into());
    }
    let spec = node.spec.as_ref();
    let taint = spec
        .and_then(|s| s.taints.as_ref())
        .and_then(|t| t.iter().find(|t| UNUSABLE_TAINTS.contains(&t.key.as_str())));
    taint.map(|t| format!("tainted {}", t.key))
}

/// The live pod of each index `0..expected` (a pod being deleted, or one
/// that finished, is not live). When a placeholder was created again, the
/// newest live pod of its index counts.
pub fn live_by_index(listed: &[Pod], expected: usize) -> Vec<Option<&Pod>> {
    let mut by_index: Vec<Option<&Pod>> = vec![None; expected];
    for pod in listed {
        let index = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(PLACEHOLDER_INDEX_LABEL))
            .and_then(|i| i.parse::<usize>().ok());
        let Some(slot) = index.and_then(|i| by_index.get_mut(i)) else {
            continue;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some()
            || matches!(phase, Some("Failed" | "Succeeded"))
        {
            continue;
        }
        let newer = slot.is_none_or(|s| {
            pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
                >= s.metadata.creation_timestamp.as_ref().map(|t| t.0)
        });
        if newer {
            *slot = Some(pod);
        }
    }
    by_index
}

/// Where a placeholder stands, given the nodes (by name) it may be bound to.
pub fn standing(pod: Option<&Pod>, nodes: &BTreeMap<String, Node>) -> Standing {
    let Some(pod) = pod else {
        return Standing::Missing;
    };
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
        let status = pod.status.as_ref();
        return Standing::Unbound {
            scheduler: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
                .and_then(|c| c.message.clone()),
            nominated: status
                .and_then(|s| s.nominated_node_name.clone())
                .filter(|n| !n.is_empty()),
        };
    };
    match unusable(nodes.get(node)) {
        None => Standing::OnReadyNode,
        Some(why) => Standing::OnUnusableNode {
            node: node.to_string(),
            why,
        },
    }
}

/// Whether to create the placeholder again, given how long it has stood as
/// it does: a missing one at once; one unbound or on an unusable node after
/// `RECREATE_AFTER`; one on a Ready node never.
pub fn recreate(standing: &Standing, stuck_for: Duration) -> bool {
    match standing {
        Standing::OnReadyNode => false,
        Standing::Missing => true,
        Standing::Unbound { .. } | Standing::OnUnusableNode { .. } => stuck_for >= RECREATE_AFTER,
    }
}

#[cfg(test)]
#[path = "reservation_tests.rs"]
mod tests;
