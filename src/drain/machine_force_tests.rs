//! `--on-timeout force`: tiers still go one after another, so each tier gets a
//! window of its own counted from its own start (its longest grace period plus
//! a margin), inside the node's overall limit for forcing (the windows of the
//! tiers left when forcing began, end to end). No Force once a window is spent:
//! a PDB is never bypassed for a node that is restored at once anyway.

use super::*;

/// Past the deadline: the crashlooping pod is gone, `a` evicted, `b` refused by
/// a PDB; `s` (stateful) and `k` (critical) not sent yet.
fn timed_out(now: Instant) -> NodeProgress {
    let mut p = planned(now);
    gone(&mut p, &["c"]);
    removed(&mut p, &["a"]);
    p.removals.insert(
        "b".into(),
        Removal::Refused {
            pdb: Some("web".into()),
        },
    );
    p
}

/// Applies the bookkeeping steps as the actor does; returns the first other step.
fn settle(p: &mut NodeProgress, now: Instant) -> Step {
    for _ in 0..4 {
        match next_step(p, &forced(), now) {
            Step::BeginForce { until } => p.force_deadline = Some(until),
            Step::BeginForceTier { tier, until } => p.force_window = Some((tier, until)),
            other => return other,
        }
    }
    panic!("bookkeeping steps without end")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn forcing_begins_with_an_overall_limit_of_every_tier_window_end_to_end() {
    let now = Instant::now();
    let p = timed_out(now);
    // Stateless, stateful, critical left: 3 × (30 s grace + 30 s margin).
    assert_eq!(
        next_step(&p, &forced(), now),
        Step::BeginForce {
            until: now + secs(180)
        }
    );
}

#[test]
fn each_tier_gets_its_own_window_from_its_own_start() {
    let now = Instant::now();
    let mut p = timed_out(now);
    p.force_deadline = Some(now + secs(180));
    assert_eq!(
        next_step(&p, &forced(), now),
        Step::BeginForceTier {
            tier: Tier::Stateless,
            until: now + secs(60)
        }
    );
    p.force_window = Some((Tier::Stateless, now + secs(60)));
    assert_eq!(
        next_step(&p, &forced(), now),
        Step::Force {
            tier: Tier::Stateless,
            uids: uids(&["b"])
        },
        "only what was not removed is forced, and only this tier"
    );
    p.removals
        .insert("b".into(), Removal::Removed { forced: true });
    assert_eq!(
        next_step(&p, &forced(), now + secs(10)),
        Step::Wait {
            tier: Tier::Stateless,
            uids: uids(&["a", "b"]),
            until: now + secs(60)
        }
    );
    // The stateless tier is gone 50 s in: the stateful tier's window starts then.
    p.gone.extend(uids(&["a", "b"]));
    let later = now + secs(50);
    assert_eq!(
        next_step(&p, &forced(), later),
        Step::BeginForceTier {
            tier: Tier::Stateful,
            until: later + secs(60)
        },
        "the next tier's window counts from its own start"
    );
    p.force_window = Some((Tier::Stateful, later + secs(60)));
    assert_eq!(
        next_step(&p, &forced(), now + secs(61)),
        Step::Force {
            tier: Tier::Stateful,
            uids: uids(&["s"])
        },
        "past the first tier's window, inside its own: forced"
    );
}

#[test]
fn no_force_once_the_tier_window_is_spent() {
    let now = Instant::now();
    let mut p = timed_out(now);
    gone(&mut p, &["a", "b"]);
    p.force_deadline = Some(now + secs(180));
    p.force_window = Some((Tier::Stateful, now + secs(60)));
    // A forced deletion of `s` failed (5xx) and the window is over: restore, no Force.
    p.removals.insert(
        "s".into(),
        Removal::Failed {
            reason: "HTTP 503".into(),
            code: Some(503),
        },
    );
    for at in [now + secs(60), now + secs(61)] {
        match next_step(&p, &forced(), at) {
            Step::Restore {
                cause: RestoreCause::Timeout,
                blockers,
                ..
            } => assert_eq!(blockers, vec!["ns/pod-s".to_string()]),
            other => panic!("the window is spent: restore, got {other:?}"),
        }
    }
    // Forced and still there at the window's end: restore too.
    p.removals
        .insert("s".into(), Removal::Removed { forced: true });
    assert!(matches!(
        next_step(&p, &forced(), now + secs(60)),
        Step::Restore {
            cause: RestoreCause::Timeout,
            ..
        }
    ));
}

#[test]
fn a_tier_window_never_reaches_past_the_overall_limit() {
    let now = Instant::now();
    let mut p = timed_out(now);
    gone(&mut p, &["a", "b"]);
    p.force_deadline = Some(now + secs(100));
    p.force_window = Some((Tier::Stateless, now + secs(60)));
    assert_eq!(
        next_step(&p, &forced(), now + secs(70)),
        Step::BeginForceTier {
            tier: Tier::Stateful,
            until: now + secs(100)
        },
        "clipped to the overall limit"
    );
    // The overall limit is spent before the critical tier begins: no Force.
    gone(&mut p, &["s"]);
    p.force_window = Some((Tier::Stateful, now + secs(100)));
    match next_step(&p, &forced(), now + secs(100)) {
        Step::Restore {
            cause: RestoreCause::Timeout,
            blockers,
            ..
        } => assert_eq!(blockers, vec!["ns/pod-k".to_string()]),
        other => panic!("overall limit spent: restore, got {other:?}"),
    }
}

#[test]
fn forcing_a_whole_node_goes_tier_by_tier_and_ends() {
    let now = Instant::now();
    let mut p = timed_out(now);
    let mut at = now;
    let mut forced_tiers = vec![];
    for _ in 0..20 {
        match settle(&mut p, at) {
            Step::Force { tier, uids } => {
                forced_tiers.push(tier);
                for u in uids {
                    p.removals.insert(u, Removal::Removed { forced: true });
                }
            }
            Step::Wait { uids, .. } => {
                // Each tier takes 40 s to go: every window is 60 s, each from its start.
                at += secs(40);
                p.gone.extend(uids);
            }
            Step::Retire => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        forced_tiers,
        vec![Tier::Stateless, Tier::Stateful, Tier::Critical]
    );
}
