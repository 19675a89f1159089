//! `do-not-disrupt` read as Karpenter reads it (a Go duration blocks until it
//! has elapsed, an unreadable value blocks), never a force-deleted stateful
//! pod on a Ready node, and forced blockers keeping their tier.

use super::test_pods::{dnd, pod, ready};
use super::*;
use serde_json::json;

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
