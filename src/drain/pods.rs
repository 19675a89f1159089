//! Where a pod is classified: what draining its node does with it. `classify`
//! is one pure function over the Pod, what is known of its node, and the time;
//! `plan_removals` (`pods_removals.rs`) is the one place a node's pod list
//! becomes planned removals.
//!
//! Order of the rules (SPEC §3):
//! 1. skipped: mirror/static and DaemonSet pods, node-drain's own pod;
//! 2. finished pods (Succeeded/Failed) are deleted;
//! 3. pods already terminating are waited for, or force-deleted once stuck past
//!    their grace period + 60 s (never a stateful pod on a Ready node);
//! 4. blocking pods (do-not-disrupt, no controller) stop the node unless forced,
//!    whatever they tolerate: a bare pod tolerating every taint (`kubectl debug
//!    node/…`) would be lost with the node, and do-not-disrupt means do not;
//! 5. pods that tolerate the unschedulable taint are skipped (they would come
//!    straight back; they leave with the node);
//! 6. problem pods (Unknown, Pending on a NotReady node, a container waiting in
//!    CrashLoopBackOff, ImagePullBackOff, ErrImagePull, CreateContainerConfigError)
//!    are deleted with grace 0 — except a stateful pod on a Ready node, evicted;
//! 7. everything else is evicted, in tiers: stateless, stateful, critical.
//!
//! Stateful means has state: StatefulSet-owned, or mounting a PersistentVolumeClaim.

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
const MIRROR: &str = "kubernetes.io/config.mirror";
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
/// A terminating pod still present this long after its deletionTimestamp is stuck.
pub const STUCK_TERMINATING_AFTER: i64 = 60;
const PROBLEM_WAITING_REASONS: [&str; 4] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
];

/// A pod by namespace and name; shown as `namespace/name` everywhere.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl PodRef {
    pub fn of(pod: &Pod) -> Self {
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Serialize for PodRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Eviction tiers, drained in this order; each tier is gone before the next starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionTier {
    Stateless,
    Stateful,
    Critical,
}

/// Why a pod keeps its node from being drained (unless forced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "blocker", rename_all = "kebab-case")]
pub enum BlockReason {
    /// `karpenter.sh/do-not-disrupt: "true"`.
    DoNotDisrupt,
    /// A do-not-disrupt duration that has not elapsed yet.
    DoNotDisruptUntil { value: String, until: String },
    /// A do-not-disrupt value that cannot be read: fail closed.
    DoNotDisruptUnreadable { value: String, error: String },
    /// No controller: a bare pod would not come back.
    NoController,
}

impl BlockReason {
    /// The label of `node_drain_blocked_pods_total{reason}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            BlockReason::DoNotDisrupt => "do-not-disrupt",
            BlockReason::DoNotDisruptUntil { .. } => "do-not-disrupt-duration",
            BlockReason::DoNotDisruptUnreadable { .. } => "do-not-disrupt-unreadable",
            BlockReason::NoController => "no-controller",
        }
    }
}

impl std::fmt::Display for BlockReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockReason::DoNotDisrupt => write!(f, "{DO_NOT_DISRUPT}: \"true\""),
            BlockReason::DoNotDisruptUntil { value, until } => {
                write!(f, "{DO_NOT_DISRUPT}: {value:?} until {until}")
            }
            BlockReason::DoNotDisruptUnreadable { value, error } => write!(
                f,
                "{DO_NOT_DISRUPT}: {value:?} cannot be read ({error}); blocked to be safe"
            ),
            BlockReason::NoController => write!(f, "no controller: a bare pod would not come back"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "reason", rename_all = "kebab-case")]
pub enum PodAction {
    /// Left alone: it belongs to the node, or leaves with it.
    Skip(String),
    /// Already terminating within its grace period: only waited for.
    WaitTerminating,
    /// Succeeded or Failed: deleted with its own grace period.
    DeleteFinished,
    /// Keeps the node from being drained unless forced; forced, it is evicted in `tier`.
    Block {
        reason: BlockReason,
        tier: EvictionTier,
    },
    /// Deleted with grace period 0.
    ForceDelete(String),
    /// Evicted through the Eviction API (PDBs apply).
    Evict(EvictionTier),
}

/// What classification knows beyond the pod itself.
#[derive(Debug, Clone, Copy)]
pub struct NodeContext<'a> {
    /// The node's Ready condition is True.
    pub ready: bool,
    pub now: DateTime<Utc>,
    /// node-drain's own pod (downward API), never evicted by itself.
    pub own_pod: Option<&'a PodRef>,
}

/// Classifies one pod of a node being drained.
pub fn classify(pod: &Pod, node: NodeContext<'_>) -> PodAction {
    let meta = &pod.metadata;
    let annotations = meta.annotations.as_ref();
    let owner_kind = controller_kind(pod);

    if annotations.is_some_and(|a| a.contains_key(MIRROR)) {
        return PodAction::Skip("mirror pod".into());
    }
    if owner_kind.as_deref() == Some("DaemonSet") {
        return PodAction::Skip("DaemonSet pod".into());
    }
    if node.own_pod.is_some_and(|own| *own == PodRef::of(pod)) {
        return PodAction::Skip("node-drain's own pod".into());
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        return PodAction::DeleteFinished;
    }
    let stateful = is_stateful(pod, owner_kind.as_deref());
    if let Some(deletion) = &meta.deletion_timestamp {
        let stuck_after =
            crate::time::to_utc(deletion) + Duration::seconds(STUCK_TERMINATING_AFTER);
        if node.now > stuck_after && !(stateful && node.ready) {
            return PodAction::ForceDelete("stuck terminating".into());
        }
        return PodAction::WaitTerminating;
    }
    let critical = matches!(
        pod.spec
            .as_ref()
            .and_then(|s| s.priority_class_name.as_deref()),
        Some("system-cluster-critical" | "system-node-critical")
    );
    let tier = if critical {
        EvictionTier::Critical
    } else if stateful {
        EvictionTier::Stateful
    } else {
        EvictionTier::Stateless
    };
    if let Some(value) = annotations.and_then(|a| a.get(DO_NOT_DISRUPT)) {
        if let Some(reason) = do_not_disrupt_blocks(value, pod, node.now) {
            return PodAction::Block { reason, tier };
        }
    }
    if owner_kind.is_none() {
        return PodAction::Block {
            reason: BlockReason::NoController,
            tier,
        };
    }
    if tolerates_unschedulable(pod) {
        return PodAction::Skip(
            "tolerates the unschedulable taint: it would come straight back; it leaves with the node"
                .into(),
        );
    }
    if let Some(problem) = problem_reason(pod, phase, node.ready) {
        if stateful && node.ready {
            return PodAction::Evict(tier);
        }
        return PodAction::ForceDelete(problem);
    }
    PodAction::Evict(tier)
}

/// The kind of the pod's controlling owner, if any.
pub fn controller_kind(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.kind.clone())
}

/// StatefulSet-owned, or mounting a PersistentVolumeClaim (SPEC §6: never
/// deleted with grace 0 while its node is Ready).
pub fn stateful(pod: &Pod) -> bool {
    is_stateful(pod, controller_kind(pod).as_deref())
}

/// StatefulSet-owned, or mounting a PersistentVolumeClaim: its data must not be
/// cut off with grace 0 while the node is alive.
fn is_stateful(pod: &Pod, owner_kind: Option<&str>) -> bool {
    owner_kind == Some("StatefulSet")
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .is_some_and(|v| v.iter().any(|v| v.persistent_volume_claim.is_some()))
}

/// Tolerates `node.kubernetes.io/unschedulable:NoSchedule`, the cordon's taint
/// (it has no value), as the scheduler matches a toleration: an empty key with
/// `Exists` matches every taint; `Equal` (the default operator) needs the value.
fn tolerates_unschedulable(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|tolerations| {
            tolerations.iter().any(|t| {
                let exists = t.operator.as_deref() == Some("Exists");
                let effect_ok = matches!(t.effect.as_deref(), None | Some("") | Some("NoSchedule"));
                let key = t.key.as_deref().unwrap_or("");
                let value_ok = exists || t.value.as_deref().unwrap_or("").is_empty();
                effect_ok
                    && ((key.is_empty() && exists) || (key == UNSCHEDULABLE_TAINT && value_ok))
            })
        })
}

/// `"true"` blocks; a Go duration blocks until that long after the pod started;
/// anything unreadable blocks (fail closed). Other values (`"false"`) do not.
fn do_not_disrupt_blocks(value: &str, pod: &Pod, now: DateTime<Utc>) -> Option<BlockReason> {
    match value {
        "true" => return Some(BlockReason::DoNotDisrupt),
        "false" | "" => return None,
        _ => {}
    }
    let duration = match crate::duration::parse_go_duration(value) {
        Ok(d) => d,
        Err(error) => {
            return Some(BlockReason::DoNotDisruptUnreadable {
                value: value.into(),
                error,
            })
        }
    };
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(crate::time::to_utc)
        .unwrap_or(now);
    let until = started + Duration::from_std(duration).unwrap_or(Duration::MAX);
    (now < until).then(|| BlockReason::DoNotDisruptUntil {
        value: value.into(),
        until: until.to_rfc3339(),
    })
}

fn problem_reason(pod: &Pod, phase: &str, node_ready: bool) -> Option<String> {
    if phase == "Unknown" {
        return Some(phase.to_string());
    }
    let status = pod.status.as_ref();
    let waiting = status
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .find(|reason| PROBLEM_WAITING_REASONS.contains(&reason.as_str()));
    if waiting.is_some() {
        return waiting;
    }
    // A Pending pod on a Ready node is starting (pulling, running init
    // containers): evict it like any other. On a NotReady node it never will.
    (phase == "Pending" && !node_ready).then(|| phase.to_string())
}

#[path = "pods_removals.rs"]
mod removals;
pub use removals::{blockers, blocking, plan_removals, PlannedRemoval, Tier};

#[cfg(test)]
#[path = "pods_test_pods.rs"]
mod test_pods;

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "pods_blocker_tests.rs"]
mod blocker_tests;

#[cfg(test)]
#[path = "pods_dnd_tests.rs"]
mod dnd_tests;
