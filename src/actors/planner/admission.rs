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
use crate::alerts::rules::{node_of, resolves_by_ip, Action, NodeIndex, Unresolved};
use crate::error::{Error, Result};
use crate::k8s::karpenter::{nodepool_of, NodePool};
use crate::k8s::node_cache::NodeCache;
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
    /// Its pods that block a drain, read before any claim (`blocked.rs`).
    pub blockers: Vec<crate::drain::pods::PlannedRemoval>,
}

fn ignored(reason: impl Into<String>, metric: &str) -> Admitted {
    Admitted::Ignored {
        reason: reason.into(),
        metric: metric.into(),
    }
}

/// The nodes of the managed NodePools only (from the daemon's Node cache,
/// else one LIST by label selector), never every Node of the cluster.
async fn managed_nodes(
    cache: Option<&NodeCache>,
    client: &Client,
    nodepools: &[String],
) -> Result<Vec<Node>> {
    crate::k8s::node_cache::of_nodepools(cache, client, nodepools)
        .await
        .map_err(|(what, e)| Error::kube(what, e))
}

/// A node named but not among the managed ones: outside them, or unknown
/// (one GET, only on this path).
async fn not_managed(client: &Client, name: &str, nodepools: &[String]) -> Result<Admitted> {
    let exists = Api::<Node>::all(client.clone())
        .get_opt(name)
        .await
        .map_err(|e| Error::kube(format!("get node {name}"), e))?
        .is_some();
    Ok(if exists {
        ignored(
            format!(
                "node {name} is not in a managed NodePool ({})",
                nodepools.join(", ")
            ),
            "unmanaged-node",
        )
    } else {
        ignored(format!("node {name:?} does not exist"), "unknown-node")
    })
}

/// The nodes an alert's labels are resolved against: the managed ones, or
/// every node (from the API server's cache, `resourceVersion=0`) when an IP
/// must be resolved — only for such alerts, once each (a waiting request is
/// retried by name).
async fn ip_index<'a>(
    client: &Client,
    labels: &std::collections::BTreeMap<String, String>,
    managed: &'a [Node],
) -> Result<std::borrow::Cow<'a, [Node]>> {
    if !resolves_by_ip(labels) {
        return Ok(std::borrow::Cow::Borrowed(managed));
    }
    let all = Api::<Node>::all(client.clone())
        .list(&ListParams::default().match_any())
        .await
        .map_err(|e| Error::kube("list nodes (to resolve an instance IP)", e))?
        .items;
    Ok(std::borrow::Cow::Owned(all))
}

pub async fn gather(
    cache: Option<&NodeCache>,
    client: &Client,
    msg: &Admit,
    own_node: Option<&str>,
) -> Result<std::result::Result<Facts, Admitted>> {
    let managed = managed_nodes(cache, client, &msg.nodepools).await?;
    let name = match &msg.target {
        Target::Node(name) => name.clone(),
        Target::Labels(labels) => match node_of(
            labels,
            &NodeIndex::of(&ip_index(client, labels, &managed).await?),
        ) {
            Ok(name) => name,
            // Not among the managed nodes: outside them, or unknown.
            Err(Unresolved::UnknownNode { label, value }) => {
                let name = match label {
                    "instance" => value
                        .rsplit_once(':')
                        .map_or(value.as_str(), |(host, _)| host),
                    _ => value.as_str(),
                };
                return not_managed(client, name, &msg.nodepools).await.map(Err);
            }
            Err(e) => return Ok(Err(ignored(e.to_string(), e.metric_label()))),
        },
    };
    let Some(node) = managed
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(name.as_str()))
    else {
        return not_managed(client, &name, &msg.nodepools).await.map(Err);
    };
    let Some(nodepool) = nodepool_of(node).map(str::to_string) else {
        return not_managed(client, &name, &msg.nodepools).await.map(Err);
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
    let pool_nodes: Vec<_> = managed
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
        blockers: vec![],
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
        let own_pod = self.deps.identity.own_pod.clone();
        let cache = self.node_cache.clone();
        let query = msg.clone();
        Box::pin(
            async move {
                super::blocked::facts(cache.as_deref(), &client, &query, own_node, own_pod).await
            }
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
        if let Some(blocked) = self.blocked(&facts, &msg.trigger, ctx) {
            return blocked;
        }
        // One set for the budget and the cap: the drains the API server shows
        // and this process's own runs that have not claimed their node yet.
        let mut in_flight = facts.draining.clone();
        in_flight.extend(self.unfinished_nodes_of(&facts.nodepool));
        in_flight.remove(&node);
        let budget_room = match facts.allowed.0 {
            None => usize::MAX,
            Some(allowed) => {
                allowed.saturating_sub(in_flight.len()) + usize::from(facts.already_disrupted)
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
            self.enqueue(node.clone(), msg, &reason, ctx);
            return Admitted::Queued { node, reason };
        }
        self.pending.retain(|p| p.0 != node);
        self.merged.remove(&node);
        match self.start_run(
            StartRun {
                nodepool: facts.nodepool,
                nodes: vec![node.clone()],
                settings: msg.settings,
                trigger: msg.trigger,
                plan: None,
                take_over: None,
            },
            ctx,
        ) {
            Ok(run_id) => Admitted::Started { run_id, node },
            Err(e) => {
                self.forget_queued(&node, ctx);
                ignored(e.to_string(), "refused")
            }
        }
    }

    /// Admits again the requests that waited for room, one at a time and in
    /// order: the next is tried only once the one before has started (so
    /// each decision sees the runs the earlier ones started); one still
    /// without room ends the round where it is.
    pub(super) fn retry_pending(&mut self, ctx: &mut Context<Self>) {
        use actix::AsyncContext;
        // Paused: the waiting requests wait on (admit would refuse them).
        if self.retrying || self.paused {
            return;
        }
        let Some((node, mut msg)) = self.pending.front().cloned() else {
            return;
        };
        self.retrying = true;
        msg.target = Target::Node(node.clone());
        let fut = self.admit(msg).map(move |result, act, ctx| {
            act.retrying = false;
            let next = match result {
                Ok(Admitted::Started { .. } | Admitted::Cordoned { .. }) => true,
                Ok(Admitted::Queued { .. }) => false,
                Ok(Admitted::Blocked { .. }) => {
                    act.drop_pending(&node, ctx);
                    true
                }
                Ok(Admitted::Ignored { reason, .. }) => {
                    info!(node = node.as_str(), reason = reason.as_str(), "a queued request is dropped");
                    act.drop_pending(&node, ctx);
                    true
                }
                // The API server did not answer (an outage, a restart): the
                // request waits on, in its place, for the next tick.
                Err(e @ Error::Kube { .. }) => {
                    warn!(node = node.as_str(), error = %e, "a queued request could not be admitted now; it waits");
                    false
                }
                Err(e) => {
                    warn!(node = node.as_str(), error = %e, "a queued request could not be admitted; dropped");
                    act.drop_pending(&node, ctx);
                    true
                }
            };
            if next {
                act.retry_pending(ctx);
            }
        });
        ctx.spawn(fut);
    }

    /// Queues `msg` for `node`, or merges it into the request already
    /// waiting for that node: the later request's alert is kept with it (freed
    /// with it if it never runs), and a forced request takes the place of one
    /// that is not (a blocker must not turn the forced alert away).
    fn enqueue(&mut self, node: String, msg: Admit, reason: &str, ctx: &mut Context<Self>) {
        let Some(waiting) = self.pending.iter_mut().find(|p| p.0 == node) else {
            info!(node = node.as_str(), reason, "queued until there is room");
            self.record_queued(&node, &msg, ctx);
            self.pending.push_back((node, msg));
            return;
        };
        let replaces = msg.settings.force && !waiting.1.settings.force;
        let kept = if replaces {
            info!(
                node = node.as_str(),
                trigger = msg.trigger.as_str(),
                "a forced request takes the place of the one waiting for the node"
            );
            std::mem::replace(&mut waiting.1, msg)
        } else {
            msg
        };
        if let Some(release) = kept.release.clone() {
            self.merged.entry(node.clone()).or_default().push(release);
        }
        if replaces {
            let waiting = self
                .pending
                .iter()
                .find(|p| p.0 == node)
                .map(|p| p.1.clone());
            // The record follows (a merge patch over the old one).
            self.records.remove(&node);
            if let Some(waiting) = waiting {
                self.record_queued(&node, &waiting, ctx);
            }
        }
    }

    /// A waiting request that will not run: its alert (and every alert merged
    /// into it) may be sent again, and its record goes.
    fn drop_pending(&mut self, node: &str, ctx: &mut Context<Self>) {
        self.forget_queued(node, ctx);
        for (_, msg) in self.pending.iter().filter(|p| p.0 == node) {
            if let Some(release) = &msg.release {
                release.forget();
            }
        }
        for release in self.merged.remove(node).unwrap_or_default() {
            release.forget();
        }
        self.pending.retain(|p| p.0 != node);
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
