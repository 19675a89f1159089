//! PlannerActor: turns the allocate rates and the NodePool's state into one
//! wave's plan. It reads the NodePool, its nodes and the pods of the nodes the
//! wave may take; the decisions are the pure functions of `crate::plan` and
//! `crate::pods`.

mod actor;
mod handlers;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::Client;
use tracing::info;

use crate::error::{Error, Result};
use crate::karpenter::{NodePool, NODEPOOL_LABEL};
use crate::messages::PlanWave;
use crate::plan::budget::allowed_disruptions;
use crate::plan::candidates::{
    self, disrupting_count, node_skip_reason, order_oldest_first, NodeFacts,
};
use crate::plan::wave::{size_wave, WaveLimits, WaveSize};
use crate::plan::{PlannedNode, PlannedPod, WavePlan};
use crate::pods::{classify, pod_ref, PodAction, DO_NOT_DISRUPT};

pub struct PlannerActor {
    /// The process's one API client.
    client: Client,
}

impl PlannerActor {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// What the planner needs to know of a Node.
pub fn node_facts(node: &Node) -> NodeFacts {
    let meta = &node.metadata;
    let labels = meta.labels.as_ref();
    let control_plane_label = labels.is_some_and(|l| {
        l.contains_key("node-role.kubernetes.io/control-plane")
            || l.contains_key("node-role.kubernetes.io/master")
    });
    let control_plane_taint = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.key == "node-role.kubernetes.io/control-plane")
        });
    NodeFacts {
        name: meta.name.clone().unwrap_or_default(),
        created: meta
            .creation_timestamp
            .as_ref()
            .map(crate::time::to_utc)
            .unwrap_or_else(Utc::now),
        deleting: meta.deletion_timestamp.is_some(),
        ready: node_ready(node),
        do_not_disrupt: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(DO_NOT_DISRUPT))
            .is_some_and(|v| v == "true"),
        control_plane: control_plane_label || control_plane_taint,
        being_drained: crate::node_state::drain_in_progress(meta.annotations.as_ref()),
    }
}

pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pods bound to a node (one LIST with a field selector, no cluster-wide
/// cache). Used by the planner and by each node's drain, which maps the error.
pub async fn node_pods(client: &Client, node: &str) -> kube::Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::all(client.clone());
    let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
    Ok(pods.list(&params).await?.items)
}

fn plan_pods(pods: &[Pod], node_ready: bool, now: DateTime<Utc>) -> Vec<PlannedPod> {
    pods.iter()
        .map(|pod| PlannedPod {
            pod: pod_ref(pod),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            action: classify(pod, node_ready, now),
        })
        .collect()
}

fn blockers(pods: &[PlannedPod]) -> Vec<String> {
    pods.iter()
        .filter_map(|p| match &p.action {
            PodAction::Block(reason) => Some(format!("{} ({reason})", p.pod)),
            _ => None,
        })
        .collect()
}

/// Plans one wave of `msg.nodepool` at `now`.
pub async fn plan(client: &Client, msg: PlanWave, now: DateTime<Utc>) -> Result<WavePlan> {
    let nodepools: Api<NodePool> = Api::all(client.clone());
    let nodepool = nodepools
        .get_opt(&msg.nodepool)
        .await
        .map_err(|e| Error::kube(format!("get NodePool {}", msg.nodepool), e))?
        .ok_or_else(|| Error::NodePoolNotFound(msg.nodepool.clone()))?;
    let nodes: Api<Node> = Api::all(client.clone());
    let selector = format!("{NODEPOOL_LABEL}={}", msg.nodepool);
    let listed = nodes
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Error::kube(format!("list nodes of NodePool {}", msg.nodepool), e))?
        .items;
    let ready_by_node: HashMap<String, bool> = listed
        .iter()
        .map(|n| (n.metadata.name.clone().unwrap_or_default(), node_ready(n)))
        .collect();
    let mut facts: Vec<NodeFacts> = listed.iter().map(node_facts).collect();
    info!(lenNodes = facts.len(), "현재 노드 개수");

    let wave = if msg.nodes.is_empty() {
        let rates = msg
            .rates
            .as_ref()
            .ok_or_else(|| Error::Internal("a planned wave needs allocate rates".into()))?;
        let allowed = allowed_disruptions(
            &nodepool.budgets(),
            facts.len(),
            disrupting_count(&facts),
            now,
        )
        .map_err(|source| Error::Budget {
            nodepool: msg.nodepool.clone(),
            source,
        })?;
        let limits = WaveLimits {
            max_nodes: msg.max_nodes,
            budget_allowed: allowed.allowed.map(|a| (a, allowed.detail.clone())),
            already_draining: facts.iter().filter(|n| n.being_drained).count(),
        };
        let wave = size_wave(
            facts.len(),
            msg.target_allocate_rate,
            rates.max_allocate_rate(),
            &limits,
        );
        for cap in &wave.limited_by {
            info!(
                cap = cap.to_string().as_str(),
                waveSize = wave.wave_size,
                "wave capped"
            );
        }
        wave
    } else {
        for name in &msg.nodes {
            if !facts.iter().any(|n| &n.name == name) {
                return Err(Error::Node {
                    node: name.clone(),
                    reason: format!(
                        "is not a node of NodePool {:?} (label {selector})",
                        msg.nodepool
                    ),
                });
            }
        }
        facts.retain(|n| msg.nodes.contains(&n.name));
        WaveSize {
            len_nodes: facts.len(),
            target_allocate_rate: msg.target_allocate_rate,
            max_allocate_rate: msg
                .rates
                .as_ref()
                .map(|r| r.max_allocate_rate())
                .unwrap_or(0),
            drain_rate: 0.0,
            drain_node_count: facts.len(),
            wave_size: facts.len(),
            limited_by: vec![],
        }
    };

    // Blocking pods keep a node out of a planned wave (the next oldest comes in).
    // Nodes the operator named stay in it, so their drain fails visibly (exit 1,
    // a DrainBlocked Event) unless --force, which evicts the blockers.
    let honour_blockers = msg.nodes.is_empty() && !msg.force;
    // List pods only of the nodes the wave may take, oldest first, until it is full.
    let mut ordered = facts.clone();
    order_oldest_first(&mut ordered);
    let mut pods_by_node: HashMap<String, Vec<PlannedPod>> = HashMap::new();
    let mut unblocked = 0;
    for node in &ordered {
        if unblocked >= wave.wave_size {
            break;
        }
        if node_skip_reason(node).is_some() {
            continue;
        }
        let pods = node_pods(client, &node.name)
            .await
            .map_err(|e| Error::kube(format!("list pods of node {}", node.name), e))?;
        let planned = plan_pods(
            &pods,
            ready_by_node.get(&node.name).copied().unwrap_or(false),
            now,
        );
        if !honour_blockers || blockers(&planned).is_empty() {
            unblocked += 1;
        }
        pods_by_node.insert(node.name.clone(), planned);
    }
    let selected = candidates::select(&facts, wave.wave_size, |n| {
        if honour_blockers {
            pods_by_node
                .get(&n.name)
                .map(|p| blockers(p))
                .unwrap_or_default()
        } else {
            vec![]
        }
    });
    let nodes = selected
        .into_iter()
        .map(|candidate| {
            let pods = if candidate.chosen {
                pods_by_node.remove(&candidate.node).unwrap_or_default()
            } else {
                vec![]
            };
            PlannedNode { candidate, pods }
        })
        .collect();
    Ok(WavePlan {
        nodepool: msg.nodepool,
        rates: msg.rates,
        wave,
        nodes,
    })
}
