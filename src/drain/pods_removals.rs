//! What a node's pods become once classified: planned removals (skipped pods
//! included, so a plan can show them), the removal step each belongs to, and
//! the blockers among them — as the plan, the drain and admission all name them.

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

use super::{classify, EvictionTier, NodeContext, PodAction, PodRef};

/// One pod of a node and what the drain does with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedRemoval {
    pub pod: PodRef,
    pub uid: String,
    #[serde(flatten)]
    pub action: PodAction,
    /// The pod's terminationGracePeriodSeconds (default 30): how long a forced
    /// deletion may take.
    #[serde(skip)]
    pub grace_seconds: i64,
}

/// Which removal step a planned pod belongs to, in order; None: not removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// Problem and finished pods: deleted first, they hold nothing up.
    Cleanup,
    Stateless,
    Stateful,
    Critical,
}

impl From<EvictionTier> for Tier {
    fn from(t: EvictionTier) -> Self {
        match t {
            EvictionTier::Stateless => Tier::Stateless,
            EvictionTier::Stateful => Tier::Stateful,
            EvictionTier::Critical => Tier::Critical,
        }
    }
}

impl PlannedRemoval {
    /// The removal step of this pod; forced blockers keep their own tier.
    pub fn tier(&self, force: bool) -> Option<Tier> {
        match &self.action {
            PodAction::ForceDelete(_) | PodAction::DeleteFinished => Some(Tier::Cleanup),
            PodAction::Evict(t) => Some((*t).into()),
            PodAction::Block { tier, .. } if force => Some((*tier).into()),
            PodAction::WaitTerminating => Some(Tier::Cleanup),
            _ => None,
        }
    }

    /// Whether a request is sent for this pod (a terminating pod is only waited for).
    pub fn needs_request(&self) -> bool {
        !matches!(self.action, PodAction::WaitTerminating)
    }

    /// `namespace/name (why)` when this pod blocks its node.
    pub fn blocker(&self) -> Option<String> {
        match &self.action {
            PodAction::Block { reason, .. } => Some(format!("{} ({reason})", self.pod)),
            _ => None,
        }
    }
}

/// The one function that turns a node's pods into planned removals (skipped
/// pods included, so a plan can show them).
pub fn plan_removals(pods: &[Pod], node: NodeContext<'_>) -> Vec<PlannedRemoval> {
    pods.iter()
        .map(|pod| PlannedRemoval {
            pod: PodRef::of(pod),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            action: classify(pod, node),
            grace_seconds: pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30),
        })
        .collect()
}

/// The blockers among planned removals, as `namespace/name (why)`.
pub fn blockers(planned: &[PlannedRemoval]) -> Vec<String> {
    planned.iter().filter_map(PlannedRemoval::blocker).collect()
}

/// The pods that keep a node from being drained, read before it is claimed:
/// none when forced (the drain evicts them in their tier), else the blockers
/// among its planned removals, as the drain would find them.
pub fn blocking(pods: &[Pod], node: NodeContext<'_>, force: bool) -> Vec<PlannedRemoval> {
    if force {
        return vec![];
    }
    plan_removals(pods, node)
        .into_iter()
        .filter(|p| p.blocker().is_some())
        .collect()
}
