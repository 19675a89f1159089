//! Slack notifications during real drains on the test environment: a planned
//! wave tells every message with its content; the webhook URL never appears in
//! a log line; a Slack that hangs or refuses never holds a drain up. The
//! delivery policy against a scripted fake Slack: `notify.rs`.

mod support;

use std::time::Duration;

use support::slack_script::{scripted_slack, Answer};
use support::*;

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
    let ok = scripted_slack(vec![Answer::Status(200, "ok")]).await;
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
    let hang = scripted_slack(vec![Answer::Hang(Duration::from_secs(3600))]).await;
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
    let refusing = scripted_slack(vec![Answer::Status(404, "channel_not_found")]).await;
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
