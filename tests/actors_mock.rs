//! In-process tests of the actors against a fake API server (HTTP on
//! 127.0.0.1:0, no test cluster): exact request sequences for the cases a real
//! cluster cannot time precisely — a cancel during a PDB backoff, a restart
//! while an eviction is in flight, two runs on one node, a run that loses its
//! node to another. The fake keeps one Node and its pods in memory and applies
//! JSON Patches (with their `test` operations) as the API server does.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use node_drain::actors::node_drain::Fault;
use node_drain::actors::planner::Identity;
use node_drain::actors::{self, Actors, Deps};
use node_drain::drain::{DrainOutcome, DrainSettings, OnTimeout, Retire, StopReason};
use node_drain::messages::{AwaitRun, CancelRun, RunReport, StartRun};
use serde_json::{json, Value};
use support::http::{serve, Request, Response, Server};

/// How the fake answers an eviction.
#[derive(Clone, Copy, PartialEq)]
enum Evictions {
    Allow,
    /// 429 with a DisruptionBudget cause, every time.
    PdbRefuses,
    /// Evictions are accepted, but the node's kubelet is dead: the pod stays,
    /// terminating (its deletionTimestamp long past), until deleted with grace 0.
    StuckOnDeadNode,
    /// The first eviction: 429 from API Priority and Fairness (plain text and a
    /// `Retry-After: 3` header, as the API server sends it); then allowed.
    ThrottledOnce,
}

struct Fake {
    node: Value,
    pods: Vec<Value>,
    evictions: Evictions,
    /// Every request, as "METHOD path" (query dropped), in order.
    log: Vec<String>,
    /// When each eviction request arrived.
    evictions_at: Vec<std::time::Instant>,
    /// Node patches answer 503 until then (an API server going through a restart).
    patches_unavailable_until: Option<std::time::Instant>,
    /// What a watch reports, in order: MODIFIED (a pod started terminating) and
    /// DELETED events.
    events: Vec<Value>,
    /// The next watch from a resourceVersion answers 410 Expired (compaction).
    expire_next_watch: bool,
}

type Shared = Arc<Mutex<Fake>>;

impl Fake {
    /// Removes the pod `name` (as the API server does once it is gone) and
    /// records its DELETED event; returns it.
    fn remove_pod(&mut self, name: &str) -> Option<Value> {
        let at = self
            .pods
            .iter()
            .position(|x| x["metadata"]["name"] == json!(name))?;
        let pod = self.pods.remove(at);
        self.events
            .push(json!({"type": "DELETED", "object": pod.clone()}));
        Some(pod)
    }
}

fn node(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "uid": "node-uid", "resourceVersion": "1",
                     "labels": {"karpenter.sh/nodepool": "pool"}, "annotations": annotations},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    })
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": "1",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs", "controller": true}]},
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

async fn answer(fake: Shared, r: Request) -> Response {
    let path = r.target.split('?').next().unwrap_or("").to_string();
    let watch = r.target.contains("watch=true");
    {
        let mut f = fake.lock().unwrap();
        if !watch {
            f.log.push(format!("{} {path}", r.method));
        }
    }
    if watch
        && r.target.contains("resourceVersion=")
        && std::mem::take(&mut fake.lock().unwrap().expire_next_watch)
    {
        let expired = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "too old resource version: 5 (42)", "reason": "Expired", "code": 410}});
        return Response::new(200, "application/json", format!("{expired}\n"));
    }
    if watch {
        // A watch (from any version) reports every removed pod as DELETED, once
        // there is one; else it stays open a second and ends, as an idle watch
        // the API server closes. The client watches again.
        for _ in 0..10 {
            if !fake.lock().unwrap().events.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body: String = fake
            .lock()
            .unwrap()
            .events
            .iter()
            .map(|e| format!("{e}\n"))
            .collect();
        return Response::new(200, "application/json", body);
    }
    let mut f = fake.lock().unwrap();
    match (r.method.as_str(), path.as_str()) {
        ("GET", "/api/v1/nodes/n1") => json_response(200, f.node.clone()),
        ("PATCH", "/api/v1/nodes/n1")
            if f.patches_unavailable_until
                .is_some_and(|t| std::time::Instant::now() < t) =>
        {
            status(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
                json!({}),
            )
        }
        ("PATCH", "/api/v1/nodes/n1") => {
            let ops: json_patch::Patch = match serde_json::from_slice(&r.body) {
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
        ("GET", "/api/v1/pods") => json_response(
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5"}, "items": f.pods}),
        ),
        ("POST", p) if p.ends_with("/eviction") => {
            let name = p.split('/').nth_back(1).unwrap_or("").to_string();
            f.evictions_at.push(std::time::Instant::now());
            if f.evictions == Evictions::ThrottledOnce && f.evictions_at.len() == 1 {
                return Response::new(
                    429,
                    "text/plain; charset=utf-8",
                    "Too many requests, please try again later.\n",
                )
                .with_header("Retry-After", "3");
            }
            match f.evictions {
                Evictions::StuckOnDeadNode => {
                    let past = (chrono::Utc::now() - chrono::Duration::seconds(120)).to_rfc3339();
                    let mut terminating = None;
                    for p in f
                        .pods
                        .iter_mut()
                        .filter(|x| x["metadata"]["name"] == json!(name))
                    {
                        p["metadata"]["deletionTimestamp"] = json!(past);
                        p["metadata"]["resourceVersion"] = json!("6");
                        terminating = Some(p.clone());
                    }
                    if let Some(p) = terminating {
                        f.events.push(json!({"type": "MODIFIED", "object": p}));
                    }
                    status(201, "", "", json!({}))
                }
                Evictions::ThrottledOnce | Evictions::Allow => {
                    f.remove_pod(&name);
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
        ("DELETE", p) if p.starts_with("/api/v1/namespaces/ns/pods/") => {
            let name = p.rsplit('/').next().unwrap_or("").to_string();
            let answer = f.remove_pod(&name).unwrap_or(json!({}));
            json_response(200, answer)
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

async fn fake_api(fake: Shared) -> Server {
    serve(move |r| answer(fake.clone(), r)).await
}

async fn client(server: &Server) -> kube::Client {
    let mut config = kube::Config::new(server.url().parse().unwrap());
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

fn settings() -> DrainSettings {
    DrainSettings {
        force: false,
        on_timeout: OnTimeout::Force,
        drain_timeout: Duration::from_secs(60),
        retire: Retire::None,
        node_in_flight: 8,
        orphan_after: Duration::from_secs(60),
    }
}

fn start(client: kube::Client, fault: Option<Fault>) -> Actors {
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

async fn run(actors: &Actors, settings: DrainSettings) -> String {
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

async fn report(actors: &Actors, run_id: String) -> RunReport {
    tokio::time::timeout(
        Duration::from_secs(20),
        actors.planner.send(AwaitRun { run_id }),
    )
    .await
    .expect("the run ends")
    .unwrap()
    .unwrap()
}

fn count(fake: &Shared, what: &str) -> usize {
    fake.lock()
        .unwrap()
        .log
        .iter()
        .filter(|l| l.contains(what))
        .count()
}

fn annotation(fake: &Shared, key: &str) -> Option<String> {
    fake.lock().unwrap().node["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_string)
}

fn fresh(pods: &[&str], evictions: Evictions, annotations: Value) -> Shared {
    Arc::new(Mutex::new(Fake {
        node: node(annotations),
        pods: pods.iter().map(|p| pod(p)).collect(),
        evictions,
        log: vec![],
        evictions_at: vec![],
        patches_unavailable_until: None,
        events: vec![],
        expire_next_watch: false,
    }))
}

#[actix_rt::test]
async fn a_drain_is_one_claim_patch_one_list_one_eviction_per_pod_and_one_outcome_patch() {
    let fake = fresh(&["a", "b", "c"], Evictions::Allow, json!({}));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    assert_eq!(report.nodes[0].pods_evicted, 3);
    let log = fake.lock().unwrap().log.clone();
    let node_calls: Vec<&String> = log.iter().filter(|l| l.contains("/nodes/")).collect();
    assert_eq!(
        node_calls,
        vec![
            "GET /api/v1/nodes/n1",
            "PATCH /api/v1/nodes/n1",
            "PATCH /api/v1/nodes/n1"
        ],
        "read, claim (intent + cordon), outcome: {log:#?}"
    );
    assert_eq!(count(&fake, "/eviction"), 3, "{log:#?}");
    assert_eq!(
        count(&fake, "GET /api/v1/pods"),
        1,
        "one LIST: the wait watches from its resourceVersion: {log:#?}"
    );
    assert_eq!(
        annotation(&fake, "node-drain.io/state").as_deref(),
        Some("drained")
    );
    assert_eq!(
        fake.lock().unwrap().node["spec"]["unschedulable"],
        json!(true)
    );
}

#[actix_rt::test]
async fn a_cancel_during_a_pdb_backoff_sends_no_further_request_and_restores() {
    let fake = fresh(&["a"], Evictions::PdbRefuses, json!({}));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    support::wait_for("the first eviction", Duration::from_secs(10), || async {
        Ok((count(&fake, "/eviction") >= 1).then_some(()))
    })
    .await;
    let told = actors
        .planner
        .send(CancelRun {
            run_id: Some(id.clone()),
            reason: StopReason::Cancelled {
                by: "the test".into(),
            },
        })
        .await
        .unwrap();
    assert_eq!(told, 1);
    let report = report(&actors, id).await;
    let evictions_at_end = count(&fake, "/eviction");
    // Past the longest PDB backoff: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        count(&fake, "/eviction"),
        evictions_at_end,
        "no eviction after the cancel"
    );
    assert!(evictions_at_end <= 2, "at most one retry raced the cancel");
    assert_eq!(
        count(&fake, "DELETE"),
        0,
        "a cancel never forces, even with --on-timeout force"
    );
    match &report.nodes[0].outcome {
        DrainOutcome::Failed { reason, .. } => {
            assert!(reason.contains("cancelled by the test"), "{reason}")
        }
        other => panic!("a cancelled drain is not drained: {other:?}"),
    }
    assert_eq!(
        annotation(&fake, "node-drain.io/state").as_deref(),
        Some("restored")
    );
    assert_eq!(
        fake.lock().unwrap().node["spec"]["unschedulable"],
        json!(false),
        "uncordoned"
    );
}

#[actix_rt::test]
async fn a_restart_while_an_eviction_is_in_flight_sends_nothing_twice() {
    let fake = fresh(&["a", "b", "c", "d"], Evictions::Allow, json!({}));
    let server = fake_api(fake.clone()).await;
    let fault = Fault {
        point: "evict",
        panic: false,
        kill: false,
    };
    let actors = start(client(&server).await, Some(fault));
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    let restarts = actors.progress.get("n1").map(|p| p.restarts).unwrap_or(0);
    assert_eq!(
        restarts, 1,
        "the fault fired once and the actor was restarted"
    );
    let log = fake.lock().unwrap().log.clone();
    for p in ["a", "b", "c", "d"] {
        assert_eq!(
            log.iter()
                .filter(|l| l.ends_with(&format!("/pods/{p}/eviction")))
                .count(),
            1,
            "pod {p} evicted exactly once: {log:#?}"
        );
    }
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("PATCH /api/v1/nodes/n1"))
            .count(),
        2,
        "the restart re-read the Node and claimed nothing twice: {log:#?}"
    );
}

#[actix_rt::test]
async fn a_node_held_by_another_live_run_is_not_touched() {
    let now = chrono::Utc::now().to_rfc3339();
    let fake = fresh(
        &["a"],
        Evictions::Allow,
        json!({"node-drain.io/state": "cordoned", "node-drain.io/run-id": "other-run",
               "node-drain.io/heartbeat": now, "node-drain.io/was-unschedulable": "false"}),
    );
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    match &report.nodes[0].outcome {
        DrainOutcome::Failed { reason, .. } => assert!(reason.contains("other-run"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&fake, "PATCH"), 0, "no claim, no restore");
    assert_eq!(count(&fake, "/eviction"), 0);
    assert_eq!(
        annotation(&fake, "node-drain.io/run-id").as_deref(),
        Some("other-run")
    );
}

#[actix_rt::test]
async fn a_run_that_loses_its_node_stops_touching_it() {
    let fake = fresh(&["a"], Evictions::PdbRefuses, json!({}));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let settings = DrainSettings {
        orphan_after: Duration::from_secs(2),
        ..settings()
    };
    let id = run(&actors, settings).await;
    support::wait_for("the first eviction", Duration::from_secs(10), || async {
        Ok((count(&fake, "/eviction") >= 1).then_some(()))
    })
    .await;
    // Another run takes the node over (as after a long pause of this one).
    fake.lock().unwrap().node["metadata"]["annotations"]["node-drain.io/run-id"] = json!("usurper");
    let report = report(&actors, id).await;
    match &report.nodes[0].outcome {
        DrainOutcome::Failed { reason, .. } => {
            assert!(reason.contains("another run owns"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let evictions = count(&fake, "/eviction");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(&fake, "/eviction"),
        evictions,
        "no eviction after the loss"
    );
    assert_eq!(
        annotation(&fake, "node-drain.io/run-id").as_deref(),
        Some("usurper")
    );
    assert_eq!(
        fake.lock().unwrap().node["spec"]["unschedulable"],
        json!(true),
        "the new owner decides; the old run does not uncordon"
    );
}

#[actix_rt::test]
async fn api_throttling_is_waited_out_as_its_retry_after_header_says() {
    let fake = fresh(&["a"], Evictions::ThrottledOnce, json!({}));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    let at = fake.lock().unwrap().evictions_at.clone();
    assert_eq!(at.len(), 2, "refused once, then evicted");
    // The header said 3 s; without it the fallback is 1 s.
    assert!(
        at[1] - at[0] >= Duration::from_millis(2900),
        "waited as Retry-After asked: {:?}",
        at[1] - at[0]
    );
}

#[actix_rt::test]
async fn an_api_server_answering_503_is_waited_out_with_backoff_not_a_restart_storm() {
    let fake = fresh(&["a", "b"], Evictions::Allow, json!({}));
    fake.lock().unwrap().patches_unavailable_until =
        Some(std::time::Instant::now() + Duration::from_secs(4));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "drained once the API server answers again: {report:?}"
    );
    let patches = count(&fake, "PATCH /api/v1/nodes/n1");
    // Backoff 0.5, 1, 2, 4 s: a handful of claims in 4 s, then the outcome patch.
    // Without it, every restart retried at once and gave up within a second.
    assert!((3..=7).contains(&patches), "{patches} node patches");
    assert_eq!(count(&fake, "/eviction"), 2);
}

#[actix_rt::test]
async fn a_watch_version_too_old_to_resume_lists_again() {
    let fake = fresh(&["a", "b"], Evictions::Allow, json!({}));
    fake.lock().unwrap().expire_next_watch = true;
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    assert!(
        !fake.lock().unwrap().expire_next_watch,
        "the resumed watch was refused"
    );
    assert_eq!(
        count(&fake, "GET /api/v1/pods"),
        2,
        "the plan's LIST, then a LIST again after the 410"
    );
}

#[actix_rt::test]
async fn a_pod_stuck_terminating_on_a_notready_node_is_deleted_with_grace_0_and_waited_for() {
    let fake = fresh(&["a"], Evictions::StuckOnDeadNode, json!({}));
    fake.lock().unwrap().node["status"]["conditions"][0]["status"] = json!("False");
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    assert_eq!(count(&fake, "/eviction"), 1);
    assert_eq!(
        count(&fake, "DELETE /api/v1/namespaces/ns/pods/a"),
        1,
        "one grace-0 delete"
    );
    assert_eq!(report.nodes[0].pods_force_deleted, 1);
}
