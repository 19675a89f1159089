use actix::{Actor, Context};
use tokio::sync::mpsc;

use super::{log_off, run_sender, NotifierActor};

impl Actor for NotifierActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let Some(webhook) = self.config.webhook.clone() else {
            log_off();
            return;
        };
        let (tx, rx) = mpsc::channel(self.config.queue_capacity.max(1));
        self.queue = Some(tx);
        // Its own task: a slow Slack never holds this actor's mailbox.
        actix::spawn(run_sender(
            self.config.clone(),
            webhook,
            rx,
            self.stats.clone(),
        ));
    }
}
