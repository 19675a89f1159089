use actix::{Handler, ResponseFuture};

use super::MetricsActor;
use crate::error::Result;
use crate::messages::MeasureAllocateRates;
use crate::plan::AllocateRates;

impl Handler<MeasureAllocateRates> for MetricsActor {
    type Result = ResponseFuture<Result<AllocateRates>>;

    fn handle(&mut self, msg: MeasureAllocateRates, _ctx: &mut Self::Context) -> Self::Result {
        // Queries touch no actor state: the future owns clones, so the mailbox
        // keeps moving while Prometheus answers.
        let prometheus = self.prometheus.clone();
        let generation = self.generation;
        Box::pin(async move { super::measure(&prometheus, generation, &msg.nodepool).await })
    }
}
