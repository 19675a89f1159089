//! A single `node-drain serve` SIGKILLed in each phase of a drain (the test
//! fault hook kills the process at that exact point), then started again: the
//! node ends drained and retired (killed before the claim, once Alertmanager
//! repeats the alert), and every pod is evicted successfully at most once.

mod support;

use std::time::Duration;

use serde_json::json;
use support::daemon::{alert, Daemon, TOKEN};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

async fn killed_at(point: &str) {
    let scene = Scene::new(&format!("crash-{point}"), "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let lease = unique("lease");
    let fault = format!("{point}:kill");
    let mut first = Daemon::start_with(
        env,
        &pool.name,
        &lease,
        &unique("doomed"),
        config,
        &[("NODE_DRAIN_TEST_FAULT", &fault)],
    );
    first.wait_ready().await;
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T06:00:00Z",
    );
    assert_eq!(first.post(Some(TOKEN), good.to_string()).await, 202);
    let mut died = None;
    for _ in 0..600 {
        if let Ok(Some(status)) = first.child.try_wait() {
            died = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let died = died.unwrap_or_else(|| panic!("not killed at {point}:\n{}", first.log()));
    assert!(!died.success(), "{died:?}");
    assert!(
        first.log().contains("SIGKILL to this process"),
        "{}",
        first.log()
    );

    let second = Daemon::start(env, &pool.name, &lease, &unique("after"), config);
    second.wait_ready().await;
    if point == "intent" {
        // Killed before the claim: nothing was recorded, so the node is
        // untouched until Alertmanager sends the alert again (it repeats an
        // alert it got no answer for, and at its repeat interval). The new
        // process has not seen it: the repeat drains the node.
        let n = get_node(client, &node).await.expect("the node stays");
        assert!(
            !unschedulable(&n),
            "killed before the claim: the node is untouched"
        );
        assert!(annotation(&n, "node-drain.io/state").is_none());
        assert_eq!(second.post(Some(TOKEN), good.to_string()).await, 202);
        wait_retired(
            client,
            &node,
            "the repeated alert drains and retires the node",
            Duration::from_secs(120),
        )
        .await;
    } else {
        wait_retired(
            client,
            &node,
            &format!("the node drained and retired after a SIGKILL at {point}"),
            Duration::from_secs(120),
        )
        .await;
        // Killed after the `drained` record, only the retirement was left.
        let took_over = if point == "drained" {
            "finished a recorded retirement"
        } else {
            "takeover of run"
        };
        assert!(second.log().contains(took_over), "{}", second.log());
    }
    assert_evicted_at_most_once(env, &ns.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_claim_the_node_is_drained_when_the_alert_repeats() {
    killed_at("intent").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_cordon_the_next_daemon_drains_and_retires() {
    killed_at("cordon").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_evicting_the_next_daemon_drains_and_retires() {
    killed_at("evict").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_waiting_the_next_daemon_drains_and_retires() {
    killed_at("wait").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_drained_record_the_next_daemon_retires() {
    killed_at("retire").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_drained_record_the_next_daemon_retires() {
    killed_at("drained").await;
}
