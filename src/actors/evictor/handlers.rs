use actix::{Handler, ResponseFuture};

use super::PodEvictorActor;
use crate::drain::progress::Removal;
use crate::messages::RemovePod;

impl Handler<RemovePod> for PodEvictorActor {
    // Each removal runs as its own future: a PDB backoff on one pod never holds
    // the mailbox (no AtomicResponse), so the others keep moving.
    type Result = ResponseFuture<Removal>;

    fn handle(&mut self, msg: RemovePod, _ctx: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(async move { super::remove_pod(&shared, msg).await })
    }
}
