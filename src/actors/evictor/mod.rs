//! The PodEvictorActor pool: every eviction and deletion node-drain makes goes
//! through here, rate-limited cluster-wide by one governor limiter
//! (`--eviction-rate` per second, `--eviction-burst`). Each request carries the
//! planned pod UID as a precondition, so a new pod under the same name is never
//! touched. The answer is mapped by `crate::evict::eviction_verdict`.

mod actor;
mod handlers;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, EvictParams, Preconditions};
use kube::Client;
use tracing::{info, warn};

use crate::evict::{eviction_verdict, pdb_backoff, EvictionVerdict};
use crate::messages::{PodRemoval, RemovePod};
use crate::pods::PodAction;
use crate::progress::{PlannedRemoval, Progress};

/// What every evictor of the pool shares.
pub struct EvictorShared {
    client: Client,
    /// The one cluster-wide limiter of eviction and deletion requests.
    limiter: DefaultDirectRateLimiter,
    /// Where in-flight and removed UIDs are recorded per node.
    progress: Progress,
    /// Set on SIGINT/SIGTERM: stop retrying.
    stop: Arc<AtomicBool>,
}

pub struct PodEvictorActor {
    shared: Arc<EvictorShared>,
}

/// A fixed set of evictors behind one limiter; `send` spreads work round-robin.
#[derive(Clone)]
pub struct EvictorPool {
    actors: Arc<Vec<Addr<PodEvictorActor>>>,
    next: Arc<AtomicUsize>,
}

impl EvictorPool {
    pub fn start(
        client: Client,
        progress: Progress,
        stop: Arc<AtomicBool>,
        rate_per_second: u32,
        burst: u32,
        size: usize,
    ) -> Self {
        let rate = NonZeroU32::new(rate_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let shared = Arc::new(EvictorShared {
            client,
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            progress,
            stop,
        });
        let actors = (0..size.max(1))
            .map(|_| {
                PodEvictorActor {
                    shared: shared.clone(),
                }
                .start()
            })
            .collect();
        Self {
            actors: Arc::new(actors),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub async fn remove(&self, msg: RemovePod) -> PodRemoval {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.actors.len();
        match self.actors[i].send(msg).await {
            Ok(result) => result,
            Err(e) => PodRemoval::Failed {
                reason: format!("evictor mailbox: {e}"),
            },
        }
    }
}

fn record(shared: &EvictorShared, node: &str, uid: &str, done: Option<bool>) {
    if let Some(mut p) = shared.progress.get_mut(node) {
        match done {
            None => {
                p.in_flight.insert(uid.to_string());
            }
            Some(removed) => {
                p.in_flight.remove(uid);
                if removed {
                    p.removed.insert(uid.to_string());
                }
            }
        }
    }
}

/// Removes one planned pod, retrying as the verdict says until the deadline.
pub async fn remove_pod(shared: &EvictorShared, msg: RemovePod) -> PodRemoval {
    let pod = &msg.pod;
    let pod_name = format!("{}/{}", pod.namespace, pod.name);
    match &pod.action {
        PodAction::ForceDelete(reason) => info!(
            pod = pod_name.as_str(),
            status = reason.as_str(),
            "문제 상태 파드 강제 삭제"
        ),
        PodAction::DeleteFinished => info!(pod = pod_name.as_str(), "finished pod deleted"),
        _ => info!(pod = pod_name.as_str(), "파드 eviction 시작"),
    }
    record(shared, &msg.node, &pod.uid, None);
    let mut attempt = 0u32;
    let result = loop {
        shared.limiter.until_ready().await;
        let verdict = request(&shared.client, pod).await;
        let wait = match verdict {
            EvictionVerdict::Evicted | EvictionVerdict::AlreadyGone => break PodRemoval::Removed,
            EvictionVerdict::Blocked { reason } => break PodRemoval::Blocked { reason },
            EvictionVerdict::Failed { reason } => break PodRemoval::Failed { reason },
            EvictionVerdict::RetryPdb { pdb } => {
                note_pdb_refusal(shared, &msg.node, &pod_name, pdb.as_deref());
                if tokio::time::Instant::now() >= msg.deadline {
                    break PodRemoval::TimedOut { pdb };
                }
                pdb_backoff(attempt, 0.2, fastrand::f64())
            }
            EvictionVerdict::RetryAfter { wait_ms } => Duration::from_millis(wait_ms),
            EvictionVerdict::RetryLater { reason } => {
                warn!(
                    pod = pod_name.as_str(),
                    reason = reason.as_str(),
                    "eviction refused for now; retrying"
                );
                Duration::from_secs(2)
            }
        };
        attempt += 1;
        let now = tokio::time::Instant::now();
        if now >= msg.deadline || shared.stop.load(Ordering::SeqCst) {
            break PodRemoval::TimedOut {
                pdb: pdb_of(shared, &msg.node),
            };
        }
        // Sleep at most to the deadline (then try once more), waking each
        // second to notice an interruption.
        let until = (now + wait).min(msg.deadline);
        while tokio::time::Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
            tokio::time::sleep_until(
                until.min(tokio::time::Instant::now() + Duration::from_secs(1)),
            )
            .await;
        }
    };
    record(
        shared,
        &msg.node,
        &pod.uid,
        Some(result == PodRemoval::Removed),
    );
    result
}

/// Logs a PDB's refusal the first time it refuses on this node, then counts quietly.
fn note_pdb_refusal(shared: &EvictorShared, node: &str, pod: &str, pdb: Option<&str>) {
    let name = pdb.unwrap_or("(unnamed PodDisruptionBudget)").to_string();
    let first = shared
        .progress
        .get_mut(node)
        .map(|mut p| {
            let count = p.pdb_refusals.entry(name.clone()).or_insert(0);
            *count += 1;
            *count == 1
        })
        .unwrap_or(true);
    if first {
        warn!(
            node,
            pod,
            pdb = name.as_str(),
            "PodDisruptionBudget refuses the eviction; retrying with backoff"
        );
    }
}

fn pdb_of(shared: &EvictorShared, node: &str) -> Option<String> {
    shared
        .progress
        .get(node)
        .and_then(|p| p.pdb_refusals.keys().next().cloned())
}

/// One request for the pod, by its planned action; the answer as a verdict.
async fn request(client: &Client, pod: &PlannedRemoval) -> EvictionVerdict {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let preconditions = Some(Preconditions {
        uid: Some(pod.uid.clone()),
        resource_version: None,
    });
    let result = match &pod.action {
        PodAction::ForceDelete(_) => api
            .delete(
                &pod.name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions,
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()),
        PodAction::DeleteFinished => api
            .delete(
                &pod.name,
                &DeleteParams {
                    preconditions,
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()),
        _ => {
            let params = EvictParams {
                delete_options: Some(DeleteParams {
                    preconditions,
                    ..Default::default()
                }),
                ..Default::default()
            };
            api.evict(&pod.name, &params).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => EvictionVerdict::Evicted,
        Err(kube::Error::Api(status)) => {
            let causes: Vec<(String, String)> = status
                .details
                .as_ref()
                .map(|d| {
                    d.causes
                        .iter()
                        .map(|c| (c.reason.clone(), c.message.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let retry = status
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .unwrap_or(0);
            eviction_verdict(status.code, &status.message, &causes, retry)
        }
        // The API server did not answer: transient, bounded by the deadline.
        Err(other) => EvictionVerdict::RetryLater {
            reason: other.to_string(),
        },
    }
}
