//! Which nodes the wave takes: the NodePool's nodes oldest first (name breaks
//! ties), skipping those that must not be touched, each skip with its reason.
//! A skipped node lets the next oldest in. Pure: `NodeFacts` in, a `Selection` out.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the planner knows about one node of the NodePool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    pub name: String,
    pub created: DateTime<Utc>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// The Ready condition is True.
    pub ready: bool,
    /// `karpenter.sh/do-not-disrupt: "true"` on the node.
    pub do_not_disrupt: bool,
    /// Carries a control-plane role label or taint.
    pub control_plane: bool,
    /// node-drain's own annotations say a drain of it is under way.
    pub being_drained: bool,
    /// node-drain drained it and it was not retired (`--retire none`, no NodeClaim).
    pub drained: bool,
    /// Unschedulable, and not by a drain node-drain records.
    pub cordoned_by_other: bool,
    /// Karpenter is disrupting it (`karpenter.sh/disrupted` taint).
    pub disrupted: bool,
    /// node-drain itself runs on it: drained last in its wave.
    pub hosts_self: bool,
    /// Karpenter initialized it (`karpenter.sh/initialized=true`): only such
    /// nodes count towards a budget's node total, as Karpenter counts.
    pub initialized: bool,
}

/// Why a node is not in the wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "skip", rename_all = "kebab-case")]
pub enum SkipReason {
    Deleting,
    DoNotDisrupt,
    ControlPlane,
    AlreadyDraining,
    AlreadyDrained,
    CordonedByOther,
    Disrupted,
    /// Holds pods that block a drain (named, with why).
    BlockingPods {
        pods: Vec<String>,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Deleting => write!(f, "node is being deleted"),
            SkipReason::DoNotDisrupt => {
                write!(f, "node is annotated karpenter.sh/do-not-disrupt=true")
            }
            SkipReason::ControlPlane => write!(f, "control-plane node"),
            SkipReason::AlreadyDraining => write!(f, "node-drain is already draining it"),
            SkipReason::AlreadyDrained => {
                write!(
                    f,
                    "node-drain already drained it (not retired); it counts against the budget"
                )
            }
            SkipReason::CordonedByOther => write!(f, "cordoned by someone else"),
            SkipReason::Disrupted => write!(f, "Karpenter is disrupting it"),
            SkipReason::BlockingPods { pods } => {
                write!(f, "holds blocking pods: {}", pods.join(", "))
            }
        }
    }
}

/// Oldest first; the name breaks ties so the order is stable.
pub fn order_oldest_first(nodes: &mut [NodeFacts]) {
    nodes.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
}

/// The reason a node cannot be in any wave, from the node alone (pods are checked later).
pub fn node_skip_reason(node: &NodeFacts) -> Option<SkipReason> {
    if node.deleting {
        Some(SkipReason::Deleting)
    } else if node.disrupted {
        Some(SkipReason::Disrupted)
    } else if node.control_plane {
        Some(SkipReason::ControlPlane)
    } else if node.do_not_disrupt {
        Some(SkipReason::DoNotDisrupt)
    } else if node.being_drained {
        Some(SkipReason::AlreadyDraining)
    } else if node.drained {
        Some(SkipReason::AlreadyDrained)
    } else if node.cordoned_by_other {
        Some(SkipReason::CordonedByOther)
    } else {
        None
    }
}

/// What a budget is applied to, as Karpenter counts it: the initialized nodes,
/// and those of them already disrupted — NotReady, deleting, being disrupted by
/// Karpenter, or drained by node-drain and not retired.
pub fn budget_counts(nodes: &[NodeFacts]) -> (usize, usize) {
    let counted: Vec<&NodeFacts> = nodes.iter().filter(|n| n.initialized).collect();
    let disrupting = counted
        .iter()
        .filter(|n| n.deleting || !n.ready || n.disrupted || n.drained)
        .count();
    (counted.len(), disrupting)
}

/// One node in the plan, chosen or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub node: String,
    pub created: DateTime<Utc>,
    pub chosen: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkipReason>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hosts_self: bool,
}

/// Walks the nodes oldest first and chooses up to `wave_size` of them.
/// `blockers(node)` is asked only for nodes that would otherwise be chosen, so a
/// caller that lists pods per node lists no more nodes than it needs.
pub fn select<F>(nodes: &[NodeFacts], wave_size: usize, mut blockers: F) -> Vec<Candidate>
where
    F: FnMut(&NodeFacts) -> Vec<String>,
{
    let mut ordered = nodes.to_vec();
    order_oldest_first(&mut ordered);
    let mut chosen = 0;
    let mut candidates: Vec<Candidate> = ordered
        .into_iter()
        .map(|node| {
            let mut skipped = node_skip_reason(&node);
            let mut pick = false;
            if skipped.is_none() && chosen < wave_size {
                let pods = blockers(&node);
                if pods.is_empty() {
                    pick = true;
                    chosen += 1;
                } else {
                    skipped = Some(SkipReason::BlockingPods { pods });
                }
            }
            Candidate {
                node: node.name,
                created: node.created,
                chosen: pick,
                skipped,
                hosts_self: node.hosts_self,
            }
        })
        .collect();
    // The node node-drain runs on goes last among the chosen: draining it may
    // move node-drain itself, so every other node is started first.
    candidates.sort_by_key(|c| c.chosen && c.hosts_self);
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, minute: u32) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            created: format!("2026-11-21T10:{minute:02}:00Z").parse().unwrap(),
            deleting: false,
            ready: true,
            do_not_disrupt: false,
            control_plane: false,
            being_drained: false,
            drained: false,
            cordoned_by_other: false,
            disrupted: false,
            hosts_self: false,
            initialized: true,
        }
    }

    fn chosen(c: &[Candidate]) -> Vec<&str> {
        c.iter()
            .filter(|c| c.chosen)
            .map(|c| c.node.as_str())
            .collect()
    }

    #[test]
    fn oldest_first_with_name_breaking_ties() {
        let nodes = vec![node("c", 5), node("b", 1), node("a", 1), node("d", 9)];
        let plan = select(&nodes, 2, |_| vec![]);
        assert_eq!(chosen(&plan), vec!["a", "b"]);
        assert_eq!(
            plan.iter().map(|c| c.node.as_str()).collect::<Vec<_>>(),
            vec!["a", "b", "c", "d"]
        );
    }

    #[test]
    fn skipped_nodes_let_the_next_oldest_in() {
        let mut nodes = vec![
            node("n1", 1),
            node("n2", 2),
            node("n3", 3),
            node("n4", 4),
            node("n5", 5),
            node("n6", 6),
        ];
        nodes[0].do_not_disrupt = true;
        nodes[1].deleting = true;
        nodes[3].control_plane = true;
        nodes[4].being_drained = true;
        let plan = select(&nodes, 2, |n| {
            if n.name == "n3" {
                vec!["ns/bare (no controller)".into()]
            } else {
                vec![]
            }
        });
        assert_eq!(chosen(&plan), vec!["n6"]);
        let reasons: Vec<_> = plan.iter().map(|c| c.skipped.clone()).collect();
        assert_eq!(reasons[0], Some(SkipReason::DoNotDisrupt));
        assert_eq!(reasons[1], Some(SkipReason::Deleting));
        assert_eq!(
            reasons[2],
            Some(SkipReason::BlockingPods {
                pods: vec!["ns/bare (no controller)".into()]
            })
        );
        assert_eq!(reasons[3], Some(SkipReason::ControlPlane));
        assert_eq!(reasons[4], Some(SkipReason::AlreadyDraining));
        assert_eq!(reasons[5], None);
    }

    #[test]
    fn blockers_are_asked_only_while_the_wave_has_room() {
        let nodes: Vec<_> = (0..8).map(|i| node(&format!("n{i}"), i)).collect();
        let mut asked = Vec::new();
        let plan = select(&nodes, 2, |n| {
            asked.push(n.name.clone());
            vec![]
        });
        assert_eq!(chosen(&plan), vec!["n0", "n1"]);
        assert_eq!(asked, vec!["n0", "n1"]);
        assert!(
            select(&nodes, 0, |_| panic!("no pods needed for an empty wave"))
                .iter()
                .all(|c| !c.chosen)
        );
    }

    #[test]
    fn budgets_count_initialized_nodes_and_the_disrupted_among_them() {
        let mut nodes: Vec<_> = (0..7).map(|i| node(&format!("n{i}"), i)).collect();
        nodes[0].deleting = true;
        nodes[1].ready = false;
        nodes[2].disrupted = true;
        nodes[3].drained = true;
        nodes[5].initialized = false;
        nodes[6].initialized = false;
        nodes[6].ready = false;
        assert_eq!(budget_counts(&nodes), (5, 4));
    }

    #[test]
    fn drained_cordoned_and_disrupted_nodes_are_not_candidates() {
        let mut nodes: Vec<_> = (0..5).map(|i| node(&format!("n{i}"), i)).collect();
        nodes[0].drained = true;
        nodes[1].cordoned_by_other = true;
        nodes[2].disrupted = true;
        let plan = select(&nodes, 2, |_| vec![]);
        assert_eq!(chosen(&plan), vec!["n3", "n4"]);
        assert_eq!(plan[0].skipped, Some(SkipReason::AlreadyDrained));
        assert_eq!(plan[1].skipped, Some(SkipReason::CordonedByOther));
        assert_eq!(plan[2].skipped, Some(SkipReason::Disrupted));
    }

    #[test]
    fn the_node_hosting_node_drain_goes_last_in_its_wave() {
        let mut nodes: Vec<_> = (0..4).map(|i| node(&format!("n{i}"), i)).collect();
        nodes[0].hosts_self = true;
        let plan = select(&nodes, 3, |_| vec![]);
        assert_eq!(chosen(&plan), vec!["n1", "n2", "n0"]);
    }
}
