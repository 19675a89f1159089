//! The record of one pod's graceful drain, kept on the pod itself (the
//! annotation `node-drain.io/graceful-drain`, JSON) beside the label
//! `node-drain.io/graceful=draining` that a new leader LISTs by. It holds the
//! step and the pod's original labels and ownerReferences, so a drain a crash
//! interrupted is finished, and an aborted one restored, from the pod alone.
//! The patches that move a pod from step to step are built here (pure).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The label a restart LISTs by.
pub const LABEL: &str = "node-drain.io/graceful";
pub const LABEL_VALUE: &str = "draining";
/// The record (JSON).
pub const ANNOTATION: &str = "node-drain.io/graceful-drain";
/// The label the ReplicaSet selects on and a Service (almost) never does.
pub const HASH: &str = "pod-template-hash";
/// What `pod-template-hash` becomes while the replacement starts: no
/// ReplicaSet selects it, so the ReplicaSet replaces the pod at once.
pub const DETACHED_HASH: &str = "node-drain-graceful";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The eviction was taken over; nothing changed on the pod but the record.
    Requested,
    /// Out of its ReplicaSet (which replaces it), still in its Services.
    Detached,
    /// Out of its Services (labels gone): the grace period runs.
    Isolated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A ReplicaSet's pod whose Services do not select `pod-template-hash`:
    /// the replacement is Ready before the pod leaves its Services.
    ReplaceFirst,
    /// A ReplicaSet's pod one of whose Services selects `pod-template-hash`:
    /// out of the Services and the ReplicaSet at once; the replacement must be
    /// Ready before the grace period ends the pod.
    IsolateFirst,
    /// Any other pod (a StatefulSet's: its replacement takes the same name,
    /// so it can only come after): out of the Services, grace, delete.
    IsolateOnly,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// When the eviction was taken over (whole seconds, as creationTimestamps).
    pub started: DateTime<Utc>,
    pub step: Step,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// When the pod left its Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolated_at: Option<DateTime<Utc>>,
    /// Who evicted (the admission request's user) or what asked.
    #[serde(default)]
    pub by: String,
    /// The Lease (namespace/name) of the daemons that own this drain: only
    /// they resume it, as with nodes (another daemon's config may differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// The pod's labels and ownerReferences before node-drain touched them.
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub owner_references: Vec<OwnerReference>,
}

impl Record {
    pub fn new(
        now: DateTime<Utc>,
        by: &str,
        lease: Option<String>,
        labels: BTreeMap<String, String>,
        owner_references: Vec<OwnerReference>,
    ) -> Self {
        let started = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        Self {
            started,
            step: Step::Requested,
            mode: None,
            isolated_at: None,
            by: by.into(),
            lease,
            labels,
            owner_references,
        }
    }

    pub fn parse(annotations: &BTreeMap<String, String>) -> Option<Result<Self, String>> {
        annotations
            .get(ANNOTATION)
            .map(|text| serde_json::from_str(text).map_err(|e| format!("{ANNOTATION}: {e}")))
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The ReplicaSet that controlled the pod, if one did.
    pub fn replica_set(&self) -> Option<&OwnerReference> {
        self.owner_references
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "ReplicaSet")
    }

    /// How this pod is drained, given whether a Service that selects it uses
    /// `pod-template-hash`.
    pub fn mode(&self, service_selects_hash: bool) -> Mode {
        match (self.replica_set(), self.labels.contains_key(HASH)) {
            (Some(_), true) if !service_selects_hash => Mode::ReplaceFirst,
            (Some(_), _) => Mode::IsolateFirst,
            _ => Mode::IsolateOnly,
        }
    }

    fn owners_without_controller(&self) -> Value {
        let kept: Vec<&OwnerReference> = self
            .owner_references
            .iter()
            .filter(|o| o.controller != Some(true))
            .collect();
        if kept.is_empty() {
            Value::Null
        } else {
            json!(kept)
        }
    }

    /// The first patch (the webhook's): the label and the record.
    pub fn mark_patch(&self, resource_version: Option<&str>) -> Value {
        json!({"metadata": {
            "resourceVersion": resource_version,
            "labels": {LABEL: LABEL_VALUE},
            "annotations": {ANNOTATION: self.json()},
        }})
    }

    /// Requested → the mode's first change: ReplaceFirst changes only
    /// `pod-template-hash` and drops the controller; the others isolate.
    pub fn start_patch(&mut self, mode: Mode, now: DateTime<Utc>, rv: Option<&str>) -> Value {
        self.mode = Some(mode);
        if mode == Mode::ReplaceFirst {
            self.step = Step::Detached;
            json!({"metadata": {
                "resourceVersion": rv,
                "labels": {HASH: DETACHED_HASH},
                "ownerReferences": self.owners_without_controller(),
                "annotations": {ANNOTATION: self.json()},
            }})
        } else {
            self.isolate_patch(now, rv)
        }
    }

    /// Out of every Service: every original label goes (the record's label
    /// stays). A ReplicaSet's pod also leaves its ReplicaSet; a StatefulSet's
    /// keeps its ownerReferences (the StatefulSet releases it itself).
    pub fn isolate_patch(&mut self, now: DateTime<Utc>, rv: Option<&str>) -> Value {
        self.step = Step::Isolated;
        self.isolated_at = Some(now);
        let mut labels: serde_json::Map<String, Value> = self
            .labels
            .keys()
            .map(|k| (k.clone(), Value::Null))
            .collect();
        labels.insert(HASH.into(), Value::Null);
        labels.insert(LABEL.into(), json!(LABEL_VALUE));
        let mut metadata = json!({
            "resourceVersion": rv,
            "labels": labels,
            "annotations": {ANNOTATION: self.json()},
        });
        if self.mode != Some(Mode::IsolateOnly) {
            metadata["ownerReferences"] = self.owners_without_controller();
        }
        json!({ "metadata": metadata })
    }

    /// An aborted drain: the original labels and ownerReferences back, the
    /// label and the record gone.
    pub fn restore_patch(&self, rv: Option<&str>) -> Value {
        let mut labels: serde_json::Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        if !self.labels.contains_key(HASH) {
            labels.insert(HASH.into(), Value::Null);
        }
        labels.insert(LABEL.into(), Value::Null);
        json!({"metadata": {
            "resourceVersion": rv,
            "labels": labels,
            "ownerReferences": if self.owner_references.is_empty() { Value::Null } else { json!(self.owner_references) },
            "annotations": {ANNOTATION: Value::Null},
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(owner_kind: &str) -> Record {
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            (HASH.to_string(), "abc123".to_string()),
        ]);
        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: owner_kind.into(),
            name: "web-abc123".into(),
            uid: "rs-uid".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        Record::new(Utc::now(), "vpa", None, labels, vec![owner])
    }

    #[test]
    fn a_replicaset_pod_changes_only_its_hash_and_controller_first() {
        let mut r = record("ReplicaSet");
        assert_eq!(r.mode(false), Mode::ReplaceFirst);
        let p = r.start_patch(Mode::ReplaceFirst, Utc::now(), Some("7"));
        assert_eq!(p["metadata"]["labels"], json!({HASH: DETACHED_HASH}));
        assert_eq!(p["metadata"]["ownerReferences"], Value::Null);
        assert_eq!(p["metadata"]["resourceVersion"], "7");
        assert_eq!(r.step, Step::Detached);
        let saved: Record =
            serde_json::from_str(p["metadata"]["annotations"][ANNOTATION].as_str().unwrap())
                .unwrap();
        assert_eq!(saved, r, "the record written is the record kept");
    }

    #[test]
    fn isolation_drops_every_original_label_but_keeps_the_record_label() {
        let mut r = record("ReplicaSet");
        let p = r.isolate_patch(Utc::now(), None);
        assert_eq!(
            p["metadata"]["labels"],
            json!({"app": null, HASH: null, LABEL: LABEL_VALUE})
        );
        assert_eq!(r.step, Step::Isolated);
        assert!(r.isolated_at.is_some());
    }

    #[test]
    fn fallbacks_a_hash_selecting_service_and_a_statefulset() {
        assert_eq!(record("ReplicaSet").mode(true), Mode::IsolateFirst);
        let mut s = record("StatefulSet");
        assert_eq!(s.mode(false), Mode::IsolateOnly);
        let p = s.start_patch(Mode::IsolateOnly, Utc::now(), None);
        assert!(p["metadata"].get("ownerReferences").is_none(), "{p}");
        assert_eq!(s.step, Step::Isolated);
    }

    #[test]
    fn restore_puts_back_labels_and_owners_and_removes_the_record() {
        let r = record("ReplicaSet");
        let p = r.restore_patch(Some("9"));
        assert_eq!(
            p["metadata"]["labels"],
            json!({"app": "web", HASH: "abc123", LABEL: null})
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "rs-uid");
        assert_eq!(p["metadata"]["annotations"][ANNOTATION], Value::Null);
    }
}
