//! `drain --dry-run` and the plan against real Karpenter, Prometheus and the
//! API server: unusable Prometheus answers fail closed, and a dry run changes
//! nothing and names the oldest nodes. The allocate rates: `allocate_rate.rs`.

mod support;

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use node_drain::units::parse_quantity;
use serde_json::{json, Value};
use support::http::{serve, Request, Response};
use support::*;

/// Runs node-drain without blocking the runtime (test servers live on it).
async fn run(env: &TestEnv, args: &[&str]) -> Output {
    let mut cmd = env.node_drain();
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run node-drain"))
        .await
        .expect("join node-drain")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn node_capacity(node: &Node, name: &str) -> f64 {
    node.status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get(name))
        .and_then(|q| parse_quantity(&q.0))
        .unwrap_or(0.0)
}

/// A Mimir-like tenant gate in front of the real Prometheus: no X-Scope-OrgID is
/// a 401 "no org id" (as Mimir answers), `tenant-a` is forwarded, a tenant with
/// no data gets an empty result; `bad-request` and `nan` give Prometheus-shaped
/// answers for those paths. It records every tenant header it saw.
async fn mimir_gate(
    prometheus: String,
    seen: Arc<Mutex<Vec<Option<String>>>>,
) -> support::http::Server {
    serve(move |req: Request| {
        let prometheus = prometheus.clone();
        let seen = seen.clone();
        async move {
            let org = req.header("X-Scope-OrgID").map(str::to_string);
            seen.lock().unwrap().push(org.clone());
            let target = req.target.strip_prefix("/prometheus").unwrap_or(&req.target).to_string();
            match org.as_deref() {
                None => Response::new(401, "text/plain", "no org id\n"),
                Some("tenant-a") => {
                    let answer = reqwest::get(format!("{prometheus}{target}")).await.unwrap();
                    let status = answer.status().as_u16();
                    Response::new(status, "application/json", answer.bytes().await.unwrap().to_vec())
                }
                Some("bad-request") => Response::new(
                    400,
                    "application/json",
                    r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:1: parse error"}"#,
                ),
                Some("nan") => Response::new(
                    200,
                    "application/json",
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"karpenter_nodepools_usage"},"value":[1,"NaN"]}]}}"#,
                ),
                Some(_) => Response::new(200, "application/json", r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_prometheus_answers_fail_closed_with_exit_3_and_no_plan() {
    let env = TestEnv::load();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let gate = mimir_gate(env.prometheus_url(), seen.clone()).await;
    let mimir = format!("{}/prometheus", gate.url());
    let prometheus_404 = format!("{}/nope", env.prometheus_url());
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "Prometheus down",
            vec!["--prometheus-address", "http://127.0.0.1:9"],
            "is unreachable",
        ),
        (
            "Mimir without a tenant",
            vec!["--prometheus-address", &mimir, "--prometheus-org-id", ""],
            "answered 401 \\\"no org id",
        ),
        (
            "Mimir, a tenant with no data",
            vec![
                "--prometheus-address",
                &mimir,
                "--prometheus-org-id",
                "tenant-b",
            ],
            "returned no series",
        ),
        (
            "Prometheus' own 400",
            vec![
                "--prometheus-address",
                &mimir,
                "--prometheus-org-id",
                "bad-request",
            ],
            "HTTP 400",
        ),
        (
            "NaN",
            vec!["--prometheus-address", &mimir, "--prometheus-org-id", "nan"],
            "not a finite number",
        ),
        (
            "a wrong path",
            vec!["--prometheus-address", &prometheus_404],
            "HTTP 404",
        ),
        (
            "a NodePool with no metrics",
            vec!["--nodepool-name", "no-such-nodepool"],
            "returned no series",
        ),
    ];
    for (name, extra, expected) in cases {
        for command in [
            vec!["karpenter", "allocate-rate"],
            vec!["drain", "--dry-run"],
        ] {
            let mut args = command.clone();
            if !extra.contains(&"--nodepool-name") {
                args.extend(["--nodepool-name", "some-pool"]);
            }
            args.extend(extra.iter().copied());
            let out = run(&env, &args).await;
            let stderr = text(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(3),
                "{name} ({command:?}): exit code; stderr:\n{stderr}"
            );
            assert!(
                stderr.contains(expected),
                "{name} ({command:?}): expected {expected:?} in:\n{stderr}"
            );
            assert!(
                out.stdout.is_empty(),
                "{name} ({command:?}): no plan may be printed, got:\n{}",
                text(&out.stdout)
            );
        }
    }
    {
        let seen = seen.lock().unwrap();
        assert!(seen.contains(&None), "the empty org id sends no header");
        assert!(
            seen.contains(&Some("tenant-b".into())),
            "the org id is sent as X-Scope-OrgID"
        );
        assert!(!seen.contains(&Some("".into())), "never an empty header");
    }

    // The prefix /prometheus and the tenant header reach the real Prometheus.
    let out = run(
        &env,
        &[
            "karpenter",
            "allocate-rate",
            "--prometheus-address",
            &mimir,
            "--prometheus-org-id",
            "tenant-a",
            "--nodepool-name",
            "no-such-nodepool",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("returned no series"),
        "{}",
        text(&out.stderr)
    );

    // Bad usage is exit 2, before anything is asked.
    let out = run(
        &env,
        &["karpenter", "allocate-rate", "--nodepool-name", "Bad'Name"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = run(
        &env,
        &[
            "karpenter",
            "allocate-rate",
            "--prometheus-address",
            "localhost:9090",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// resourceVersion of every object a drain could touch: the NodePool, its
/// NodeClaims and nodes, and the pods of the namespace.
async fn versions(
    client: &kube::Client,
    pool: &TestNodePool,
    ns: &str,
) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let rv = |kind: &str, name: Option<String>, v: Option<String>| {
        (
            format!("{kind}/{}", name.unwrap_or_default()),
            v.unwrap_or_default(),
        )
    };
    let selector = ListParams::default().labels(&format!("karpenter.sh/nodepool={}", pool.name));
    for node in pool.nodes().await {
        all.extend([rv(
            "node",
            node.metadata.name,
            node.metadata.resource_version,
        )]);
    }
    let claims: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim")),
    );
    for claim in claims.list(&selector).await.unwrap().items {
        all.extend([rv(
            "nodeclaim",
            claim.metadata.name,
            claim.metadata.resource_version,
        )]);
    }
    let pools: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool")),
    );
    let np = pools.get(&pool.name).await.unwrap();
    all.extend([rv(
        "nodepool",
        np.metadata.name,
        np.metadata.resource_version,
    )]);
    for pod in Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
    {
        all.extend([rv("pod", pod.metadata.name, pod.metadata.resource_version)]);
    }
    all
}

#[tokio::test]
async fn dry_run_changes_nothing_and_names_the_oldest_nodes() {
    let scene = Scene::new(
        "plan-dry",
        "c-4x-amd64-linux",
        Some(json!([{"nodes": "100%"}])),
    )
    .await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();

    // Four nodes first, four more later: the oldest are known.
    w.spread_deployment(
        "old",
        4,
        Requests {
            cpu: "1",
            memory: "1Gi",
        },
    )
    .await;
    let old_nodes = pool.wait_ready_nodes(4, Duration::from_secs(120)).await;
    w.wait_running("old", 4, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // creationTimestamp has 1 s resolution
    w.spread_deployment(
        "new",
        4,
        Requests {
            cpu: "1",
            memory: "1Gi",
        },
    )
    .await;
    let nodes = pool.wait_ready_nodes(8, Duration::from_secs(120)).await;
    w.wait_running("new", 4, Duration::from_secs(60)).await;
    let want: f64 = nodes.iter().map(|n| node_capacity(n, "cpu")).sum();
    // 8 pods of 1 CPU.
    wait_nodepool_cpu_metrics(env, &pool.name, Some(want), Some(8.0)).await;

    let before = versions(client, pool, &ns.name).await;
    let out = run(
        env,
        &[
            "drain",
            "--dry-run",
            "--nodepool-name",
            &pool.name,
            "--max-nodes",
            "2",
            "--output",
            "json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "dry run failed: {}",
        text(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text_out = run(
        env,
        &[
            "drain",
            "--dry-run",
            "--nodepool-name",
            &pool.name,
            "--max-nodes",
            "2",
        ],
    )
    .await;
    assert!(text_out.status.success());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = versions(client, pool, &ns.name).await;
    // Karpenter may have launched a spare node while the pods were pending: count
    // what is there, each node with its NodeClaim.
    let count = |kind: &str| before.keys().filter(|k| k.starts_with(kind)).count();
    assert!(count("node/") >= 8, "8 nodes or more: {before:?}");
    assert_eq!(count("node/"), count("nodeclaim/"), "a NodeClaim per node");
    assert_eq!(
        (count("nodepool/"), count("pod/")),
        (1, 8),
        "the NodePool, 8 pods"
    );
    assert_eq!(before, after, "a dry run must change nothing");

    let chosen: Vec<String> = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["chosen"] == true)
        .map(|n| n["node"].as_str().unwrap().to_string())
        .collect();
    let oldest: Vec<String> = nodes
        .iter()
        .take(2)
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(chosen, oldest, "the two oldest nodes are chosen");
    let old_names: Vec<String> = old_nodes
        .iter()
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    assert!(
        chosen.iter().all(|c| old_names.contains(c)),
        "chosen from the first four nodes"
    );
    assert_eq!(plan["wave"]["waveSize"], 2);
    assert_eq!(plan["wave"]["limitedBy"][0]["cap"], "max-nodes");
    // Each chosen node lists the pod that would be evicted.
    for node in plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["chosen"] == true)
    {
        let pods = node["pods"].as_array().unwrap();
        assert!(
            pods.iter()
                .any(|p| p["action"] == "evict" && p["reason"] == "stateless"),
            "{node}"
        );
    }
    let printed = text(&text_out.stdout);
    for name in &oldest {
        assert!(
            printed.contains(&format!("{name}  created")) && printed.contains("DRAIN"),
            "{printed}"
        );
    }
    scene.cleanup().await;
}
