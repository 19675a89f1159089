//! `node-drain drain` on the real test environment (Karpenter + KWOK): the seed
//! scenario and PDB floors (one pod at a time; a PDB that never allows restores
//! the node after the timeout). Pods by kind: `drain_pods.rs`; restarts and
//! signals: `drain_restarts.rs`.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::json;
use support::*;

const SMALL: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_drains_the_two_oldest_of_eight_and_karpenter_replaces_them() {
    let scene = Scene::new(
        "drain-seed",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "25%"}])),
    )
    .await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    // Exactly 8 nodes of 4 CPUs: even a busy Karpenter cannot over-provision.
    pool.set_limits(json!({"cpu": "32"})).await;
    // 8 × 2 CPU + 3 × 1 CPU + 8 × 0.125 CPU = 20 of 32 CPU: 62.5 % → 63 %.
    w.spread_deployment(
        "web",
        8,
        Requests {
            cpu: "2",
            memory: "2Gi",
        },
    )
    .await;
    w.pdb("web", "web", Some(1), None).await;
    w.statefulset("db", 3, SMALL).await;
    w.daemonset(
        "agent",
        Requests {
            cpu: "125m",
            memory: "128Mi",
        },
    )
    .await;
    let nodes = pool.wait_ready_nodes(8, Duration::from_secs(180)).await;
    w.wait_running("web", 8, Duration::from_secs(60)).await;
    w.wait_running("db", 3, Duration::from_secs(60)).await;
    w.wait_running("agent", 8, Duration::from_secs(60)).await;
    // 8 × 4 CPUs; 20 CPUs requested: 62.5 % → 63 %.
    wait_nodepool_cpu_metrics(env, &pool.name, Some(32.0), Some(20.0)).await;

    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--drain-timeout",
            "3m",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "drain failed:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("maxAllocateRate=63"), "{stderr}");
    assert!(stderr.contains("drainNodeCount=2"), "{stderr}");
    let oldest: Vec<String> = nodes
        .iter()
        .take(2)
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    let drained: Vec<String> = stdout
        .lines()
        .filter(|l| l.contains("  drained:"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let mut sorted = drained.clone();
    sorted.sort();
    let mut want = oldest.clone();
    want.sort();
    assert_eq!(
        sorted, want,
        "exactly the two oldest nodes are drained:\n{stdout}"
    );

    // Karpenter terminates the retired nodes and replaces the capacity.
    wait_for(
        "the drained nodes gone and 8 Ready nodes again",
        Duration::from_secs(180),
        || async {
            let now = pool.nodes().await;
            let names: Vec<String> = now.iter().filter_map(|n| n.metadata.name.clone()).collect();
            let ready = now.iter().filter(|n| is_ready(n)).count();
            let gone = oldest.iter().all(|o| !names.contains(o));
            if gone && ready == 8 && now.len() == 8 {
                Ok(Some(()))
            } else {
                Err(format!(
                    "{} nodes, {ready} Ready, drained gone: {gone}",
                    now.len()
                ))
            }
        },
    )
    .await;
    w.wait_running("web", 8, Duration::from_secs(120)).await;
    w.wait_running("db", 3, Duration::from_secs(120)).await;

    let evictions = successful_evictions(env, &ns.name);
    assert!(
        !evictions.is_empty(),
        "pods were evicted through the Eviction API"
    );
    assert!(
        evictions.keys().all(|name| !name.starts_with("agent-")),
        "no DaemonSet pod is evicted: {evictions:?}"
    );
    assert!(
        evictions.values().all(|&n| n == 1),
        "one successful eviction per pod: {evictions:?}"
    );
    for node in &oldest {
        let reasons: Vec<String> = node_events(client, node)
            .await
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        for reason in ["DrainStarted", "DrainSucceeded", "NodeRetired"] {
            assert!(
                reasons.contains(&reason.to_string()),
                "{node}: Event {reason} missing in {reasons:?}"
            );
        }
    }
    scene.cleanup().await;
}

/// Records the lowest count of Ready, not-terminating pods of `app` seen by a watch.
async fn watch_ready_floor(
    client: kube::Client,
    ns: String,
    app: String,
    floor: Arc<Mutex<Option<usize>>>,
) {
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let mut stream = watcher(
        pods,
        watcher::Config::default().labels(&format!("app={app}")),
    )
    .boxed();
    let mut state: BTreeMap<String, bool> = BTreeMap::new();
    let mut synced = false;
    while let Some(Ok(event)) = stream.next().await {
        let ready = |p: &Pod| pod_ready(p) && p.metadata.deletion_timestamp.is_none();
        match event {
            watcher::Event::Init => state.clear(),
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                state.insert(p.metadata.uid.clone().unwrap_or_default(), ready(&p));
            }
            watcher::Event::Delete(p) => {
                state.remove(&p.metadata.uid.clone().unwrap_or_default());
            }
            watcher::Event::InitDone => synced = true,
        }
        if synced {
            let count = state.values().filter(|r| **r).count();
            let mut f = floor.lock().unwrap();
            *f = Some(f.map_or(count, |v| v.min(count)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_with_max_unavailable_1_lets_pods_leave_one_at_a_time() {
    let scene = Scene::new(
        "drain-pdb",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "100%"}])),
    )
    .await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment("web", 4, SMALL).await;
    w.pdb("web", "web", Some(1), None).await;
    let pods = w.wait_running("web", 4, Duration::from_secs(180)).await;
    let targets: Vec<String> = pods.iter().take(2).map(node_of).collect();

    let floor = Arc::new(Mutex::new(None));
    let watch = tokio::spawn(watch_ready_floor(
        client.clone(),
        ns.name.clone(),
        "web".into(),
        floor.clone(),
    ));
    wait_for("the watch to sync", Duration::from_secs(10), || async {
        Ok(floor.lock().unwrap().map(|_| ()))
    })
    .await;
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &targets.join(","),
            "--retire",
            "none",
            "--drain-timeout",
            "3m",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "drain failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    w.wait_running("web", 4, Duration::from_secs(120)).await;
    watch.abort();
    let lowest = floor.lock().unwrap().expect("the watch saw the pods");
    assert!(
        lowest >= 3,
        "Ready pods dropped to {lowest}, below the PDB's floor of 3"
    );
    assert!(
        text(&out.stderr).contains("pdb=\"web\""),
        "the PDB refused at least once and was named:\n{}",
        text(&out.stderr)
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_that_never_allows_restores_the_node_after_the_timeout() {
    let scene = Scene::new("drain-stuck", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);

    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--drain-timeout",
            "6s",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a node that is not drained is exit 1:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("NOT drained") && stdout.contains("PodDisruptionBudget frozen"),
        "{stdout}"
    );
    let after = get_node(client, &node)
        .await
        .expect("the node is not retired");
    assert!(!unschedulable(&after), "the node is uncordoned");
    assert_eq!(
        annotation(&after, "node-drain.io/state").as_deref(),
        Some("restored")
    );
    let events = node_events(client, &node).await;
    let failed = events
        .iter()
        .find(|(r, _)| r == "DrainFailed")
        .expect("a DrainFailed Event");
    assert!(
        failed.1.contains("frozen"),
        "the Event names the PDB: {failed:?}"
    );
    assert_eq!(
        w.pods("web").await.iter().filter(|p| pod_ready(p)).count(),
        2,
        "no pod was lost"
    );
    scene.cleanup().await;
}
