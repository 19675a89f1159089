//! Dependency outages mid-drain, on the real test environment: the API server
//! stopped for 30 s and started again; etcd paused (SIGSTOP) for 20 s. These
//! disturb every client of the cluster, so they live in a test binary of their
//! own (cargo runs test binaries one after another) and run one at a time.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::*;

/// One outage at a time, even within this binary.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SMALL: Requests = Requests {
    cpu: "250m",
    memory: "256Mi",
};

/// A node running `replicas` pods of `web` (grace `grace` s) behind a PDB that
/// lets one go at a time, so the drain lasts long enough for an outage.
async fn slow_node(scene: &Scene, replicas: i32, grace: i64) -> String {
    let w = scene.workloads();
    w.deployment("anchor", 1, SMALL, 2).await;
    let node = node_of(&w.wait_running("anchor", 1, Duration::from_secs(120)).await[0]);
    let hostname = hostname_of(&scene.client, &node).await;
    // Preferred, not required: the pods start on that node, and their
    // replacements can go elsewhere once it is cordoned.
    let mut spec = pod_spec(&scene.pool.name, SMALL, grace);
    spec["affinity"] = json!({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [hostname]}]}}
    ]}});
    let object: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(scene.client.clone(), &scene.ns.name)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    let pods = w
        .wait_running("web", replicas as usize, Duration::from_secs(60))
        .await;
    assert!(
        pods.iter().all(|p| node_of(p) == node),
        "every web pod started on {node}"
    );
    w.pdb("one-at-a-time", "web", Some(1), None).await;
    node
}

async fn outage(args: &[&str]) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("testenv/outage")
            .args(&args)
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "testenv/outage failed");
}

/// Starts a drain of `node`, waits for its first successful eviction, runs the
/// outage, and returns the drain's output once it ends.
async fn drain_through(scene: &Scene, node: &str, outage_args: &[&str]) -> std::process::Output {
    let env = &scene.env;
    let mut cmd = env.node_drain();
    cmd.args([
        "drain",
        "--nodepool-name",
        &scene.pool.name,
        "--nodes",
        node,
        "--drain-timeout",
        "6m",
        "--retire",
        "none",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let ns = scene.ns.name.clone();
    wait_for("a first eviction", Duration::from_secs(60), || async {
        Ok((!successful_evictions(env, &ns).is_empty()).then_some(()))
    })
    .await;
    outage(outage_args).await;
    let waited = tokio::time::timeout(
        Duration::from_secs(420),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await
    .expect("the drain ends after the outage");
    waited.unwrap()
}

async fn assert_drained_once_each(scene: &Scene, node: &str, out: &std::process::Output) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "drained after the outage:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("{node}  drained")), "{stdout}");
    let evicted = successful_evictions(&scene.env, &scene.ns.name);
    assert!(
        evicted.values().all(|n| *n == 1),
        "every pod got exactly one successful eviction: {evicted:?}"
    );
    assert_eq!(
        evicted.keys().filter(|p| p.starts_with("web-")).count(),
        4,
        "{evicted:?}"
    );
    let after = Api::<Node>::all(scene.client.clone())
        .get(node)
        .await
        .unwrap();
    assert_eq!(
        annotation(&after, "node-drain.io/state").as_deref(),
        Some("drained")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_away_for_30s_mid_drain_then_the_drain_completes() {
    let _serial = SERIAL.lock().await;
    let scene = Scene::new("outage-apiserver", "c-4x-amd64-linux", None).await;
    let node = slow_node(&scene, 4, 8).await;
    let out = drain_through(&scene, &node, &["kube-apiserver", "30"]).await;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("retrying")
            || stderr.contains("restarting")
            || stderr.contains("pod watch error"),
        "the outage was seen and waited out: {stderr}"
    );
    assert_drained_once_each(&scene, &node, &out).await;
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_paused_for_20s_mid_drain_then_the_drain_completes() {
    let _serial = SERIAL.lock().await;
    let scene = Scene::new("outage-etcd", "c-4x-amd64-linux", None).await;
    let node = slow_node(&scene, 4, 8).await;
    let out = drain_through(&scene, &node, &["etcd", "20", "--pause"]).await;
    assert_drained_once_each(&scene, &node, &out).await;
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn karpenter_stopped_during_retirement_the_drain_ends_and_the_nodeclaim_waits_for_it() {
    let _serial = SERIAL.lock().await;
    let scene = Scene::new("outage-karpenter", "c-4x-amd64-linux", None).await;
    let w = scene.workloads();
    w.deployment("web", 1, SMALL, 2).await;
    let node = node_of(&w.wait_running("web", 1, Duration::from_secs(120)).await[0]);
    let down = tokio::spawn(async { outage(&["karpenter", "45"]).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = std::time::Instant::now();
    let out = run_node_drain(
        &scene.env,
        &[
            "drain",
            "--nodepool-name",
            &scene.pool.name,
            "--nodes",
            &node,
            "--retire",
            "nodeclaim",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("NodeClaim"), "{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the drain does not wait for Karpenter to come back"
    );
    let after = Api::<Node>::all(scene.client.clone())
        .get(&node)
        .await
        .unwrap();
    assert_eq!(
        annotation(&after, "node-drain.io/state").as_deref(),
        Some("drained")
    );
    assert!(
        annotation(&after, "node-drain.io/retirement").is_some_and(|r| r.starts_with("nodeclaim/")),
        "the record names the retirement a later run can check"
    );
    down.await.unwrap();
    wait_for(
        "Karpenter to finish the retirement",
        Duration::from_secs(120),
        || async {
            let gone = Api::<Node>::all(scene.client.clone())
                .get_opt(&node)
                .await
                .unwrap()
                .is_none();
            Ok(gone.then_some(()))
        },
    )
    .await;
    scene.cleanup().await;
}
