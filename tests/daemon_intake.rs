//! The daemon's intake under pressure: an alert that could not act yet is
//! acted on when Alertmanager sends it again (only a settled alert stays
//! deduplicated), and an alert storm never disrupts more of a NodePool's
//! nodes at once than its disruption budget allows, whatever `--max-nodes`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use serde_json::json;
use support::daemon::{alert, Daemon, TOKEN};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

const DRAIN_RULE: &str = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_ignored_while_a_cli_run_held_its_node_drains_it_when_sent_again() {
    let scene = Scene::new("resend", "c-4x-amd64-linux", None).await;
    let (env, client) = (&scene.env, &scene.client);
    let w = scene.workloads();
    w.deployment("web", 1, SMALL, 2).await;
    let pods = w.wait_running("web", 1, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    w.pdb("web", "web", None, Some(1)).await;
    // A CLI run holds the node: its eviction is refused by the PDB, it backs off.
    let cli = spawn_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &scene.pool.name,
            "--nodes",
            &node,
            "--retire",
            "none",
        ],
    );
    wait_refused_eviction(env, &scene.ns.name).await;

    let daemon = Daemon::start(
        env,
        &scene.pool.name,
        &unique("lease"),
        &unique("d"),
        DRAIN_RULE,
    );
    daemon.wait_ready().await;
    let a = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T07:00:00Z",
    );
    assert_eq!(daemon.post(Some(TOKEN), a.to_string()).await, 202);
    wait_for(
        "the alert ignored (another run holds the node)",
        Duration::from_secs(30),
        || async {
            let log = daemon.log();
            Ok(log.contains("skipped-node").then_some(()))
        },
    )
    .await;

    // The CLI run stops (SIGTERM restores the node) and the PDB goes.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &cli.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    wait_state(client, &node, "restored").await;
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &scene.ns.name)
        .delete("web", &Default::default())
        .await
        .unwrap();

    // Alertmanager sends the same alert again: this time it drains the node.
    assert_eq!(daemon.post(Some(TOKEN), a.to_string()).await, 202);
    wait_retired(
        client,
        &node,
        "the re-sent alert drains and retires the node",
        Duration::from_secs(120),
    )
    .await;
    scene.cleanup().await;
}

/// Nodes of the pool disrupted now: cordoned, deleting, or tainted by Karpenter.
async fn disrupted(pool: &TestNodePool) -> usize {
    pool.nodes()
        .await
        .iter()
        .filter(|n| {
            unschedulable(n)
                || n.metadata.deletion_timestamp.is_some()
                || n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|t| t.iter().any(|t| t.key == "karpenter.sh/disrupted"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_storm_never_disrupts_more_nodes_than_the_budget_allows() {
    let scene = Scene::new("storm", "c-4x-amd64-linux", Some(json!([{"nodes": "1"}]))).await;
    let w = scene.workloads();
    w.spread_deployment("web", 5, SMALL).await;
    let pods = w.wait_running("web", 5, Duration::from_secs(180)).await;
    let mut targets: Vec<String> = pods.iter().map(node_of).collect();
    targets.sort();
    targets.dedup();
    targets.truncate(3);
    assert_eq!(targets.len(), 3);

    let daemon = Daemon::start_args(
        &scene.env,
        &scene.pool.name,
        &unique("lease"),
        &unique("d"),
        DRAIN_RULE,
        &[],
        &["--max-nodes", "3"],
    );
    daemon.wait_ready().await;

    // Sampled at 2 Hz from before the storm until every target is retired.
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        let pool = TestNodePool::attach(&scene.client, &scene.pool.name);
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(disrupted(&pool).await, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let mut storm = alert(json!({}), "2026-11-22T07:00:00Z");
    let one = storm["alerts"][0].clone();
    storm["alerts"] = json!(targets
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let mut a = one.clone();
            a["labels"] = json!({"alertname": "NodeDiskPressure", "node": node});
            a["fingerprint"] = json!(format!("storm{i}"));
            a
        })
        .collect::<Vec<_>>());
    assert_eq!(daemon.post(Some(TOKEN), storm.to_string()).await, 202);
    for node in &targets {
        wait_retired(
            &scene.client,
            node,
            "every stormed node drained and retired, one at a time",
            Duration::from_secs(300),
        )
        .await;
    }
    done.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::SeqCst);
    eprintln!("FIGURE storm: at most {peak} node(s) of the pool disrupted at once (budget 1, --max-nodes 3)");
    assert_eq!(
        peak,
        1,
        "the budget allows one node at a time:\n{}",
        daemon.log()
    );
    scene.cleanup().await;
}
