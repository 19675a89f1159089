//! Test support for tests against the real test environment (`testenv/up`):
//! reads `.testenv/env`, gives each test a kube `Client`, a throwaway namespace
//! and a NodePool of its own, deploys workloads, and waits for conditions with
//! a timeout whose failure says what was last seen.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_lease;
pub mod http;
pub mod nodes;

#[allow(unused_imports)]
pub use nodes::*;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};

/// The environment `testenv/up` wrote.
#[derive(Clone, Debug)]
pub struct TestEnv {
    pub vars: BTreeMap<String, String>,
}

impl TestEnv {
    /// Reads `.testenv/env` (or `$TESTENV_ENV_FILE`). Fails with what to run when it is missing.
    pub fn load() -> Self {
        let path = std::env::var("TESTENV_ENV_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".testenv/env"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("the test environment is not up ({}: {e}): run `testenv/up` first, or use `scripts/test`", path.display())
        });
        let vars = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self { vars }
    }

    pub fn var(&self, name: &str) -> String {
        self.vars
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from .testenv/env"))
    }

    pub fn prometheus_url(&self) -> String {
        self.var("PROMETHEUS_URL")
    }

    pub fn kubeconfig(&self) -> String {
        self.var("KUBECONFIG")
    }

    pub fn kubectl(&self) -> PathBuf {
        PathBuf::from(self.var("TESTENV_BIN")).join("kubectl")
    }

    pub async fn client(&self) -> Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig())
            .expect("read the testenv kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("build a config from the testenv kubeconfig");
        // See src/kube_client.rs: a PDB's 429 must be seen, not retried for minutes.
        config.default_retry = false;
        Client::try_from(config).expect("build a kube client")
    }

    /// A command of node-drain's binary with the environment's kubeconfig and Prometheus set.
    pub fn node_drain(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_node-drain"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", self.kubeconfig())
            .env("PROMETHEUS_ADDRESS", self.prometheus_url())
            .env("PROMETHEUS_SCOPE_ORG_ID", "")
            .env("RUST_LOG", "info");
        cmd
    }
}

/// A short random suffix, so parallel tests never share names.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{prefix}-{:x}{n}", (nanos ^ std::process::id()) & 0xfffff)
}

/// Polls `check` until it returns Ok(Some(value)) or `timeout` passes. `check`
/// returns Ok(None) with nothing to say, or Err(observation) to be shown on timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut last_seen = String::from("nothing yet");
    loop {
        match check().await {
            Ok(Some(value)) => {
                eprintln!("waited {:.1?} for {what}", started.elapsed());
                return value;
            }
            Ok(None) => {}
            Err(seen) => last_seen = seen,
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last_seen}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes a cluster object with kubectl, without waiting: what a guard does when
/// a test panicked before its own cleanup (a panic cannot await).
fn delete_on_drop(kind: &str, name: &str) {
    let env = TestEnv::load();
    let _ = std::process::Command::new(env.kubectl())
        .env("KUBECONFIG", env.kubeconfig())
        .args(["delete", kind, name, "--wait=false", "--ignore-not-found"])
        .output();
}

/// A namespace of the test's own, labelled so stray ones are easy to find;
/// deleted when dropped if the test did not get to `delete`.
pub struct TestNamespace {
    pub name: String,
    client: Client,
    deleted: bool,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !self.deleted {
            delete_on_drop("namespace", &self.name);
        }
    }
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = unique(prefix);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"node-drain.io/test": "true"}}
        }))
        .unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        // The ServiceAccount admission plugin refuses pods until "default" exists.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait_for(
            "the default ServiceAccount",
            Duration::from_secs(120),
            || async {
                Ok(accounts
                    .get_opt("default")
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|_| ()))
            },
        )
        .await;
        Self {
            name,
            client: client.clone(),
            deleted: false,
        }
    }

    pub async fn delete(mut self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.name, &DeleteParams::default())
            .await;
        self.deleted = true;
    }
}

fn nodepool_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"))
}

/// A NodePool of the test's own: nodes of one instance type, on-demand, never
/// consolidated or expired by Karpenter while the test runs. Deleted when dropped
/// if the test did not get to `delete`.
pub struct TestNodePool {
    pub name: String,
    client: Client,
    deleted: bool,
}

impl Drop for TestNodePool {
    fn drop(&mut self) {
        if !self.deleted {
            delete_on_drop("nodepool", &self.name);
        }
    }
}

impl TestNodePool {
    /// `budgets` is `spec.disruption.budgets` (None: Karpenter's default).
    pub async fn create(
        client: &Client,
        prefix: &str,
        instance_type: &str,
        budgets: Option<Value>,
    ) -> Self {
        let name = unique(prefix);
        let mut disruption =
            json!({"consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never"});
        if let Some(b) = budgets {
            disruption["budgets"] = b;
        }
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": name},
            "spec": {
                "template": {"spec": {
                    "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"},
                    "requirements": [
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance_type]},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}
                    ],
                    "expireAfter": "Never"
                }},
                "disruption": disruption
            }
        }))
        .unwrap();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &nodepool_resource());
        api.create(&PostParams::default(), &object)
            .await
            .expect("create NodePool");
        Self {
            name,
            client: client.clone(),
            deleted: false,
        }
    }

    /// A handle on an existing NodePool that never deletes it (a sampler's).
    pub fn attach(client: &Client, name: &str) -> Self {
        Self {
            name: name.into(),
            client: client.clone(),
            deleted: true,
        }
    }

    /// The NodePool's nodes, oldest first.
    pub async fn nodes(&self) -> Vec<Node> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut items = nodes
            .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={}", self.name)))
            .await
            .expect("list nodes")
            .items;
        items.sort_by_key(|n| {
            (
                n.metadata.creation_timestamp.clone().map(|t| t.0),
                n.metadata.name.clone(),
            )
        });
        items
    }

    /// Waits until the NodePool has exactly `count` Ready nodes; returns them oldest first.
    pub async fn wait_ready_nodes(&self, count: usize, timeout: Duration) -> Vec<Node> {
        wait_for(
            &format!("{count} Ready nodes in NodePool {}", self.name),
            timeout,
            || async {
                let nodes = self.nodes().await;
                let ready = nodes.iter().filter(|n| is_ready(n)).count();
                if ready == count && nodes.len() == count {
                    Ok(Some(nodes))
                } else {
                    Err(format!("{} nodes, {ready} Ready", nodes.len()))
                }
            },
        )
        .await
    }

    /// Sets `spec.limits` (e.g. `{"cpu": "32"}`): Karpenter never provisions past it.
    pub async fn set_limits(&self, limits: Value) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &nodepool_resource());
        api.patch(
            &self.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"limits": limits}})),
        )
        .await
        .expect("set NodePool limits");
    }

    /// Deletes the NodePool; Karpenter then removes its NodeClaims and nodes.
    pub async fn delete(mut self) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &nodepool_resource());
        let _ = api.delete(&self.name, &DeleteParams::default()).await;
        self.deleted = true;
    }
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Resource requests of one container.
#[derive(Clone, Copy)]
pub struct Requests {
    pub cpu: &'static str,
    pub memory: &'static str,
}

pub fn pod_spec(nodepool: &str, requests: Requests, grace_seconds: i64) -> Value {
    json!({
        "nodeSelector": {"karpenter.sh/nodepool": nodepool},
        "terminationGracePeriodSeconds": grace_seconds,
        "containers": [{
            "name": "app",
            "image": "registry.invalid/app:1",
            "resources": {"requests": {"cpu": requests.cpu, "memory": requests.memory}}
        }]
    })
}

/// Workloads created in a test namespace, pinned to a NodePool.
pub struct Workloads<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub nodepool: &'a str,
}

impl Workloads<'_> {
    pub async fn deployment(
        &self,
        name: &str,
        replicas: i32,
        requests: Requests,
        grace_seconds: i64,
    ) -> Deployment {
        let object: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(self.nodepool, requests, grace_seconds)}
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create Deployment")
    }

    /// A StatefulSet whose pods each take a node of their own (hostname
    /// anti-affinity among themselves): stacked on one node they could leave it
    /// no room for a pod the test needs there.
    pub async fn statefulset(&self, name: &str, replicas: i32, requests: Requests) -> StatefulSet {
        let mut spec = pod_spec(self.nodepool, requests, 2);
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": name}}, "topologyKey": "kubernetes.io/hostname"}
        ]}});
        let object: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec}
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create StatefulSet")
    }

    pub async fn daemonset(&self, name: &str, requests: Requests) -> DaemonSet {
        let object: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(self.nodepool, requests, 2)}
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create DaemonSet")
    }

    /// A PDB over `app=<selector>`: `max_unavailable` or `min_available` as given.
    pub async fn pdb(
        &self,
        name: &str,
        selector: &str,
        max_unavailable: Option<i32>,
        min_available: Option<i32>,
    ) -> PodDisruptionBudget {
        let mut spec = json!({"selector": {"matchLabels": {"app": selector}}});
        if let Some(m) = max_unavailable {
            spec["maxUnavailable"] = json!(m);
        }
        if let Some(m) = min_available {
            spec["minAvailable"] = json!(m);
        }
        let object: PodDisruptionBudget =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create PDB")
    }

    /// A pod with no controller, on `node` when given.
    pub async fn bare_pod(
        &self,
        name: &str,
        requests: Requests,
        annotations: Value,
        node: Option<&str>,
    ) -> Pod {
        let mut spec = pod_spec(self.nodepool, requests, 2);
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        let object: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
            "spec": spec
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create Pod")
    }

    /// A Deployment whose pods KWOK keeps waiting in `reason` (CrashLoopBackOff, ImagePullBackOff, …).
    pub async fn problem_deployment(
        &self,
        name: &str,
        replicas: i32,
        requests: Requests,
        reason: &str,
    ) -> Deployment {
        let object: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}, "annotations": {"kwok.node-drain.io/container-state": reason}},
                    "spec": pod_spec(self.nodepool, requests, 2)
                }
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create Deployment")
    }

    /// A Deployment whose pods each need a node of their own: hostname
    /// anti-affinity on the `spread` label that every such Deployment shares.
    pub async fn spread_deployment(
        &self,
        name: &str,
        replicas: i32,
        requests: Requests,
    ) -> Deployment {
        let mut spec = pod_spec(self.nodepool, requests, 2);
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"spread": "one-per-node"}}, "topologyKey": "kubernetes.io/hostname"}
        ]}});
        let object: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name, "spread": "one-per-node"}}, "spec": spec}
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create Deployment")
    }

    /// The namespace's pods with label `app=<app>`.
    pub async fn pods(&self, app: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.namespace);
        pods.list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .expect("list pods")
            .items
    }

    /// Waits until `count` pods of `app` are Running and Ready.
    pub async fn wait_running(&self, app: &str, count: usize, timeout: Duration) -> Vec<Pod> {
        wait_for(
            &format!("{count} Running pods of {app}"),
            timeout,
            || async {
                let pods = self.pods(app).await;
                let running: Vec<Pod> = pods
                    .into_iter()
                    .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
                    .collect();
                if running.len() == count {
                    Ok(Some(running))
                } else {
                    Err(format!("{} running", running.len()))
                }
            },
        )
        .await
    }
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions
                .as_ref()
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
}

/// Asks Prometheus one instant query; returns the raw JSON answer.
pub async fn prometheus_query(env: &TestEnv, query: &str) -> Value {
    let url = format!("{}/api/v1/query", env.prometheus_url());
    reqwest::Client::new()
        .get(url)
        .query(&[("query", query)])
        .send()
        .await
        .expect("reach Prometheus")
        .json()
        .await
        .expect("Prometheus JSON")
}

/// Runs node-drain without blocking the runtime (test servers live on it).
pub async fn run_node_drain(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let mut cmd = env.node_drain();
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run node-drain"))
        .await
        .expect("join node-drain")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// One line of the API server's audit log (only what the tests read).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AuditEvent {
    pub verb: String,
    #[serde(rename = "objectRef", default)]
    pub object: Option<AuditObject>,
    #[serde(rename = "responseStatus", default)]
    pub response: Option<AuditStatus>,
    #[serde(rename = "requestObject", default)]
    pub request: Option<Value>,
    #[serde(default)]
    pub stage: String,
    #[serde(rename = "userAgent", default)]
    pub user_agent: String,
    #[serde(rename = "requestReceivedTimestamp", default)]
    pub received: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct AuditObject {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct AuditStatus {
    #[serde(default)]
    pub code: u16,
}

/// Audit events (ResponseComplete) about pods of `namespace` made by node-drain
/// (by its User-Agent: KWOK, Karpenter and the tests use the same identity).
pub fn audit_events(env: &TestEnv, namespace: &str) -> Vec<AuditEvent> {
    let text = std::fs::read_to_string(env.var("TESTENV_AUDIT_LOG")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| e.stage == "ResponseComplete")
        .filter(|e| e.user_agent.starts_with("node-drain/"))
        .filter(|e| {
            e.object
                .as_ref()
                .is_some_and(|o| o.namespace == namespace && o.resource == "pods")
        })
        .collect()
}

/// Every write (create, update, patch, delete) a node-drain process sent as
/// `holder` (its User-Agent names it) received at or after `since` (RFC 3339).
pub fn writes_by(env: &TestEnv, holder: &str, since: &str) -> Vec<String> {
    let text = std::fs::read_to_string(env.var("TESTENV_AUDIT_LOG")).unwrap_or_default();
    let tag = format!("({holder})");
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| e.stage == "ResponseComplete" && e.user_agent.ends_with(&tag))
        .filter(|e| matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .filter(|e| e.received.as_str() >= since)
        .map(|e| format!("{} {:?} at {}", e.verb, e.object, e.received))
        .collect()
}

/// Successful evictions node-drain made, per pod name in `namespace`.
pub fn successful_evictions(env: &TestEnv, namespace: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in audit_events(env, namespace) {
        let (Some(o), Some(r)) = (e.object, e.response) else {
            continue;
        };
        if e.verb == "create" && o.subresource == "eviction" && (200..300).contains(&r.code) {
            *counts.entry(o.name).or_insert(0) += 1;
        }
    }
    counts
}

/// Events node-drain recorded on a Node: (reason, note).
pub async fn node_events(client: &Client, node: &str) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(client.clone());
    let listed = events
        .list(&ListParams::default().fields(&format!("regarding.kind=Node,regarding.name={node}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    listed
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("node-drain"))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Waits until Prometheus answers `query` with a first value that `accept`s; returns it.
pub async fn wait_prometheus_value(
    env: &TestEnv,
    what: &str,
    query: &str,
    accept: impl Fn(f64) -> bool,
) -> f64 {
    wait_for(what, Duration::from_secs(120), || async {
        let answer = prometheus_query(env, query).await;
        let value: Option<f64> = answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok());
        match value {
            Some(v) if accept(v) => Ok(Some(v)),
            _ => Err(format!("{value:?}")),
        }
    })
    .await
}

/// What most cluster tests start from: the environment, a client, a namespace
/// and a NodePool of their own (one instance type). `cleanup` at the end; the
/// guards clean up after a panic.
pub struct Scene {
    pub env: TestEnv,
    pub client: Client,
    pub ns: TestNamespace,
    pub pool: TestNodePool,
}

impl Scene {
    pub async fn new(prefix: &str, instance_type: &str, budgets: Option<Value>) -> Self {
        let env = TestEnv::load();
        let client = env.client().await;
        let ns = TestNamespace::create(&client, prefix).await;
        let pool = TestNodePool::create(&client, prefix, instance_type, budgets).await;
        Self {
            env,
            client,
            ns,
            pool,
        }
    }

    /// Workloads in the scene's namespace, pinned to its NodePool.
    pub fn workloads(&self) -> Workloads<'_> {
        Workloads {
            client: &self.client,
            namespace: &self.ns.name,
            nodepool: &self.pool.name,
        }
    }

    pub async fn cleanup(self) {
        self.ns.delete().await;
        self.pool.delete().await;
    }
}

/// Waits until Prometheus has both of the NodePool's CPU metrics node-drain reads:
/// capacity (`karpenter_nodepools_usage`) and requests (summed node metrics),
/// each equal to the given value (None: any value above 0).
pub async fn wait_nodepool_cpu_metrics(
    env: &TestEnv,
    nodepool: &str,
    capacity: Option<f64>,
    requests: Option<f64>,
) {
    let usage =
        format!("karpenter_nodepools_usage{{nodepool=\"{nodepool}\",resource_type=\"cpu\"}}");
    let requested = format!(
        "sum(karpenter_nodes_total_pod_requests{{nodepool=\"{nodepool}\",resource_type=\"cpu\"}})"
    );
    let check = |want: Option<f64>| move |v: f64| want.map_or(v > 0.0, |w| (v - w).abs() < 1e-9);
    wait_prometheus_value(
        env,
        "Prometheus to have the NodePool's CPU capacity",
        &usage,
        check(capacity),
    )
    .await;
    wait_prometheus_value(
        env,
        "Prometheus to have the NodePool's CPU requests",
        &requested,
        check(requests),
    )
    .await;
}
