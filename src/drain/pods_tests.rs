//! Pod classification (SPEC §3): the table of what each pod is for a drain,
//! and node-drain's own pod.

use super::test_pods::*;
use super::*;
use serde_json::json;

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
