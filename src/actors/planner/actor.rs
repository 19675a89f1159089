use std::time::Duration;

use actix::{Actor, AsyncContext, Context};

use super::PlannerActor;

impl Actor for PlannerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Requests that waited for room are admitted again on every tick too:
        // room also comes from runs of other processes ending.
        ctx.run_interval(Duration::from_secs(5), |act, ctx| {
            if !act.pending.is_empty() {
                act.retry_pending(ctx);
            }
        });
    }
}
