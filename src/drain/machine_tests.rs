//! The machine's table: progress and settings in, the next step out. Each case
//! is also what a restarted actor sees, so "resume in every phase" is these rows.

use super::*;
use crate::drain::pods::{BlockReason, EvictionTier, PodAction, PodRef};
use crate::drain::Retire;

fn settings() -> DrainSettings {
    DrainSettings {
        force: false,
        on_timeout: OnTimeout::Restore,
        drain_timeout: Duration::from_secs(600),
        retire: Retire::Nodeclaim,
        node_in_flight: 32,
        orphan_after: Duration::from_secs(60),
    }
}

fn forced() -> DrainSettings {
    DrainSettings {
        on_timeout: OnTimeout::Force,
        ..settings()
    }
}

fn pod(uid: &str, action: PodAction) -> PlannedRemoval {
    PlannedRemoval {
        pod: PodRef {
            namespace: "ns".into(),
            name: format!("pod-{uid}"),
        },
        uid: uid.into(),
        action,
        grace_seconds: 30,
    }
}

fn evict(uid: &str, tier: EvictionTier) -> PlannedRemoval {
    pod(uid, PodAction::Evict(tier))
}

/// A node cordoned by this run, with a plan: a crashlooping pod, two stateless,
/// one stateful, one critical.
fn planned(now: Instant) -> NodeProgress {
    let mut p = NodeProgress::new("run".into(), now + Duration::from_secs(600));
    p.phase = Some(Phase::Cordoned);
    p.cordoned_by_us = Some(true);
    p.planned = Some(vec![
        pod("c", PodAction::ForceDelete("CrashLoopBackOff".into())),
        evict("a", EvictionTier::Stateless),
        evict("b", EvictionTier::Stateless),
        evict("s", EvictionTier::Stateful),
        evict("k", EvictionTier::Critical),
    ]);
    p
}

fn removed(p: &mut NodeProgress, uids: &[&str]) {
    for uid in uids {
        p.removals
            .insert(uid.to_string(), Removal::Removed { forced: false });
    }
}

fn gone(p: &mut NodeProgress, uids: &[&str]) {
    removed(p, uids);
    p.gone.extend(uids.iter().map(|u| u.to_string()));
}

fn uids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn resumes_in_every_phase() {
    let now = Instant::now();
    let s = settings();
    let fresh = NodeProgress::new("run".into(), now + Duration::from_secs(600));
    assert_eq!(next_step(&fresh, &s, now), Step::Claim, "nothing recorded");

    let mut cordoned = fresh.clone();
    cordoned.phase = Some(Phase::Cordoned);
    assert_eq!(
        next_step(&cordoned, &s, now),
        Step::PlanPods,
        "cordoned, no plan"
    );

    let p = planned(now);
    assert_eq!(
        next_step(&p, &s, now),
        Step::Remove {
            tier: Tier::Cleanup,
            uids: uids(&["c"])
        },
        "planned, nothing sent"
    );

    let mut mid = planned(now);
    gone(&mut mid, &["c"]);
    removed(&mut mid, &["a"]);
    mid.removals.insert("b".into(), Removal::InFlight);
    assert_eq!(
        next_step(&mid, &s, now),
        Step::Wait {
            tier: Tier::Stateless,
            uids: uids(&["a", "b"]),
            until: mid.deadline
        },
        "mid-eviction: what is removed or in flight is never sent again"
    );

    let mut all_gone = planned(now);
    gone(&mut all_gone, &["c", "a", "b", "s", "k"]);
    assert_eq!(
        next_step(&all_gone, &s, now),
        Step::Retire,
        "every pod gone"
    );

    let mut drained = fresh.clone();
    drained.phase = Some(Phase::Drained);
    assert_eq!(
        next_step(&drained, &s, now),
        Step::Retire,
        "drained, retirement pending"
    );
    drained.retired = Some("NodeClaim x deleted".into());
    assert!(matches!(
        next_step(&drained, &s, now),
        Step::Finish(DrainOutcome::Drained {
            retirement_done: true,
            ..
        })
    ));

    let mut restored = planned(now);
    restored.phase = Some(Phase::Restored);
    assert!(
        matches!(
            next_step(&restored, &s, now),
            Step::Finish(DrainOutcome::Failed { .. })
        ),
        "restore is terminal: a restart after it sends nothing"
    );
}

#[test]
fn tiers_go_in_order_each_gone_before_the_next() {
    let now = Instant::now();
    let s = settings();
    let mut p = planned(now);
    let mut seen = vec![];
    for _ in 0..20 {
        match next_step(&p, &s, now) {
            Step::Remove { tier, uids } => {
                seen.push(tier);
                for u in &uids {
                    p.removals
                        .insert(u.clone(), Removal::Removed { forced: false });
                }
            }
            Step::Wait { uids, .. } => p.gone.extend(uids),
            Step::Retire => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            Tier::Cleanup,
            Tier::Stateless,
            Tier::Stateful,
            Tier::Critical
        ]
    );
}

#[test]
fn blockers_restore_unless_forced_and_forced_blockers_keep_their_tier() {
    let now = Instant::now();
    let mut p = planned(now);
    p.planned.as_mut().unwrap().push(pod(
        "d",
        PodAction::Block {
            reason: BlockReason::DoNotDisrupt,
            tier: EvictionTier::Stateful,
        },
    ));
    match next_step(&p, &settings(), now) {
        Step::Restore {
            cause: RestoreCause::Blocked,
            blockers,
            ..
        } => {
            assert_eq!(blockers.len(), 1);
            assert!(blockers[0].starts_with("ns/pod-d"));
        }
        other => panic!("expected a blocked restore, got {other:?}"),
    }
    let force = DrainSettings {
        force: true,
        ..settings()
    };
    gone(&mut p, &["c", "a", "b"]);
    assert_eq!(
        next_step(&p, &force, now),
        Step::Remove {
            tier: Tier::Stateful,
            uids: uids(&["s", "d"])
        }
    );
}

#[test]
fn a_blocked_eviction_restores() {
    let now = Instant::now();
    let mut p = planned(now);
    gone(&mut p, &["c"]);
    p.removals.insert(
        "a".into(),
        Removal::Blocked {
            reason: "more than one PDB".into(),
        },
    );
    assert!(matches!(
        next_step(&p, &settings(), now),
        Step::Restore {
            cause: RestoreCause::Blocked,
            ..
        }
    ));
}

#[test]
fn timeout_policy() {
    let now = Instant::now();
    let mut p = planned(now);
    gone(&mut p, &["c"]);
    removed(&mut p, &["a"]);
    p.removals.insert(
        "b".into(),
        Removal::Refused {
            pdb: Some("web".into()),
        },
    );
    p.pdb_refusals.insert("web".into(), 3);
    match next_step(&p, &settings(), now) {
        Step::Restore {
            cause: RestoreCause::Timeout,
            blockers,
            ..
        } => {
            assert!(
                blockers.contains(&"PodDisruptionBudget web".to_string()),
                "{blockers:?}"
            )
        }
        other => panic!("restore on timeout, got {other:?}"),
    }
    // Past the deadline with nothing refused and nothing in flight: timeout too.
    let mut late = planned(now);
    gone(&mut late, &["c"]);
    removed(&mut late, &["a", "b"]);
    let after = late.deadline + Duration::from_secs(1);
    assert!(matches!(
        next_step(&late, &settings(), after),
        Step::Restore {
            cause: RestoreCause::Timeout,
            ..
        }
    ));
    // An eviction still in flight at the deadline is waited for: the evictor answers.
    late.removals.insert("b".into(), Removal::InFlight);
    assert!(matches!(
        next_step(&late, &settings(), after),
        Step::Wait { .. }
    ));

    // --on-timeout force: machine_force_tests.rs.
}

#[test]
fn a_stop_is_never_a_timeout() {
    let now = Instant::now();
    for stop in [
        StopReason::Interrupted {
            signal: "SIGINT".into(),
        },
        StopReason::Cancelled { by: "admin".into() },
    ] {
        let mut p = planned(now);
        gone(&mut p, &["c"]);
        p.removals.insert(
            "a".into(),
            Removal::Refused {
                pdb: Some("web".into()),
            },
        );
        p.stop = Some(stop.clone());
        // Even past the deadline, with --on-timeout force: a restore, not a force.
        let step = next_step(&p, &forced(), p.deadline + Duration::from_secs(5));
        match step {
            Step::Restore { cause, reason, .. } => {
                assert_ne!(cause, RestoreCause::Timeout);
                assert_eq!(reason, stop.to_string());
            }
            other => panic!("{stop:?}: expected a restore, got {other:?}"),
        }
        // Also when it arrives while forcing.
        p.force_deadline = Some(now);
        assert!(matches!(
            next_step(&p, &forced(), now),
            Step::Restore { .. }
        ));
    }
    // Before the claim: nothing to restore.
    let mut fresh = NodeProgress::new("run".into(), now);
    fresh.stop = Some(StopReason::Interrupted {
        signal: "SIGTERM".into(),
    });
    assert!(matches!(
        next_step(&fresh, &settings(), now),
        Step::Finish(DrainOutcome::Failed { .. })
    ));
}

#[test]
fn lost_ownership_touches_nothing() {
    let now = Instant::now();
    let mut p = planned(now);
    p.stop = Some(StopReason::LostOwnership {
        detail: "run b".into(),
    });
    assert!(matches!(
        next_step(&p, &settings(), now),
        Step::Finish(DrainOutcome::Failed { .. })
    ));
}

#[test]
fn a_node_that_disappeared() {
    let now = Instant::now();
    let mut p = planned(now);
    p.node_gone = true;
    assert_eq!(
        next_step(&p, &settings(), now),
        Step::Finish(DrainOutcome::RetiredElsewhere)
    );
    p.phase = Some(Phase::Drained);
    p.retired = Some("NodeClaim x deleted".into());
    assert!(matches!(
        next_step(&p, &settings(), now),
        Step::Finish(DrainOutcome::Drained { .. })
    ));
}

#[test]
fn failed_and_stopped_removals_are_sent_again() {
    let now = Instant::now();
    let mut p = planned(now);
    gone(&mut p, &["c"]);
    p.removals.insert(
        "a".into(),
        Removal::Failed {
            reason: "HTTP 403".into(),
            code: Some(403),
        },
    );
    p.removals.insert("b".into(), Removal::InFlight);
    assert_eq!(
        next_step(&p, &settings(), now),
        Step::Remove {
            tier: Tier::Stateless,
            uids: uids(&["a"])
        }
    );
}

#[test]
fn terminating_pods_are_waited_for_not_sent() {
    let now = Instant::now();
    let mut p = NodeProgress::new("run".into(), now + Duration::from_secs(60));
    p.phase = Some(Phase::Cordoned);
    p.planned = Some(vec![pod("t", PodAction::WaitTerminating)]);
    assert!(matches!(
        next_step(&p, &settings(), now),
        Step::Wait {
            tier: Tier::Cleanup,
            ..
        }
    ));
}

#[path = "machine_force_tests.rs"]
mod force;
