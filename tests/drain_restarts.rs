//! A drain interrupted on the real test environment: a supervisor restart in
//! every phase (exactly one eviction per pod), SIGINT restores, a SIGKILLed
//! run is restored by the next one.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;
use support::*;

const SMALL: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_restart_in_each_phase_completes_with_exactly_one_eviction_per_pod() {
    let scene = Scene::new(
        "drain-restart",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "100%"}])),
    )
    .await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    let faults = [
        "intent",
        "cordon",
        "evict",
        "evict:panic",
        "wait",
        "retire",
        "drained",
    ];
    w.spread_deployment("web", faults.len() as i32, SMALL).await;
    w.deployment(
        "filler",
        12,
        Requests {
            cpu: "250m",
            memory: "256Mi",
        },
        2,
    )
    .await;
    w.daemonset(
        "agent",
        Requests {
            cpu: "50m",
            memory: "32Mi",
        },
    )
    .await;
    let nodes = pool
        .wait_ready_nodes(faults.len(), Duration::from_secs(180))
        .await;
    w.wait_running("web", faults.len(), Duration::from_secs(60))
        .await;
    w.wait_running("filler", 12, Duration::from_secs(60)).await;

    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for (fault, node) in faults.iter().zip(nodes.iter()) {
        let node_name = node.metadata.name.clone().unwrap();
        let planned: Vec<String> = pod_api
            .list(&kube::api::ListParams::default().fields(&format!("spec.nodeName={node_name}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| {
                !p.metadata
                    .name
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("agent-")
            })
            .filter_map(|p| p.metadata.name)
            .collect();
        assert!(!planned.is_empty(), "{node_name} runs pods to drain");
        let mut cmd_args = vec![
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node_name,
            "--retire",
            "nodeclaim",
            "--drain-timeout",
            "2m",
        ];
        let mut cmd = env.node_drain();
        cmd.env("NODE_DRAIN_TEST_FAULT", fault)
            .args(cmd_args.drain(..));
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(0),
            "fault {fault}: drain failed:\n{stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("test fault") && stderr.contains("restarting"),
            "fault {fault}: the actor failed and was restarted:\n{stderr}"
        );
        assert!(
            stdout.contains(&format!("{node_name}  drained")),
            "fault {fault}:\n{stdout}"
        );
        let evicted = successful_evictions(env, &ns.name);
        for pod in &planned {
            assert_eq!(
                evicted.get(pod),
                Some(&1),
                "fault {fault}: pod {pod} must get exactly one successful eviction: {evicted:?}"
            );
        }
    }
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_restores_and_a_sigkilled_run_is_restored_by_the_next_one() {
    let scene = Scene::new("drain-signal", "c-4x-amd64-linux", None).await;
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

    // SIGINT mid-drain: the node is restored and the run says so (exit 1).
    let child = spawn_drain(env, &args);
    wait_state(client, &node, "cordoned").await;
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let after = get_node(client, &node).await.unwrap();
    assert!(!unschedulable(&after), "SIGINT restores: uncordoned");
    assert_eq!(
        annotation(&after, "node-drain.io/state").as_deref(),
        Some("restored")
    );
    assert_eq!(
        annotation(&after, "node-drain.io/reason").as_deref(),
        Some("interrupted (SIGINT)"),
        "the record says why: an interrupt, not a timeout"
    );

    // SIGKILL mid-drain: the node stays cordoned with its state recorded...
    let mut child = spawn_drain(env, &args);
    wait_state(client, &node, "cordoned").await;
    child.kill().unwrap();
    let _ = child.wait();
    let killed = get_node(client, &node).await.unwrap();
    assert!(unschedulable(&killed), "a SIGKILL leaves the node cordoned");
    assert_eq!(
        annotation(&killed, "node-drain.io/state").as_deref(),
        Some("cordoned"),
        "…with its state recorded"
    );

    // ...and the next run restores it before it plans (its heartbeat is stale).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--orphan-after",
            "2s",
            "--drain-timeout",
            "3s",
            "--retire",
            "none",
        ],
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("restored a node an earlier node-drain left mid-drain"),
        "{stderr}"
    );
    let events = node_events(client, &node).await;
    assert!(
        events
            .iter()
            .any(|(r, note)| r == "DrainFailed" && note.contains("stopped mid-drain")),
        "{events:?}"
    );
    let after = get_node(client, &node).await.unwrap();
    assert!(!unschedulable(&after), "restored in the end");
    assert_eq!(
        w.pods("web").await.iter().filter(|p| pod_ready(p)).count(),
        2,
        "no pod lost"
    );
    scene.cleanup().await;
}
