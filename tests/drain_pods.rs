//! What a drain does with each kind of pod on the real test environment:
//! problem pods deleted with grace 0 (StatefulSet pods evicted), bare and
//! do-not-disrupt pods block unless forced, `--on-timeout force` and `--retire node`.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::*;

const SMALL: Requests = Requests {
    cpu: "1",
    memory: "1Gi",
};

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
