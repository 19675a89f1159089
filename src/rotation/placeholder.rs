//! Capacity first: before a wave is cordoned, placeholder pods with the
//! requests of the wave's evictable pods, at a negative PriorityClass, pinned
//! to the NodePool and kept off the wave's nodes, make Karpenter provision the
//! replacement capacity. Evicted pods then preempt them and schedule at once.
//! Pure: the spec (`placeholder_pod`, `requests_of`, the PriorityClass);
//! `capacity` creates, waits for and deletes them. Placeholders are labelled
//! so any later run removes leftovers.

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, Toleration};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::json;
use std::collections::BTreeMap;

use crate::k8s::karpenter::NODEPOOL_LABEL;

pub const PRIORITY_CLASS: &str = "node-drain-placeholder";
pub const PRIORITY_VALUE: i32 = -10;
/// On every placeholder: the NodePool it reserves capacity in.
pub const PLACEHOLDER_LABEL: &str = "node-drain.io/placeholder";
/// The rotation run that created it.
pub const PLACEHOLDER_RUN_LABEL: &str = "node-drain.io/placeholder-run";
/// A placeholder's number in its wave.
pub const PLACEHOLDER_INDEX_LABEL: &str = "node-drain.io/placeholder-index";
/// Placeholders that repel each other (see `placeholder_pod`).
pub const SPREAD_LABEL: &str = "node-drain.io/placeholder-spread";
/// On the nodes of a wave while its capacity is reserved (a label, not a
/// cordon: nothing on them is disturbed).
pub const WAVE_LABEL: &str = "node-drain.io/rotation-wave";
/// Resources a placeholder copies from the pod it stands in for.
const RESOURCES: [&str; 3] = ["cpu", "memory", "ephemeral-storage"];

/// The requests of a pod as the scheduler counts them: the sum over its
/// containers, or the largest init container when that is more.
pub fn requests_of(pod: &Pod) -> BTreeMap<String, f64> {
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    let Some(spec) = pod.spec.as_ref() else {
        return total;
    };
    let of = |c: &k8s_openapi::api::core::v1::Container, name: &str| -> f64 {
        c.resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(name))
            .and_then(|q| crate::units::parse_quantity(&q.0))
            .unwrap_or(0.0)
    };
    for name in RESOURCES {
        let sum: f64 = spec.containers.iter().map(|c| of(c, name)).sum();
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| of(c, name))
            .fold(0.0, f64::max);
        let value = sum.max(init);
        if value > 0.0 {
            total.insert(name.to_string(), value);
        }
    }
    total
}

/// A quantity the API server reads back exactly: millicores for CPU, bytes otherwise.
fn quantity(resource: &str, value: f64) -> Quantity {
    if resource == "cpu" {
        Quantity(format!("{}m", (value * 1000.0).ceil() as u64))
    } else {
        Quantity(format!("{}", value.ceil() as u64))
    }
}

/// What a placeholder stands in for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceholderSpec<'a> {
    pub nodepool: &'a str,
    pub run_id: &'a str,
    pub namespace: &'a str,
    pub image: &'a str,
    /// The wave's nodes are labelled `WAVE_LABEL` before the placeholders are
    /// created: the placeholders stay off them. (Karpenter ignores a pod whose
    /// node affinity names `kubernetes.io/hostname`: a restricted label.)
    pub avoid_wave: bool,
}

/// Where the pod a placeholder stands in for may run: its node selector,
/// tolerations, and required pod anti-affinity (spread one per node, …).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    pub namespace: String,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub anti_affinity: Vec<PodAffinityTerm>,
}

impl Constraints {
    pub fn of(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            // A pod pinned to its node by hostname cannot follow it anywhere;
            // its placeholder reserves room like any other (and Karpenter
            // ignores pods that select a hostname).
            node_selector: spec
                .and_then(|s| s.node_selector.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k != "kubernetes.io/hostname")
                .collect(),
            tolerations: spec.and_then(|s| s.tolerations.clone()).unwrap_or_default(),
            anti_affinity: spec
                .and_then(|s| s.affinity.as_ref())
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default(),
        }
    }
}

/// The placeholder of one evictable pod with `requests` and `constraints`.
/// A pod that must not share a node (or zone) with its siblings gets a
/// placeholder that must not either: the pod's own anti-affinity terms (kept
/// to its namespace), plus the same terms among the placeholders standing in
/// for such pods (the placeholder never carries the workload's labels: a
/// ReplicaSet would adopt it).
pub fn placeholder_pod(
    spec: &PlaceholderSpec<'_>,
    requests: &BTreeMap<String, f64>,
    constraints: &Constraints,
) -> Pod {
    let requests: BTreeMap<String, Quantity> = requests
        .iter()
        .map(|(k, v)| (k.clone(), quantity(k, *v)))
        .collect();
    let mut affinity = json!({});
    if spec.avoid_wave {
        affinity["nodeAffinity"] = json!({"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": WAVE_LABEL, "operator": "DoesNotExist"}
            ]}]
        }});
    }
    let mut labels = json!({
        PLACEHOLDER_LABEL: spec.nodepool,
        PLACEHOLDER_RUN_LABEL: spec.run_id,
        "app.kubernetes.io/managed-by": "node-drain",
    });
    if !constraints.anti_affinity.is_empty() {
        let group = spread_group(constraints);
        labels[SPREAD_LABEL] = json!(group);
        let mut terms = Vec::new();
        for term in &constraints.anti_affinity {
            let mut own = term.clone();
            if own.namespaces.as_ref().is_none_or(Vec::is_empty) && own.namespace_selector.is_none()
            {
                own.namespaces = Some(vec![constraints.namespace.clone()]);
            }
            terms.push(serde_json::to_value(own).unwrap_or_default());
            terms.push(json!({
                "labelSelector": {"matchLabels": {SPREAD_LABEL: group}},
                "topologyKey": term.topology_key,
            }));
        }
        affinity["podAntiAffinity"] =
            json!({"requiredDuringSchedulingIgnoredDuringExecution": terms});
    }
    let mut node_selector = constraints.node_selector.clone();
    node_selector.insert(NODEPOOL_LABEL.to_string(), spec.nodepool.to_string());
    serde_json::from_value(json!({
        "metadata": {
            "generateName": "node-drain-placeholder-",
            "namespace": spec.namespace,
            "labels": labels,
            "annotations": {
                "node-drain.io/why": "reserves replacement capacity for a rotation wave; preempted by the evicted pods, deleted when the wave ends",
            },
        },
        "spec": {
            "priorityClassName": PRIORITY_CLASS,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            // Restricted Pod Security: the daemon's own namespace enforces it.
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65535,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "nodeSelector": node_selector,
            "tolerations": constraints.tolerations,
            "affinity": affinity,
            "containers": [{
                "name": "placeholder",
                "image": spec.image,
                "imagePullPolicy": "IfNotPresent",
                "resources": {"requests": requests},
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                },
            }],
        },
    }))
    .unwrap_or_default()
}

/// Placeholders standing in for pods with the same anti-affinity share a
/// group and repel each other as those pods would.
fn spread_group(c: &Constraints) -> String {
    use std::hash::{Hash, Hasher};
    let text = serde_json::to_string(&c.anti_affinity).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (c.namespace.as_str(), text).hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The PriorityClass placeholders run at: below every workload (the default
/// priority is 0), never preempting anything itself, never the default.
pub fn priority_class() -> PriorityClass {
    serde_json::from_value(json!({
        "metadata": {"name": PRIORITY_CLASS, "labels": {"app.kubernetes.io/managed-by": "node-drain"}},
        "value": PRIORITY_VALUE,
        "preemptionPolicy": "Never",
        "globalDefault": false,
        "description": "node-drain rotation placeholders: reserve replacement capacity, preempted by any workload",
    }))
    .unwrap_or_default()
}

/// Numbers the placeholders of a wave (`PLACEHOLDER_INDEX_LABEL`), so one can
/// be created again from its spec.
pub fn numbered(mut pods: Vec<Pod>) -> Vec<Pod> {
    for (i, pod) in pods.iter_mut().enumerate() {
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(PLACEHOLDER_INDEX_LABEL.to_string(), i.to_string());
    }
    pods
}

pub fn run_selector(run_id: &str) -> String {
    format!("{PLACEHOLDER_RUN_LABEL}={run_id}")
}

pub fn nodepool_selector(nodepool: &str) -> String {
    format!("{PLACEHOLDER_LABEL}={nodepool}")
}

#[cfg(test)]
#[path = "placeholder_tests.rs"]
mod tests;
