//! Slack notifications against a local fake Slack that answers as Slack
//! documents (200 ok; 400 invalid_payload; 403 action_prohibited; 404
//! channel_not_found; 410 channel_is_archived; 429 with Retry-After; 500; a
//! hang). During real drains on the test environment: `notify_drains.rs`.

mod support;

use std::time::Duration;

use actix::Actor;
use node_drain::actors::notifier::{NotifierActor, NotifierConfig, NotifierStatsSnapshot};
use node_drain::messages::{FlushNotifications, GetNotifierStats, Notify};
use node_drain::slack::{Notice, WebhookUrl};
use support::slack_script::{scripted_slack, Answer, ScriptedSlack};

fn notice() -> Notice {
    Notice::NodeDrained {
        cluster: "c".into(),
        node: "n1".into(),
        pods_evicted: 3,
        pods_force_deleted: 0,
        retired: "NodeClaim x deleted".into(),
    }
}

/// Sends one notice through a NotifierActor and waits until it is settled.
async fn deliver_one(slack: &ScriptedSlack, timeout: Duration) -> NotifierStatsSnapshot {
    let webhook =
        WebhookUrl::parse(&format!("{}/services/T0/B0/token", slack.server.url())).unwrap();
    let mut config = NotifierConfig::new(webhook);
    config.timeout = timeout;
    let notifier = NotifierActor::new(config).start();
    notifier.send(Notify(notice())).await.unwrap();
    assert!(
        notifier
            .send(FlushNotifications {
                timeout: Duration::from_secs(60)
            })
            .await
            .unwrap(),
        "settled"
    );
    notifier.send(GetNotifierStats).await.unwrap()
}

#[actix_rt::test]
async fn delivered_at_once_on_200_ok() {
    let slack = scripted_slack(vec![Answer::Status(200, "ok")]).await;
    let stats = deliver_one(&slack, Duration::from_secs(5)).await;
    assert_eq!((stats.requests, stats.delivered, stats.retries), (1, 1, 0));
    let body = slack.seen.lock().unwrap()[0].1.clone();
    assert!(
        body["text"].as_str().unwrap().contains("n1 drained"),
        "{body}"
    );
    assert!(
        body["blocks"].as_array().is_some_and(|b| !b.is_empty()),
        "Block Kit with a text fallback"
    );
}

#[actix_rt::test]
async fn server_errors_are_retried() {
    let slack = scripted_slack(vec![
        Answer::Status(500, "rollup_error"),
        Answer::Status(503, ""),
        Answer::Status(200, "ok"),
    ])
    .await;
    let stats = deliver_one(&slack, Duration::from_secs(5)).await;
    assert_eq!((stats.requests, stats.retries, stats.delivered), (3, 2, 1));
}

#[actix_rt::test]
async fn too_many_requests_waits_for_retry_after() {
    let slack = scripted_slack(vec![
        Answer::TooMany { retry_after: "2" },
        Answer::Status(200, "ok"),
    ])
    .await;
    let stats = deliver_one(&slack, Duration::from_secs(5)).await;
    assert_eq!((stats.requests, stats.retries, stats.delivered), (2, 1, 1));
    let seen = slack.seen.lock().unwrap();
    let gap = seen[1].0 - seen[0].0;
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?}, before Retry-After: 2"
    );
}

#[actix_rt::test]
async fn client_errors_are_never_retried() {
    for (code, error) in [
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ] {
        let slack = scripted_slack(vec![Answer::Status(code, error)]).await;
        let stats = deliver_one(&slack, Duration::from_secs(5)).await;
        assert_eq!(
            (
                stats.requests,
                stats.retries,
                stats.refused,
                stats.delivered
            ),
            (1, 0, 1, 0),
            "{code} {error}"
        );
    }
}

#[actix_rt::test]
async fn a_hang_past_the_client_timeout_is_retried() {
    let slack = scripted_slack(vec![
        Answer::Hang(Duration::from_secs(5)),
        Answer::Status(200, "ok"),
    ])
    .await;
    let stats = deliver_one(&slack, Duration::from_millis(500)).await;
    assert_eq!((stats.requests, stats.retries, stats.delivered), (2, 1, 1));
}

#[actix_rt::test]
async fn a_full_queue_drops_instead_of_waiting() {
    let slack = scripted_slack(vec![Answer::Hang(Duration::from_secs(30))]).await;
    let webhook = WebhookUrl::parse(&format!("{}/x", slack.server.url())).unwrap();
    let mut config = NotifierConfig::new(webhook);
    config.queue_capacity = 2;
    let notifier = NotifierActor::new(config).start();
    for _ in 0..10 {
        // Each send returns as soon as the notice is queued or dropped.
        notifier.send(Notify(notice())).await.unwrap();
    }
    let stats = notifier.send(GetNotifierStats).await.unwrap();
    assert!(stats.dropped_queue_full >= 7, "{stats:?}");
    assert!(
        !notifier
            .send(FlushNotifications {
                timeout: Duration::from_millis(200)
            })
            .await
            .unwrap(),
        "still pending"
    );
}
