//! The pods and nodes the pod-classification tests build (`pods_tests.rs`,
//! `pods_dnd_tests.rs`).

use super::*;
use serde_json::{json, Value};

pub(super) fn now() -> DateTime<Utc> {
    "2026-11-21T12:00:00Z".parse().unwrap()
}

pub(super) fn ready() -> NodeContext<'static> {
    NodeContext {
        ready: true,
        now: now(),
        own_pod: None,
    }
}

pub(super) fn not_ready() -> NodeContext<'static> {
    NodeContext {
        ready: false,
        ..ready()
    }
}

/// A pod as a kubelet reports it: owner kind ("" = none), phase, annotations,
/// waiting reason, deletion timestamp; `extra` is merged into the spec.
pub(super) fn pod(
    owner: &str,
    phase: &str,
    annotations: Value,
    waiting: Option<&str>,
    deleting: Option<&str>,
    extra_spec: Value,
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
    let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations, "ownerReferences": owners,
                      "creationTimestamp": "2026-11-21T11:58:00Z", "deletionTimestamp": deleting},
        "spec": spec,
        "status": {"phase": phase, "startTime": "2026-11-21T11:58:00Z", "containerStatuses": statuses}
    }))
    .unwrap()
}

pub(super) fn simple(owner: &str, phase: &str) -> Pod {
    pod(owner, phase, json!({}), None, None, json!({}))
}

pub(super) fn dnd(value: &str) -> Pod {
    pod(
        "ReplicaSet",
        "Running",
        json!({DO_NOT_DISRUPT: value}),
        None,
        None,
        json!({}),
    )
}

pub(super) fn waiting(owner: &str, phase: &str, reason: &str) -> Pod {
    pod(owner, phase, json!({}), Some(reason), None, json!({}))
}

pub(super) fn deleting(owner: &str, at: &str) -> Pod {
    pod(owner, "Running", json!({}), None, Some(at), json!({}))
}
