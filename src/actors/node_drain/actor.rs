//! NodeDrainActor's lifecycle: `started()` (also after every restart) resumes the
//! drain from recorded progress; a failed or panicking step stops the actor and
//! the Supervisor restarts it, up to `MAX_RESTARTS` times.

use std::panic::AssertUnwindSafe;

use actix::fut::ActorFutureExt;
use actix::{Actor, ActorContext, AsyncContext, Context, Supervised, WrapFuture};
use futures::FutureExt;
use tracing::{error, warn};

use super::{drain, removal_counts, restore, NodeDrainActor, MAX_RESTARTS};
use crate::messages::NodeDrainFinished;
use crate::progress::DrainOutcome;

impl Actor for NodeDrainActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let finished = self
            .cx
            .progress
            .get(&self.node)
            .is_some_and(|p| p.outcome.is_some());
        if finished {
            // An earlier incarnation reported; stay idle until the run drops us.
            return;
        }
        let cx = self.cx.clone();
        let node = self.node.clone();
        // A panic inside a step becomes an Err here, so it stops the actor (and the
        // Supervisor restarts it) instead of destroying it.
        let work = AssertUnwindSafe(drain(cx, node)).catch_unwind();
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| match result {
            Ok(Ok(outcome)) => act.finish(outcome),
            Ok(Err(step)) => act.step_failed(step.to_string(), ctx),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                act.step_failed(format!("panicked: {text}"), ctx)
            }
        }));
    }
}

impl Supervised for NodeDrainActor {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        if let Some(mut p) = self.cx.progress.get_mut(&self.node) {
            p.restarts += 1;
            warn!(
                node = self.node.as_str(),
                restarts = p.restarts,
                phase = p.phase.name(),
                "NodeDrainActor restarting; resuming from recorded progress"
            );
        }
    }
}

impl NodeDrainActor {
    fn step_failed(&mut self, reason: String, ctx: &mut Context<Self>) {
        let restarts = self
            .cx
            .progress
            .get(&self.node)
            .map(|p| p.restarts)
            .unwrap_or(0);
        if restarts < MAX_RESTARTS {
            warn!(
                node = self.node.as_str(),
                reason = reason.as_str(),
                "drain step failed; the supervisor restarts the node's actor"
            );
            ctx.stop();
            return;
        }
        error!(
            node = self.node.as_str(),
            reason = reason.as_str(),
            "drain step failed too often; restoring the node"
        );
        let cx = self.cx.clone();
        let node = self.node.clone();
        ctx.spawn(
            async move {
                let nodes: kube::Api<k8s_openapi::api::core::v1::Node> =
                    kube::Api::all(cx.client.clone());
                match nodes.get(&node).await {
                    Ok(n) => restore(
                        &cx,
                        &n,
                        format!("gave up after {MAX_RESTARTS} restarts: {reason}"),
                        vec![],
                    )
                    .await
                    .unwrap_or_else(|e| DrainOutcome::Failed {
                        reason: format!("restore failed: {e}"),
                        blockers: vec![],
                    }),
                    Err(e) => DrainOutcome::Failed {
                        reason: format!("{reason}; node unreadable: {e}"),
                        blockers: vec![],
                    },
                }
            }
            .into_actor(self)
            .map(|outcome, act, _ctx| act.finish(outcome)),
        );
    }

    /// Records the outcome once and tells the run.
    fn finish(&mut self, outcome: DrainOutcome) {
        let (evicted, forced) = match self.cx.progress.get_mut(&self.node) {
            Some(mut p) => {
                p.outcome = Some(outcome.clone());
                removal_counts(&p)
            }
            None => (0, 0),
        };
        let _ = self.cx.finished.send(NodeDrainFinished {
            node: self.node.clone(),
            outcome,
            pods_evicted: evicted,
            pods_force_deleted: forced,
        });
    }
}
