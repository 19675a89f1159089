use actix::{Handler, ResponseFuture};

use super::PlannerActor;
use crate::error::Result;
use crate::messages::PlanWave;
use crate::plan::WavePlan;

impl Handler<PlanWave> for PlannerActor {
    type Result = ResponseFuture<Result<WavePlan>>;

    fn handle(&mut self, msg: PlanWave, _ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move { super::plan(&client, msg, chrono::Utc::now()).await })
    }
}
