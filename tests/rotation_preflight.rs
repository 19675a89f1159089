//! `drain --rotate --dry-run` (the preflight) lists the waves and what will
//! block, and writes nothing; the rotation itself then skips the blocked
//! nodes with their reasons and replaces the rest.

mod support;

use std::time::Duration;

use serde_json::json;
use support::rotation::*;
use support::*;

const SMALL: Requests = Requests {
    cpu: "100m",
    memory: "64Mi",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preflight_lists_waves_and_blockers_and_the_rotation_skips_the_blocked_nodes() {
    let (scene, nodes) = spread_pool("rot-pre", 4, json!([{"nodes": "2"}])).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    // Oldest first: a bare pod on the first node, a do-not-disrupt pod on the
    // second, a pod with an emptyDir on the third; a PDB allowing nothing.
    w.bare_pod("bare", SMALL, json!({}), Some(&nodes[0])).await;
    let second = hostname_of(client, &nodes[1]).await;
    w.pinned(
        "keep",
        SMALL,
        &second,
        json!({"karpenter.sh/do-not-disrupt": "true"}),
        json!({}),
    )
    .await;
    let third = hostname_of(client, &nodes[2]).await;
    // Preferred, not required, on the third node: its replacement may run anywhere.
    w.pinned(
        "scratch",
        SMALL,
        &third,
        json!({}),
        json!({
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "preference": {"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [third]}
                ]}}
            ]}}
        }),
    )
    .await;
    unpin(client, &ns.name, "scratch").await;
    w.pdb("guard", "web", None, Some(4)).await;
    for app in ["bare", "keep", "scratch"] {
        w.wait_running(app, 1, Duration::from_secs(60)).await;
    }

    let holder = unique("preflight");
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut cmd = env.node_drain();
    // `ROTATION_TEST_PREFLIGHT_FLAG=--force` (any flag instead of --dry-run):
    // how this test was seen to fail when the command is not a preflight.
    let flag = std::env::var("ROTATION_TEST_PREFLIGHT_FLAG").unwrap_or_else(|_| "--dry-run".into());
    cmd.env("POD_NAME", &holder).args([
        "drain",
        "--rotate",
        &flag,
        "--nodepool-name",
        &pool.name,
        "--placeholder-namespace",
        &ns.name,
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    assert!(
        stdout.contains("4 node(s) created at or before"),
        "{stdout}"
    );
    assert!(stdout.contains("Wave size now: 2 node(s)"), "{stdout}");
    assert!(
        stdout.contains("Expected: 1 wave(s)")
            && stdout.contains(&format!("  wave 1: {}, {}\n", nodes[2], nodes[3])),
        "{stdout}"
    );
    let skip_line = |node: &str, what: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("  {node}  ")) && l.contains(what))
    };
    assert!(skip_line(&nodes[0], "bare"), "the bare pod: {stdout}");
    assert!(skip_line(&nodes[0], "no controller"), "{stdout}");
    assert!(skip_line(&nodes[1], "do-not-disrupt"), "{stdout}");
    assert!(
        skip_line(&nodes[2], "local storage (emptyDir cache)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "PodDisruptionBudget {}/guard allows no disruption now",
            ns.name
        )),
        "{stdout}"
    );
    // Touched nothing: no write from that process, no node cordoned, no record.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = writes_by(env, &holder, &since);
    assert!(writes.is_empty(), "the preflight wrote: {writes:#?}");
    for node in pool.nodes().await {
        assert!(!unschedulable(&node), "cordoned by the preflight");
    }
    assert_eq!(
        nodepool_annotation(client, &pool.name, "node-drain.io/rotation").await,
        None
    );

    // The rotation: the blocked nodes are skipped with their reasons, the
    // other two replaced; exit 1 (nodes were not replaced).
    kube::Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
        client.clone(),
        &ns.name,
    )
    .delete("guard", &Default::default())
    .await
    .unwrap();
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--rotate",
            "--nodepool-name",
            &pool.name,
            "--placeholder-namespace",
            &ns.name,
            "--drain-timeout",
            "2m",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    eprintln!("{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(": 2 replaced, 2 skipped, 1 wave(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  {}  SKIPPED: holds blocking pods: {}/bare",
            nodes[0], ns.name
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  {}  SKIPPED: holds blocking pods: {}/keep",
            nodes[1], ns.name
        )),
        "{stdout}"
    );
    let now: Vec<String> = pool
        .nodes()
        .await
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert!(
        now.contains(&nodes[0]) && now.contains(&nodes[1]),
        "{now:?}"
    );
    wait_for(
        "the other two nodes gone",
        Duration::from_secs(120),
        || async {
            let now: Vec<String> = pool
                .nodes()
                .await
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect();
            if now.contains(&nodes[2]) || now.contains(&nodes[3]) {
                Err(format!("{now:?}"))
            } else {
                Ok(Some(()))
            }
        },
    )
    .await;
    for node in &nodes[..2] {
        let n = get_node(client, node).await.unwrap();
        assert!(!unschedulable(&n), "{node} left cordoned");
    }
    scene.cleanup().await;
}

/// Drops the hostname nodeSelector `Workloads::pinned` set, once its pod runs
/// where wanted: the Deployment's template changes, so its pod is replaced —
/// wait for the new one (the preferred affinity keeps it on the same node).
async fn unpin(client: &kube::Client, namespace: &str, name: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    let api: kube::Api<Deployment> = kube::Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Json::<()>(
            serde_json::from_value(json!([
                {"op": "remove", "path": "/spec/template/spec/nodeSelector/kubernetes.io~1hostname"}
            ]))
            .unwrap(),
        ),
    )
    .await
    .expect("unpin");
}
