//! A blocker blocks whatever it tolerates (SPEC §3): every blocker with every
//! toleration, and the tolerations alone on a pod that does not block, which
//! leaves with the node only when it tolerates the cordon's NoSchedule taint.

use super::test_pods::ready;
use super::*;
use serde_json::{json, Value};

/// A running pod (started 11:58) with these owner kind ("" = none), annotations
/// and tolerations.
fn pod(owner: &str, annotations: Value, tolerations: &Value) -> Pod {
    let owners = if owner.is_empty() {
        json!([])
    } else {
        json!([{"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u", "controller": true}])
    };
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "annotations": annotations, "ownerReferences": owners,
                      "creationTimestamp": "2026-11-21T11:58:00Z"},
        "spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": tolerations},
        "status": {"phase": "Running", "startTime": "2026-11-21T11:58:00Z"}
    }))
    .unwrap()
}

const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// (name, tolerations, whether they tolerate `node.kubernetes.io/unschedulable:NoSchedule`)
fn tolerations() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("none", json!([]), false),
        (
            "operator Exists: every taint",
            json!([{"operator": "Exists"}]),
            true,
        ),
        (
            "operator Exists, effect NoSchedule",
            json!([{"operator": "Exists", "effect": "NoSchedule"}]),
            true,
        ),
        (
            "operator Exists, effect NoExecute only",
            json!([{"operator": "Exists", "effect": "NoExecute"}]),
            false,
        ),
        (
            "the unschedulable key, any effect",
            json!([{"key": UNSCHEDULABLE, "operator": "Exists"}]),
            true,
        ),
        (
            "the unschedulable key, effect NoSchedule",
            json!([{"key": UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]),
            true,
        ),
        (
            "the unschedulable key, effect NoExecute",
            json!([{"key": UNSCHEDULABLE, "operator": "Exists", "effect": "NoExecute"}]),
            false,
        ),
        (
            "the unschedulable key, operator Equal, empty value",
            json!([{"key": UNSCHEDULABLE, "operator": "Equal", "effect": "NoSchedule"}]),
            true,
        ),
        (
            "the unschedulable key, operator Equal, another value",
            json!([{"key": UNSCHEDULABLE, "operator": "Equal", "value": "x", "effect": "NoSchedule"}]),
            false,
        ),
        (
            "another key",
            json!([{"key": "gpu", "operator": "Exists"}]),
            false,
        ),
    ]
}

#[test]
fn a_blocker_blocks_whatever_it_tolerates() {
    let blockers: Vec<(&str, &str, Value, BlockReason)> = vec![
        (
            "bare pod (what kubectl debug node/… creates)",
            "",
            json!({}),
            BlockReason::NoController,
        ),
        (
            "do-not-disrupt \"true\"",
            "ReplicaSet",
            json!({DO_NOT_DISRUPT: "true"}),
            BlockReason::DoNotDisrupt,
        ),
        (
            "do-not-disrupt duration not elapsed",
            "ReplicaSet",
            json!({DO_NOT_DISRUPT: "1h"}),
            BlockReason::DoNotDisruptUntil {
                value: "1h".into(),
                until: "2026-11-21T12:58:00+00:00".into(),
            },
        ),
        (
            "do-not-disrupt unreadable",
            "ReplicaSet",
            json!({DO_NOT_DISRUPT: "soon"}),
            BlockReason::DoNotDisruptUnreadable {
                value: "soon".into(),
                error: crate::duration::parse_go_duration("soon").unwrap_err(),
            },
        ),
        (
            "bare pod with do-not-disrupt",
            "",
            json!({DO_NOT_DISRUPT: "true"}),
            BlockReason::DoNotDisrupt,
        ),
    ];
    for (blocker, owner, annotations, reason) in &blockers {
        for (toleration, tolerations, _) in tolerations() {
            let got = classify(&pod(owner, annotations.clone(), &tolerations), ready());
            assert_eq!(
                got,
                PodAction::Block {
                    reason: reason.clone(),
                    tier: EvictionTier::Stateless,
                },
                "{blocker} tolerating {toleration}"
            );
        }
    }
}

#[test]
fn a_pod_that_does_not_block_leaves_with_the_node_only_if_it_tolerates_the_cordon() {
    let skipped = PodAction::Skip(
        "tolerates the unschedulable taint: it would come straight back; it leaves with the node"
            .into(),
    );
    for (annotations, what) in [
        (json!({}), "a Deployment pod"),
        (json!({DO_NOT_DISRUPT: "false"}), "do-not-disrupt \"false\""),
        (json!({DO_NOT_DISRUPT: "1m"}), "do-not-disrupt elapsed"),
    ] {
        for (toleration, tolerations, tolerates) in tolerations() {
            let want = if tolerates {
                skipped.clone()
            } else {
                PodAction::Evict(EvictionTier::Stateless)
            };
            assert_eq!(
                classify(
                    &pod("ReplicaSet", annotations.clone(), &tolerations),
                    ready()
                ),
                want,
                "{what} tolerating {toleration}"
            );
        }
    }
}

#[test]
fn the_plan_names_a_tolerating_blocker() {
    let planned = plan_removals(
        &[pod("", json!({}), &json!([{"operator": "Exists"}]))],
        ready(),
    );
    assert_eq!(
        blockers(&planned),
        vec!["ns/p (no controller: a bare pod would not come back)".to_string()]
    );
}

/// What admission reads before it claims a node: the blockers only, named as
/// the plan names them; none when forced; node-drain's own pod never blocks.
#[test]
fn blocking_is_what_admission_refuses_a_node_for() {
    let named = |name: &str, owner: &str, annotations: Value| {
        let mut p = pod(owner, annotations, &json!([]));
        p.metadata.name = Some(name.into());
        p
    };
    let dnd = json!({"karpenter.sh/do-not-disrupt": "true"});
    let pods = vec![
        named("web", "ReplicaSet", json!({})),
        named("keep", "ReplicaSet", dnd.clone()),
        named("debug", "", json!({})),
        named("agent", "DaemonSet", dnd.clone()),
        named("node-drain", "ReplicaSet", dnd.clone()),
    ];
    let own = PodRef {
        namespace: "ns".into(),
        name: "node-drain".into(),
    };
    let node = NodeContext {
        own_pod: Some(&own),
        ..ready()
    };
    let names = |force: bool| -> Vec<String> {
        blocking(&pods, node, force)
            .iter()
            .filter_map(PlannedRemoval::blocker)
            .collect()
    };
    // (what, force, the blockers named)
    let cases: Vec<(&str, bool, Vec<&str>)> = vec![
        (
            "not forced: the do-not-disrupt pod and the bare pod",
            false,
            vec![
                "ns/keep (karpenter.sh/do-not-disrupt: \"true\")",
                "ns/debug (no controller: a bare pod would not come back)",
            ],
        ),
        (
            "forced: the drain evicts them, nothing blocks",
            true,
            vec![],
        ),
    ];
    for (what, force, want) in cases {
        assert_eq!(names(force), want, "{what}");
    }
    assert!(
        blocking(&pods[..1], node, false).is_empty(),
        "a node of evictable pods"
    );
}
