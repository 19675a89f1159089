//! Slack notifications against a local fake Slack that answers as Slack
//! documents (200 ok; 400 invalid_payload; 403 action_prohibited; 404
//! channel_not_found; 410 channel_is_archived; 429 with Retry-After; 500; a
//! hang), and during real drains on the test environment.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use node_drain::actors::notifier::{NotifierActor, NotifierConfig, NotifierStatsSnapshot};
use node_drain::messages::{FlushNotifications, GetNotifierStats, Notify};
use node_drain::slack::{Notice, WebhookUrl};
use serde_json::Value;
use support::http::{serve, Request, Response, Server};
use support::*;

/// A fake Slack answering from a script (the last answer repeats); it records
/// each request's arrival and JSON body.
struct FakeSlack {
    server: Server,
    seen: Arc<Mutex<Vec<(Instant, Value)>>>,
}

#[derive(Clone)]
enum Answer {
    Status(u16, &'static str),
    TooMany { retry_after: &'static str },
    Hang(Duration),
}

async fn fake_slack(script: Vec<Answer>) -> FakeSlack {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let server = serve(move |req: Request| {
        let seen = recorded.clone();
        let script = script.clone();
        async move {
            let index = {
                let mut s = seen.lock().unwrap();
                s.push((
                    Instant::now(),
                    serde_json::from_slice(&req.body).unwrap_or(Value::Null),
                ));
                s.len() - 1
            };
            match script.get(index).or(script.last()).cloned().unwrap() {
                Answer::Status(code, body) => Response::new(code, "text/plain", body),
                Answer::TooMany { retry_after } => Response::new(
                    429,
                    "application/json",
                    r#"{"ok":false,"error":"rate_limited"}"#,
                )
                .with_header("Retry-After", retry_after),
                Answer::Hang(d) => {
                    tokio::time::sleep(d).await;
                    Response::new(200, "text/plain", "ok")
                }
            }
        }
    })
    .await;
    FakeSlack { server, seen }
}

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
async fn deliver_one(slack: &FakeSlack, timeout: Duration) -> NotifierStatsSnapshot {
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
    let slack = fake_slack(vec![Answer::Status(200, "ok")]).await;
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
    let slack = fake_slack(vec![
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
    let slack = fake_slack(vec![
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
        let slack = fake_slack(vec![Answer::Status(code, error)]).await;
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
    let slack = fake_slack(vec![
        Answer::Hang(Duration::from_secs(5)),
        Answer::Status(200, "ok"),
    ])
    .await;
    let stats = deliver_one(&slack, Duration::from_millis(500)).await;
    assert_eq!((stats.requests, stats.retries, stats.delivered), (2, 1, 1));
}

#[actix_rt::test]
async fn a_full_queue_drops_instead_of_waiting() {
    let slack = fake_slack(vec![Answer::Hang(Duration::from_secs(30))]).await;
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

/// Runs node-drain drain in the background; returns its (stdout, stderr, exit code) handle.
fn spawn_drain(env: &TestEnv, args: &[String]) -> tokio::task::JoinHandle<std::process::Output> {
    let mut cmd = env.node_drain();
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run node-drain"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_drains_notify_slack_and_never_leak_the_webhook_or_wait_for_it() {
    let scene = Scene::new("notify", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment(
        "web",
        3,
        Requests {
            cpu: "1",
            memory: "1Gi",
        },
    )
    .await;
    let nodes = pool.wait_ready_nodes(3, Duration::from_secs(180)).await;
    w.wait_running("web", 3, Duration::from_secs(60)).await;
    let names: Vec<String> = nodes
        .iter()
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    let secret = "SECRET-T0K3N-42";

    // 1. A planned wave: every message, with content.
    let ok = fake_slack(vec![Answer::Status(200, "ok")]).await;
    let url = format!("{}/services/T0/B0/{secret}", ok.server.url());
    // 3 nodes of 4 CPUs, 3 pods of 1 CPU.
    wait_nodepool_cpu_metrics(env, &pool.name, Some(12.0), Some(3.0)).await;
    let args: Vec<String> = [
        "drain",
        "--nodepool-name",
        &pool.name,
        "--cluster-name",
        "test-cluster",
        "--slack-webhook-url",
        &url,
        "--retire",
        "none",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = spawn_drain(env, &args).await.unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let texts: Vec<String> = ok
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(texts.len(), 4, "started, rates, node, finished: {texts:#?}");
    assert!(
        texts[0].starts_with(&format!(
            "[test-cluster] node-drain started: 1 node(s) of NodePool {}",
            pool.name
        )),
        "{texts:#?}"
    );
    assert!(
        texts[1].contains("allocate rate") && texts[1].contains("wave of 1 node(s)"),
        "{texts:#?}"
    );
    assert!(
        texts[2].contains(&format!("{} drained", names[0]))
            && texts[2].contains("1 pod(s) evicted"),
        "{texts:#?}"
    );
    assert!(
        texts[3].contains("node-drain finished") && texts[3].contains("1 drained, 0 failed"),
        "{texts:#?}"
    );
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the webhook URL must never be printed"
    );

    // 2. Slack hangs: the drain completes while Slack still holds the first request.
    let hang = fake_slack(vec![Answer::Hang(Duration::from_secs(3600))]).await;
    let url = format!("{}/services/T0/B0/{secret}", hang.server.url());
    let args: Vec<String> = [
        "drain",
        "--nodepool-name",
        &pool.name,
        "--nodes",
        &names[1],
        "--slack-webhook-url",
        &url,
        "--retire",
        "none",
        "--slack-flush-timeout-seconds",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let running = spawn_drain(env, &args);
    let nodes_api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    wait_for(
        "the node drained while Slack hangs",
        Duration::from_secs(60),
        || async {
            let n = nodes_api.get(&names[1]).await.map_err(|e| e.to_string())?;
            let state = n
                .metadata
                .annotations
                .unwrap_or_default()
                .get("node-drain.io/state")
                .cloned();
            if state.as_deref() == Some("drained") {
                Ok(Some(()))
            } else {
                Err(format!("state {state:?}"))
            }
        },
    )
    .await;
    assert!(
        !hang.seen.lock().unwrap().is_empty(),
        "Slack was being asked (and had not answered) while the drain finished"
    );
    let out = running.await.unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "a hanging Slack does not fail the drain:\n{stderr}"
    );
    assert!(
        stderr.contains("Slack notifications still queued at exit were dropped"),
        "{stderr}"
    );
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "no URL in timeout errors"
    );

    // 3. Slack refuses (channel_not_found) and Slack unreachable: error codes logged, never the URL.
    let refusing = fake_slack(vec![Answer::Status(404, "channel_not_found")]).await;
    for url in [
        format!("{}/services/T0/B0/{secret}", refusing.server.url()),
        format!("http://127.0.0.1:1/services/T0/B0/{secret}"),
    ] {
        let args: Vec<String> = [
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &names[2],
            "--slack-webhook-url",
            &url,
            "--retire",
            "none",
            "--force",
            "--slack-flush-timeout-seconds",
            "3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = spawn_drain(env, &args).await.unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "the webhook URL leaked:\n{stderr}"
        );
        if url.contains("127.0.0.1:1/") {
            assert!(stderr.contains("Slack did not answer"), "{stderr}");
        } else {
            assert!(
                stderr.contains("channel_not_found"),
                "Slack's error code is logged:\n{stderr}"
            );
        }
    }
    assert_eq!(
        refusing.seen.lock().unwrap().len(),
        3,
        "one request per message (started, node, finished), no retry on 404"
    );

    // Notifications off: one info line.
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &names[2],
            "--retire",
            "none",
            "--force",
        ],
    )
    .await;
    assert!(
        text(&out.stderr).contains("Slack notifications are off"),
        "{}",
        text(&out.stderr)
    );
    scene.cleanup().await;
}
