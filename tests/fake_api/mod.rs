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

use crate::support::http::{serve, Request, Response, Server};

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

fn json_response(status: u16, body: Value) -> Response {
    Response::new(status, "application/json", body.to_string())
}

fn status(code: u16, reason: &str, message: &str, details: Value) -> Response {
    json_response(
        code,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
               "reason": reason, "message": message, "details": details}),
    )
}

/// APF's answer: plain text, the wait in the `Retry-After` header.
fn throttled() -> Response {
    Response::new(
        429,
        "text/plain; charset=utf-8",
        "Too many requests, please try again later.\n",
    )
    .with_header("Retry-After", "3")
}

fn query(target: &str, key: &str) -> Option<String> {
    let (_, q) = target.split_once('?')?;
    q.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

/// A watch from `resourceVersion` reports the pod events after it (waiting up
/// to a second for one), then ends, as an idle watch the API server closes;
/// the client watches again from the last version it saw.
async fn watch(fake: &Shared, r: &Request) -> Response {
    let from: u64 = query(&r.target, "resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if from > 0 && std::mem::take(&mut fake.lock().unwrap().expire_next_watch) {
        let expired = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("too old resource version: {from} (42)"), "reason": "Expired", "code": 410}});
        return Response::new(200, "application/json", format!("{expired}\n"));
    }
    let after = |f: &Fake| -> String {
        f.events
            .iter()
            .filter(|(v, _)| *v > from)
            .map(|(_, e)| format!("{e}\n"))
            .collect()
    };
    for _ in 0..10 {
        let body = after(&fake.lock().unwrap());
        if !body.is_empty() {
            return Response::new(200, "application/json", body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Response::new(200, "application/json", "")
}

/// The eviction as the API server reads it: `deleteOptions.preconditions.uid`
/// must name the pod (else 409, as for a new pod under the same name); an
/// eviction without it is refused (node-drain always sends it).
fn eviction_precondition(f: &Fake, name: &str, body: &[u8]) -> Option<Response> {
    let body: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    let Some(uid) = body["deleteOptions"]["preconditions"]["uid"].as_str() else {
        return Some(status(
            422,
            "Invalid",
            &format!("the fake API server requires deleteOptions.preconditions.uid in every eviction; got {body}"),
            json!({}),
        ));
    };
    match f.uid_of(name) {
        Some(actual) if actual != uid => Some(status(
            409,
            "Conflict",
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
            ),
            json!({}),
        )),
        _ => None,
    }
}

fn evict(f: &mut Fake, name: &str, body: &[u8]) -> Response {
    f.evictions_at.push(Instant::now());
    if let Some(refused) = eviction_precondition(f, name, body) {
        return refused;
    }
    if f.ready_on_first_eviction && f.evictions_at.len() == 1 {
        f.set_ready(true);
    }
    if f.evictions == Evictions::ThrottledOnce && f.evictions_at.len() == 1 {
        return throttled();
    }
    if f.evictions != Evictions::PdbRefuses && !f.has_pod(name) {
        return status(
            404,
            "NotFound",
            &format!("pods \"{name}\" not found"),
            json!({}),
        );
    }
    match f.evictions {
        Evictions::StuckOnDeadNode => {
            f.start_terminating(name, chrono::Utc::now() - chrono::Duration::seconds(120));
            status(201, "", "", json!({}))
        }
        Evictions::Terminating => {
            f.start_terminating(name, chrono::Utc::now());
            status(201, "", "", json!({}))
        }
        Evictions::ThrottledOnce | Evictions::Allow => {
            f.remove_pod(name);
            status(201, "", "", json!({}))
        }
        Evictions::PdbRefuses => status(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
            json!({"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]}),
        ),
    }
}

fn delete(f: &mut Fake, name: &str, body: &[u8]) -> Response {
    let options: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    f.deletes_at.push((Instant::now(), options));
    if f.deletes == Deletes::ThrottledOnce && f.deletes_at.len() == 1 {
        return throttled();
    }
    match f.remove_pod(name) {
        Some(pod) => json_response(200, pod),
        None => status(
            404,
            "NotFound",
            &format!("pods \"{name}\" not found"),
            json!({}),
        ),
    }
}

fn patch_node(f: &mut Fake, body: &[u8]) -> Response {
    if f.patches_unavailable_until
        .is_some_and(|t| Instant::now() < t)
    {
        return status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            json!({}),
        );
    }
    let ops: json_patch::Patch = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => return status(400, "BadRequest", &e.to_string(), json!({})),
    };
    let mut node = f.node.clone();
    if let Err(e) = json_patch::patch(&mut node, &ops) {
        return status(
            422,
            "Invalid",
            &format!("the server rejected our request due to an error in our request: {e}"),
            json!({}),
        );
    }
    let version: u64 = node["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("1")
        .parse()
        .unwrap_or(1);
    node["metadata"]["resourceVersion"] = json!((version + 1).to_string());
    f.node = node.clone();
    json_response(200, node)
}

async fn answer(fake: Shared, r: Request) -> Response {
    let path = r.target.split('?').next().unwrap_or("").to_string();
    if r.target.contains("watch=true") {
        return watch(&fake, &r).await;
    }
    let mut f = fake.lock().unwrap();
    f.log.push(format!("{} {path}", r.method));
    let pod_name = |p: &str| {
        p.trim_end_matches("/eviction")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    match (r.method.as_str(), path.as_str()) {
        ("GET", "/api/v1/nodes/n1") => json_response(200, f.node.clone()),
        ("PATCH", "/api/v1/nodes/n1") => patch_node(&mut f, &r.body),
        ("GET", "/api/v1/pods") => {
            if std::mem::take(&mut f.ready_on_first_list) {
                f.set_ready(true);
            }
            json_response(
                200,
                json!({"apiVersion": "v1", "kind": "PodList",
                   "metadata": {"resourceVersion": f.version.to_string()}, "items": f.pods}),
            )
        }
        ("POST", p) if p.ends_with("/eviction") => evict(&mut f, &pod_name(p), &r.body),
        ("DELETE", p) if p.starts_with("/api/v1/namespaces/ns/pods/") => {
            delete(&mut f, &pod_name(p), &r.body)
        }
        ("POST", p) if p.contains("/events") => {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(json!({}));
            json_response(201, body)
        }
        ("PATCH", p) if p.contains("/events") => json_response(200, json!({})),
        _ => status(
            404,
            "NotFound",
            &format!("{} not served by the fake", r.target),
            json!({}),
        ),
    }
}

pub async fn fake_api(fake: Shared) -> Server {
    serve(move |r| answer(fake.clone(), r)).await
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
