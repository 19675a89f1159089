//! Rotation in the daemon (`node-drain serve`) on the real test environment:
//! `admin rotate` rotates a NodePool to completion within its budget, a pause
//! holds the next wave until a resume, a cancel stops it after the wave in
//! flight and removes its record. Restarts and takeovers:
//! `rotation_daemon_resume.rs`; maintenance windows: `rotation_daemon_window.rs`.

mod support;

use std::time::Duration;

use serde_json::json;
use support::rotation::*;
use support::*;

fn names(nodes: &[k8s_openapi::api::core::v1::Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rotate_replaces_the_pool_within_its_budget_and_a_pause_holds_the_next_wave() {
    let (scene, originals) = spread_pool("rotd-six", 6, json!([{"nodes": "2"}])).await;
    let (client, ns, pool) = (&scene.client, &scene.ns, &scene.pool);
    let lease = unique("rotd-lease");
    let daemon = rotation_daemon(&scene, &lease, "rules: []\n", &[]).await;

    // The dry run answers the preflight and touches nothing.
    let dry = daemon
        .admin(
            format!(
                "{}\n",
                json!({"cmd": "rotate", "nodepool": pool.name, "dry_run": true})
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(
        dry["preflight"]["remaining"].as_array().map(Vec::len),
        Some(6),
        "{dry}"
    );
    assert_eq!(rotation_record(client, &pool.name).await, None);

    let sampler = PoolSampler::start(
        client,
        &pool.name,
        &ns.name,
        "web",
        Duration::from_millis(250),
    );
    let rotate = format!("{}\n", json!({"cmd": "rotate", "nodepool": pool.name}));
    let started = daemon.admin(rotate.as_bytes()).await;
    assert_eq!(started["started"], json!(true), "{started}");
    let again = daemon.admin(rotate.as_bytes()).await;
    assert_eq!(
        again["message"].as_str(),
        Some(format!("already rotating NodePool {}", pool.name).as_str()),
        "{again}"
    );

    // Paused once the first wave is recorded: the gate holds the next one.
    wait_replaced(client, &pool.name, 2, Duration::from_secs(300)).await;
    let pause = json!({"cmd": "rotation", "nodepool": pool.name, "action": "pause"});
    let paused = daemon.admin(format!("{pause}\n").as_bytes()).await;
    assert_eq!(paused["ok"], json!(true), "{paused}");
    assert_eq!(
        nodepool_annotation(client, &pool.name, "node-drain.io/rotation-paused")
            .await
            .as_deref(),
        Some("true")
    );
    wait_for(
        "the rotation held by the pause",
        Duration::from_secs(300),
        || async {
            let r = daemon_rotation(&daemon, &pool.name).await;
            match r {
                Some(r) if r["waiting"]["state"] == "paused" => Ok(Some(())),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let held_from = rotation_record(client, &pool.name).await.expect("record")["waves"]
        .as_array()
        .map(Vec::len);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let record = rotation_record(client, &pool.name).await.expect("record");
    assert_eq!(
        record["waves"].as_array().map(Vec::len),
        held_from,
        "a wave ran while paused: {record}"
    );
    let cordoned: Vec<String> = pool
        .nodes()
        .await
        .iter()
        .filter(|n| unschedulable(n))
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert_eq!(
        cordoned,
        Vec::<String>::new(),
        "a node was cordoned while paused"
    );

    let resume = json!({"cmd": "rotation", "nodepool": pool.name, "action": "resume"});
    let resumed = daemon.admin(format!("{resume}\n").as_bytes()).await;
    assert_eq!(resumed["ok"], json!(true), "{resumed}");
    wait_no_record(client, &pool.name, Duration::from_secs(600)).await;
    let samples = sampler.stop().await;
    let log = daemon.log();
    assert!(
        log.contains("rotation paused: the next wave waits for a resume"),
        "{log}"
    );

    let now = names(&pool.wait_ready_nodes(6, Duration::from_secs(120)).await);
    assert_replaced(&originals, &now, &log);
    assert!(
        max_disrupted(&samples) <= 2,
        "max disrupted {}",
        max_disrupted(&samples)
    );
    assert_eq!(daemon_rotation(&daemon, &pool.name).await, None);
    assert_eq!(
        nodepool_annotation(client, &pool.name, "node-drain.io/rotation-paused").await,
        None
    );
    drop(daemon);
    delete_lease(client, &lease).await;
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_stops_the_rotation_after_the_wave_in_flight_and_removes_its_record() {
    let (scene, originals) = spread_pool("rotd-cancel", 3, json!([{"nodes": "1"}])).await;
    let (client, pool) = (&scene.client, &scene.pool);
    let lease = unique("rotd-lease");
    let daemon = rotation_daemon(&scene, &lease, "rules: []\n", &[]).await;
    let started = admin_rotate(&daemon, &pool.name).await;
    assert_eq!(started["started"], json!(true), "{started}");
    wait_replaced(client, &pool.name, 1, Duration::from_secs(300)).await;
    let cancel = json!({"cmd": "rotation", "nodepool": pool.name, "action": "cancel"});
    let cancelled = daemon.admin(format!("{cancel}\n").as_bytes()).await;
    assert_eq!(cancelled["ok"], json!(true), "{cancelled}");
    wait_for(
        "the rotation gone from the status",
        Duration::from_secs(300),
        || async {
            match daemon_rotation(&daemon, &pool.name).await {
                None => Ok(Some(())),
                Some(r) => Err(r.to_string()),
            }
        },
    )
    .await;
    assert_eq!(rotation_record(client, &pool.name).await, None);
    // Nothing more after the cancel: two originals left, uncordoned.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let left: Vec<String> = pool
        .nodes()
        .await
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none() && !unschedulable(n))
        .filter_map(|n| n.metadata.name.clone())
        .filter(|n| originals.contains(n))
        .collect();
    assert_eq!(
        left.len(),
        2,
        "originals left after the cancel: {left:?}\n{}",
        daemon.log()
    );
    drop(daemon);
    delete_lease(client, &lease).await;
    scene.cleanup().await;
}
