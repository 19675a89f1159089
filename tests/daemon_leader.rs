//! Two `node-drain serve` on one Lease, on the real test environment: only
//! the leader acts; a SIGKILLed leader's drain is completed by the next; a
//! leader paused past its lease wakes up fenced and steps down; two daemons
//! with no POD_NAME or HOSTNAME still have identities of their own.

mod support;

use std::time::Duration;

use serde_json::json;
use support::daemon::{alert, Daemon, TOKEN};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

/// Two daemons on one Lease: only the leader acts. The leader is SIGKILLed
/// while a PDB holds its drain; the other takes the lease, takes the node over
/// once its heartbeat is stale, and completes the drain: every pod evicted
/// successfully exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_leaders_drain_is_completed_by_the_next_leader() {
    let scene = Scene::new("daemon-takeover", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let lease = unique("lease");
    let mut first = Daemon::start(env, &pool.name, &lease, &unique("first"), config);
    first.wait_ready().await;
    let second = Daemon::start(env, &pool.name, &lease, &unique("second"), config);
    // The follower is alive, not ready, and refuses webhooks with 503.
    wait_for("the follower up", Duration::from_secs(30), || async {
        match reqwest::get(format!("{}/healthz", second.url)).await {
            Ok(r) if r.status() == 200 => Ok(Some(())),
            other => Err(format!("{:?}", other.map(|r| r.status()))),
        }
    })
    .await;
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T04:00:00Z",
    );
    assert_eq!(
        second.post(Some(TOKEN), good.to_string()).await,
        503,
        "a follower never acts"
    );
    let ready = reqwest::get(format!("{}/readyz", second.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    assert_eq!(first.post(Some(TOKEN), good.to_string()).await, 202);
    wait_state(client, &node, "cordoned").await;
    wait_refused_eviction(env, &ns.name).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    kube::Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
        client.clone(),
        &ns.name,
    )
    .delete("frozen", &Default::default())
    .await
    .unwrap();

    second.wait_ready().await;
    wait_retired(
        client,
        &node,
        "the node drained and retired by the new leader",
        Duration::from_secs(150),
    )
    .await;
    assert!(!successful_evictions(env, &ns.name).is_empty());
    assert_evicted_at_most_once(env, &ns.name);
    assert!(second.log().contains("takeover of run"), "{}", second.log());
}

/// A leader paused (SIGSTOP) past its lease: the other daemon takes the lease
/// and the node and completes the drain; woken (SIGCONT), the paused one sends
/// no write at all (fencing) and exits non-zero (it lost the lease).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_wakes_up_fenced_and_steps_down() {
    let scene = Scene::new("daemon-fence", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let lease = unique("lease");
    let paused_id = unique("paused");
    let mut first = Daemon::start(env, &pool.name, &lease, &paused_id, config);
    first.wait_ready().await;
    let second = Daemon::start(env, &pool.name, &lease, &unique("second"), config);
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T05:00:00Z",
    );
    assert_eq!(first.post(Some(TOKEN), good.to_string()).await, 202);
    wait_state(client, &node, "cordoned").await;
    wait_refused_eviction(env, &ns.name).await;
    let pid = first.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    kube::Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
        client.clone(),
        &ns.name,
    )
    .delete("frozen", &Default::default())
    .await
    .unwrap();
    second.wait_ready().await;
    wait_retired(
        client,
        &node,
        "the node drained and retired by the new leader",
        Duration::from_secs(150),
    )
    .await;

    let woken = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    let mut status = None;
    for _ in 0..400 {
        if let Ok(Some(s)) = first.child.try_wait() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status =
        status.unwrap_or_else(|| panic!("the woken leader did not step down:\n{}", first.log()));
    assert!(
        !status.success(),
        "a leader that lost its lease exits non-zero"
    );
    // Let the audit log catch up, then: not one write from the woken process.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = writes_by(env, &paused_id, &woken);
    assert!(
        writes.is_empty(),
        "the fenced leader wrote: {writes:#?}\n{}",
        first.log()
    );
    assert!(first.log().contains("leadership lost"), "{}", first.log());
    // Stepping down ends the reconcile loop at once (bench/soak saw it retry
    // the closed planner mailbox 256 times in 12 ms, with no pause).
    let retries = first.log().matches("reconciliation failed").count();
    assert!(
        retries <= 1,
        "{retries} reconciliation retries while stepping down:\n{}",
        first.log()
    );
    assert_evicted_at_most_once(env, &ns.name);
}

/// Two daemons with neither POD_NAME nor HOSTNAME (systemd exports no
/// HOSTNAME): each still has an identity of its own (the host name and a
/// random suffix), so they are never both ready, never both leaders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_without_pod_name_or_hostname_are_never_both_ready() {
    let scene = Scene::new("daemon-identity", "c-4x-amd64-linux", None).await;
    let (env, pool) = (&scene.env, &scene.pool);
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let lease = unique("lease");
    let first = Daemon::start(env, &pool.name, &lease, "", config);
    let second = Daemon::start(env, &pool.name, &lease, "", config);
    let http = reqwest::Client::new();
    let ready = |d: &Daemon| {
        let url = format!("{}/readyz", d.url);
        let http = http.clone();
        async move { matches!(http.get(url).send().await, Ok(r) if r.status() == 200) }
    };
    let started = std::time::Instant::now();
    let mut ever_ready = 0;
    while started.elapsed() < Duration::from_secs(30) {
        let (a, b) = (ready(&first).await, ready(&second).await);
        assert!(
            !(a && b),
            "both ready after {:?}:\n--- first\n{}\n--- second\n{}",
            started.elapsed(),
            first.log(),
            second.log()
        );
        ever_ready += usize::from(a || b);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(ever_ready > 0, "neither became ready:\n{}", first.log());
    let holder = kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        scene.client.clone(),
        "default",
    )
    .get(&lease)
    .await
    .unwrap()
    .spec
    .and_then(|s| s.holder_identity)
    .unwrap_or_default();
    assert!(
        holder.contains('_') && holder != "cli",
        "the holder is the host name and a random suffix: {holder:?}"
    );
}
