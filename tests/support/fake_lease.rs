//! A fake API server that serves one `coordination.k8s.io/v1` Lease (HTTP on
//! 127.0.0.1:0), with the ways a real one fails: requests that never answer,
//! writes refused while reads work, a write beaten by another (409), slow
//! reads. Records when each read and write was answered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node_drain::k8s::fence::Fence;
use node_drain::k8s::lease::{Contact, Elector, LeaseSettings, Lost, Role};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::http::{serve, Request, Response, Server};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/node-drain";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";

/// The fake's one Lease and how it misbehaves.
#[derive(Default)]
pub struct Fake {
    pub lease: Option<Value>,
    pub version: u64,
    /// Every Lease request stays unanswered (a half-open connection).
    pub hang: bool,
    /// PUTs answer this code (GETs still work).
    pub put_fails: Option<u16>,
    /// The next PUT finds that `other` wrote the Lease first: 409.
    pub stolen_by: Option<String>,
    /// Delays of the next GETs, in order.
    pub get_delays: Vec<Duration>,
    /// When each GET was answered.
    pub gets_answered: Vec<Instant>,
    /// When each write (POST or PUT) that landed was answered, and by whom.
    pub writes: Vec<(Instant, String)>,
}

pub type Shared = Arc<Mutex<Fake>>;

fn json_response(code: u16, body: Value) -> Response {
    Response::new(code, "application/json", body.to_string())
}

fn status(code: u16, reason: &str) -> Response {
    json_response(
        code,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
               "reason": reason, "message": reason}),
    )
}

/// A Lease as the API server holds it.
pub fn lease(holder: Option<&str>, duration_s: i64, renew_time: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "node-drain", "namespace": "ns"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration_s,
                 "renewTime": renew_time, "acquireTime": renew_time, "leaseTransitions": 0}
    })
}

impl Fake {
    /// Stores `lease` as a new version (as any write does).
    pub fn store(&mut self, mut lease: Value) -> Value {
        self.version += 1;
        lease["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.lease = Some(lease.clone());
        lease
    }

    fn holder(lease: &Value) -> String {
        lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

async fn answer(fake: Shared, r: Request) -> Response {
    if fake.lock().unwrap().hang {
        std::future::pending::<()>().await;
    }
    let path = r.target.split('?').next().unwrap_or("").to_string();
    match (r.method.as_str(), path.as_str()) {
        ("GET", LEASE) => {
            let delay = {
                let mut f = fake.lock().unwrap();
                (!f.get_delays.is_empty()).then(|| f.get_delays.remove(0))
            };
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let mut f = fake.lock().unwrap();
            f.gets_answered.push(Instant::now());
            match f.lease.clone() {
                Some(l) => json_response(200, l),
                None => status(404, "NotFound"),
            }
        }
        ("PUT", LEASE) => {
            let mut f = fake.lock().unwrap();
            if let Some(code) = f.put_fails {
                return status(code, "InternalError");
            }
            if let Some(other) = f.stolen_by.take() {
                let mut l = f.lease.clone().unwrap_or(json!({}));
                l["spec"]["holderIdentity"] = json!(other);
                f.store(l);
                return status(409, "Conflict");
            }
            let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
                return status(400, "BadRequest");
            };
            if body["metadata"]["resourceVersion"] != json!(f.version.to_string()) {
                return status(409, "Conflict");
            }
            let written = f.store(body);
            let holder = Fake::holder(&written);
            f.writes.push((Instant::now(), holder));
            json_response(200, written)
        }
        ("POST", LEASES) => {
            let mut f = fake.lock().unwrap();
            if f.lease.is_some() {
                return status(409, "AlreadyExists");
            }
            let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
                return status(400, "BadRequest");
            };
            let written = f.store(body);
            let holder = Fake::holder(&written);
            f.writes.push((Instant::now(), holder));
            json_response(201, written)
        }
        _ => status(404, "NotFound"),
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

/// Short durations: 3 s lease, 2 s renew deadline, 300 ms retry.
pub fn settings(identity: &str) -> LeaseSettings {
    let mut s = LeaseSettings::new("ns".into(), identity.into());
    s.lease_duration = Duration::from_secs(3);
    s.renew_deadline = Duration::from_secs(2);
    s.retry_period = Duration::from_millis(300);
    s
}

pub struct Running {
    pub fence: Fence,
    pub role: watch::Receiver<Role>,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), Lost>>,
    /// When the elector last had an answer.
    pub contact: Contact,
}

pub fn elect(client: kube::Client, s: LeaseSettings) -> Running {
    let fence = Fence::closed();
    let (tx, role) = watch::channel(Role::Follower { holder: None });
    let stop = CancellationToken::new();
    let elector = Elector::new(client, s, fence.clone());
    let (contact, _) = elector.contact();
    let task = tokio::spawn(elector.run(tx, stop.clone()));
    Running {
        fence,
        role,
        stop,
        task,
        contact,
    }
}

pub async fn wait_leader(r: &mut Running, within: Duration) {
    tokio::time::timeout(within, r.role.wait_for(|role| *role == Role::Leader))
        .await
        .expect("elected")
        .unwrap();
}

pub fn fresh() -> Shared {
    Arc::new(Mutex::new(Fake::default()))
}
