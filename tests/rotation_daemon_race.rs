//! An alert that takes a node of a rotation's wave while the wave reserves its
//! capacity (the node labelled for the wave, not cordoned yet), its drain held
//! by a PDB until the wave would start: the rotation plans its wave again and,
//! once the PDB goes, finishes. Found
//! by bench/soak: the wave's run was refused ("already being drained by run
//! ...") and the whole rotation ended, `daemon rotation failed`, until the
//! next leader.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::daemon::{alert, Daemon, TOKEN};
use support::rotation::*;
use support::*;

const ONE_CPU: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};
const WAVE_LABEL: &str = "node-drain.io/rotation-wave";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_taking_a_node_of_the_reserving_wave_does_not_end_the_rotation() {
    let scene = Scene::new(
        "rotd-race",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "1"}])),
    )
    .await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment("web", 3, ONE_CPU).await;
    let originals: Vec<String> = pool
        .wait_ready_nodes(3, Duration::from_secs(180))
        .await
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    w.wait_running("web", 3, Duration::from_secs(60)).await;
    wait_nodepool_cpu_metrics(env, &pool.name, Some(12.0), None).await;
    // No disruption allowed: the alert's drain is still evicting when the wave starts.
    w.pdb("web", "web", None, Some(3)).await;

    let lease = unique("rotd-race-lease");
    let args = daemon_rotation_args(&ns.name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let config = "rules:\n  - alertname: SoakDiskPressure\n    action: drain-node\n";
    let daemon = Daemon::start_args(
        env,
        &pool.name,
        &lease,
        &unique("rotd-race"),
        config,
        &[],
        &args,
    );
    daemon.wait_ready().await;
    let started = daemon
        .admin(format!("{}\n", json!({"cmd": "rotate", "nodepool": pool.name})).as_bytes())
        .await;
    assert_eq!(started["started"], json!(true), "{started}");

    // The first wave's node, labelled while its placeholders wait for a node.
    let api: Api<Node> = Api::all(client.clone());
    let labelled =
        ListParams::default().labels(&format!("karpenter.sh/nodepool={},{WAVE_LABEL}", pool.name));
    let node = wait_for(
        "a node labelled for the first wave, not cordoned yet",
        Duration::from_secs(120),
        || async {
            let listed = api.list(&labelled).await.map_err(|e| e.to_string())?;
            Ok(listed
                .items
                .iter()
                .find(|n| !nodes::unschedulable(n))
                .and_then(|n| n.metadata.name.clone()))
        },
    )
    .await;
    let body = alert(
        json!({"alertname": "SoakDiskPressure", "node": node}),
        "2026-11-29T13:00:00Z",
    );
    assert_eq!(daemon.post(Some(TOKEN), body.to_string()).await, 202);

    // The wave's capacity is Ready while the alert's run still holds the node.
    // Before the fix: `daemon rotation failed`, the record left for a next leader.
    wait_for(
        "the rotation's wave to meet the alert's run",
        Duration::from_secs(300),
        || async {
            let log = daemon.log();
            assert!(
                !log.contains("daemon rotation failed"),
                "the alert ended the rotation:\n{log}"
            );
            let met = log.contains("another run took a node of this wave before its cordon");
            Ok(met.then_some(()))
        },
    )
    .await;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns.name);
    pdbs.delete("web", &Default::default())
        .await
        .expect("delete the PDB");
    wait_for(
        "the rotation to finish (no record on the NodePool)",
        Duration::from_secs(400),
        || async {
            let log = daemon.log();
            assert!(!log.contains("daemon rotation failed"), "{log}");
            match rotation_record(client, &pool.name).await {
                None => Ok(Some(())),
                Some(r) => Err(r.to_string()),
            }
        },
    )
    .await;
    let now: Vec<String> = pool
        .nodes()
        .await
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert_replaced(&originals, &now, "");
    drop(daemon);
    delete_lease(client, &lease).await;
    scene.cleanup().await;
}
