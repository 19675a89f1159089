//! NotifierActor: Slack, never on the critical path. `Notify` only puts the
//! notice on a bounded queue (full → dropped with a warning); one sender task
//! delivers in order, paced to Slack's 1 message/s with a small burst, retrying
//! 5xx, timeouts and 429 (after Retry-After) up to `max_attempts`, and never
//! retrying other 4xx (Slack's error code is logged). The webhook URL is a
//! `WebhookUrl`, which never prints, and request errors are logged without it.

mod actor;
mod handlers;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::slack::{payload, slack_verdict, Notice, SlackVerdict, WebhookUrl};

#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// None: notifications off.
    pub webhook: Option<WebhookUrl>,
    /// Per request; a hanging Slack costs at most this per attempt.
    pub timeout: Duration,
    pub max_attempts: u32,
    pub queue_capacity: usize,
}

impl NotifierConfig {
    pub fn new(webhook: Option<WebhookUrl>) -> Self {
        Self {
            webhook,
            timeout: Duration::from_secs(5),
            max_attempts: 5,
            queue_capacity: 100,
        }
    }
}

/// Counters of what the notifier did, for tests and the status endpoint.
#[derive(Debug, Default)]
pub struct NotifierStats {
    pub queued: AtomicU64,
    pub requests: AtomicU64,
    pub delivered: AtomicU64,
    pub retries: AtomicU64,
    pub refused: AtomicU64,
    pub gave_up: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    /// Queued and not yet finished (delivered, refused or given up).
    pub pending: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NotifierStatsSnapshot {
    pub queued: u64,
    pub requests: u64,
    pub delivered: u64,
    pub retries: u64,
    pub refused: u64,
    pub gave_up: u64,
    pub dropped_queue_full: u64,
    pub pending: u64,
}

impl NotifierStats {
    pub fn snapshot(&self) -> NotifierStatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        NotifierStatsSnapshot {
            queued: g(&self.queued),
            requests: g(&self.requests),
            delivered: g(&self.delivered),
            retries: g(&self.retries),
            refused: g(&self.refused),
            gave_up: g(&self.gave_up),
            dropped_queue_full: g(&self.dropped_queue_full),
            pending: g(&self.pending),
        }
    }
}

pub struct NotifierActor {
    config: NotifierConfig,
    /// The bounded queue to the sender task; None when notifications are off.
    queue: Option<mpsc::Sender<Notice>>,
    stats: Arc<NotifierStats>,
}

impl NotifierActor {
    pub fn new(config: NotifierConfig) -> Self {
        Self {
            config,
            queue: None,
            stats: Arc::new(NotifierStats::default()),
        }
    }

    fn enqueue(&self, notice: Notice) {
        let Some(queue) = &self.queue else { return };
        self.stats.pending.fetch_add(1, Ordering::SeqCst);
        match queue.try_send(notice) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::SeqCst);
            }
            Err(_) => {
                self.stats.pending.fetch_sub(1, Ordering::SeqCst);
                self.stats.dropped_queue_full.fetch_add(1, Ordering::SeqCst);
                warn!("Slack queue full: notification dropped (Slack is slow or down; the drain goes on)");
            }
        }
    }
}

/// The sender task: delivers queued notices in order until the queue closes.
async fn run_sender(
    config: NotifierConfig,
    webhook: WebhookUrl,
    mut queue: mpsc::Receiver<Notice>,
    stats: Arc<NotifierStats>,
) {
    let http = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(h) => h,
        Err(e) => {
            warn!(
                error = e.to_string().as_str(),
                "cannot build the Slack HTTP client: notifications off"
            );
            return;
        }
    };
    let pace = RateLimiter::direct(
        Quota::per_second(NonZeroU32::MIN)
            .allow_burst(NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN)),
    );
    while let Some(notice) = queue.recv().await {
        let body = payload(&notice);
        deliver(&http, &webhook, &body, &config, &stats, &pace).await;
        stats.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn deliver(
    http: &reqwest::Client,
    webhook: &WebhookUrl,
    body: &serde_json::Value,
    config: &NotifierConfig,
    stats: &NotifierStats,
    pace: &governor::DefaultDirectRateLimiter,
) {
    for attempt in 0..config.max_attempts {
        pace.until_ready().await;
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let verdict = match http.post(webhook.expose().clone()).json(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let text = response.text().await.unwrap_or_default();
                slack_verdict(status, &text, retry_after.as_deref(), attempt)
            }
            Err(e) => {
                // without_url: reqwest puts the URL (the secret) in its errors.
                let e = e.without_url();
                warn!(
                    error = crate::telemetry::error_chain(&e).as_str(),
                    attempt = attempt + 1,
                    "Slack did not answer"
                );
                SlackVerdict::Retry {
                    after: Duration::from_millis(500 << attempt.min(5)),
                }
            }
        };
        match verdict {
            SlackVerdict::Delivered => {
                stats.delivered.fetch_add(1, Ordering::SeqCst);
                return;
            }
            SlackVerdict::Refused { status, error } => {
                stats.refused.fetch_add(1, Ordering::SeqCst);
                warn!(status, error = error.as_str(), "Slack refused the notification; not retried (check the webhook and its channel)");
                return;
            }
            SlackVerdict::Retry { after } => {
                if attempt + 1 < config.max_attempts {
                    stats.retries.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(after).await;
                }
            }
        }
    }
    stats.gave_up.fetch_add(1, Ordering::SeqCst);
    warn!(
        attempts = config.max_attempts,
        "Slack notification dropped after retries"
    );
}

/// Logs once that notifications are off.
fn log_off() {
    info!("Slack notifications are off (--slack-webhook-url is empty)");
}
