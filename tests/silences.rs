//! Silencing what a retirement causes, with the test environment's real
//! Alertmanager (API v2): a node the daemon retires gets silences for its
//! alerts (by `node`, and by `instance` = its name or InternalIP:port) before
//! its NodeClaim is deleted, and they are expired once the node is gone; an
//! unreachable Alertmanager never holds a drain up (counted as an error).

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::{alert, Daemon, TOKEN};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

/// node-drain's silences in Alertmanager that name `node` (by the `node` matcher).
async fn silences_of(alertmanager: &str, node: &str) -> Vec<Value> {
    let all: Vec<Value> = reqwest::get(format!("{alertmanager}/api/v2/silences"))
        .await
        .expect("list silences")
        .json()
        .await
        .unwrap();
    all.into_iter()
        .filter(|s| s["createdBy"] == "node-drain")
        .filter(|s| {
            s["matchers"].as_array().is_some_and(|m| {
                m.iter().any(|m| {
                    m["name"] == "node" && m["value"] == node
                        || m["name"] == "instance"
                            && m["value"].as_str().is_some_and(|v| v.starts_with(node))
                })
            })
        })
        .collect()
}

fn states(silences: &[Value]) -> Vec<String> {
    silences
        .iter()
        .map(|s| s["status"]["state"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_node_is_silenced_until_it_is_gone_and_a_dead_alertmanager_blocks_nothing() {
    let scene = Scene::new("silence", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment("web", 2, SMALL).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let (first, second) = (node_of(&pods[0]), node_of(&pods[1]));
    assert_ne!(first, second);
    let alertmanager = env.var("ALERTMANAGER_URL");
    let config = |am: &str| {
        format!(
            "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n\
             silences:\n  alertmanager: {am}\n  alertnames: [KubeNodeNotReady, TargetDown]\n  duration: 20m\n"
        )
    };
    let mut daemon = Daemon::start(
        env,
        &pool.name,
        &unique("lease"),
        &unique("serve"),
        &config(&alertmanager),
    );
    daemon.wait_ready().await;
    let body = alert(
        json!({"alertname": "NodeDiskPressure", "node": first}),
        "2026-11-29T11:00:00Z",
    );
    assert_eq!(daemon.post(Some(TOKEN), body.to_string()).await, 202);
    let created = wait_for(
        "silences for the retiring node",
        Duration::from_secs(120),
        || async {
            let s = silences_of(&alertmanager, &first).await;
            if s.len() == 2 {
                Ok(Some(s))
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await;
    for s in &created {
        let names: Vec<&str> = s["matchers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"alertname"), "{s}");
        let alertnames = s["matchers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "alertname")
            .unwrap();
        assert_eq!(alertnames["value"], "KubeNodeNotReady|TargetDown");
        assert_eq!(alertnames["isRegex"], true);
        assert!(
            s["comment"]
                .as_str()
                .unwrap()
                .contains(&format!("retires {first}")),
            "{s}"
        );
    }
    wait_retired(
        client,
        &first,
        "the alerted node retired",
        Duration::from_secs(150),
    )
    .await;
    wait_for("the node gone", Duration::from_secs(120), || async {
        match get_node(client, &first).await {
            None => Ok(Some(())),
            Some(_) => Err("still there".into()),
        }
    })
    .await;
    wait_for(
        "its silences expired once it is gone",
        Duration::from_secs(60),
        || async {
            let s = states(&silences_of(&alertmanager, &first).await);
            if s == ["expired", "expired"] {
                Ok(Some(()))
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await;
    assert!(daemon.terminate().success());

    // Alertmanager unreachable: the drain goes on, the failure is counted.
    let dead = format!("http://127.0.0.1:{}", support::daemon::free_port());
    let daemon = Daemon::start(
        env,
        &pool.name,
        &unique("lease"),
        &unique("serve"),
        &config(&dead),
    );
    daemon.wait_ready().await;
    let body = alert(
        json!({"alertname": "NodeDiskPressure", "node": second}),
        "2026-11-29T11:05:00Z",
    );
    assert_eq!(daemon.post(Some(TOKEN), body.to_string()).await, 202);
    wait_retired(
        client,
        &second,
        "retired with Alertmanager down",
        Duration::from_secs(150),
    )
    .await;
    let metrics = reqwest::get(format!("{}/metrics", daemon.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("node_drain_silences_total{result=\"error\"} 2"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("silences"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    scene.cleanup().await;
}
