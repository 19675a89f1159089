//! PlannerActor's handlers: each a few lines calling a method.

use actix::{Handler, MessageResult, ResponseActFuture, ResponseFuture};
use tokio::sync::oneshot;

use super::PlannerActor;
use crate::error::{Error, Result};
use crate::messages::{
    Admit, Admitted, AwaitRun, CancelNode, CancelRun, GetStatus, HandOver, NodeDrainFinished,
    PlanWave, RecoverNodes, Recovered, Requeue, RunId, RunReport, SetPaused, StartRun,
};
use crate::plan::WavePlan;

impl Handler<PlanWave> for PlannerActor {
    type Result = ResponseFuture<Result<WavePlan>>;

    fn handle(&mut self, msg: PlanWave, _ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        let identity = self.deps.identity.clone();
        let cache = self.node_cache.clone();
        Box::pin(async move {
            super::plan::plan_cached(
                cache.as_deref(),
                &client,
                msg,
                chrono::Utc::now(),
                identity.own_pod.as_ref(),
                identity.own_node.as_deref(),
            )
            .await
        })
    }
}

impl Handler<StartRun> for PlannerActor {
    type Result = Result<RunId>;

    fn handle(&mut self, msg: StartRun, ctx: &mut Self::Context) -> Self::Result {
        self.start_run(msg, ctx)
    }
}

impl Handler<AwaitRun> for PlannerActor {
    type Result = ResponseFuture<Result<RunReport>>;

    fn handle(&mut self, msg: AwaitRun, _ctx: &mut Self::Context) -> Self::Result {
        let Some(run) = self.runs.get_mut(&msg.run_id) else {
            let id = msg.run_id;
            return Box::pin(async move { Err(Error::Usage(format!("no run {id}"))) });
        };
        if let Some(report) = run.report.clone() {
            return Box::pin(async move { Ok(report) });
        }
        let (tx, rx) = oneshot::channel();
        run.waiters.push(tx);
        Box::pin(async move {
            rx.await
                .map_err(|_| Error::Internal("the run ended without a report".into()))
        })
    }
}

impl Handler<NodeDrainFinished> for PlannerActor {
    type Result = ();

    fn handle(&mut self, msg: NodeDrainFinished, ctx: &mut Self::Context) {
        // A queued request's record that landed after the claim goes too.
        self.forget_queued(&msg.node, ctx);
        self.node_finished(msg, ctx)
    }
}

impl Handler<CancelRun> for PlannerActor {
    type Result = usize;

    fn handle(&mut self, msg: CancelRun, _ctx: &mut Self::Context) -> usize {
        self.cancel_run(msg.run_id.as_deref(), &msg.reason)
    }
}

impl Handler<CancelNode> for PlannerActor {
    type Result = bool;

    fn handle(&mut self, msg: CancelNode, _ctx: &mut Self::Context) -> bool {
        self.stop_node(&msg.node, &msg.reason)
    }
}

impl Handler<GetStatus> for PlannerActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _msg: GetStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

impl Handler<RecoverNodes> for PlannerActor {
    type Result = ResponseActFuture<Self, Result<Recovered>>;

    fn handle(&mut self, msg: RecoverNodes, _ctx: &mut Self::Context) -> Self::Result {
        self.recover(msg)
    }
}

impl Handler<Admit> for PlannerActor {
    type Result = ResponseActFuture<Self, Result<Admitted>>;

    fn handle(&mut self, msg: Admit, _ctx: &mut Self::Context) -> Self::Result {
        self.admit(msg)
    }
}

impl Handler<SetPaused> for PlannerActor {
    type Result = ();

    fn handle(&mut self, msg: SetPaused, _ctx: &mut Self::Context) {
        self.paused = msg.0;
    }
}

impl Handler<HandOver> for PlannerActor {
    type Result = ResponseFuture<Vec<String>>;

    fn handle(&mut self, _msg: HandOver, ctx: &mut Self::Context) -> Self::Result {
        // The queued requests stay recorded on their nodes for the next leader.
        self.pending.clear();
        self.records.clear();
        self.merged.clear();
        self.paused = true;
        Box::pin(self.hand_over(ctx))
    }
}

impl Handler<Requeue> for PlannerActor {
    type Result = ();

    fn handle(&mut self, msg: Requeue, ctx: &mut Self::Context) {
        self.requeue(msg, ctx)
    }
}
