//! A fake API server for in-process tests of the actors (HTTP on 127.0.0.1:0,
//! no test cluster): one Node and its pods in memory. It applies JSON Patches
//! (with their `test` operations) as the API server does, keeps a
//! resourceVersion for every change so a watch from a version reports only
//! what happened after it, and checks every eviction's body as the API server
//! reads it (`deleteOptions.preconditions.uid`).

#![allow(dead_code)] // each test binary uses part of it

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node_drain::actors::node_drain::Fault;
use node_drain::actors::planner::Identity;
use node_drain::actors::{self, Actors, Deps};
use node_drain::drain::{DrainSettings, OnTimeout, Retire};
use node_drain::messages::{AwaitRun, RunReport, StartRun};
use serde_json::{json, Value};

use crate::support::http::{serve, Server};

mod answer;

/// How the fake answers an eviction.
#[derive(Clone, Copy, PartialEq)]
pub enum Evictions {
    Allow,
    /// 429 with a DisruptionBudget cause, every time.
    PdbRefuses,
    /// Evictions are accepted, but the node's kubelet is dead: the pod stays,
    /// terminating (its deletionTimestamp long past), until deleted with grace 0.
    StuckOnDeadNode,
    /// The first eviction: 429 from API Priority and Fairness (plain text and a
    /// `Retry-After: 3` header, as the API server sends it); then allowed.
    ThrottledOnce,
    /// Accepted; the pod starts terminating and is gone only when the test
    /// removes it (`Fake::remove_pod`).
    Terminating,
}

/// How the fake answers a pod DELETE.
#[derive(Clone, Copy, PartialEq)]
pub enum Deletes {
    Allow,
    /// The first DELETE: 429 from API Priority and Fairness with `Retry-After: 3`.
    ThrottledOnce,
}

pub struct Fake {
    pub node: Value,
    pub pods: Vec<Value>,
    pub evictions: Evictions,
    pub deletes: Deletes,
    /// Every request, as "METHOD path" (query dropped), in order.
    pub log: Vec<String>,
    /// When each eviction request arrived.
    pub evictions_at: Vec<Instant>,
    /// When each pod DELETE arrived, and its body.
    pub deletes_at: Vec<(Instant, Value)>,
    /// Node patches answer 503 until then (an API server going through a restart).
    pub patches_unavailable_until: Option<Instant>,
    /// Every change to a pod, with the resourceVersion it was made at: ADDED,
    /// MODIFIED (a pod started terminating) and DELETED events.
    pub events: Vec<(u64, Value)>,
    /// The resourceVersion of the last change to a pod (a LIST is at it).
    pub version: u64,
    /// The next watch from a resourceVersion answers 410 Expired (compaction).
    pub expire_next_watch: bool,
    /// The node turns Ready when the first eviction arrives (a kubelet back).
    pub ready_on_first_eviction: bool,
    /// The node turns Ready when its pods are first listed.
    pub ready_on_first_list: bool,
    /// Every change to the node (ADDED, MODIFIED, DELETED), at its
    /// resourceVersion (the same counter as the pods': etcd's revision).
    pub node_events: Vec<(u64, Value)>,
    /// A watch of nodes delivers no event while set (a slow watch).
    pub hold_node_events: bool,
}

pub type Shared = Arc<Mutex<Fake>>;

impl Fake {
    /// Removes the pod `name` (as the API server does once it is gone) and
    /// records its DELETED event; returns it.
    pub fn remove_pod(&mut self, name: &str) -> Option<Value> {
        let at = self
            .pods
            .iter()
            .position(|x| x["metadata"]["name"] == json!(name))?;
        let mut pod = self.pods.remove(at);
        self.record("DELETED", &mut pod);
        Some(pod)
    }

    /// Marks the pod `name` terminating since `since` and records the MODIFIED event.
    fn start_terminating(&mut self, name: &str, since: chrono::DateTime<chrono::Utc>) {
        let Some(at) = self
            .pods
            .iter()
            .position(|x| x["metadata"]["name"] == json!(name))
        else {
            return;
        };
        let mut pod = self.pods[at].clone();
        pod["metadata"]["deletionTimestamp"] = json!(since.to_rfc3339());
        self.record("MODIFIED", &mut pod);
        self.pods[at] = pod;
    }

    /// Stamps `pod` with the next resourceVersion and records the event.
    fn record(&mut self, kind: &str, pod: &mut Value) {
        self.version += 1;
        pod["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.events
            .push((self.version, json!({"type": kind, "object": pod.clone()})));
    }

    fn has_pod(&self, name: &str) -> bool {
        self.pods
            .iter()
            .any(|x| x["metadata"]["name"] == json!(name))
    }

    fn uid_of(&self, name: &str) -> Option<String> {
        self.pods
            .iter()
            .find(|x| x["metadata"]["name"] == json!(name))
            .and_then(|p| p["metadata"]["uid"].as_str().map(str::to_string))
    }

    /// Changes the node as another writer would (Karpenter, a person) and
    /// records the MODIFIED event at the next resourceVersion.
    pub fn change_node(&mut self, change: impl FnOnce(&mut Value)) {
        let mut node = self.node.clone();
        change(&mut node);
        self.stamp_node(node);
    }

    /// Stores `node` at the next resourceVersion and records its event.
    fn stamp_node(&mut self, mut node: Value) {
        self.version += 1;
        node["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.node_events.push((
            self.version,
            json!({"type": "MODIFIED", "object": node.clone()}),
        ));
        self.node = node;
    }

    pub fn set_ready(&mut self, ready: bool) {
        self.node["status"]["conditions"][0]["status"] =
            json!(if ready { "True" } else { "False" });
    }
}

pub fn node(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "uid": "node-uid", "resourceVersion": "1",
                     "labels": {"karpenter.sh/nodepool": "pool"}, "annotations": annotations},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    })
}

/// A running pod of a ReplicaSet on n1.
pub fn pod(name: &str) -> Value {
    owned_pod(name, "ReplicaSet")
}

/// A running pod of a controller of `kind` on n1.
pub fn owned_pod(name: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": "1",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": "owner", "uid": "owner", "controller": true}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running"}
    })
}

pub async fn fake_api(fake: Shared) -> Server {
    serve(move |r| answer::answer(fake.clone(), r)).await
}

pub async fn client(server: &Server) -> kube::Client {
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

pub fn settings() -> DrainSettings {
    DrainSettings {
        force: false,
        on_timeout: OnTimeout::Force,
        drain_timeout: Duration::from_secs(60),
        retire: Retire::None,
        node_in_flight: 8,
        orphan_after: Duration::from_secs(60),
    }
}

pub fn start(client: kube::Client, fault: Option<Fault>) -> Actors {
    actors::start(Deps {
        client,
        prometheus: None,
        karpenter_metrics: None,
        slack: None,
        cluster: "test".into(),
        eviction_rate: 1000,
        eviction_burst: 1000,
        identity: Identity {
            holder: "test".into(),
            ..Default::default()
        },
        fault,
        lease: None,
    })
}

pub async fn run(actors: &Actors, settings: DrainSettings) -> String {
    actors
        .planner
        .send(StartRun {
            nodepool: "pool".into(),
            nodes: vec!["n1".into()],
            settings,
            trigger: "test".into(),
            plan: None,
            take_over: None,
        })
        .await
        .unwrap()
        .unwrap()
}

pub async fn report(actors: &Actors, run_id: String) -> RunReport {
    tokio::time::timeout(
        Duration::from_secs(20),
        actors.planner.send(AwaitRun { run_id }),
    )
    .await
    .expect("the run ends")
    .unwrap()
    .unwrap()
}

pub fn count(fake: &Shared, what: &str) -> usize {
    fake.lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| l.contains(what))
        .count()
}

pub fn annotation(fake: &Shared, key: &str) -> Option<String> {
    fake.lock().unwrap().node["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_string)
}

/// A fake with node n1 (Ready, these annotations) and these pods on it.
pub fn fresh_with(pods: Vec<Value>, evictions: Evictions, annotations: Value) -> Shared {
    Arc::new(Mutex::new(Fake {
        node: node(annotations),
        pods,
        evictions,
        deletes: Deletes::Allow,
        log: vec![],
        evictions_at: vec![],
        deletes_at: vec![],
        patches_unavailable_until: None,
        events: vec![],
        version: 5,
        expire_next_watch: false,
        ready_on_first_eviction: false,
        ready_on_first_list: false,
        node_events: vec![],
        hold_node_events: false,
    }))
}

/// A fake with ReplicaSet pods of these names.
pub fn fresh(pods: &[&str], evictions: Evictions, annotations: Value) -> Shared {
    fresh_with(
        pods.iter().map(|p| pod(p)).collect(),
        evictions,
        annotations,
    )
}
