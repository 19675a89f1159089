//! Planning one wave: reads the NodePool, its nodes and the pods of the nodes
//! the wave may take; the decisions are the pure functions of `crate::plan` and
//! `crate::drain::pods`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::Client;
use tracing::info;

use crate::drain::annotations::Record;
use crate::drain::pods::{
    blockers, plan_removals, NodeContext, PlannedRemoval, PodRef, DO_NOT_DISRUPT,
};
use crate::error::{Error, Result};

use crate::drain::Phase;
use crate::k8s::karpenter::DISRUPTED_TAINT;
use crate::k8s::karpenter::{NodePool, NODEPOOL_LABEL};
use crate::k8s::node_cache::{self, NodeCache};
use crate::k8s::nodes;
use crate::messages::PlanWave;
use crate::plan::budget::allowed_disruptions;
use crate::plan::candidates::{
    self, budget_counts, node_skip_reason, order_oldest_first, NodeFacts,
};
use crate::plan::wave::{size_wave, WaveLimits, WaveSize};
use crate::plan::{PlannedNode, WavePlan};

/// Pod LISTs of one plan in flight at once.
const PARALLEL_POD_LISTS: usize = 10;

/// What the planner needs to know of a Node. `own_node`: where node-drain runs.
pub fn node_facts(node: &Node, own_node: Option<&str>) -> NodeFacts {
    let meta = &node.metadata;
    let labels = meta.labels.as_ref();
    let control_plane_label = labels.is_some_and(|l| {
        l.contains_key("node-role.kubernetes.io/control-plane")
            || l.contains_key("node-role.kubernetes.io/master")
    });
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tainted = |key: &str| taints.iter().any(|t| t.key == key);
    let record = Record::read(meta.annotations.as_ref());
    let name = meta.name.clone().unwrap_or_default();
    NodeFacts {
        created: meta
            .creation_timestamp
            .as_ref()
            .map(crate::time::to_utc)
            .unwrap_or_else(Utc::now),
        deleting: meta.deletion_timestamp.is_some(),
        ready: nodes::ready(node),
        do_not_disrupt: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(DO_NOT_DISRUPT))
            .is_some_and(|v| v == "true"),
        control_plane: control_plane_label || tainted("node-role.kubernetes.io/control-plane"),
        being_drained: record.in_progress(),
        drained: record.phase == Some(Phase::Drained),
        cordoned_by_other: nodes::unschedulable(node)
            && record.phase.is_none_or(|p| p == Phase::Restored),
        disrupted: tainted(DISRUPTED_TAINT),
        hosts_self: own_node == Some(name.as_str()),
        initialized: labels
            .is_some_and(|l| l.get("karpenter.sh/initialized").map(String::as_str) == Some("true")),
        name,
    }
}

/// Plans one wave of `msg.nodepool` at `now`, its nodes LISTed.
pub async fn plan(
    client: &Client,
    msg: PlanWave,
    now: DateTime<Utc>,
    own_pod: Option<&PodRef>,
    own_node: Option<&str>,
) -> Result<WavePlan> {
    plan_cached(None, client, msg, now, own_pod, own_node).await
}

/// Plans one wave of `msg.nodepool` at `now`, its nodes from the daemon's
/// Node cache when it can answer (`node_cache`), else LISTed.
pub async fn plan_cached(
    cache: Option<&NodeCache>,
    client: &Client,
    msg: PlanWave,
    now: DateTime<Utc>,
    own_pod: Option<&PodRef>,
    own_node: Option<&str>,
) -> Result<WavePlan> {
    let started = std::time::Instant::now();
    let nodepools: Api<NodePool> = Api::all(client.clone());
    let pool = [msg.nodepool.clone()];
    // Both at once: one round trip, not two.
    let (nodepool, listed) = futures::join!(
        nodepools.get_opt(&msg.nodepool),
        node_cache::of_nodepools(cache, client, &pool)
    );
    let nodepool = nodepool
        .map_err(|e| Error::kube(format!("get NodePool {}", msg.nodepool), e))?
        .ok_or_else(|| Error::NodePoolNotFound(msg.nodepool.clone()))?;
    let selector = format!("{NODEPOOL_LABEL}={}", msg.nodepool);
    let listed = listed
        .map_err(|(_, e)| Error::kube(format!("list nodes of NodePool {}", msg.nodepool), e))?;
    let ready_by_node: HashMap<String, bool> = listed
        .iter()
        .map(|n| (n.metadata.name.clone().unwrap_or_default(), nodes::ready(n)))
        .collect();
    let mut facts: Vec<NodeFacts> = listed.iter().map(|n| node_facts(n, own_node)).collect();
    info!(lenNodes = facts.len(), "현재 노드 개수");

    let wave = if msg.nodes.is_empty() {
        let rates = msg
            .rates
            .as_ref()
            .ok_or_else(|| Error::Internal("a planned wave needs allocate rates".into()))?;
        let (budget_nodes, disrupting) = budget_counts(&facts);
        let allowed = allowed_disruptions(&nodepool.budgets(), budget_nodes, disrupting, now)
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
        // Nodes the operator named are drained even when cordoned (the usual
        // "cordon, then drain"), drained before, or held by another run: the
        // claim then refuses a node a live run holds, visibly (exit 1).
        for n in &mut facts {
            n.cordoned_by_other = false;
            n.drained = false;
            n.being_drained = false;
        }
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

    let metrics = crate::telemetry::metrics::get();
    metrics.wave_size(wave.wave_size);
    if let Some(rates) = &msg.rates {
        metrics.allocate_rate(
            &msg.nodepool,
            "memory",
            rates.memory.allocate_rate_percent as f64,
        );
        metrics.allocate_rate(&msg.nodepool, "cpu", rates.cpu.allocate_rate_percent as f64);
    }
    // Blocking pods keep a node out of a planned wave (the next oldest comes in).
    // Nodes the operator named stay in it, so their drain fails visibly (exit 1,
    // a DrainBlocked Event) unless --force, which evicts the blockers.
    let honour_blockers = msg.nodes.is_empty() && !msg.force;
    // The time to here (the NodePool, its nodes, the budget), logged apart
    // from the wave's pod LISTs that follow.
    let before_pods = started.elapsed();
    // List pods only of the nodes the wave may take, oldest first, until it is
    // full: the next nodes it still needs, their LISTs several at once (a wave
    // of 20 on a loaded API server took 20 round trips one after another).
    // A node kept out by its blockers makes the next batch take the next oldest.
    let mut ordered = facts.clone();
    order_oldest_first(&mut ordered);
    let mut eligible = ordered.iter().filter(|n| node_skip_reason(n).is_none());
    let mut pods_by_node: HashMap<String, Vec<PlannedRemoval>> = HashMap::new();
    let mut unblocked = 0;
    while unblocked < wave.wave_size {
        let batch: Vec<&NodeFacts> = eligible.by_ref().take(wave.wave_size - unblocked).collect();
        if batch.is_empty() {
            break;
        }
        if !msg.nodes.is_empty() && !msg.list_named_pods {
            // The drain lists them itself once the node is cordoned.
            unblocked += batch.len();
            continue;
        }
        let listed: Vec<_> = futures::stream::iter(batch.into_iter().map(|node| async move {
            (node, crate::k8s::pods::of_node(client, &node.name).await)
        }))
        .buffered(PARALLEL_POD_LISTS)
        .collect()
        .await;
        for (node, pods) in listed {
            let pods =
                pods.map_err(|e| Error::kube(format!("list pods of node {}", node.name), e))?;
            let context = NodeContext {
                ready: ready_by_node.get(&node.name).copied().unwrap_or(false),
                now,
                own_pod,
            };
            let planned = plan_removals(&pods, context);
            if !honour_blockers || blockers(&planned).is_empty() {
                unblocked += 1;
            }
            pods_by_node.insert(node.name.clone(), planned);
        }
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
    info!(
        nodepool = msg.nodepool.as_str(),
        lenNodes = listed.len(),
        waveSize = wave.wave_size,
        millis = started.elapsed().as_millis() as u64,
        beforePodsMillis = before_pods.as_millis() as u64,
        "plan computed"
    );
    let seen = listed
        .into_iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, n)))
        .collect();
    Ok(WavePlan {
        nodepool: msg.nodepool,
        rates: msg.rates,
        wave,
        nodes,
        seen,
    })
}
