use super::*;
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    "2026-11-21T12:00:00Z".parse().unwrap()
}

fn ready() -> NodeContext<'static> {
    NodeContext {
        ready: true,
        now: now(),
        own_pod: None,
    }
}

fn not_ready() -> NodeContext<'static> {
    NodeContext {
        ready: false,
        ..ready()
    }
}

/// A pod as a kubelet reports it: owner kind ("" = none), phase, annotations,
/// waiting reason, deletion timestamp; `extra` is merged into the spec.
fn pod(
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

fn simple(owner: &str, phase: &str) -> Pod {
    pod(owner, phase, json!({}), None, None, json!({}))
}

fn dnd(value: &str) -> Pod {
    pod(
        "ReplicaSet",
        "Running",
        json!({DO_NOT_DISRUPT: value}),
        None,
        None,
        json!({}),
    )
}

fn waiting(owner: &str, phase: &str, reason: &str) -> Pod {
    pod(owner, phase, json!({}), Some(reason), None, json!({}))
}

fn deleting(owner: &str, at: &str) -> Pod {
    pod(owner, "Running", json!({}), None, Some(at), json!({}))
}

#[test]
fn classification_table() {
    use EvictionTier::*;
    let pvc = json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]});
    let critical = json!({"priorityClassName": "system-cluster-critical"});
    let node_critical = json!({"priorityClassName": "system-node-critical"});
    let tolerates = json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]});
    let tolerates_all = json!({"tolerations": [{"operator": "Exists"}]});
    let tolerates_other = json!({"tolerations": [{"key": "gpu", "operator": "Exists"}]});
    let skip_tolerates = PodAction::Skip(
        "tolerates the unschedulable taint: it would come straight back; it leaves with the node"
            .into(),
    );
    let cases: Vec<(&str, Pod, NodeContext, PodAction)> = vec![
        (
            "deployment pod",
            simple("ReplicaSet", "Running"),
            ready(),
            PodAction::Evict(Stateless),
        ),
        (
            "statefulset pod",
            simple("StatefulSet", "Running"),
            ready(),
            PodAction::Evict(Stateful),
        ),
        (
            "deployment pod with a PVC is stateful",
            pod("ReplicaSet", "Running", json!({}), None, None, pvc.clone()),
            ready(),
            PodAction::Evict(Stateful),
        ),
        (
            "critical pod",
            pod("ReplicaSet", "Running", json!({}), None, None, critical),
            ready(),
            PodAction::Evict(Critical),
        ),
        (
            "node-critical statefulset",
            pod(
                "StatefulSet",
                "Running",
                json!({}),
                None,
                None,
                node_critical,
            ),
            ready(),
            PodAction::Evict(Critical),
        ),
        (
            "daemonset pod",
            simple("DaemonSet", "Running"),
            ready(),
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
                json!({}),
            ),
            ready(),
            PodAction::Skip("mirror pod".into()),
        ),
        (
            "tolerates the unschedulable taint",
            pod("ReplicaSet", "Running", json!({}), None, None, tolerates),
            ready(),
            skip_tolerates.clone(),
        ),
        (
            "tolerates every taint",
            pod(
                "ReplicaSet",
                "Running",
                json!({}),
                None,
                None,
                tolerates_all,
            ),
            ready(),
            skip_tolerates,
        ),
        (
            "tolerates another taint",
            pod(
                "ReplicaSet",
                "Running",
                json!({}),
                None,
                None,
                tolerates_other,
            ),
            ready(),
            PodAction::Evict(Stateless),
        ),
        (
            "succeeded job pod",
            simple("Job", "Succeeded"),
            ready(),
            PodAction::DeleteFinished,
        ),
        (
            "failed bare pod",
            simple("", "Failed"),
            ready(),
            PodAction::DeleteFinished,
        ),
        (
            "bare pod",
            simple("", "Running"),
            ready(),
            PodAction::Block {
                reason: BlockReason::NoController,
                tier: Stateless,
            },
        ),
        (
            "do-not-disrupt",
            dnd("true"),
            ready(),
            PodAction::Block {
                reason: BlockReason::DoNotDisrupt,
                tier: Stateless,
            },
        ),
        (
            "do-not-disrupt statefulset keeps its tier",
            pod(
                "StatefulSet",
                "Running",
                json!({DO_NOT_DISRUPT: "true"}),
                None,
                None,
                json!({}),
            ),
            ready(),
            PodAction::Block {
                reason: BlockReason::DoNotDisrupt,
                tier: Stateful,
            },
        ),
        (
            "do-not-disrupt false",
            dnd("false"),
            ready(),
            PodAction::Evict(Stateless),
        ),
        (
            "do-not-disrupt elapsed",
            dnd("1m"),
            ready(),
            PodAction::Evict(Stateless),
        ),
        (
            "do-not-disrupt 500ms elapsed",
            dnd("500ms"),
            ready(),
            PodAction::Evict(Stateless),
        ),
        (
            "do-not-disrupt 1m30.5s elapsed",
            dnd("1m30.5s"),
            ready(),
            PodAction::Evict(Stateless),
        ),
        (
            "crashloop",
            waiting("ReplicaSet", "Running", "CrashLoopBackOff"),
            ready(),
            PodAction::ForceDelete("CrashLoopBackOff".into()),
        ),
        (
            "imagepull, pending as a kubelet reports it",
            waiting("ReplicaSet", "Pending", "ImagePullBackOff"),
            not_ready(),
            PodAction::ForceDelete("ImagePullBackOff".into()),
        ),
        (
            "errimagepull",
            waiting("ReplicaSet", "Pending", "ErrImagePull"),
            ready(),
            PodAction::ForceDelete("ErrImagePull".into()),
        ),
        (
            "config error",
            waiting("ReplicaSet", "Pending", "CreateContainerConfigError"),
            ready(),
            PodAction::ForceDelete("CreateContainerConfigError".into()),
        ),
        (
            "pending, starting on a ready node (init containers, pulling)",
            waiting("ReplicaSet", "Pending", "PodInitializing"),
            ready(),
            PodAction::Evict(Stateless),
        ),
        (
            "benign waiting: ContainerCreating is Pending on a real kubelet",
            waiting("ReplicaSet", "Pending", "ContainerCreating"),
            ready(),
            PodAction::Evict(Stateless),
        ),
        (
            "pending on a NotReady node",
            simple("ReplicaSet", "Pending"),
            not_ready(),
            PodAction::ForceDelete("Pending".into()),
        ),
        (
            "unknown",
            simple("ReplicaSet", "Unknown"),
            not_ready(),
            PodAction::ForceDelete("Unknown".into()),
        ),
        (
            "crashloop statefulset, node ready",
            waiting("StatefulSet", "Running", "CrashLoopBackOff"),
            ready(),
            PodAction::Evict(Stateful),
        ),
        (
            "crashloop statefulset, node not ready",
            waiting("StatefulSet", "Running", "CrashLoopBackOff"),
            not_ready(),
            PodAction::ForceDelete("CrashLoopBackOff".into()),
        ),
        (
            "crashloop pod with a PVC, node ready",
            pod(
                "ReplicaSet",
                "Running",
                json!({}),
                Some("CrashLoopBackOff"),
                None,
                pvc.clone(),
            ),
            ready(),
            PodAction::Evict(Stateful),
        ),
        (
            "terminating in grace",
            deleting("ReplicaSet", "2026-11-21T11:59:50Z"),
            ready(),
            PodAction::WaitTerminating,
        ),
        (
            "stuck terminating",
            deleting("ReplicaSet", "2026-11-21T11:58:00Z"),
            ready(),
            PodAction::ForceDelete("stuck terminating".into()),
        ),
        (
            "stuck statefulset, node ready",
            deleting("StatefulSet", "2026-11-21T11:58:00Z"),
            ready(),
            PodAction::WaitTerminating,
        ),
        (
            "stuck statefulset, node NotReady (kubelet dead)",
            deleting("StatefulSet", "2026-11-21T11:58:00Z"),
            not_ready(),
            PodAction::ForceDelete("stuck terminating".into()),
        ),
        (
            "stuck pod with a PVC, node ready",
            pod(
                "ReplicaSet",
                "Running",
                json!({}),
                None,
                Some("2026-11-21T11:58:00Z"),
                pvc,
            ),
            ready(),
            PodAction::WaitTerminating,
        ),
    ];
    for (name, pod, node, want) in cases {
        assert_eq!(classify(&pod, node), want, "{name}");
    }
}

#[test]
fn own_pod_is_skipped() {
    let p = simple("ReplicaSet", "Running");
    let own = PodRef {
        namespace: "ns".into(),
        name: "p".into(),
    };
    let node = NodeContext {
        own_pod: Some(&own),
        ..ready()
    };
    assert_eq!(
        classify(&p, node),
        PodAction::Skip("node-drain's own pod".into())
    );
    let other = PodRef {
        namespace: "ns".into(),
        name: "q".into(),
    };
    let node = NodeContext {
        own_pod: Some(&other),
        ..ready()
    };
    assert_eq!(
        classify(&p, node),
        PodAction::Evict(EvictionTier::Stateless)
    );
}

#[test]
fn do_not_disrupt_go_durations_block_until_elapsed() {
    // Started 11:58, now 12:00.
    for (value, until) in [
        ("1h", "2026-11-21T12:58:00+00:00"),
        ("1.5h", "2026-11-21T13:28:00+00:00"),
        ("1h30m", "2026-11-21T13:28:00+00:00"),
        ("2m30.5s", "2026-11-21T12:00:30.500+00:00"),
    ] {
        match classify(&dnd(value), ready()) {
            PodAction::Block {
                reason: BlockReason::DoNotDisruptUntil { until: u, .. },
                ..
            } => {
                assert_eq!(u, until, "{value}")
            }
            other => panic!("{value}: expected a block, got {other:?}"),
        }
    }
}

#[test]
fn an_unreadable_do_not_disrupt_blocks() {
    for value in ["yes", "5d", "1h30", "-5m", "TRUE"] {
        assert!(
            matches!(
                classify(&dnd(value), ready()),
                PodAction::Block {
                    reason: BlockReason::DoNotDisruptUnreadable { .. },
                    ..
                }
            ),
            "{value}"
        );
    }
}

#[test]
fn never_force_deletes_a_stateful_pod_on_a_ready_node() {
    let pvc = json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]});
    for (owner, spec) in [("StatefulSet", json!({})), ("ReplicaSet", pvc)] {
        for waiting in [None, Some("CrashLoopBackOff"), Some("ImagePullBackOff")] {
            for phase in ["Running", "Pending", "Unknown"] {
                for deleting in [None, Some("2026-11-21T11:00:00Z")] {
                    let p = pod(owner, phase, json!({}), waiting, deleting, spec.clone());
                    assert!(
                        !matches!(classify(&p, ready()), PodAction::ForceDelete(_)),
                        "{owner} {phase} {waiting:?} {deleting:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn forced_blockers_keep_their_tier() {
    let planned = plan_removals(
        &[
            dnd("true"),
            pod(
                "StatefulSet",
                "Running",
                json!({DO_NOT_DISRUPT: "true"}),
                None,
                None,
                json!({}),
            ),
        ],
        ready(),
    );
    assert_eq!(planned[0].tier(true), Some(Tier::Stateless));
    assert_eq!(planned[1].tier(true), Some(Tier::Stateful));
    assert_eq!(planned[1].tier(false), None);
    assert_eq!(blockers(&planned).len(), 2);
}
