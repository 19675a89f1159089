//! NodeDrainActor's lifecycle: `started()` (also after every restart) drives the
//! drain from recorded progress, after a backoff when it is a restart. A failed
//! or panicking step stops the actor and the Supervisor restarts it. Transient
//! failures (API server away, 5xx) are retried until the node's deadline; others
//! `MAX_RESTARTS` times, after which the machine restores the node. A node whose
//! restore itself keeps failing is left with its record, for a later run.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use actix::fut::ActorFutureExt;
use actix::{Actor, ActorContext, AsyncContext, Context, Supervised, WrapFuture};
use futures::FutureExt;
use tracing::{error, warn};

use super::{drive, update, NodeDrainActor};
use crate::drain::{DrainOutcome, Phase};
use crate::messages::NodeDrainFinished;

/// Restarts after which a non-transient failure gives up.
pub const MAX_RESTARTS: u32 = 5;
/// The longest pause between two restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A restore is retried this long past the node's deadline before giving up.
const RESTORE_GRACE: Duration = Duration::from_secs(300);

/// 500 ms doubling to 30 s, ±20 % jitter so restarted nodes do not retry together.
pub fn restart_backoff(restarts: u32, unit: f64) -> Duration {
    let base = Duration::from_millis(500)
        .saturating_mul(1 << restarts.min(10))
        .min(MAX_BACKOFF);
    base.mul_f64(0.8 + 0.4 * unit)
}

impl Actor for NodeDrainActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (finished, restarts) = self
            .cx
            .progress
            .get(&self.node)
            .map(|p| (p.outcome.is_some(), p.restarts))
            .unwrap_or((true, 0));
        if finished {
            // An earlier incarnation reported; stay idle until the run drops us.
            return;
        }
        if restarts == 0 {
            self.run(ctx);
        } else {
            let wait = restart_backoff(restarts - 1, fastrand::f64());
            ctx.run_later(wait, |act, ctx| act.run(ctx));
        }
    }
}

impl Supervised for NodeDrainActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        update(&self.cx, &self.node, |p| {
            p.restarts += 1;
            warn!(
                node = self.node.as_str(),
                restarts = p.restarts,
                step = p.step_name(),
                "NodeDrainActor restarting; resuming from recorded progress"
            );
        });
    }
}

impl NodeDrainActor {
    fn run(&mut self, ctx: &mut Context<Self>) {
        let work = drive(self.cx.clone(), self.node.clone(), self.stop.clone());
        // A panic inside a step becomes an Err here, so it stops the actor (and the
        // Supervisor restarts it) instead of destroying it.
        let work = AssertUnwindSafe(work).catch_unwind();
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| match result {
            Ok(Ok(outcome)) => act.finish(outcome),
            Ok(Err(step)) => act.step_failed(step.to_string(), step.transient(), ctx),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                act.step_failed(format!("panicked: {text}"), false, ctx)
            }
        }));
    }

    fn step_failed(&mut self, reason: String, transient: bool, ctx: &mut Context<Self>) {
        let now = tokio::time::Instant::now();
        let (restarts, deadline, failing) = self
            .cx
            .progress
            .get(&self.node)
            .map(|p| (p.restarts, p.deadline, p.failure.is_some()))
            .unwrap_or((u32::MAX, now, true));
        let keep_trying = restarts < MAX_RESTARTS || (transient && now < deadline);
        if keep_trying {
            warn!(
                node = self.node.as_str(),
                reason = reason.as_str(),
                transient,
                "drain step failed; the supervisor restarts the node's actor after a backoff"
            );
            ctx.stop();
            return;
        }
        if !failing {
            let retiring = self
                .cx
                .progress
                .get(&self.node)
                .is_some_and(|p| p.phase == Some(Phase::Drained));
            error!(
                node = self.node.as_str(),
                reason = reason.as_str(),
                "{}",
                if retiring {
                    "the retirement failed too often; trying it again, a last time, with its own retries"
                } else {
                    "drain step failed too often; restoring the node"
                }
            );
            update(&self.cx, &self.node, |p| {
                p.failure = Some(format!("gave up after {restarts} restarts: {reason}"));
                p.restarts = 0;
                // The restore gets its own retries, past the drain's deadline.
                p.deadline = p.deadline.max(now) + RESTORE_GRACE;
            });
            ctx.stop();
            return;
        }
        let phase = self.cx.progress.get(&self.node).and_then(|p| p.phase);
        let (log, outcome) = gave_up(phase, &reason);
        error!(node = self.node.as_str(), reason = reason.as_str(), "{log}");
        self.finish(outcome);
    }

    /// Records the outcome once and tells the run.
    fn finish(&mut self, outcome: DrainOutcome) {
        let (evicted, forced) = update(&self.cx, &self.node, |p| {
            p.outcome = Some(outcome.clone());
            p.counts()
        })
        .unwrap_or((0, 0));
        self.cx.finished.do_send(NodeDrainFinished {
            run_id: self.cx.run_id.clone(),
            node: self.node.clone(),
            outcome,
            pods_evicted: evicted,
            pods_force_deleted: forced,
        });
    }
}

/// How a node whose steps kept failing past every retry ends: the log line
/// and the outcome. A drained node's failing step is its retirement: it is
/// not a restore that failed (the node stays cordoned, recorded as drained).
fn gave_up(phase: Option<Phase>, reason: &str) -> (&'static str, DrainOutcome) {
    let reason = match phase {
        Some(Phase::Drained) => {
            return (
                "drained, but could not retire the node; it stays cordoned and recorded as drained",
                DrainOutcome::Failed {
                    reason: format!(
                        "drained, but could not retire the node ({reason}); it stays cordoned, recorded as drained"
                    ),
                    blockers: vec![],
                },
            )
        }
        _ => format!("could not restore the node ({reason}); a later run restores it"),
    };
    (
        "could not restore the node; its record stays, so a later run restores it",
        DrainOutcome::Failed {
            reason,
            blockers: vec![],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retirement_that_keeps_failing_is_not_a_restore_that_failed() {
        let (log, outcome) = gave_up(Some(Phase::Drained), "HTTP 403: forbidden");
        let DrainOutcome::Failed { reason, .. } = outcome else {
            panic!("a node not retired is reported: {outcome:?}")
        };
        assert!(
            reason.contains("could not retire") && reason.contains("HTTP 403"),
            "{reason}"
        );
        assert!(!reason.contains("restore"), "{reason}");
        assert!(!log.contains("restore"), "{log}");
        let (_, outcome) = gave_up(Some(Phase::Cordoned), "HTTP 403: forbidden");
        assert!(
            matches!(&outcome, DrainOutcome::Failed { reason, .. } if reason.contains("could not restore")),
            "{outcome:?}"
        );
    }

    #[test]
    fn restart_backoff_grows_caps_and_jitters() {
        assert_eq!(restart_backoff(0, 0.5), Duration::from_millis(500));
        assert_eq!(restart_backoff(1, 0.5), Duration::from_secs(1));
        assert_eq!(restart_backoff(5, 0.5), Duration::from_secs(16));
        assert_eq!(restart_backoff(6, 0.5), Duration::from_secs(30));
        assert_eq!(restart_backoff(60, 0.5), Duration::from_secs(30));
        assert_eq!(restart_backoff(0, 0.0), Duration::from_millis(400));
    }
}
