//! Maintenance windows gate a daemon's rotation waves: outside a window no
//! wave starts (the rotation says what it waits for), the window's opening
//! starts the first wave. The window is computed from the test's clock in a
//! non-UTC zone (Asia/Seoul): it opens at the minute two minutes from now.

mod support;

use std::time::Duration;

use jiff::tz::TimeZone;
use serde_json::json;
use support::daemon::Daemon;
use support::rotation::*;
use support::*;

const ONE_CPU: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wave_starts_before_the_window_opens_and_the_opening_starts_one() {
    let scene = Scene::new(
        "rotd-window",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "2"}])),
    )
    .await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment("web", 2, ONE_CPU).await;
    pool.wait_ready_nodes(2, Duration::from_secs(180)).await;
    w.wait_running("web", 2, Duration::from_secs(60)).await;
    wait_nodepool_cpu_metrics(env, &pool.name, Some(8.0), None).await;

    // The minute two minutes from now, on Seoul's wall clock.
    let seoul = TimeZone::get("Asia/Seoul").expect("Asia/Seoul");
    let now = jiff::Timestamp::now().to_zoned(seoul.clone());
    let minute = now
        .datetime()
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .expect("a minute");
    let opening = (minute + jiff::Span::new().minutes(2))
        .to_zoned(seoul)
        .expect("a Seoul time");
    let config = format!(
        "rules: []\nmaintenanceWindows:\n  - schedule: '{} {} * * *'\n    duration: 10m\n    timeZone: Asia/Seoul\n",
        opening.minute(),
        opening.hour()
    );
    let opening = opening.timestamp();

    let lease = unique("rotd-lease");
    let args = daemon_rotation_args(&ns.name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let daemon = Daemon::start_args(
        env,
        &pool.name,
        &lease,
        &unique("rotd"),
        &config,
        &[],
        &args,
    );
    daemon.wait_ready().await;
    let started = daemon
        .admin(format!("{}\n", json!({"cmd": "rotate", "nodepool": pool.name})).as_bytes())
        .await;
    assert_eq!(started["started"], json!(true), "{started}");
    let waiting = wait_for(
        "the rotation waiting for the window",
        Duration::from_secs(30),
        || async {
            match daemon_rotation(&daemon, &pool.name).await {
                Some(r) if r["waiting"]["state"] == "waiting-for-window" => Ok(Some(r)),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        waiting["waiting"]["opens"],
        json!(opening.to_string()),
        "{waiting}"
    );

    // The first sign of a wave: its placeholder pods (capacity first) or a
    // cordon. Neither before the opening.
    let placeholders: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), &ns.name);
    let by_label = kube::api::ListParams::default().labels("node-drain.io/placeholder");
    let first_sign = wait_for(
        "the first wave's start",
        Duration::from_secs(300),
        || async {
            let created = placeholders
                .list(&by_label)
                .await
                .map(|l| l.items)
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
                .min();
            if let Some(created) = created {
                return Ok(Some(created));
            }
            if pool.nodes().await.iter().any(unschedulable) {
                return Ok(Some(jiff::Timestamp::now()));
            }
            Err(format!("nothing at {}", jiff::Timestamp::now()))
        },
    )
    .await;
    assert!(
        first_sign >= opening,
        "the first wave started at {first_sign}, before the window opened at {opening}"
    );
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "rotation waiting for the maintenance window opening at {opening}"
        )),
        "{log}"
    );
    wait_no_record(client, &pool.name, Duration::from_secs(400)).await;
    drop(daemon);
    delete_lease(client, &lease).await;
    scene.cleanup().await;
}
