//! `node-drain serve` and a node held by a `karpenter.sh/do-not-disrupt` pod, on
//! the real test environment. The alerts that name it — the first send,
//! Alertmanager's repeat, the alert firing anew (new `startsAt`: cordoning
//! resolves a pressure alert and the restore fires it again), another alert for
//! the same node (another filesystem) — never cordon it: the daemon says it is
//! blocked once (a warning, one Slack message and one `DrainBlocked` Event, each
//! naming the pod) and counts the rest as duplicates. Once the pod is gone, the
//! same alert drains the node: a blocked alert is not settled.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::{alert, Daemon, TOKEN};
use support::slack::FakeSlack;
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

/// The sum of `node_drain_alerts_total` over its labels, and the metrics text.
async fn alerts_counted(daemon: &Daemon) -> (u64, String) {
    let text = reqwest::get(format!("{}/metrics", daemon.url))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap_or_default();
    let sum = text
        .lines()
        .filter(|l| l.starts_with("node_drain_alerts_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>();
    (sum as u64, text)
}

/// Waits until the daemon has counted `posted` alerts (each one is counted
/// once: as a duplicate at the webhook, or when the queue admits it) and no
/// drain of a run is unfinished, so the next alert meets a settled node.
async fn wait_handled(daemon: &Daemon, posted: u64) {
    wait_for(
        "the alerts handled and no drain in flight",
        Duration::from_secs(120),
        || async {
            let (counted, _) = alerts_counted(daemon).await;
            let status = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
            let in_flight = status["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| r["nodes"].as_array().cloned().unwrap_or_default())
                .filter(|n| n["outcome"].is_null())
                .count();
            if counted >= posted && in_flight == 0 {
                Ok(Some(()))
            } else {
                Err(format!(
                    "{counted} of {posted} counted, {in_flight} node(s) in drain"
                ))
            }
        },
    )
    .await;
}

/// The writes the daemon (`identity`, from its User-Agent) sent about `node`.
fn node_writes(env: &TestEnv, identity: &str, node: &str) -> Vec<String> {
    let name = format!("name: {node:?}");
    writes_by(env, identity, "")
        .into_iter()
        .filter(|w| w.contains("resource: \"nodes\"") && w.contains(&name))
        .collect()
}

fn metric_line<'a>(metrics: &'a str, labels: &str) -> Option<&'a str> {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("node_drain_alerts_total{{{labels}}}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_node_is_said_blocked_once_and_never_cordoned_by_repeats() {
    let scene = Scene::new("blocked-alert", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 1, SMALL, 2).await;
    let pods = w.wait_running("web", 1, Duration::from_secs(300)).await;
    let node = node_of(&pods[0]);
    let hostname = hostname_of(client, &node).await;
    w.pinned(
        "keep",
        SMALL,
        &hostname,
        json!({"karpenter.sh/do-not-disrupt": "true"}),
        json!({}),
    )
    .await;
    let keep = w.wait_running("keep", 1, Duration::from_secs(120)).await;
    let keep_pod = format!(
        "{}/{}",
        scene.ns.name,
        keep[0].metadata.name.as_deref().unwrap()
    );
    assert_eq!(
        node_of(&keep[0]),
        node,
        "the blocker shares the web pod's node"
    );

    let slack = FakeSlack::start().await;
    let identity = unique("blocked");
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n  - alertname: NodeFilesystemAlmostOutOfSpace\n    action: drain-node\n";
    let daemon = Daemon::start_args(
        env,
        &pool.name,
        &unique("lease"),
        &identity,
        config,
        &[],
        &["--slack-webhook-url", &slack.url()],
    );
    daemon.wait_ready().await;

    let first = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-29T03:00:00Z",
    );
    let anew = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-29T03:10:00Z",
    );
    let mut other = alert(
        json!({"alertname": "NodeFilesystemAlmostOutOfSpace", "node": node, "mountpoint": "/var"}),
        "2026-11-29T03:00:00Z",
    );
    other["alerts"][0]["fingerprint"] = json!("beef");
    // The first send, Alertmanager's repeat, the alert firing anew, another
    // alert for the same node: each handled before the next is sent.
    for (i, body) in [&first, &first, &anew, &other].into_iter().enumerate() {
        assert_eq!(daemon.post(Some(TOKEN), body.to_string()).await, 202);
        wait_handled(&daemon, i as u64 + 1).await;
    }

    let writes = node_writes(env, &identity, &node);
    assert!(
        writes.is_empty(),
        "a node held by a do-not-disrupt pod was written {} time(s) by the daemon (claimed, cordoned, restored):\n{}\n{}",
        writes.len(),
        writes.join("\n"),
        daemon.log()
    );
    let n = get_node(client, &node).await.expect("the node");
    assert!(!unschedulable(&n) && annotation(&n, "node-drain.io/state").is_none());

    // Said once, naming the pod and why.
    let log = daemon.log();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("node not drained: blocking pods"))
        .collect();
    assert_eq!(said.len(), 1, "said once:\n{log}");
    assert!(
        said[0].contains(&keep_pod) && said[0].contains("karpenter.sh/do-not-disrupt"),
        "{}",
        said[0]
    );
    let blocked_messages = slack
        .first_containing(&keep_pod, Duration::from_secs(10))
        .await
        .map(|_| slack.containing(&keep_pod))
        .unwrap_or_default();
    assert_eq!(
        blocked_messages.len(),
        1,
        "one Slack message naming the blocker: {:?}",
        slack.texts()
    );
    let events: Vec<_> = node_events(client, &node)
        .await
        .into_iter()
        .filter(|(reason, _)| reason == "DrainBlocked")
        .collect();
    assert!(
        events.len() == 1 && events[0].1.contains(&keep_pod),
        "one DrainBlocked Event naming the pod: {events:?}"
    );
    let (_, metrics) = alerts_counted(&daemon).await;
    let ignored = metric_line(&metrics, "outcome=\"ignored\",reason=\"blocked\"");
    let repeats = metric_line(&metrics, "outcome=\"duplicate\",reason=\"blocked\"");
    assert!(
        ignored.is_some_and(|l| l.ends_with(" 1")) && repeats.is_some_and(|l| l.ends_with(" 3")),
        "one blocked, three repeats counted as duplicates: {ignored:?} {repeats:?}\n{metrics}"
    );

    // The blocker gone, Alertmanager's next send of the same alert drains the node.
    kube::Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &scene.ns.name)
        .delete("keep", &Default::default())
        .await
        .expect("delete the blocker");
    wait_for("the blocker gone", Duration::from_secs(240), || async {
        let left = w.pods("keep").await.len();
        if left == 0 {
            Ok(Some(()))
        } else {
            Err(format!("{left} pod(s)"))
        }
    })
    .await;
    assert_eq!(daemon.post(Some(TOKEN), first.to_string()).await, 202);
    wait_retired(
        client,
        &node,
        "the node drained and retired once unblocked",
        Duration::from_secs(300),
    )
    .await;
    let status: Value = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
    assert_eq!(status["ok"], json!(true), "{status}");
    drop(daemon);
    scene.cleanup().await;
}
