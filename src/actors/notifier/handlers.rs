use std::sync::atomic::Ordering;

use actix::{Handler, MessageResult, ResponseFuture};

use super::NotifierActor;
use crate::messages::{FlushNotifications, GetNotifierStats, Notify};

impl Handler<Notify> for NotifierActor {
    type Result = ();

    fn handle(&mut self, msg: Notify, _ctx: &mut Self::Context) {
        self.enqueue(msg.0);
    }
}

impl Handler<FlushNotifications> for NotifierActor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: FlushNotifications, _ctx: &mut Self::Context) -> Self::Result {
        let stats = self.stats.clone();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + msg.timeout;
            while stats.pending.load(Ordering::SeqCst) > 0 {
                if tokio::time::Instant::now() >= deadline {
                    return false;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            true
        })
    }
}

impl Handler<GetNotifierStats> for NotifierActor {
    type Result = MessageResult<GetNotifierStats>;

    fn handle(&mut self, _msg: GetNotifierStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats.snapshot())
    }
}
