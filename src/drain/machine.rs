//! The drain of one node as a state machine: `next_step(progress, settings, now)`
//! names the one thing to do next from what is recorded — the phase the Node
//! records, the plan, how each removal went, which pods are gone, a stop — and
//! nothing else. The NodeDrainActor runs that step, records what happened, and
//! asks again; after a restart it asks the same question of the same record, so
//! resuming is not a separate code path.
//!
//! Rules, in order: an outcome is final; a Node gone ends the drain (retired by
//! us, or by someone else); a restored node is never touched again; a stop
//! restores (never a timeout, never forced); blockers restore unless forced;
//! tiers go in order, each gone before the next; at the deadline `--on-timeout`
//! restores, or forces tier by tier, each tier in a window of its own counted
//! from its own start, all inside one overall limit; never a Force once the
//! tier's window is spent.

use std::collections::BTreeSet;

use tokio::time::{Duration, Instant};

use super::pods::{blockers, PlannedRemoval};
use super::progress::{NodeProgress, Removal};
use super::{DrainOutcome, DrainSettings, OnTimeout, Phase, StopReason, Tier};

/// Extra time a forced deletion gets beyond the longest grace period.
const FORCE_MARGIN: Duration = Duration::from_secs(30);

/// The Kubernetes Event reason of a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreCause {
    Blocked,
    Timeout,
    Interrupted,
    Cancelled,
    /// A step kept failing (e.g. RBAC): give the node back.
    Failed,
}

impl RestoreCause {
    /// Blocked drains say so; every other restore is a failed drain whose note
    /// says why (timeout, interrupted, cancelled, a step that kept failing).
    pub fn event_reason(self) -> &'static str {
        match self {
            RestoreCause::Blocked => "DrainBlocked",
            _ => "DrainFailed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Read the Node; record the intent and cordon in one PATCH (or resume what
    /// the Node records for this run).
    Claim,
    /// List the node's pods and plan their removal, once.
    PlanPods,
    /// Send the removal of these pods of `tier` through the evictor pool.
    Remove { tier: Tier, uids: Vec<String> },
    /// Wait (one watch of the node's pods) until these pods are gone, `until` at most.
    Wait {
        tier: Tier,
        uids: Vec<String>,
        until: Instant,
    },
    /// `--on-timeout force` begins: every forced deletion is over by `until`
    /// (the windows of the tiers left, end to end).
    BeginForce { until: Instant },
    /// The forced deletions of `tier` begin: its window ends at `until`.
    BeginForceTier { tier: Tier, until: Instant },
    /// Delete these remaining pods of `tier` with their own grace period (PDBs bypassed).
    Force { tier: Tier, uids: Vec<String> },
    /// Record `drained` and the retirement, then retire as `--retire` says.
    Retire,
    /// Give the node back: uncordon (if node-drain cordoned it) and record it.
    Restore {
        cause: RestoreCause,
        reason: String,
        blockers: Vec<String>,
    },
    /// The drain is over.
    Finish(DrainOutcome),
}

pub fn next_step(p: &NodeProgress, s: &DrainSettings, now: Instant) -> Step {
    if let Some(outcome) = &p.outcome {
        return Step::Finish(outcome.clone());
    }
    if p.node_gone {
        return Step::Finish(match (&p.phase, &p.retired) {
            (Some(Phase::Drained), Some(retired)) => DrainOutcome::Drained {
                retired: retired.clone(),
                retirement_done: true,
            },
            _ => DrainOutcome::RetiredElsewhere,
        });
    }
    if let Some(StopReason::LostOwnership { detail }) = &p.stop {
        // Another run owns the node now: it drains or restores it. Touch nothing.
        return Step::Finish(failed(
            format!("another run owns the node: {detail}"),
            vec![],
        ));
    }
    if let (Some(StopReason::HandedOver { .. }), Some(Phase::Cordoned)) = (&p.stop, p.phase) {
        // The record stays for the next leader, which resumes it. Touch nothing.
        return Step::Finish(failed(p.stop.as_ref().unwrap().to_string(), vec![]));
    }
    match p.phase {
        None => match &p.stop {
            Some(stop) => Step::Finish(failed(
                format!("{stop} before the node was touched"),
                vec![],
            )),
            None => Step::Claim,
        },
        Some(Phase::Restored) => Step::Finish(failed("restored".into(), vec![])),
        Some(Phase::Drained) => match &p.retired {
            Some(retired) => Step::Finish(DrainOutcome::Drained {
                retired: retired.clone(),
                retirement_done: p.retire_note.is_none(),
            }),
            None => Step::Retire,
        },
        Some(Phase::Cordoned) => cordoned(p, s, now),
    }
}

fn failed(reason: String, blockers: Vec<String>) -> DrainOutcome {
    DrainOutcome::Failed { reason, blockers }
}

fn cordoned(p: &NodeProgress, s: &DrainSettings, now: Instant) -> Step {
    if let Some(stop) = &p.stop {
        let cause = match stop {
            StopReason::Interrupted { .. } => RestoreCause::Interrupted,
            _ => RestoreCause::Cancelled,
        };
        return Step::Restore {
            cause,
            reason: stop.to_string(),
            blockers: vec![],
        };
    }
    if let Some(failure) = &p.failure {
        return Step::Restore {
            cause: RestoreCause::Failed,
            reason: failure.clone(),
            blockers: vec![],
        };
    }
    let Some(planned) = &p.planned else {
        return Step::PlanPods;
    };
    let blocking = blockers(planned);
    if !blocking.is_empty() && !s.force {
        return Step::Restore {
            cause: RestoreCause::Blocked,
            reason: "blocked by pods that would not come back or ask not to be disrupted".into(),
            blockers: blocking,
        };
    }
    let blocked: Vec<String> = planned
        .iter()
        .filter_map(|pod| match p.removals.get(&pod.uid) {
            Some(Removal::Blocked { reason }) => Some(format!("{} ({reason})", pod.pod)),
            _ => None,
        })
        .collect();
    if !blocked.is_empty() {
        return Step::Restore {
            cause: RestoreCause::Blocked,
            reason: "evictions blocked".into(),
            blockers: blocked,
        };
    }
    for tier in [
        Tier::Cleanup,
        Tier::Stateless,
        Tier::Stateful,
        Tier::Critical,
    ] {
        let pending: Vec<&PlannedRemoval> = planned
            .iter()
            .filter(|pod| pod.tier(s.force) == Some(tier) && !p.gone.contains(&pod.uid))
            .collect();
        if pending.is_empty() {
            continue;
        }
        let uids = |pods: &[&PlannedRemoval]| pods.iter().map(|p| p.uid.clone()).collect();
        let removal = |pod: &PlannedRemoval| p.removals.get(&pod.uid);
        if let Some(overall) = p.force_deadline {
            return forcing(p, tier, &pending, overall, now);
        }
        let refused = pending
            .iter()
            .any(|pod| matches!(removal(pod), Some(Removal::Refused { .. })));
        let in_flight = pending
            .iter()
            .any(|pod| matches!(removal(pod), Some(Removal::InFlight)));
        if refused || (now >= p.deadline && !in_flight) {
            return match s.on_timeout {
                OnTimeout::Restore => Step::Restore {
                    cause: RestoreCause::Timeout,
                    reason: format!("drain timeout ({:?})", s.drain_timeout),
                    blockers: timeout_blockers(p, &pending),
                },
                OnTimeout::Force => Step::BeginForce {
                    until: now + force_limit(planned, &p.gone, s.force),
                },
            };
        }
        let unsent: Vec<&PlannedRemoval> = pending
            .iter()
            .copied()
            .filter(|pod| {
                pod.needs_request()
                    && matches!(
                        removal(pod),
                        None | Some(Removal::Failed { .. } | Removal::Stopped)
                    )
            })
            .collect();
        if !unsent.is_empty() {
            return Step::Remove {
                tier,
                uids: uids(&unsent),
            };
        }
        return Step::Wait {
            tier,
            uids: uids(&pending),
            until: p.deadline,
        };
    }
    Step::Retire
}

fn names(pods: &[&PlannedRemoval]) -> Vec<String> {
    pods.iter().map(|p| p.pod.to_string()).collect()
}

/// The pods still there and the PDBs that refused, for a timeout report.
fn timeout_blockers(p: &NodeProgress, pending: &[&PlannedRemoval]) -> Vec<String> {
    let mut out = names(pending);
    out.extend(
        p.pdb_refusals
            .keys()
            .map(|pdb| format!("PodDisruptionBudget {pdb}")),
    );
    out
}

/// `--on-timeout force`, tier by tier: each tier gets a window of its own from
/// its own start (never past the node's `overall` limit); what is left of it
/// is deleted with its own grace period, then waited for. No Force once the
/// window is spent: the node is restored instead.
fn forcing(
    p: &NodeProgress,
    tier: Tier,
    pending: &[&PlannedRemoval],
    overall: Instant,
    now: Instant,
) -> Step {
    let spent = |why: &str| Step::Restore {
        cause: RestoreCause::Timeout,
        reason: why.to_string(),
        blockers: names(pending),
    };
    let window = match p.force_window {
        Some((forced, until)) if forced == tier => until,
        _ if now >= overall => {
            return spent("the time for forced deletions ran out before this tier");
        }
        _ => {
            return Step::BeginForceTier {
                tier,
                until: (now + tier_window(pending)).min(overall),
            }
        }
    };
    if now >= window {
        return spent("pods remained after forced deletion");
    }
    let to_force: Vec<String> = pending
        .iter()
        .filter(|pod| {
            pod.needs_request()
                && !matches!(
                    p.removals.get(&pod.uid),
                    Some(Removal::Removed { .. } | Removal::InFlight)
                )
        })
        .map(|pod| pod.uid.clone())
        .collect();
    if !to_force.is_empty() {
        return Step::Force {
            tier,
            uids: to_force,
        };
    }
    Step::Wait {
        tier,
        uids: pending.iter().map(|pod| pod.uid.clone()).collect(),
        until: window,
    }
}

/// How long the forced deletions of one tier may take: the longest grace
/// period among its pods, plus a margin.
fn tier_window(pods: &[&PlannedRemoval]) -> Duration {
    let longest = pods
        .iter()
        .map(|p| p.grace_seconds.max(0) as u64)
        .max()
        .unwrap_or(0);
    Duration::from_secs(longest) + FORCE_MARGIN
}

/// The node's overall limit for forcing: the windows of every tier left, end to end.
fn force_limit(planned: &[PlannedRemoval], gone: &BTreeSet<String>, force: bool) -> Duration {
    let mut by_tier: std::collections::BTreeMap<Tier, Vec<&PlannedRemoval>> = Default::default();
    for pod in planned.iter().filter(|p| !gone.contains(&p.uid)) {
        if let Some(tier) = pod.tier(force) {
            by_tier.entry(tier).or_default().push(pod);
        }
    }
    by_tier.values().map(|pods| tier_window(pods)).sum()
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
