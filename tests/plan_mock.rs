//! Planning a wave of a large NodePool in-process against a fake API server
//! (no test cluster): the pods of the wave's nodes are listed several at once,
//! not one LIST after another (on 1,000 nodes the plan took one LIST's round
//! trip per node of the wave), and only the nodes the wave may take are listed:
//! a node kept out by a blocking pod makes the next oldest come in, as before.
//! And the reconciliation (every 10 s while idle) reads the managed nodes'
//! metadata only, and the full Node of only those whose record it acts on.

mod fake_api;
mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use node_drain::actors::planner::plan::plan;
use node_drain::messages::PlanWave;
use node_drain::plan::{AllocateRates, MetricsGeneration, Resource, ResourceUsage};
use serde_json::{json, Value};
use support::http::{serve, Response, Server};

const NODES: usize = 60;
const WAVE: usize = 20;
/// Each pod LIST answers after this: the API server's round trip under load.
const LIST_DELAY: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Seen {
    in_flight: usize,
    most_in_flight: usize,
    /// The node of every pod LIST, in order.
    listed: Vec<String>,
}

fn node(i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("n{i:03}"), "uid": format!("uid-{i}"), "resourceVersion": "1",
                     // n000 is the oldest.
                     "creationTimestamp": format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60),
                     "labels": {"karpenter.sh/nodepool": "pool", "karpenter.sh/initialized": "true"}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    })
}

fn pod(node: &str, blocking: bool) -> Value {
    let mut annotations = json!({});
    if blocking {
        annotations["karpenter.sh/do-not-disrupt"] = json!("true");
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{node}"), "namespace": "ns", "uid": format!("pod-{node}"),
                     "annotations": annotations,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                          "uid": "rs-uid", "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"}
    })
}

fn list(kind: &str, items: Vec<Value>) -> Response {
    let body = json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "7"}, "items": items});
    Response::new(200, "application/json", body.to_string())
}

/// Answers the NodePool, its nodes and the pods of one node (slowly);
/// `blocked` nodes hold a do-not-disrupt pod.
async fn fake(seen: Arc<Mutex<Seen>>, blocked: &'static [&'static str]) -> Server {
    serve(move |r| {
        let seen = seen.clone();
        async move {
            let path = r.target.split('?').next().unwrap_or_default().to_string();
            let query = r.target.split_once('?').map(|(_, q)| q).unwrap_or_default();
            match path.as_str() {
                "/apis/karpenter.sh/v1/nodepools/pool" => Response::new(
                    200,
                    "application/json",
                    json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
                           "metadata": {"name": "pool"},
                           "spec": {"disruption": {"budgets": [{"nodes": "100%"}]}}})
                    .to_string(),
                ),
                "/api/v1/nodes" => list("NodeList", (0..NODES).map(node).collect()),
                "/api/v1/pods" => {
                    let node = query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("fieldSelector=spec.nodeName%3D"))
                        .unwrap_or_default()
                        .to_string();
                    {
                        let mut s = seen.lock().unwrap();
                        s.in_flight += 1;
                        s.most_in_flight = s.most_in_flight.max(s.in_flight);
                        s.listed.push(node.clone());
                    }
                    tokio::time::sleep(LIST_DELAY).await;
                    seen.lock().unwrap().in_flight -= 1;
                    list(
                        "PodList",
                        vec![pod(&node, blocked.contains(&node.as_str()))],
                    )
                }
                _ => Response::new(404, "application/json", r#"{"kind":"Status","code":404}"#),
            }
        }
    })
    .await
}

fn rates() -> AllocateRates {
    AllocateRates {
        nodepool: "pool".into(),
        generation: MetricsGeneration::V1,
        memory: ResourceUsage::new(Resource::Memory, 100.0, 10.0).unwrap(),
        cpu: ResourceUsage::new(Resource::Cpu, 100.0, 10.0).unwrap(),
    }
}

async fn plan_wave(server: &Server) -> node_drain::plan::WavePlan {
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let msg = PlanWave {
        nodepool: "pool".into(),
        rates: Some(rates()),
        target_allocate_rate: 99,
        max_nodes: Some(WAVE),
        nodes: vec![],
        force: false,
        list_named_pods: false,
    };
    plan(&client, msg, Utc::now(), None, None)
        .await
        .expect("a plan")
}

fn names(range: impl Iterator<Item = usize>) -> BTreeSet<String> {
    range.map(|i| format!("n{i:03}")).collect()
}

#[actix_rt::test]
async fn the_waves_pods_are_listed_several_at_once_and_only_the_waves() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = fake(seen.clone(), &[]).await;
    let planned = plan_wave(&server).await;

    let chosen: BTreeSet<String> = planned.chosen().map(|n| n.candidate.node.clone()).collect();
    assert_eq!(chosen, names(0..WAVE), "the 20 oldest nodes");
    let s = seen.lock().unwrap();
    let listed: BTreeSet<String> = s.listed.iter().cloned().collect();
    assert_eq!(
        s.listed.len(),
        WAVE,
        "one pod LIST per node of the wave: {:?}",
        s.listed
    );
    assert_eq!(listed, chosen);
    assert!(
        s.most_in_flight > 1,
        "pod LISTs of the wave went one after another ({} at most in flight)",
        s.most_in_flight
    );
}

#[actix_rt::test]
async fn a_blocked_node_brings_the_next_oldest_in_and_nothing_more_is_listed() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let server = fake(seen.clone(), &["n003", "n007"]).await;
    let planned = plan_wave(&server).await;

    let chosen: BTreeSet<String> = planned.chosen().map(|n| n.candidate.node.clone()).collect();
    let mut want = names(0..WAVE + 2);
    want.remove("n003");
    want.remove("n007");
    assert_eq!(
        chosen, want,
        "the blocked nodes are left out, n020 and n021 come in"
    );
    let s = seen.lock().unwrap();
    let listed: BTreeSet<String> = s.listed.iter().cloned().collect();
    assert_eq!(listed, names(0..WAVE + 2), "{:?}", s.listed);
    assert_eq!(s.listed.len(), WAVE + 2, "each node listed once");
}

/// The requests the reconciliation's fake answered: "METHOD path (Accept)".
async fn recover_fake(requests: Arc<Mutex<Vec<String>>>, nodes: Vec<Value>) -> Server {
    serve(move |r| {
        let requests = requests.clone();
        let nodes = nodes.clone();
        async move {
            let path = r.target.split('?').next().unwrap_or_default().to_string();
            let accept = r.header("accept").unwrap_or_default().to_string();
            requests
                .lock()
                .unwrap()
                .push(format!("{} {path} ({accept})", r.method));
            let by_name = |name: &str| {
                nodes
                    .iter()
                    .find(|n| n["metadata"]["name"] == name)
                    .cloned()
            };
            match (r.method.as_str(), path.as_str()) {
                ("GET", "/api/v1/nodes") if accept.contains("as=PartialObjectMetadataList") => {
                    let items: Vec<Value> = nodes
                        .iter()
                        .map(|n| json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                        "metadata": n["metadata"]}))
                        .collect();
                    let body = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                                      "metadata": {"resourceVersion": "7"}, "items": items});
                    Response::new(200, "application/json", body.to_string())
                }
                ("GET", "/api/v1/nodes") => list("NodeList", nodes.clone()),
                ("GET" | "PATCH", p) if p.starts_with("/api/v1/nodes/") => {
                    match by_name(p.trim_start_matches("/api/v1/nodes/")) {
                        Some(n) => Response::new(200, "application/json", n.to_string()),
                        None => Response::new(404, "application/json", r#"{"kind":"Status","code":404}"#),
                    }
                }
                _ => Response::new(404, "application/json", r#"{"kind":"Status","code":404}"#),
            }
        }
    })
    .await
}

fn with_record(i: usize, name: &str, record: Value) -> Value {
    let mut n = node(i);
    n["metadata"]["name"] = json!(name);
    n["metadata"]["annotations"] = record;
    n["spec"]["unschedulable"] = json!(true);
    n
}

#[actix_rt::test]
async fn reconciliation_lists_node_metadata_and_reads_only_the_node_it_restores() {
    let mut nodes: Vec<Value> = (0..NODES).map(node).collect();
    // A run that stopped mid-drain long ago: the CLI's recovery restores it.
    nodes.push(with_record(
        NODES,
        "n-orphan",
        json!({"node-drain.io/state": "cordoned", "node-drain.io/run-id": "old-run",
               "node-drain.io/heartbeat": "2026-01-01T00:00:00Z",
               "node-drain.io/was-unschedulable": "false"}),
    ));
    // Records recovery leaves alone whatever the spec says.
    nodes.push(with_record(
        NODES + 1,
        "n-drained",
        json!({"node-drain.io/state": "drained", "node-drain.io/run-id": "r2"}),
    ));
    nodes.push(with_record(
        NODES + 2,
        "n-restored",
        json!({"node-drain.io/state": "restored", "node-drain.io/run-id": "r3"}),
    ));
    let requests = Arc::new(Mutex::new(vec![]));
    let server = recover_fake(requests.clone(), nodes).await;
    let actors = fake_api::start(fake_api::client(&server).await, None);
    let recovered = actors
        .planner
        .send(node_drain::messages::RecoverNodes {
            nodepools: vec!["pool".into()],
            lease: None,
            elected_now: false,
            all_pools: false,
            orphan_after: Duration::from_secs(60),
            defaults: fake_api::settings(),
        })
        .await
        .unwrap()
        .expect("recovered");
    assert_eq!(recovered.restored, vec!["n-orphan".to_string()]);

    let requests = requests.lock().unwrap().clone();
    let node_requests: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("/api/v1/nodes"))
        .collect();
    let lists: Vec<&&String> = node_requests
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/nodes "))
        .collect();
    assert_eq!(lists.len(), 1, "one LIST: {node_requests:#?}");
    assert!(
        lists[0].contains("as=PartialObjectMetadataList"),
        "the LIST asked for full Nodes, not their metadata: {}",
        lists[0]
    );
    let reads: Vec<&&String> = node_requests
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/nodes/"))
        .collect();
    assert_eq!(
        reads.len(),
        1,
        "only the node it restores is read in full: {node_requests:#?}"
    );
    assert!(reads[0].starts_with("GET /api/v1/nodes/n-orphan "));
    assert!(
        node_requests
            .iter()
            .any(|r| r.starts_with("PATCH /api/v1/nodes/n-orphan ")),
        "{node_requests:#?}"
    );
}
