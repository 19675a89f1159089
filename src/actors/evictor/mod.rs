//! The PodEvictorActor pool: every eviction and deletion node-drain makes goes
//! through here, rate-limited cluster-wide by one governor limiter
//! (`--eviction-rate` per second, `--eviction-burst`). Each request carries the
//! planned pod UID as a precondition. The answer is mapped by
//! `drain::eviction::eviction_verdict`; how the removal went is recorded in the
//! node's progress as well as answered, so a node actor restarted meanwhile
//! loses nothing. A stopped node (its token cancelled) gets no further request.

mod actor;
mod handlers;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kube::Client;
use tracing::{info, warn};

use crate::drain::eviction::{eviction_verdict, pdb_backoff, transient_backoff, EvictionVerdict};
use crate::drain::progress::{Progress, Removal};
use crate::k8s::pods::{remove, RemovalRequest};
use crate::messages::RemovePod;

/// What every evictor of the pool shares.
pub struct EvictorShared {
    client: Client,
    /// The one cluster-wide limiter of eviction and deletion requests.
    limiter: DefaultDirectRateLimiter,
    /// Where each removal is recorded per node.
    progress: Progress,
}

pub struct PodEvictorActor {
    shared: Arc<EvictorShared>,
}

/// A fixed set of evictors behind one limiter; `remove` spreads work round-robin.
#[derive(Clone)]
pub struct EvictorPool {
    actors: Arc<Vec<Addr<PodEvictorActor>>>,
    next: Arc<AtomicUsize>,
}

impl EvictorPool {
    pub fn start(
        client: Client,
        progress: Progress,
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

    /// Hands the removal to an evictor now; the returned future answers how it
    /// went. The removal goes on even if that future is dropped (a node actor
    /// that fails mid-eviction): its answer is recorded in the progress map.
    pub fn remove(&self, msg: RemovePod) -> impl std::future::Future<Output = Removal> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.actors.len();
        let evictor = self.actors[i].clone();
        let handle = tokio::spawn(async move { evictor.send(msg).await });
        async move {
            match handle.await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => Removal::Failed {
                    reason: format!("evictor mailbox: {e}"),
                    code: None,
                },
                Err(e) => Removal::Failed {
                    reason: format!("evictor task: {e}"),
                    code: None,
                },
            }
        }
    }
}

fn record(shared: &EvictorShared, node: &str, uid: &str, removal: &Removal) {
    if let Some(mut p) = shared.progress.get_mut(node) {
        p.removals.insert(uid.to_string(), removal.clone());
    }
}

/// Whether this run may still mutate the node: not stopped, and its ownership
/// confirmed recently (a paused process that wakes up past that time waits for
/// the next heartbeat instead of sending).
fn may_send(shared: &EvictorShared, node: &str) -> bool {
    shared.progress.get(node).is_some_and(|p| {
        p.stop.is_none()
            && p.ownership_confirmed_until
                .is_some_and(|t| tokio::time::Instant::now() < t)
    })
}

/// Removes one planned pod, retrying as the verdict says until the deadline.
pub async fn remove_pod(shared: &EvictorShared, msg: RemovePod) -> Removal {
    let pod_name = msg.pod.to_string();
    match msg.how {
        RemovalRequest::DeleteNow => info!(
            pod = pod_name.as_str(),
            status = msg.reason.as_deref().unwrap_or(""),
            "문제 상태 파드 강제 삭제"
        ),
        RemovalRequest::Delete => info!(pod = pod_name.as_str(), "pod deleted"),
        RemovalRequest::Evict => info!(pod = pod_name.as_str(), "파드 eviction 시작"),
    }
    record(shared, &msg.node, &msg.uid, &Removal::InFlight);
    let forced = msg.forced;
    let mut attempt = 0u32;
    let result = loop {
        tokio::select! {
            _ = msg.stop.cancelled() => break Removal::Stopped,
            _ = shared.limiter.until_ready() => {}
        }
        if msg.stop.is_cancelled() {
            break Removal::Stopped;
        }
        if !may_send(shared, &msg.node) {
            break Removal::Failed {
                reason: "this run's ownership of the node is not confirmed".into(),
                code: None,
            };
        }
        let (verdict, code) = match remove(&shared.client, &msg.pod, &msg.uid, msg.how).await {
            Ok(()) => (EvictionVerdict::Evicted, None),
            Err(refusal) => (verdict_of(&refusal), crate::k8s::api_code(&refusal.error)),
        };
        let metrics = crate::telemetry::metrics::get();
        let done = matches!(verdict, EvictionVerdict::Evicted);
        if msg.how == RemovalRequest::Evict {
            // 201 from the Eviction API; else the code of its refusal (0: no answer).
            metrics.eviction(if done { 201 } else { code.unwrap_or(0) });
        } else if forced && done {
            // Once per pod: a throttled or failed attempt is not a deletion.
            metrics.forced_deletion();
        }
        let wait = match verdict {
            EvictionVerdict::Evicted | EvictionVerdict::AlreadyGone => {
                break Removal::Removed { forced }
            }
            EvictionVerdict::Blocked { reason } => {
                break Removal::Blocked {
                    reason: name_the_pdbs(shared, &msg, reason).await,
                }
            }
            EvictionVerdict::Failed { reason } => break Removal::Failed { code, reason },
            EvictionVerdict::RetryPdb { pdb } => {
                note_pdb_refusal(shared, &msg.node, &pod_name, pdb.as_deref());
                if tokio::time::Instant::now() >= msg.deadline {
                    break Removal::Refused { pdb };
                }
                pdb_backoff(attempt, 0.2, fastrand::f64())
            }
            EvictionVerdict::RetryAfter { wait_ms } => {
                info!(
                    pod = pod_name.as_str(),
                    waitMs = wait_ms,
                    "the API server throttles removals (429, Retry-After); waiting as asked"
                );
                Duration::from_millis(wait_ms)
            }
            EvictionVerdict::RetryLater { reason } => {
                warn!(
                    pod = pod_name.as_str(),
                    reason = reason.as_str(),
                    "removal refused for now; retrying"
                );
                transient_backoff(attempt, fastrand::f64())
            }
        };
        attempt += 1;
        let now = tokio::time::Instant::now();
        if now >= msg.deadline {
            break Removal::Refused {
                pdb: pdb_of(shared, &msg.node),
            };
        }
        // Sleep at most to the deadline (then try once more); a stop ends it at once.
        let until = (now + wait).min(msg.deadline);
        tokio::select! {
            _ = msg.stop.cancelled() => break Removal::Stopped,
            _ = tokio::time::sleep_until(until) => {}
        }
    };
    record(shared, &msg.node, &msg.uid, &result);
    result
}

/// "More than one PDB" names no PDB: find and name them, so a person knows
/// which to fix. The answer stands as it was if they cannot be read.
async fn name_the_pdbs(shared: &EvictorShared, msg: &RemovePod, reason: String) -> String {
    if !reason.contains("more than one PodDisruptionBudget") {
        return reason;
    }
    match crate::k8s::pods::pdbs_selecting(&shared.client, &msg.pod).await {
        Ok(names) if !names.is_empty() => format!(
            "more than one PodDisruptionBudget selects it ({}); the Eviction API refuses such a pod",
            names.join(", ")
        ),
        _ => reason,
    }
}

fn verdict_of(refusal: &crate::k8s::pods::Refusal) -> EvictionVerdict {
    match &refusal.error {
        kube::Error::Api(status) => {
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
            // The header first (API Priority and Fairness), then the Status details.
            let retry = refusal.retry_after.unwrap_or_else(|| {
                status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .unwrap_or(0)
            });
            eviction_verdict(status.code, &status.message, &causes, retry)
        }
        // The API server did not answer: transient, bounded by the deadline.
        other => EvictionVerdict::RetryLater {
            reason: crate::telemetry::error_chain(&other),
        },
    }
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
