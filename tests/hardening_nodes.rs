//! Failure paths around the node itself: two runs never both own one node; a
//! node whose kubelet died is still drained; node-drain never evicts its own
//! pod; a node deleted mid-drain; a pod two PDBs select.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_never_both_own_one_node() {
    let scene = Scene::new("hard-two-runs", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let node = node_of(&w.wait_running("web", 2, Duration::from_secs(120)).await[0]);
    let args = [
        "drain",
        "--nodepool-name",
        &pool.name,
        "--nodes",
        &node,
        "--drain-timeout",
        "10m",
        "--retire",
        "none",
    ];
    let first = spawn_drain(env, &args);
    wait_state(client, &node, "cordoned").await;
    let first_run = annotation(
        &get_node(client, &node).await.unwrap(),
        "node-drain.io/run-id",
    );

    let out = run_node_drain(env, &args).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("another run owns the node"), "{stdout}");
    let held = get_node(client, &node).await.unwrap();
    assert_eq!(
        annotation(&held, "node-drain.io/run-id"),
        first_run,
        "the first run still owns it"
    );
    assert!(unschedulable(&held), "the second run did not restore it");

    std::process::Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || first.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let after = get_node(client, &node).await.unwrap();
    assert!(!unschedulable(&after), "the owner restored it");
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notready_node_whose_kubelet_died_is_drained_and_retired() {
    let scene = Scene::new("hard-notready", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("anchor", 1, SMALL, 2).await;
    let node = node_of(&w.wait_running("anchor", 1, Duration::from_secs(120)).await[0]);
    let hostname = hostname_of(client, &node).await;
    w.pinned("web", SMALL, &hostname, json!({}), json!({}))
        .await;
    let mut db = pod_spec(&pool.name, SMALL, 2);
    db["nodeSelector"]["kubernetes.io/hostname"] = json!(hostname);
    let sts: k8s_openapi::api::apps::v1::StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": db}}
    }))
    .unwrap();
    Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    for app in ["web", "db"] {
        w.wait_running(app, 1, Duration::from_secs(60)).await;
    }
    let db_pod = w.pods("db").await[0].metadata.name.clone().unwrap();

    let killed = std::process::Command::new("testenv/kill-kubelet")
        .arg(&node)
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for("the node NotReady", Duration::from_secs(120), || async {
        let n = get_node(client, &node).await.ok_or("node gone")?;
        Ok((!is_ready(&n)).then_some(()))
    })
    .await;

    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--drain-timeout",
            "4m",
            "--retire",
            "nodeclaim",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "a NotReady node is drained:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("{node}  drained")), "{stdout}");
    assert!(stdout.contains("NodeClaim"), "and retired: {stdout}");
    // Evicted pods stayed Terminating (no kubelet to confirm); once stuck they were
    // deleted with grace 0 — the StatefulSet pod too, as the node is not Ready.
    let audit = audit_events(env, &ns.name);
    assert!(
        audit.iter().any(|e| e.verb == "delete"
            && e.object.as_ref().is_some_and(|o| o.name == db_pod)
            && e.request
                .as_ref()
                .is_some_and(|r| r.get("gracePeriodSeconds") == Some(&json!(0)))),
        "the stuck StatefulSet pod on the NotReady node was deleted with grace 0"
    );
    assert!(stderr.contains("stuck terminating"), "{stderr}");
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_drain_never_evicts_its_own_pod() {
    let scene = Scene::new("hard-self", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("anchor", 1, SMALL, 2).await;
    let node = node_of(&w.wait_running("anchor", 1, Duration::from_secs(120)).await[0]);
    let hostname = hostname_of(client, &node).await;
    w.pinned("self", SMALL, &hostname, json!({}), json!({}))
        .await;
    let own = w.wait_running("self", 1, Duration::from_secs(60)).await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let mut cmd = env.node_drain();
    cmd.env("POD_NAME", &own)
        .env("POD_NAMESPACE", &ns.name)
        .env("NODE_NAME", &node)
        .args([
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--retire",
            "none",
        ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let evicted = successful_evictions(env, &ns.name);
    assert!(
        !evicted.contains_key(&own),
        "its own pod is never evicted: {evicted:?}"
    );
    assert!(
        evicted.keys().any(|p| p.starts_with("anchor-")),
        "{evicted:?}"
    );
    assert!(
        w.pods("self")
            .await
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(&own)),
        "node-drain's own pod is still there"
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_deleted_during_its_drain_is_retired_by_someone_else_not_a_failure() {
    let scene = Scene::new("hard-deleted", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let node = node_of(&w.wait_running("web", 2, Duration::from_secs(120)).await[0]);
    let child = spawn_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--drain-timeout",
            "5m",
            "--retire",
            "nodeclaim",
        ],
    );
    wait_state(client, &node, "cordoned").await;
    // Someone deletes the Node outright (its finalizers removed: gone at once).
    let api: Api<Node> = Api::all(client.clone());
    api.patch(
        &node,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    api.delete(&node, &DeleteParams::default()).await.unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()),
    )
    .await
    .expect("the drain ends once its node is gone")
    .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "not a failure:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("retired by someone else"), "{stdout}");
    assert!(!stderr.contains("restarting"), "no restart storm: {stderr}");
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_two_pdbs_select_blocks_its_node_naming_both_and_nothing_is_forced() {
    let scene = Scene::new("hard-two-pdbs", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 1, SMALL, 2).await;
    w.pdb("first", "web", Some(1), None).await;
    w.pdb("second", "web", Some(1), None).await;
    let node = node_of(&w.wait_running("web", 1, Duration::from_secs(120)).await[0]);
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--on-timeout",
            "force",
            "--retire",
            "none",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "blocked:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("(first, second)"),
        "both PDBs named: {stdout}"
    );
    let deletes: Vec<_> = audit_events(env, &ns.name)
        .into_iter()
        .filter(|e| e.verb == "delete")
        .collect();
    assert!(deletes.is_empty(), "nothing forced: {deletes:?}");
    let after = get_node(client, &node).await.unwrap();
    assert!(!unschedulable(&after), "restored");
    scene.cleanup().await;
}
