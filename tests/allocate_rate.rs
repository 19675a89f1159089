//! `karpenter allocate-rate` against real Karpenter, Prometheus and the API
//! server: the rates equal the truth (a DaemonSet included), and pre-v1 metric
//! names reproduce the seed's numbers and log lines. Plans and Prometheus
//! answers that fail closed: `plan.rs`.

mod support;

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
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

/// Sum of `resources.requests[name]` over the pod's containers.
fn pod_request(pod: &Pod, name: &str) -> f64 {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(name))
        .filter_map(|q| parse_quantity(&q.0))
        .sum()
}

fn node_capacity(node: &Node, name: &str) -> f64 {
    node.status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get(name))
        .and_then(|q| parse_quantity(&q.0))
        .unwrap_or(0.0)
}

async fn prometheus_value(env: &TestEnv, query: &str) -> Option<f64> {
    let answer = prometheus_query(env, query).await;
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn allocate_rate_equals_the_truth_from_the_api_server_with_a_daemonset() {
    let scene = Scene::new("plan-truth", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let w = scene.workloads();
    w.deployment(
        "web",
        5,
        Requests {
            cpu: "1",
            memory: "1536Mi",
        },
        2,
    )
    .await;
    w.daemonset(
        "agent",
        Requests {
            cpu: "500m",
            memory: "512Mi",
        },
    )
    .await;
    w.wait_running("web", 5, Duration::from_secs(120)).await;
    let nodes = wait_for(
        "a DaemonSet pod Running on every node",
        Duration::from_secs(120),
        || async {
            let nodes = pool.nodes().await;
            let agents = w.pods("agent").await.into_iter().filter(pod_ready).count();
            if !nodes.is_empty() && agents == nodes.len() {
                Ok(Some(nodes))
            } else {
                Err(format!("{} nodes, {agents} agents Running", nodes.len()))
            }
        },
    )
    .await;

    // The truth, from the API server: requests of the pods on the NodePool's nodes
    // over the nodes' capacity.
    let pods: Api<Pod> = Api::all(client.clone());
    let mut truth = BTreeMap::new();
    for resource in ["cpu", "memory"] {
        let mut requested = 0.0;
        for node in &nodes {
            let name = node.metadata.name.clone().unwrap();
            let on_node = pods
                .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
                .await
                .unwrap();
            requested += on_node
                .items
                .iter()
                .filter(|p| {
                    !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
                })
                .map(|p| pod_request(p, resource))
                .sum::<f64>();
        }
        let capacity: f64 = nodes.iter().map(|n| node_capacity(n, resource)).sum();
        truth.insert(resource, (requested, capacity));
    }
    // The DaemonSet must weigh enough that counting it twice (or not at all) shows.
    let ds_cpu = 0.5 * nodes.len() as f64;
    assert!(
        ds_cpu / truth["cpu"].1 * 100.0 > 2.0,
        "the DaemonSet share must be measurable"
    );

    // Wait until Prometheus has scraped Karpenter's view of this state.
    for resource in ["cpu", "memory"] {
        let (requested, capacity) = truth[resource];
        let requests_query = format!("sum(karpenter_nodes_total_pod_requests{{nodepool=\"{}\",resource_type=\"{resource}\"}})", pool.name);
        let usage_query = format!(
            "karpenter_nodepools_usage{{nodepool=\"{}\",resource_type=\"{resource}\"}}",
            pool.name
        );
        wait_for(
            &format!("Prometheus to see the NodePool's {resource}"),
            Duration::from_secs(120),
            || async {
                let r = prometheus_value(env, &requests_query).await;
                let c = prometheus_value(env, &usage_query).await;
                let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() <= b * 1e-6);
                if close(r, requested) && close(c, capacity) {
                    Ok(Some(()))
                } else {
                    Err(format!(
                        "requests {r:?} (truth {requested}), capacity {c:?} (truth {capacity})"
                    ))
                }
            },
        )
        .await;
    }

    let out = run(
        env,
        &[
            "karpenter",
            "allocate-rate",
            "--nodepool-name",
            &pool.name,
            "--output",
            "json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "allocate-rate failed: {}",
        text(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(plan["rates"]["generation"], "v1");
    for (resource, key) in [("cpu", "cpu"), ("memory", "memory")] {
        let (requested, capacity) = truth[resource];
        let want = requested / capacity * 100.0;
        let got = plan["rates"][key]["allocateRate"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1.0,
            "{resource}: node-drain says {got:.2} %, the API server {want:.2} %"
        );
    }
    let stderr = text(&out.stderr);
    for line in [
        "query query=\"karpenter_nodepools_usage{nodepool='",
        "Karpenter nodepoolUsage=\"",
        "Karpenter podRequest=\"",
        "Karpenter cpuAllocateRate=\"",
    ] {
        assert!(
            stderr.contains(line),
            "missing seed log line {line:?} in:\n{stderr}"
        );
    }
    scene.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_v1_metric_names_reproduce_the_seed_numbers() {
    let env = TestEnv::load();
    let client = env.client().await;
    // The NodePool exists (with no nodes) so that the plan can be made; its
    // metrics come from an exporter of the pre-v1 names.
    let pool = TestNodePool::create(&client, "legacy", "c-4x-amd64-linux", None).await;
    let p = pool.name.clone();
    let metrics = format!(
        "# TYPE karpenter_nodepool_usage gauge\n\
         karpenter_nodepool_usage{{nodepool=\"{p}\",resource_type=\"memory\"}} 331e9\n\
         karpenter_nodepool_usage{{nodepool=\"{p}\",resource_type=\"cpu\"}} 48\n\
         # TYPE karpenter_nodes_total_pod_requests gauge\n\
         karpenter_nodes_total_pod_requests{{nodepool=\"{p}\",node_name=\"n1\",resource_type=\"memory\"}} 50e9\n\
         karpenter_nodes_total_pod_requests{{nodepool=\"{p}\",node_name=\"n2\",resource_type=\"memory\"}} 30e9\n\
         karpenter_nodes_total_pod_requests{{nodepool=\"{p}\",node_name=\"n1\",resource_type=\"cpu\"}} 18\n\
         karpenter_nodes_total_pod_requests{{nodepool=\"{p}\",node_name=\"n2\",resource_type=\"cpu\"}} 12\n\
         # TYPE karpenter_nodes_total_daemon_requests gauge\n\
         karpenter_nodes_total_daemon_requests{{nodepool=\"{p}\",node_name=\"n1\",resource_type=\"memory\"}} 6e9\n\
         karpenter_nodes_total_daemon_requests{{nodepool=\"{p}\",node_name=\"n2\",resource_type=\"memory\"}} 5e9\n\
         karpenter_nodes_total_daemon_requests{{nodepool=\"{p}\",node_name=\"n1\",resource_type=\"cpu\"}} 2\n\
         karpenter_nodes_total_daemon_requests{{nodepool=\"{p}\",node_name=\"n2\",resource_type=\"cpu\"}} 2\n"
    );
    let exporter = serve(move |_req: Request| {
        let body = metrics.clone();
        async move { Response::new(200, "text/plain; version=0.0.4", body) }
    })
    .await;
    let targets =
        std::path::PathBuf::from(env.var("TESTENV_PROMETHEUS_TARGETS")).join(format!("{p}.json"));
    std::fs::write(
        &targets,
        json!([{"targets": [exporter.addr.to_string()], "labels": {"job": p}}]).to_string(),
    )
    .unwrap();

    let query = format!("karpenter_nodepool_usage{{nodepool=\"{p}\",resource_type=\"cpu\"}}");
    wait_prometheus_value(
        &env,
        "Prometheus to scrape the pre-v1 exporter",
        &query,
        |_| true,
    )
    .await;

    let out = run(&env, &["karpenter", "allocate-rate", "--nodepool-name", &p]).await;
    let stderr = text(&out.stderr);
    let _ = std::fs::remove_file(&targets);
    assert!(out.status.success(), "allocate-rate failed: {stderr}");
    // The seed's lines, in the seed's order, each once.
    let query = |kind: &str, resource: &str| {
        match kind {
        "usage" => format!("query query=\"karpenter_nodepool_usage{{nodepool='{p}', resource_type='{resource}'}}\""),
        _ => format!("query query=\"sum(karpenter_nodes_total_pod_requests{{nodepool='{p}',resource_type='{resource}'}} + karpenter_nodes_total_daemon_requests{{nodepool='{p}',resource_type='{resource}'}})\""),
    }
    };
    let want: Vec<String> = vec![
        query("usage", "memory"),
        query("requests", "memory"),
        "Karpenter nodepoolUsage=\"331 GB\"".into(),
        "Karpenter podRequest=\"91 GB\"".into(),
        query("usage", "cpu"),
        query("requests", "cpu"),
        "Karpenter nodepoolUsage=\"48 vCPU\"".into(),
        "Karpenter podRequest=\"34 vCPU\"".into(),
        "Karpenter memoryAllocateRate=\"27 %\"".into(),
        "Karpenter cpuAllocateRate=\"71 %\"".into(),
    ];
    let seed_lines: Vec<String> = stderr
        .lines()
        .filter_map(|l| {
            [
                "query query=",
                "Karpenter nodepoolUsage=",
                "Karpenter podRequest=",
                "Karpenter memoryAllocateRate=",
                "Karpenter cpuAllocateRate=",
            ]
            .iter()
            .find_map(|start| l.find(start))
            .map(|at| l[at..].trim_end().to_string())
        })
        .collect();
    assert_eq!(
        seed_lines, want,
        "the seed's log lines, in order:\n{stderr}"
    );
    assert!(
        text(&out.stdout).contains("Karpenter metrics V0"),
        "{}",
        text(&out.stdout)
    );
    pool.delete().await;
}
