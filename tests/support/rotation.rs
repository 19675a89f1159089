//! Sampling a NodePool while it is rotated: at a fixed rate, the nodes
//! disrupted (cordoned or deleting), the Ready replicas of an app, and the
//! pods still Pending (placeholders aside), so a test can assert on the
//! worst moment and on when waves started.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::Client;

use super::pod_ready;

/// One look at the pool.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    /// Nodes of the pool cordoned or being deleted.
    pub disrupted: BTreeSet<String>,
    /// Ready, not terminating pods of the app.
    pub ready: usize,
    /// Pods of the namespace not bound or Pending (placeholders aside), by name.
    pub pending: Vec<String>,
    /// The Deployment `app`'s `status.readyReplicas` (what `kubectl get deploy` shows).
    pub deployment_ready: i32,
}

pub struct PoolSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PoolSampler {
    /// Samples every `period` until `stop`.
    pub fn start(
        client: &Client,
        nodepool: &str,
        namespace: &str,
        app: &str,
        period: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (client, nodepool, namespace, app) = (
            client.clone(),
            nodepool.to_string(),
            namespace.to_string(),
            app.to_string(),
        );
        let (s, out) = (stop.clone(), samples.clone());
        let task = tokio::spawn(async move {
            let nodes: Api<Node> = Api::all(client.clone());
            let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
                Api::namespaced(client, &namespace);
            let by_pool =
                ListParams::default().labels(&format!("karpenter.sh/nodepool={nodepool}"));
            let started = tokio::time::Instant::now();
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            while !s.load(Ordering::SeqCst) {
                ticker.tick().await;
                let at = started.elapsed();
                let (Ok(n), Ok(p), Ok(d)) = (
                    nodes.list(&by_pool).await,
                    pods.list(&Default::default()).await,
                    deployments.get(&app).await,
                ) else {
                    continue;
                };
                let deployment_ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                let disrupted = n
                    .items
                    .iter()
                    .filter(|n| n.metadata.deletion_timestamp.is_some() || super::unschedulable(n))
                    .filter_map(|n| n.metadata.name.clone())
                    .collect();
                let ready = p
                    .items
                    .iter()
                    .filter(|p| {
                        p.metadata.labels.as_ref().and_then(|l| l.get("app")) == Some(&app)
                            && pod_ready(p)
                            && p.metadata.deletion_timestamp.is_none()
                    })
                    .count();
                let pending = p
                    .items
                    .iter()
                    .filter(|p| {
                        let placeholder = p
                            .metadata
                            .labels
                            .as_ref()
                            .is_some_and(|l| l.contains_key("node-drain.io/placeholder"));
                        let unbound = p.spec.as_ref().is_none_or(|s| s.node_name.is_none());
                        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                        !placeholder
                            && p.metadata.deletion_timestamp.is_none()
                            && (unbound || phase == Some("Pending"))
                    })
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                out.lock().unwrap().push(Sample {
                    at,
                    disrupted,
                    ready,
                    pending,
                    deployment_ready,
                });
            }
        });
        Self {
            stop,
            samples,
            task,
        }
    }

    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let samples = self.samples.lock().unwrap().clone();
        samples
    }
}

pub fn max_disrupted(samples: &[Sample]) -> usize {
    samples.iter().map(|s| s.disrupted.len()).max().unwrap_or(0)
}

pub fn min_ready(samples: &[Sample]) -> usize {
    samples.iter().map(|s| s.ready).min().unwrap_or(0)
}

pub fn min_deployment_ready(samples: &[Sample]) -> i32 {
    samples
        .iter()
        .map(|s| s.deployment_ready)
        .min()
        .unwrap_or(0)
}

/// The most samples in a row whose ready count (pods or readyReplicas) is below `want`.
pub fn longest_dip(samples: &[Sample], want: usize) -> usize {
    let (mut longest, mut current) = (0, 0);
    for s in samples {
        if s.ready < want || (s.deployment_ready as usize) < want {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest
}

/// Samples per second over the whole run.
pub fn rate_hz(samples: &[Sample]) -> f64 {
    match (samples.first(), samples.last()) {
        (Some(a), Some(b)) if b.at > a.at => {
            (samples.len() - 1) as f64 / (b.at - a.at).as_secs_f64()
        }
        _ => 0.0,
    }
}

/// The samples where a wave started: nodes disrupted where the sample
/// before had none.
pub fn wave_starts(samples: &[Sample]) -> Vec<usize> {
    (1..samples.len())
        .filter(|&i| samples[i - 1].disrupted.is_empty() && !samples[i].disrupted.is_empty())
        .collect()
}

/// An annotation of a NodePool (the rotation's record, …).
pub async fn nodepool_annotation(client: &Client, nodepool: &str, key: &str) -> Option<String> {
    use kube::core::{DynamicObject, GroupVersionKind};
    use kube::discovery::ApiResource;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"));
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    api.get(nodepool)
        .await
        .expect("get NodePool")
        .metadata
        .annotations
        .and_then(|a| a.get(key).cloned())
}

/// The rotation record on a NodePool, parsed.
pub async fn rotation_record(client: &Client, nodepool: &str) -> Option<serde_json::Value> {
    nodepool_annotation(client, nodepool, "node-drain.io/rotation")
        .await
        .map(|t| serde_json::from_str(&t).expect("the rotation record is JSON"))
}

/// Waits until the record says `replaced` nodes were replaced; answers it.
pub async fn wait_replaced(
    client: &Client,
    nodepool: &str,
    replaced: usize,
    timeout: Duration,
) -> serde_json::Value {
    super::wait_for(
        &format!("{replaced} node(s) recorded replaced on NodePool {nodepool}"),
        timeout,
        || async {
            match rotation_record(client, nodepool).await {
                Some(r) if r["replaced"].as_array().map(Vec::len) >= Some(replaced) => Ok(Some(r)),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// Waits until the NodePool holds no rotation record (finished or cancelled).
pub async fn wait_no_record(client: &Client, nodepool: &str, timeout: Duration) {
    super::wait_for(
        &format!("no rotation record on NodePool {nodepool}"),
        timeout,
        || async {
            match rotation_record(client, nodepool).await {
                None => Ok(Some(())),
                Some(r) => Err(r.to_string()),
            }
        },
    )
    .await
}

/// The daemon's flags for a rotation test: waves of up to 2, placeholders in `namespace`.
pub fn daemon_rotation_args(namespace: &str) -> Vec<String> {
    [
        "--max-nodes",
        "2",
        "--placeholder-namespace",
        namespace,
        "--drain-timeout",
        "3m",
        "--capacity-timeout",
        "45s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The rotation of `nodepool` in the daemon's `admin status` (None: not rotating).
pub async fn daemon_rotation(
    daemon: &super::daemon::Daemon,
    nodepool: &str,
) -> Option<serde_json::Value> {
    let status = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
    status["rotations"]
        .as_array()?
        .iter()
        .find(|r| r["nodepool"] == nodepool)
        .cloned()
}

/// Deletes a test's Lease (namespace `default`).
pub async fn delete_lease(client: &Client, name: &str) {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "default");
    let _ = api.delete(name, &Default::default()).await;
}

/// One CPU a pod: on the tests' 4-CPU nodes, one pod of `web` a node.
pub const ONE_CPU: super::Requests = super::Requests {
    cpu: "1",
    memory: "1Gi",
};

/// A rotation test's NodePool: `nodes` 4-CPU KWOK nodes under `budgets`, the
/// Deployment `web` of one 1-CPU pod a node (hostname anti-affinity), all
/// Ready and Running, and Prometheus seeing the pool's CPU. Answers the
/// scene and the original nodes' names.
pub async fn spread_pool(
    prefix: &str,
    nodes: usize,
    budgets: serde_json::Value,
) -> (super::Scene, Vec<String>) {
    let scene = super::Scene::new(prefix, "c-4x-amd64-linux", Some(budgets)).await;
    let w = scene.workloads();
    w.spread_deployment("web", nodes as i32, ONE_CPU).await;
    let originals: Vec<String> = scene
        .pool
        .wait_ready_nodes(nodes, Duration::from_secs(180))
        .await
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    w.wait_running("web", nodes, Duration::from_secs(60)).await;
    super::wait_nodepool_cpu_metrics(&scene.env, &scene.pool.name, Some(4.0 * nodes as f64), None)
        .await;
    (scene, originals)
}

/// `node-drain serve` for a rotation test: its own Lease and identity, the
/// flags of `daemon_rotation_args` and `extra`; ready (leader, reconciled).
pub async fn rotation_daemon(
    scene: &super::Scene,
    lease: &str,
    config: &str,
    extra: &[&str],
) -> super::daemon::Daemon {
    let mut args = daemon_rotation_args(&scene.ns.name);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let daemon = super::daemon::Daemon::start_args(
        &scene.env,
        &scene.pool.name,
        lease,
        &super::unique("rotd"),
        config,
        &[],
        &args,
    );
    daemon.wait_ready().await;
    daemon
}

/// Asks the daemon to rotate `nodepool` on its admin socket; answers its answer.
pub async fn admin_rotate(daemon: &super::daemon::Daemon, nodepool: &str) -> serde_json::Value {
    let line = serde_json::json!({"cmd": "rotate", "nodepool": nodepool});
    daemon.admin(format!("{line}\n").as_bytes()).await
}

/// Every one of `originals` is gone from `now` (the pool's nodes after the
/// rotation); the first one left is named, with `log`.
pub fn assert_replaced(originals: &[String], now: &[String], log: &str) {
    for original in originals {
        assert!(
            !now.contains(original),
            "{original} not replaced: {now:?}\n{log}"
        );
    }
}
