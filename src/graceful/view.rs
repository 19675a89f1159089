//! What graceful eviction keeps and reads of a pod (pure): the watched
//! cache holds every pod of the cluster, so it keeps only what the webhook
//! and the workers read — the metadata without `managedFields` and the
//! `last-applied-configuration` annotation, the phase and the Ready
//! condition — and answers from that: is it Ready, is it a replacement of a
//! ReplicaSet's pod, does a PodDisruptionBudget count it as healthy.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::k8s::pods::selector_matches;

/// Written by `kubectl apply`: a copy of the whole object, read by nobody here.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Strips a watched pod down to what is read of it (in place, before the
/// cache stores it).
pub fn slim(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    if let Some(a) = pod.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
    pod.spec = None;
    pod.status = pod.status.take().map(|s| PodStatus {
        phase: s.phase,
        conditions: s.conditions.map(|c| {
            c.into_iter()
                .filter(|c| c.type_ == "Ready")
                .map(|c| PodCondition {
                    type_: c.type_,
                    status: c.status,
                    ..PodCondition::default()
                })
                .collect()
        }),
        ..PodStatus::default()
    });
}

/// The pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What the disruption controller counts in `currentHealthy`: Ready and not
/// terminating.
pub fn healthy(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && pod_ready(pod)
}

/// Running and Ready: a pod whose eviction the API checks against its PDB
/// (it lets a Pending or not-Ready pod go under rules of its own).
pub fn running_ready(pod: &Pod) -> bool {
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    running && healthy(pod)
}

/// A Ready pod controlled by the ReplicaSet `replica_set` (its UID), created
/// at or after `since` (whole seconds, as creationTimestamps), not
/// terminating: the replacement of a pod drained since then.
pub fn ready_replacement(pod: &Pod, replica_set: &str, since: DateTime<Utc>) -> bool {
    let controlled = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == replica_set);
    let new = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .is_some_and(|t| t.0.as_second() >= since.timestamp());
    controlled && new && healthy(pod)
}

/// The pods of `pods` (one namespace's) that `selector` selects and the
/// disruption controller counts as healthy.
pub fn healthy_selected<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    selector: &LabelSelector,
) -> usize {
    pods.into_iter()
        .filter(|p| healthy(p))
        .filter(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            selector_matches(selector, &labels)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn web(ready: &str, created: &str) -> Pod {
        pod(json!({
            "metadata": {"name": "web-2", "namespace": "shop", "labels": {"app": "web"},
                "creationTimestamp": created,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                    "uid": "rs-1", "controller": true}],
                "annotations": {LAST_APPLIED: "{\"a\": \"whole object\"}", "vpa-managed": "true"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"containers": [{"name": "c", "image": "web:1"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.2",
                "conditions": [{"type": "PodScheduled", "status": "True"},
                               {"type": "Ready", "status": ready,
                                "lastTransitionTime": "2027-01-15T08:00:00Z"}]}
        }))
    }

    #[test]
    fn the_cache_keeps_metadata_phase_and_readiness_only() {
        let mut p = web("True", "2027-01-15T08:00:00Z");
        slim(&mut p);
        assert!(p.spec.is_none());
        assert!(p.metadata.managed_fields.is_none());
        let annotations = p.metadata.annotations.clone().unwrap();
        assert_eq!(annotations.len(), 1, "{annotations:?}");
        assert!(annotations.contains_key("vpa-managed"));
        let status = p.status.clone().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(status.pod_ip.is_none());
        let conditions = status.conditions.unwrap();
        assert_eq!(conditions.len(), 1);
        assert!(conditions[0].last_transition_time.is_none());
        assert!(pod_ready(&p) && running_ready(&p));
        assert_eq!(p.metadata.owner_references.as_ref().unwrap()[0].uid, "rs-1");
    }

    #[test]
    fn a_replacement_is_the_replicasets_new_ready_pod() {
        let since = DateTime::parse_from_rfc3339("2027-01-15T08:00:00Z")
            .unwrap()
            .to_utc();
        assert!(ready_replacement(
            &web("True", "2027-01-15T08:00:00Z"),
            "rs-1",
            since
        ));
        assert!(!ready_replacement(
            &web("False", "2027-01-15T08:00:01Z"),
            "rs-1",
            since
        ));
        assert!(
            !ready_replacement(&web("True", "2027-01-15T07:59:59Z"), "rs-1", since),
            "older: the drained pod's sibling"
        );
        assert!(!ready_replacement(
            &web("True", "2027-01-15T08:00:01Z"),
            "rs-2",
            since
        ));
        let mut terminating = web("True", "2027-01-15T08:00:01Z");
        terminating.metadata.deletion_timestamp = terminating.metadata.creation_timestamp.clone();
        assert!(!ready_replacement(&terminating, "rs-1", since));
    }

    #[test]
    fn healthy_is_ready_not_terminating_and_selected() {
        let selector: LabelSelector =
            serde_json::from_value(json!({"matchLabels": {"app": "web"}})).unwrap();
        let mut terminating = web("True", "2027-01-15T08:00:00Z");
        terminating.metadata.deletion_timestamp = terminating.metadata.creation_timestamp.clone();
        let mut other = web("True", "2027-01-15T08:00:00Z");
        other.metadata.labels = Some([("app".to_string(), "api".to_string())].into());
        let mut pending = web("False", "2027-01-15T08:00:00Z");
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        let pods = [
            web("True", "2027-01-15T08:00:00Z"),
            web("True", "2027-01-15T08:00:00Z"),
            terminating,
            other,
            pending.clone(),
        ];
        assert_eq!(healthy_selected(&pods, &selector), 2);
        assert!(!running_ready(&pending));
    }
}
