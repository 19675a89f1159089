//! A daemon's rotation survives the daemon: SIGKILLed after a wave is
//! recorded, the same daemon started again resumes it from the NodePool's
//! record; SIGKILLed again, a second daemon taking over the Lease resumes it
//! to completion.

mod support;

use std::time::Duration;

use serde_json::json;
use support::daemon::Daemon;
use support::rotation::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_and_then_a_new_leader_resume_the_rotation() {
    let (scene, originals) = spread_pool("rotd-resume", 3, json!([{"nodes": "1"}])).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);

    let lease = unique("rotd-lease");
    let args = daemon_rotation_args(&ns.name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = |identity: &str| {
        Daemon::start_args(env, &pool.name, &lease, identity, "rules: []\n", &[], &args)
    };
    let first_identity = unique("rotd-a");
    let mut first = start(&first_identity);
    first.wait_ready().await;
    let started = first
        .admin(format!("{}\n", json!({"cmd": "rotate", "nodepool": pool.name})).as_bytes())
        .await;
    assert_eq!(started["started"], json!(true), "{started}");
    let recorded = wait_replaced(client, &pool.name, 1, Duration::from_secs(150)).await;
    first.child.kill().expect("SIGKILL the daemon");
    let _ = first.child.wait();
    drop(first);

    // The same daemon again: it resumes the recorded rotation on election.
    let mut again = start(&first_identity);
    again.wait_ready().await;
    wait_replaced(client, &pool.name, 2, Duration::from_secs(150)).await;
    let log = again.log();
    assert!(
        log.contains("resuming the rotation recorded on the NodePool"),
        "{log}"
    );
    again.child.kill().expect("SIGKILL the daemon");
    let _ = again.child.wait();
    drop(again);

    // Another daemon takes the Lease over and finishes it, as the same run.
    let second = start(&unique("rotd-b"));
    second.wait_ready().await;
    // The new leader resumes the same run (it may finish at once: the wave the
    // killed daemon had in flight is finished by its takeover of those nodes).
    wait_no_record(client, &pool.name, Duration::from_secs(400)).await;
    let run = recorded["runId"].as_str().expect("runId");
    let log = second.log();
    assert!(
        log.lines().any(
            |l| l.contains("resuming the rotation recorded on the NodePool") && l.contains(run)
        ),
        "{log}"
    );
    let now: Vec<String> = pool
        .nodes()
        .await
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert_replaced(&originals, &now, &log);
    drop(second);
    delete_lease(client, &lease).await;
    scene.cleanup().await;
}
