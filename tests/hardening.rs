//! Failure paths on the real test environment: an interrupt is never a
//! timeout; do-not-disrupt in Go syntax and unreadable values block; pods that
//! tolerate the unschedulable taint leave with the node; a drained node that
//! was not retired is not chosen again. More in `hardening_nodes.rs`.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{json, Value};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_is_not_a_timeout_even_with_on_timeout_force() {
    let scene = Scene::new("hard-interrupt", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
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
            "10m",
            "--on-timeout",
            "force",
            "--retire",
            "none",
        ],
    );
    wait_state(client, &node, "cordoned").await;
    // Let the PDB refuse at least once: the eviction is in its backoff.
    wait_refused_eviction(env, &ns.name).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("interrupted (SIGTERM)"), "{stdout}");
    assert!(
        !stderr.contains("--on-timeout force deletes"),
        "no force on an interrupt: {stderr}"
    );
    let deletes: Vec<_> = audit_events(env, &ns.name)
        .into_iter()
        .filter(|e| e.verb == "delete")
        .collect();
    assert!(
        deletes.is_empty(),
        "nothing deleted past the PDB: {deletes:?}"
    );
    let after = get_node(client, &node).await.unwrap();
    assert!(!unschedulable(&after), "restored: uncordoned");
    assert_eq!(
        annotation(&after, "node-drain.io/state").as_deref(),
        Some("restored")
    );
    assert!(
        annotation(&after, "node-drain.io/reason")
            .is_some_and(|r| r.contains("interrupted") && !r.contains("timeout")),
        "{:?}",
        after.metadata.annotations
    );
    let events = node_events(client, &node).await;
    assert!(
        events
            .iter()
            .any(|(r, note)| r == "DrainFailed" && note.contains("interrupted (SIGTERM)")),
        "{events:?}"
    );
    assert_eq!(
        w.pods("web").await.iter().filter(|p| pod_ready(p)).count(),
        2,
        "no pod lost"
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_duration_and_unreadable_do_not_disrupt_block_and_tolerating_pods_leave_with_the_node() {
    let scene = Scene::new("hard-dnd", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("anchor", 1, SMALL, 2).await;
    let node = node_of(&w.wait_running("anchor", 1, Duration::from_secs(120)).await[0]);
    let hostname = hostname_of(client, &node).await;
    w.pinned(
        "hours",
        SMALL,
        &hostname,
        json!({"karpenter.sh/do-not-disrupt": "1.5h"}),
        json!({}),
    )
    .await;
    w.pinned(
        "odd",
        SMALL,
        &hostname,
        json!({"karpenter.sh/do-not-disrupt": "soon"}),
        json!({}),
    )
    .await;
    w.pinned("stays", SMALL,
        &hostname,
        json!({}),
        json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
    )
    .await;
    for app in ["hours", "odd", "stays"] {
        w.wait_running(app, 1, Duration::from_secs(60)).await;
    }
    let args = |force: bool| {
        let mut a = vec![
            "drain".to_string(),
            "--nodepool-name".into(),
            pool.name.clone(),
            "--nodes".into(),
            node.clone(),
            "--retire".into(),
            "none".into(),
        ];
        if force {
            a.push("--force".into());
        }
        a
    };
    let plan = run_node_drain(
        env,
        &[args(false), vec!["--dry-run".into()]]
            .concat()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .await;
    let plan_text = text(&plan.stdout);
    assert!(
        plan_text.contains("tolerates the unschedulable taint"),
        "{plan_text}"
    );

    let out = run_node_drain(
        env,
        &args(false).iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "blocked is exit 1:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("\"1.5h\" until"),
        "a Go duration is understood: {stdout}"
    );
    assert!(
        stdout.contains("\"soon\" cannot be read"),
        "fail closed: {stdout}"
    );
    assert!(
        successful_evictions(env, &ns.name).is_empty(),
        "nothing evicted while blocked"
    );

    let out = run_node_drain(
        env,
        &args(true).iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "--force drains:\n{stdout}\n{}",
        text(&out.stderr)
    );
    let evicted = successful_evictions(env, &ns.name);
    for app in ["hours", "odd", "anchor"] {
        assert_eq!(
            evicted
                .keys()
                .filter(|p| p.starts_with(&format!("{app}-")))
                .count(),
            1,
            "{app} evicted once: {evicted:?}"
        );
    }
    assert!(
        !evicted.keys().any(|p| p.starts_with("stays-")),
        "a pod tolerating the unschedulable taint is not evicted: {evicted:?}"
    );
    assert!(
        w.pods("stays").await.iter().any(|p| node_of(p) == node),
        "it stays on the node and leaves with it"
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_that_was_not_retired_is_not_chosen_again() {
    let scene = Scene::new(
        "hard-drained",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "100%"}])),
    )
    .await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment("web", 3, SMALL).await;
    let nodes = pool.wait_ready_nodes(3, Duration::from_secs(180)).await;
    w.wait_running("web", 3, Duration::from_secs(60)).await;
    let mut names: Vec<(String, String)> = nodes
        .iter()
        .map(|n| {
            let created = n
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            (created, n.metadata.name.clone().unwrap())
        })
        .collect();
    names.sort();
    let oldest = names[0].1.clone();
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &oldest,
            "--retire",
            "none",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    wait_state(client, &oldest, "drained").await;

    wait_nodepool_cpu_metrics(env, &pool.name, None, None).await;
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--dry-run",
            "--output",
            "json",
            "--max-nodes",
            "1",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let plan: Value = serde_json::from_str(&stdout).expect("JSON plan");
    let entry = |name: &str| {
        plan["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == json!(name))
            .cloned()
            .unwrap()
    };
    assert_eq!(entry(&oldest)["chosen"], json!(false), "{stdout}");
    assert_eq!(
        entry(&oldest)["skipped"]["skip"],
        json!("already-drained"),
        "{stdout}"
    );
    assert_eq!(
        entry(&names[1].1)["chosen"],
        json!(true),
        "the next oldest comes in: {stdout}"
    );

    // A node no NodeClaim owns: --retire nodeclaim says so instead of succeeding quietly.
    let orphan = format!("{}-no-claim", pool.name);
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": orphan, "labels": {"karpenter.sh/nodepool": pool.name}}
    }))
    .unwrap();
    let api: Api<Node> = Api::all(client.clone());
    api.create(&PostParams::default(), &node).await.unwrap();
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &orphan,
            "--retire",
            "nodeclaim",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    let _ = api.delete(&orphan, &DeleteParams::default()).await;
    assert!(
        stdout.contains("not retired: no NodeClaim found"),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let events = node_events(client, &orphan).await;
    assert!(
        events.iter().any(|(r, _)| r == "RetireSkipped"),
        "{events:?}"
    );
    scene.cleanup().await;
}
