use actix::Message;

/// Something to tell Slack; queued, never awaited by the sender.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Notify(pub crate::slack::Notice);

/// Waits (at most `timeout`) until every queued notification was delivered,
/// refused or given up; true when none is left. Used once, before exit.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct FlushNotifications {
    pub timeout: std::time::Duration,
}

/// The notifier's counters.
#[derive(Debug, Message)]
#[rtype(result = "crate::actors::notifier::NotifierStatsSnapshot")]
pub struct GetNotifierStats;
