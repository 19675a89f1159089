//! Where a pod is classified: what draining its node does with it. One pure
//! function, `classify`, over the Pod object, whether its node is Ready, and the time.
//!
//! Order of the rules (SPEC §3):
//! 1. mirror/static and DaemonSet pods are skipped (the node's own);
//! 2. finished pods (Succeeded/Failed) are deleted;
//! 3. pods already terminating are waited for, or force-deleted once stuck
//!    past their grace period + 60 s;
//! 4. blocking pods (do-not-disrupt, no controller) stop the node unless forced;
//! 5. problem pods (Pending, Unknown, a container waiting in CrashLoopBackOff,
//!    ImagePullBackOff, ErrImagePull, CreateContainerConfigError) are deleted with
//!    grace 0 — except a StatefulSet pod on a Ready node, which is evicted;
//! 6. everything else is evicted, in tiers: stateless, StatefulSet, critical.

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

pub const DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
const MIRROR: &str = "kubernetes.io/config.mirror";
/// A terminating pod still present this long after its deletionTimestamp is stuck.
pub const STUCK_TERMINATING_AFTER: i64 = 60;
const PROBLEM_WAITING_REASONS: [&str; 4] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
];

/// Eviction tiers, drained in this order; each tier is gone before the next starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionTier {
    Stateless,
    StatefulSet,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "reason", rename_all = "kebab-case")]
pub enum PodAction {
    /// Left alone: it belongs to the node (DaemonSet, mirror pod).
    Skip(String),
    /// Already terminating within its grace period: only waited for.
    WaitTerminating,
    /// Succeeded or Failed: deleted with its own grace period.
    DeleteFinished,
    /// Keeps the node from being drained unless forced.
    Block(String),
    /// Deleted with grace period 0.
    ForceDelete(String),
    /// Evicted through the Eviction API (PDBs apply).
    Evict(EvictionTier),
}

/// Classifies one pod of a node being drained.
pub fn classify(pod: &Pod, node_ready: bool, now: DateTime<Utc>) -> PodAction {
    let meta = &pod.metadata;
    let annotations = meta.annotations.as_ref();
    let owner_kind = controller_kind(pod);

    if annotations.is_some_and(|a| a.contains_key(MIRROR)) {
        return PodAction::Skip("mirror pod".into());
    }
    if owner_kind.as_deref() == Some("DaemonSet") {
        return PodAction::Skip("DaemonSet pod".into());
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        return PodAction::DeleteFinished;
    }
    let stateful = owner_kind.as_deref() == Some("StatefulSet");
    if let Some(deletion) = &meta.deletion_timestamp {
        let stuck_after =
            crate::time::to_utc(deletion) + Duration::seconds(STUCK_TERMINATING_AFTER);
        if now > stuck_after && !(stateful && node_ready) {
            return PodAction::ForceDelete("stuck terminating".into());
        }
        return PodAction::WaitTerminating;
    }
    if let Some(value) = annotations.and_then(|a| a.get(DO_NOT_DISRUPT)) {
        if let Some(reason) = do_not_disrupt_blocks(value, pod, now) {
            return PodAction::Block(reason);
        }
    }
    if owner_kind.is_none() {
        return PodAction::Block("no controller: a bare pod would not come back".into());
    }
    if let Some(problem) = problem_reason(pod, phase) {
        if stateful && node_ready {
            return PodAction::Evict(EvictionTier::StatefulSet);
        }
        return PodAction::ForceDelete(problem);
    }
    let critical = matches!(
        pod.spec
            .as_ref()
            .and_then(|s| s.priority_class_name.as_deref()),
        Some("system-cluster-critical" | "system-node-critical")
    );
    PodAction::Evict(if critical {
        EvictionTier::Critical
    } else if stateful {
        EvictionTier::StatefulSet
    } else {
        EvictionTier::Stateless
    })
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

/// `"true"` blocks; a duration ("5m", "1h") blocks until that long after the pod started.
fn do_not_disrupt_blocks(value: &str, pod: &Pod, now: DateTime<Utc>) -> Option<String> {
    if value == "true" {
        return Some(format!("{DO_NOT_DISRUPT}: \"true\""));
    }
    let duration = crate::plan::budget::parse_duration(value)?;
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(crate::time::to_utc)?;
    let until = started + duration;
    (now < until).then(|| format!("{DO_NOT_DISRUPT}: {value:?} until {}", until.to_rfc3339()))
}

fn problem_reason(pod: &Pod, phase: &str) -> Option<String> {
    if matches!(phase, "Pending" | "Unknown") {
        return Some(phase.to_string());
    }
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .find(|reason| PROBLEM_WAITING_REASONS.contains(&reason.as_str()))
}

/// `namespace/name`, for logs and reports.
pub fn pod_ref(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    /// A pod from a compact description: owner kind ("" = none), phase, annotations,
    /// waiting reason, deletion timestamp, priority class.
    fn pod(
        owner: &str,
        phase: &str,
        annotations: serde_json::Value,
        waiting: Option<&str>,
        deleting: Option<&str>,
        priority: Option<&str>,
    ) -> Pod {
        let owners = if owner.is_empty() {
            json!([])
        } else {
            json!([{"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u", "controller": true}])
        };
        let statuses = match waiting {
            Some(r) => {
                json!([{"name": "c", "image": "i", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": r}}}])
            }
            None => {
                json!([{"name": "c", "image": "i", "ready": true, "restartCount": 0, "state": {"running": {}}}])
            }
        };
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "annotations": annotations, "ownerReferences": owners,
                          "creationTimestamp": "2026-11-21T11:58:00Z", "deletionTimestamp": deleting},
            "spec": {"containers": [{"name": "c", "image": "i"}], "priorityClassName": priority},
            "status": {"phase": phase, "startTime": "2026-11-21T11:58:00Z", "containerStatuses": statuses}
        }))
        .unwrap()
    }

    #[test]
    fn classification_table() {
        use EvictionTier::*;
        let none = json!({});
        let cases: Vec<(&str, Pod, bool, PodAction)> = vec![
            (
                "deployment pod",
                pod("ReplicaSet", "Running", none.clone(), None, None, None),
                true,
                PodAction::Evict(Stateless),
            ),
            (
                "statefulset pod",
                pod("StatefulSet", "Running", none.clone(), None, None, None),
                true,
                PodAction::Evict(StatefulSet),
            ),
            (
                "critical pod",
                pod(
                    "ReplicaSet",
                    "Running",
                    none.clone(),
                    None,
                    None,
                    Some("system-cluster-critical"),
                ),
                true,
                PodAction::Evict(Critical),
            ),
            (
                "node-critical statefulset",
                pod(
                    "StatefulSet",
                    "Running",
                    none.clone(),
                    None,
                    None,
                    Some("system-node-critical"),
                ),
                true,
                PodAction::Evict(Critical),
            ),
            (
                "daemonset pod",
                pod("DaemonSet", "Running", none.clone(), None, None, None),
                true,
                PodAction::Skip("DaemonSet pod".into()),
            ),
            (
                "mirror pod",
                pod(
                    "Node",
                    "Running",
                    json!({"kubernetes.io/config.mirror": "x"}),
                    None,
                    None,
                    None,
                ),
                true,
                PodAction::Skip("mirror pod".into()),
            ),
            (
                "succeeded job pod",
                pod("Job", "Succeeded", none.clone(), None, None, None),
                true,
                PodAction::DeleteFinished,
            ),
            (
                "failed bare pod",
                pod("", "Failed", none.clone(), None, None, None),
                true,
                PodAction::DeleteFinished,
            ),
            (
                "bare pod",
                pod("", "Running", none.clone(), None, None, None),
                true,
                PodAction::Block("no controller: a bare pod would not come back".into()),
            ),
            (
                "do-not-disrupt",
                pod(
                    "ReplicaSet",
                    "Running",
                    json!({DO_NOT_DISRUPT: "true"}),
                    None,
                    None,
                    None,
                ),
                true,
                PodAction::Block("karpenter.sh/do-not-disrupt: \"true\"".into()),
            ),
            (
                "do-not-disrupt false",
                pod(
                    "ReplicaSet",
                    "Running",
                    json!({DO_NOT_DISRUPT: "false"}),
                    None,
                    None,
                    None,
                ),
                true,
                PodAction::Evict(Stateless),
            ),
            (
                "do-not-disrupt elapsed",
                pod(
                    "ReplicaSet",
                    "Running",
                    json!({DO_NOT_DISRUPT: "1m"}),
                    None,
                    None,
                    None,
                ),
                true,
                PodAction::Evict(Stateless),
            ),
            (
                "crashloop",
                pod(
                    "ReplicaSet",
                    "Running",
                    none.clone(),
                    Some("CrashLoopBackOff"),
                    None,
                    None,
                ),
                true,
                PodAction::ForceDelete("CrashLoopBackOff".into()),
            ),
            (
                "imagepull",
                pod(
                    "ReplicaSet",
                    "Running",
                    none.clone(),
                    Some("ImagePullBackOff"),
                    None,
                    None,
                ),
                false,
                PodAction::ForceDelete("ImagePullBackOff".into()),
            ),
            (
                "errimagepull",
                pod(
                    "ReplicaSet",
                    "Running",
                    none.clone(),
                    Some("ErrImagePull"),
                    None,
                    None,
                ),
                true,
                PodAction::ForceDelete("ErrImagePull".into()),
            ),
            (
                "config error",
                pod(
                    "ReplicaSet",
                    "Running",
                    none.clone(),
                    Some("CreateContainerConfigError"),
                    None,
                    None,
                ),
                true,
                PodAction::ForceDelete("CreateContainerConfigError".into()),
            ),
            (
                "pending",
                pod("ReplicaSet", "Pending", none.clone(), None, None, None),
                true,
                PodAction::ForceDelete("Pending".into()),
            ),
            (
                "unknown",
                pod("ReplicaSet", "Unknown", none.clone(), None, None, None),
                false,
                PodAction::ForceDelete("Unknown".into()),
            ),
            (
                "benign waiting",
                pod(
                    "ReplicaSet",
                    "Running",
                    none.clone(),
                    Some("ContainerCreating"),
                    None,
                    None,
                ),
                true,
                PodAction::Evict(Stateless),
            ),
            (
                "crashloop statefulset, node ready",
                pod(
                    "StatefulSet",
                    "Running",
                    none.clone(),
                    Some("CrashLoopBackOff"),
                    None,
                    None,
                ),
                true,
                PodAction::Evict(StatefulSet),
            ),
            (
                "crashloop statefulset, node not ready",
                pod(
                    "StatefulSet",
                    "Running",
                    none.clone(),
                    Some("CrashLoopBackOff"),
                    None,
                    None,
                ),
                false,
                PodAction::ForceDelete("CrashLoopBackOff".into()),
            ),
            (
                "terminating in grace",
                pod(
                    "ReplicaSet",
                    "Running",
                    none.clone(),
                    None,
                    Some("2026-11-21T11:59:50Z"),
                    None,
                ),
                true,
                PodAction::WaitTerminating,
            ),
            (
                "stuck terminating",
                pod(
                    "ReplicaSet",
                    "Running",
                    none.clone(),
                    None,
                    Some("2026-11-21T11:58:00Z"),
                    None,
                ),
                true,
                PodAction::ForceDelete("stuck terminating".into()),
            ),
            (
                "stuck statefulset, node ready",
                pod(
                    "StatefulSet",
                    "Running",
                    none.clone(),
                    None,
                    Some("2026-11-21T11:58:00Z"),
                    None,
                ),
                true,
                PodAction::WaitTerminating,
            ),
        ];
        for (name, pod, ready, want) in cases {
            assert_eq!(classify(&pod, ready, now()), want, "{name}");
        }
    }

    #[test]
    fn do_not_disrupt_duration_blocks_until_elapsed() {
        let p = pod(
            "ReplicaSet",
            "Running",
            json!({DO_NOT_DISRUPT: "1h"}),
            None,
            None,
            None,
        );
        match classify(&p, true, now()) {
            PodAction::Block(reason) => {
                assert!(reason.contains("until 2026-11-21T12:58:00"), "{reason}")
            }
            other => panic!("expected a block, got {other:?}"),
        }
    }

    #[test]
    fn never_force_deletes_a_statefulset_pod_on_a_ready_node() {
        for waiting in [None, Some("CrashLoopBackOff"), Some("ImagePullBackOff")] {
            for phase in ["Running", "Pending", "Unknown"] {
                for deleting in [None, Some("2026-11-21T11:00:00Z")] {
                    let p = pod("StatefulSet", phase, json!({}), waiting, deleting, None);
                    assert!(
                        !matches!(classify(&p, true, now()), PodAction::ForceDelete(_)),
                        "{phase} {waiting:?} {deleting:?}"
                    );
                }
            }
        }
    }
}
