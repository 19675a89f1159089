//! `node-drain drain` on the real test environment (Karpenter + KWOK): the seed
//! scenario, PDB floors, timeouts that restore, problem pods, blockers and
//! --force, and supervisor restarts in every phase with exactly one eviction per pod.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use support::*;

const SMALL: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_drains_the_two_oldest_of_eight_and_karpenter_replaces_them() {
    let scene = Scene::new(
        "drain-seed",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "25%"}])),
    )
    .await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    // Exactly 8 nodes of 4 CPUs: even a busy Karpenter cannot over-provision.
    pool.set_limits(json!({"cpu": "32"})).await;
    // 8 × 2 CPU + 3 × 1 CPU + 8 × 0.125 CPU = 20 of 32 CPU: 62.5 % → 63 %.
    w.spread_deployment(
        "web",
        8,
        Requests {
            cpu: "2",
            memory: "2Gi",
        },
    )
    .await;
    w.pdb("web", "web", Some(1), None).await;
    w.statefulset("db", 3, SMALL).await;
    w.daemonset(
        "agent",
        Requests {
            cpu: "125m",
            memory: "128Mi",
        },
    )
    .await;
    let nodes = pool.wait_ready_nodes(8, Duration::from_secs(180)).await;
    w.wait_running("web", 8, Duration::from_secs(60)).await;
    w.wait_running("db", 3, Duration::from_secs(60)).await;
    w.wait_running("agent", 8, Duration::from_secs(60)).await;
    // 8 × 4 CPUs; 20 CPUs requested: 62.5 % → 63 %.
    wait_nodepool_cpu_metrics(env, &pool.name, Some(32.0), Some(20.0)).await;

    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--drain-timeout",
            "3m",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "drain failed:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("maxAllocateRate=63"), "{stderr}");
    assert!(stderr.contains("drainNodeCount=2"), "{stderr}");
    let oldest: Vec<String> = nodes
        .iter()
        .take(2)
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    let drained: Vec<String> = stdout
        .lines()
        .filter(|l| l.contains("  drained:"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let mut sorted = drained.clone();
    sorted.sort();
    let mut want = oldest.clone();
    want.sort();
    assert_eq!(
        sorted, want,
        "exactly the two oldest nodes are drained:\n{stdout}"
    );

    // Karpenter terminates the retired nodes and replaces the capacity.
    wait_for(
        "the drained nodes gone and 8 Ready nodes again",
        Duration::from_secs(180),
        || async {
            let now = pool.nodes().await;
            let names: Vec<String> = now.iter().filter_map(|n| n.metadata.name.clone()).collect();
            let ready = now.iter().filter(|n| is_ready(n)).count();
            let gone = oldest.iter().all(|o| !names.contains(o));
            if gone && ready == 8 && now.len() == 8 {
                Ok(Some(()))
            } else {
                Err(format!(
                    "{} nodes, {ready} Ready, drained gone: {gone}",
                    now.len()
                ))
            }
        },
    )
    .await;
    w.wait_running("web", 8, Duration::from_secs(120)).await;
    w.wait_running("db", 3, Duration::from_secs(120)).await;

    let evictions = successful_evictions(env, &ns.name);
    assert!(
        !evictions.is_empty(),
        "pods were evicted through the Eviction API"
    );
    assert!(
        evictions.keys().all(|name| !name.starts_with("agent-")),
        "no DaemonSet pod is evicted: {evictions:?}"
    );
    assert!(
        evictions.values().all(|&n| n == 1),
        "one successful eviction per pod: {evictions:?}"
    );
    for node in &oldest {
        let reasons: Vec<String> = node_events(client, node)
            .await
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        for reason in ["DrainStarted", "DrainSucceeded", "NodeRetired"] {
            assert!(
                reasons.contains(&reason.to_string()),
                "{node}: Event {reason} missing in {reasons:?}"
            );
        }
    }
    scene.cleanup().await;
}

/// Records the lowest count of Ready, not-terminating pods of `app` seen by a watch.
async fn watch_ready_floor(
    client: kube::Client,
    ns: String,
    app: String,
    floor: Arc<Mutex<Option<usize>>>,
) {
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let mut stream = watcher(
        pods,
        watcher::Config::default().labels(&format!("app={app}")),
    )
    .boxed();
    let mut state: BTreeMap<String, bool> = BTreeMap::new();
    let mut synced = false;
    while let Some(Ok(event)) = stream.next().await {
        let ready = |p: &Pod| pod_ready(p) && p.metadata.deletion_timestamp.is_none();
        match event {
            watcher::Event::Init => state.clear(),
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                state.insert(p.metadata.uid.clone().unwrap_or_default(), ready(&p));
            }
            watcher::Event::Delete(p) => {
                state.remove(&p.metadata.uid.clone().unwrap_or_default());
            }
            watcher::Event::InitDone => synced = true,
        }
        if synced {
            let count = state.values().filter(|r| **r).count();
            let mut f = floor.lock().unwrap();
            *f = Some(f.map_or(count, |v| v.min(count)));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_with_max_unavailable_1_lets_pods_leave_one_at_a_time() {
    let scene = Scene::new(
        "drain-pdb",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "100%"}])),
    )
    .await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.spread_deployment("web", 4, SMALL).await;
    w.pdb("web", "web", Some(1), None).await;
    let pods = w.wait_running("web", 4, Duration::from_secs(180)).await;
    let targets: Vec<String> = pods.iter().take(2).map(node_of).collect();

    let floor = Arc::new(Mutex::new(None));
    let watch = tokio::spawn(watch_ready_floor(
        client.clone(),
        ns.name.clone(),
        "web".into(),
        floor.clone(),
    ));
    wait_for("the watch to sync", Duration::from_secs(10), || async {
        Ok(floor.lock().unwrap().map(|_| ()))
    })
    .await;
    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &targets.join(","),
            "--retire",
            "none",
            "--drain-timeout",
            "3m",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "drain failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    w.wait_running("web", 4, Duration::from_secs(120)).await;
    watch.abort();
    let lowest = floor.lock().unwrap().expect("the watch saw the pods");
    assert!(
        lowest >= 3,
        "Ready pods dropped to {lowest}, below the PDB's floor of 3"
    );
    assert!(
        text(&out.stderr).contains("pdb=\"web\""),
        "the PDB refused at least once and was named:\n{}",
        text(&out.stderr)
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_that_never_allows_restores_the_node_after_the_timeout() {
    let scene = Scene::new("drain-stuck", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);

    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--drain-timeout",
            "6s",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a node that is not drained is exit 1:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("NOT drained") && stdout.contains("PodDisruptionBudget frozen"),
        "{stdout}"
    );
    let after = get_node(client, &node)
        .await
        .expect("the node is not retired");
    assert!(!unschedulable(&after), "the node is uncordoned");
    assert_eq!(
        annotation(&after, "node-drain.io/state").as_deref(),
        Some("restored")
    );
    let events = node_events(client, &node).await;
    let failed = events
        .iter()
        .find(|(r, _)| r == "DrainFailed")
        .expect("a DrainFailed Event");
    assert!(
        failed.1.contains("frozen"),
        "the Event names the PDB: {failed:?}"
    );
    assert_eq!(
        w.pods("web").await.iter().filter(|p| pod_ready(p)).count(),
        2,
        "no pod was lost"
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn problem_pods_are_deleted_with_grace_0_and_statefulset_pods_are_evicted() {
    let scene = Scene::new("drain-problem", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    let small = Requests {
        cpu: "250m",
        memory: "256Mi",
    };
    w.problem_deployment("crash", 1, small, "CrashLoopBackOff")
        .await;
    w.problem_deployment("pull", 1, small, "ImagePullBackOff")
        .await;
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}, "annotations": {"kwok.node-drain.io/container-state": "CrashLoopBackOff"}},
                "spec": {"nodeSelector": {"karpenter.sh/nodepool": pool.name}, "terminationGracePeriodSeconds": 2,
                         "containers": [{"name": "db", "image": "registry.invalid/db:1", "resources": {"requests": {"cpu": "250m"}}}]}
            }
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();
    let pods = wait_for(
        "the three problem pods placed with their waiting reason",
        Duration::from_secs(120),
        || async {
            let mut all = Vec::new();
            for app in ["crash", "pull", "db"] {
                all.extend(w.pods(app).await);
            }
            let waiting = all.iter().filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c.state.as_ref().and_then(|s| s.waiting.as_ref()).is_some())
                    })
            });
            if waiting.count() == 3 {
                Ok(Some(all))
            } else {
                Err(format!("{} pods", all.len()))
            }
        },
    )
    .await;
    let mut targets: Vec<String> = pods.iter().map(node_of).collect();
    targets.sort();
    targets.dedup();

    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &targets.join(","),
            "--retire",
            "none",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "drain failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("문제 상태 파드 강제 삭제")
            && stderr.contains("status=\"CrashLoopBackOff\""),
        "{stderr}"
    );

    let audit = audit_events(env, &ns.name);
    let grace_zero_delete = |prefix: &str| {
        audit.iter().any(|e| {
            e.verb == "delete"
                && e.object
                    .as_ref()
                    .is_some_and(|o| o.name.starts_with(prefix))
                && e.request
                    .as_ref()
                    .is_some_and(|r| r["gracePeriodSeconds"] == 0)
        })
    };
    let evicted = successful_evictions(env, &ns.name);
    assert!(
        grace_zero_delete("crash-"),
        "CrashLoopBackOff pod deleted with grace 0"
    );
    assert!(
        grace_zero_delete("pull-"),
        "ImagePullBackOff pod deleted with grace 0"
    );
    assert!(
        !evicted
            .keys()
            .any(|n| n.starts_with("crash-") || n.starts_with("pull-")),
        "problem pods are not evicted: {evicted:?}"
    );
    assert_eq!(
        evicted.get("db-0"),
        Some(&1),
        "the StatefulSet pod on a Ready node is evicted: {evicted:?}"
    );
    assert!(
        !grace_zero_delete("db-"),
        "a StatefulSet pod on a Ready node is never force-deleted"
    );
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_and_do_not_disrupt_pods_block_their_node_unless_forced() {
    let scene = Scene::new("drain-block", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 1, SMALL, 2).await;
    let node = node_of(&w.wait_running("web", 1, Duration::from_secs(120)).await[0]);
    w.bare_pod(
        "bare",
        Requests {
            cpu: "100m",
            memory: "64Mi",
        },
        json!({}),
        Some(&node),
    )
    .await;
    w.bare_pod(
        "keep",
        Requests {
            cpu: "100m",
            memory: "64Mi",
        },
        json!({"karpenter.sh/do-not-disrupt": "true"}),
        Some(&node),
    )
    .await;
    w.wait_running("bare", 1, Duration::from_secs(30)).await;
    w.wait_running("keep", 1, Duration::from_secs(30)).await;

    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--retire",
            "none",
        ],
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
        stdout.contains(&format!("{}/bare (no controller", ns.name)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}/keep (karpenter.sh/do-not-disrupt", ns.name)),
        "{stdout}"
    );
    let after = get_node(client, &node).await.unwrap();
    assert!(!unschedulable(&after), "the blocked node is uncordoned");
    let events = node_events(client, &node).await;
    assert!(
        events
            .iter()
            .any(|(r, note)| r == "DrainBlocked" && note.contains("bare")),
        "{events:?}"
    );
    assert!(
        successful_evictions(env, &ns.name).is_empty(),
        "nothing evicted from a blocked node"
    );

    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--retire",
            "none",
            "--force",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "--force drains:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let evicted = successful_evictions(env, &ns.name);
    for pod in ["bare", "keep"] {
        assert_eq!(
            evicted.get(pod),
            Some(&1),
            "{pod} evicted under --force: {evicted:?}"
        );
    }
    let after = get_node(client, &node).await.unwrap();
    assert!(
        unschedulable(&after),
        "--retire none leaves the drained node cordoned"
    );
    assert_eq!(
        annotation(&after, "node-drain.io/state").as_deref(),
        Some("drained")
    );
    scene.cleanup().await;
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_timeout_force_deletes_what_a_pdb_holds_and_retire_node_deletes_the_node() {
    let scene = Scene::new("drain-force", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let held: Vec<String> = pods
        .iter()
        .filter(|p| node_of(p) == node)
        .filter_map(|p| p.metadata.name.clone())
        .collect();

    let out = run_node_drain(
        env,
        &[
            "drain",
            "--nodepool-name",
            &pool.name,
            "--nodes",
            &node,
            "--drain-timeout",
            "4s",
            "--on-timeout",
            "force",
            "--retire",
            "node",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "--on-timeout force drains:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("--on-timeout force deletes the remaining pods"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("node {node} deleted")),
        "--retire node deletes the Node: {stdout}"
    );
    assert!(
        stdout.contains(&format!("0 evicted, {} force-deleted", held.len())),
        "forced deletions are counted in the summary: {stdout}"
    );
    // The PDB refused every eviction; the pods left by deletion with their own grace period.
    let audit = audit_events(env, &ns.name);
    for pod in &held {
        assert!(
            audit.iter().any(|e| e.verb == "delete"
                && e.object.as_ref().is_some_and(|o| &o.name == pod)
                && e.request
                    .as_ref()
                    .is_some_and(|r| r.get("gracePeriodSeconds").is_none_or(|g| g != 0))),
            "{pod} deleted with its own grace period"
        );
    }
    assert!(
        successful_evictions(env, &ns.name).is_empty(),
        "the PDB never allowed an eviction"
    );
    wait_for("the Node object gone", Duration::from_secs(60), || async {
        Ok(get_node(client, &node).await.is_none().then_some(()))
    })
    .await;
    scene.cleanup().await;
}
