//! A node an alert (or `admin drain-node`) asks to drain that holds a blocking
//! pod (`karpenter.sh/do-not-disrupt`, a bare pod) is not claimed: its pods are
//! read before the claim and classified as the drain would
//! (`drain::pods::blocking`), so a blocked node is answered `blocked` with no
//! write — no cordon to undo. Karpenter's drift and consolidation check for
//! do-not-disrupt pods before they taint a node, and a planned wave keeps
//! blocked nodes out, for the same reason.
//!
//! The block is said once per set of blockers (a warning, Slack, a
//! `DrainBlocked` Event, `node_drain_blocked_pods_total`); the alerts that find
//! the node blocked by the same pods again are repeats
//! (`node_drain_alerts_total{outcome="duplicate",reason="blocked"}`). The alert
//! is not settled: once the blocker is gone, its next send drains the node.

use std::time::{Duration, Instant};

use actix::{AsyncContext, Context, WrapFuture};
use kube::Client;
use tracing::{info, warn};

use super::admission::Facts;
use super::PlannerActor;
use crate::alerts::rules::Action;
use crate::drain::pods::{blocking, NodeContext, PlannedRemoval, PodAction, PodRef};
use crate::error::{Error, Result};
use crate::messages::{Admit, Admitted, Notify};
use crate::slack::Notice;

/// A node still blocked by the same pods is said again after this long (the
/// alerts' dedupe window).
pub(super) const SAY_AGAIN_AFTER: Duration = Duration::from_secs(12 * 3600);
/// Blocked nodes remembered at most.
pub(super) const REMEMBERED: usize = 10_000;

/// What admission needs (`admission::gather`), with the node's blockers read
/// for a drain-node request that is not forced (a cordon evicts nothing; a
/// forced drain evicts the blockers).
pub(super) async fn facts(
    cache: Option<&crate::k8s::node_cache::NodeCache>,
    client: &Client,
    msg: &Admit,
    own_node: Option<String>,
    own_pod: Option<PodRef>,
) -> Result<std::result::Result<Facts, Admitted>> {
    let facts = super::admission::gather(cache, client, msg, own_node.as_deref()).await?;
    let Ok(mut facts) = facts else {
        return Ok(facts);
    };
    if msg.action != Action::DrainNode || msg.settings.force {
        return Ok(Ok(facts));
    }
    let pods = crate::k8s::pods::of_node(client, &facts.node)
        .await
        .map_err(|e| Error::kube(format!("list pods of node {}", facts.node), e))?;
    let context = NodeContext {
        // Whether a pod blocks does not depend on the node's readiness (only
        // how a stuck or failing pod is removed does).
        ready: !facts.already_disrupted,
        now: chrono::Utc::now(),
        own_pod: own_pod.as_ref(),
    };
    facts.blockers = blocking(&pods, context, false);
    Ok(Ok(facts))
}

impl PlannerActor {
    /// None when the node holds no blocker (its next block is news again);
    /// else the answer, the block said once per set of blockers.
    pub(super) fn blocked(
        &mut self,
        facts: &Facts,
        trigger: &str,
        ctx: &mut Context<Self>,
    ) -> Option<Admitted> {
        let node = facts.node.clone();
        if facts.blockers.is_empty() {
            self.blocked_nodes.forget(&node);
            return None;
        }
        let blockers: Vec<String> = facts
            .blockers
            .iter()
            .filter_map(PlannedRemoval::blocker)
            .collect();
        let repeat = !self.blocked_nodes.first(&node, &blockers, Instant::now());
        let listed = blockers.join(", ");
        if repeat {
            info!(
                node = node.as_str(),
                trigger,
                blockers = listed.as_str(),
                "node still blocked by the same pods (said already)"
            );
        } else {
            warn!(
                node = node.as_str(),
                trigger,
                blockers = listed.as_str(),
                "node not drained: blocking pods (not cordoned)"
            );
            self.say_blocked(&node, trigger, &blockers, ctx);
            let metrics = crate::telemetry::metrics::get();
            for p in &facts.blockers {
                if let PodAction::Block { reason, .. } = &p.action {
                    metrics.blocked_pod(reason.metric_label());
                }
            }
        }
        Some(Admitted::Blocked {
            node,
            blockers,
            repeat,
        })
    }

    /// Slack and a `DrainBlocked` Event on the node, naming the blockers.
    fn say_blocked(
        &mut self,
        node: &str,
        trigger: &str,
        blockers: &[String],
        ctx: &mut Context<Self>,
    ) {
        self.deps.notifier.do_send(Notify(Notice::NodeBlocked {
            cluster: self.deps.cluster.clone(),
            node: node.to_string(),
            trigger: trigger.to_string(),
            blockers: blockers.to_vec(),
        }));
        let recorder = self.deps.recorder.clone();
        let reference = crate::k8s::events::node_ref(node, None);
        let note = format!(
            "not drained ({trigger}): blocked by pods that would not come back or ask not to be disrupted; not cordoned: {}",
            blockers.join(", ")
        );
        ctx.spawn(
            async move {
                crate::k8s::events::publish(&recorder, &reference, true, "DrainBlocked", note).await
            }
            .into_actor(self),
        );
    }
}
