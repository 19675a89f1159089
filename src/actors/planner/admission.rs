//! Admission of the daemon's requests (alerts, the admin socket): the facts
//! are gathered with IO (`gather`), the decision is taken in the actor, one
//! request at a time (`decide`), so an alert storm never puts more of a
//! NodePool's nodes in flight than its budget and `max_nodes` allow. A request
//! without room waits in `pending` and is admitted again when a node finishes
//! or on the next tick.

use std::collections::HashSet;

use actix::{ActorFutureExt, Context, ResponseActFuture, WrapFuture};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::Client;
use tracing::{info, warn};

use super::{node_facts, PlannerActor};
use crate::alerts::rules::{node_of, Action, NodeIndex};
use crate::error::{Error, Result};
use crate::k8s::karpenter::{nodepool_of, NodePool};
use crate::messages::{Admit, Admitted, StartRun, Target};
use crate::plan::budget::allowed_disruptions;
use crate::plan::candidates::{budget_counts, node_skip_reason, SkipReason};

/// What admission needs to know, read from the API server.
pub struct Facts {
    pub node: String,
    pub nodepool: String,
    /// Nodes of the NodePool with a drain recorded in progress.
    pub draining: HashSet<String>,
    /// What the budget still allows (None: no budget limits now), and why.
    pub allowed: (Option<usize>, String),
    /// The node already counts as disrupted (NotReady, deleting): draining it
    /// takes no budget.
    pub already_disrupted: bool,
}

fn ignored(reason: impl Into<String>, metric: &str) -> Admitted {
    Admitted::Ignored {
        reason: reason.into(),
        metric: metric.into(),
    }
}

pub async fn gather(
    client: &Client,
    msg: &Admit,
    own_node: Option<&str>,
) -> Result<std::result::Result<Facts, Admitted>> {
    let all = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::kube("list nodes", e))?
        .items;
    let name = match &msg.target {
        Target::Node(name) => name.clone(),
        Target::Labels(labels) => {
            let index = NodeIndex::of(&all);
            match node_of(labels, &index) {
                Ok(name) => name,
                Err(e) => return Ok(Err(ignored(e.to_string(), e.metric_label()))),
            }
        }
    };
    let Some(node) = all
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(name.as_str()))
    else {
        return Ok(Err(ignored(
            format!("node {name:?} does not exist"),
            "unknown-node",
        )));
    };
    let pool = nodepool_of(node).map(str::to_string);
    let Some(nodepool) = pool.filter(|p| msg.nodepools.contains(p)) else {
        return Ok(Err(ignored(
            format!(
                "node {name} is not in a managed NodePool ({})",
                msg.nodepools.join(", ")
            ),
            "unmanaged-node",
        )));
    };
    let facts = node_facts(node, own_node);
    match node_skip_reason(&facts) {
        // Drained before, or cordoned by a person: an alert still means act.
        None | Some(SkipReason::AlreadyDrained) | Some(SkipReason::CordonedByOther) => {}
        Some(reason) => {
            return Ok(Err(ignored(
                format!("node {name}: {reason}"),
                "skipped-node",
            )))
        }
    }
    let pool_nodes: Vec<_> = all
        .iter()
        .filter(|n| nodepool_of(n) == Some(nodepool.as_str()))
        .map(|n| node_facts(n, own_node))
        .collect();
    // A cordon takes no budget (it evicts nothing): no NodePool needed.
    let allowed = if msg.action == Action::Cordon {
        (None, String::new())
    } else {
        let nodepool_obj = Api::<NodePool>::all(client.clone())
            .get_opt(&nodepool)
            .await
            .map_err(|e| Error::kube(format!("get NodePool {nodepool}"), e))?
            .ok_or_else(|| Error::NodePoolNotFound(nodepool.clone()))?;
        let (counted, disrupting) = budget_counts(&pool_nodes);
        let a = allowed_disruptions(
            &nodepool_obj.budgets(),
            counted,
            disrupting,
            chrono::Utc::now(),
        )
        .map_err(|source| Error::Budget {
            nodepool: nodepool.clone(),
            source,
        })?;
        (a.allowed, a.detail)
    };
    Ok(Ok(Facts {
        already_disrupted: facts.deleting || !facts.ready,
        draining: pool_nodes
            .iter()
            .filter(|n| n.being_drained)
            .map(|n| n.name.clone())
            .collect(),
        node: name,
        nodepool,
        allowed,
    }))
}

impl PlannerActor {
    pub(super) fn admit(&mut self, msg: Admit) -> ResponseActFuture<Self, Result<Admitted>> {
        if self.paused {
            return Box::pin(actix::fut::ready(Err(Error::Usage(
                "intake is paused (admin resume)".into(),
            ))));
        }
        let client = self.client.clone();
        let own_node = self.deps.identity.own_node.clone();
        let query = msg.clone();
        Box::pin(
            async move { gather(&client, &query, own_node.as_deref()).await }
                .into_actor(self)
                .map(move |facts, act, ctx| match facts? {
                    Ok(facts) => Ok(act.decide(msg, facts, ctx)),
                    Err(ignored) => Ok(ignored),
                }),
        )
    }

    fn decide(&mut self, msg: Admit, facts: Facts, ctx: &mut Context<Self>) -> Admitted {
        let node = facts.node.clone();
        if let Some(run) = self.unfinished_run_of(&node) {
            return ignored(
                format!("node {node} is already being drained by run {run}"),
                "already-draining",
            );
        }
        if msg.action == Action::Cordon {
            self.cordon(node.clone(), msg.trigger.clone(), ctx);
            return Admitted::Cordoned { node };
        }
        let mut in_flight = facts.draining.clone();
        in_flight.extend(self.unfinished_nodes_of(&facts.nodepool));
        in_flight.remove(&node);
        let budget_room = match facts.allowed.0 {
            None => usize::MAX,
            Some(allowed) => {
                allowed.saturating_sub(facts.draining.len()) + usize::from(facts.already_disrupted)
            }
        };
        let cap_room = msg.max_nodes.saturating_sub(in_flight.len());
        if budget_room == 0 || cap_room == 0 {
            let reason = if cap_room == 0 {
                format!(
                    "{} node(s) of NodePool {} in flight (max {})",
                    in_flight.len(),
                    facts.nodepool,
                    msg.max_nodes
                )
            } else {
                format!("the NodePool's disruption budget: {}", facts.allowed.1)
            };
            if !self.pending.iter().any(|p| p.0 == node) {
                info!(
                    node = node.as_str(),
                    reason = reason.as_str(),
                    "queued until there is room"
                );
                self.pending.push_back((node.clone(), msg));
            }
            return Admitted::Queued { node, reason };
        }
        self.pending.retain(|p| p.0 != node);
        match self.start_run(
            StartRun {
                nodepool: facts.nodepool,
                nodes: vec![node.clone()],
                settings: msg.settings,
                trigger: msg.trigger,
                plan: None,
            },
            ctx,
        ) {
            Ok(run_id) => Admitted::Started { run_id, node },
            Err(e) => ignored(e.to_string(), "refused"),
        }
    }

    /// Admits again every request that waited for room.
    pub(super) fn retry_pending(&mut self, ctx: &mut Context<Self>) {
        use actix::AsyncContext;
        let waiting: Vec<_> = self.pending.drain(..).collect();
        for (node, mut msg) in waiting {
            msg.target = Target::Node(node.clone());
            let fut = self.admit(msg).map(move |result, _act, _ctx| {
                if let Err(e) = result {
                    warn!(node = node.as_str(), error = %e, "a queued request could not be admitted");
                }
            });
            ctx.spawn(fut);
        }
    }

    fn cordon(&mut self, node: String, trigger: String, ctx: &mut Context<Self>) {
        use actix::AsyncContext;
        let client = self.client.clone();
        ctx.spawn(
            async move {
                if let Err(e) = crate::k8s::nodes::cordon_only(&client, &node, &trigger).await {
                    warn!(node = node.as_str(), error = %e, "could not cordon the node");
                }
            }
            .into_actor(self),
        );
    }
}
