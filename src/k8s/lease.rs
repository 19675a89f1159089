//! Leader election on a `coordination.k8s.io/v1` Lease, by client-go's rules:
//! a follower judges expiry by its own clock since it last saw the record
//! change (never by the holder's `renewTime`); take and renew with `replace`
//! carrying the resourceVersion (a 409 is a lost race); a leader that cannot
//! renew within the renew deadline has lost. Each try is bounded by the renew
//! deadline (kube sets no read timeout: a request on a half-open connection
//! would never end), and a follower stamps what it saw when its GET answered.
//! Leadership is published as a [`Role`] and as the [`Fence`] deadline every
//! write of the actors checks: `valid_until` = the instant *before* the
//! renewing request + the renew deadline, well inside the lease a follower
//! waits out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::fence::Fence;

#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This process (the pod name in-cluster).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// controller-runtime's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(namespace: String, identity: String) -> Self {
        Self {
            namespace,
            name: "node-drain".into(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Another process holds the lease (None: nobody yet, or unknown).
    Follower {
        holder: Option<String>,
    },
    Leader,
}

/// Why the elector stopped being leader (the daemon then exits non-zero).
#[derive(Debug, Clone, thiserror::Error)]
#[error("leadership lost: {0}")]
pub struct Lost(pub String);

/// When the elector last had an answer about its Lease from the API server,
/// as leader or follower: a replica is healthy (`/readyz/replica`) while that
/// is recent, whoever leads.
#[derive(Debug, Clone, Default)]
pub struct Contact(Arc<Mutex<Option<Instant>>>);

impl Contact {
    fn heard(&self) {
        if let Ok(mut at) = self.0.lock() {
            *at = Some(Instant::now());
        }
    }

    /// Whether the last answer came within `window`.
    pub fn within(&self, window: Duration) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() <= window)
    }
}

pub struct Elector {
    api: Api<Lease>,
    s: LeaseSettings,
    fence: Fence,
    contact: Contact,
    /// The record's resourceVersion when last seen to change, and when (our clock).
    observed: Option<(String, Instant)>,
    /// When the last successful renewal started.
    renewed: Option<Instant>,
}

enum Attempt {
    Leader,
    Follower(Option<String>),
}

impl Elector {
    /// `client` must not be fenced: the elector is what opens the fence.
    pub fn new(client: Client, s: LeaseSettings, fence: Fence) -> Self {
        Self {
            api: Api::namespaced(client, &s.namespace),
            s,
            fence,
            contact: Contact::default(),
            observed: None,
            renewed: None,
        }
    }

    /// When this elector last had an answer, and how recent it must be for
    /// the replica to count as healthy: the renew deadline and a retry.
    pub fn contact(&self) -> (Contact, Duration) {
        (
            self.contact.clone(),
            self.s.renew_deadline + self.s.retry_period,
        )
    }

    /// Campaigns, then holds the lease, until `stop` (the lease is released) or
    /// until leadership is lost (the fence is closed, and `Lost` returned).
    pub async fn run(
        mut self,
        role: watch::Sender<Role>,
        stop: CancellationToken,
    ) -> Result<(), Lost> {
        loop {
            let t0 = Instant::now();
            let leader_before = *role.borrow() == Role::Leader;
            // client-go bounds each try by the renew deadline: kube sets no read
            // timeout, so a request on a half-open connection would never end
            // (its 295 s is the write timeout). A leader's try also ends once its
            // fence has been closed for a retry period: it has lost.
            let bound = match (leader_before, self.renewed) {
                (true, Some(renewed)) => self.s.renew_deadline.min(
                    (renewed + self.s.renew_deadline + self.s.retry_period)
                        .saturating_duration_since(t0),
                ),
                _ => self.s.renew_deadline,
            };
            let attempt = match tokio::time::timeout(bound, self.attempt()).await {
                Ok(attempt) => attempt,
                Err(_) => Err(format!(
                    "no answer from the API server on Lease {}/{} within {bound:?}",
                    self.s.namespace, self.s.name
                )),
            };
            if attempt.is_ok() {
                self.contact.heard();
            }
            match attempt {
                Ok(Attempt::Leader) => {
                    self.renewed = Some(t0);
                    self.fence.extend_to(t0 + self.s.renew_deadline);
                    if !leader_before {
                        info!(
                            lease = self.s.name.as_str(),
                            identity = self.s.identity.as_str(),
                            "became the leader"
                        );
                        crate::telemetry::metrics::get().leader(true);
                        role.send_replace(Role::Leader);
                    }
                }
                Ok(Attempt::Follower(holder)) => {
                    if leader_before {
                        return Err(self.lose(format!(
                            "the lease is held by {}",
                            holder.unwrap_or_default()
                        )));
                    }
                    if *role.borrow()
                        != (Role::Follower {
                            holder: holder.clone(),
                        })
                    {
                        info!(
                            holder = holder.as_deref().unwrap_or(""),
                            "following the leader"
                        );
                        role.send_replace(Role::Follower { holder });
                    }
                }
                Err(e) => {
                    crate::telemetry::metrics::get().lease_renew_failure();
                    warn!(error = e.as_str(), "could not take or renew the lease");
                    if leader_before {
                        // The fence closed at the last renewal + the renew
                        // deadline: a leader cannot act any more, it has lost.
                        let since = self.renewed.map(|t| t.elapsed()).unwrap_or_default();
                        if since >= self.s.renew_deadline || !self.fence.is_open() {
                            return Err(self.lose(format!(
                                "no renewal for {since:?} (renew deadline {:?}): {e}",
                                self.s.renew_deadline
                            )));
                        }
                    }
                }
            }
            let jitter = Duration::from_millis(fastrand::u64(
                0..=self.s.retry_period.as_millis() as u64 / 5,
            ));
            tokio::select! {
                _ = stop.cancelled() => {
                    if *role.borrow() == Role::Leader {
                        self.release().await;
                    }
                    return Ok(());
                }
                _ = tokio::time::sleep(self.s.retry_period + jitter) => {}
            }
        }
    }

    fn lose(&self, reason: String) -> Lost {
        self.fence.close();
        crate::telemetry::metrics::get().leader(false);
        Lost(reason)
    }

    async fn attempt(&mut self) -> Result<Attempt, String> {
        let current = self
            .api
            .get_opt(&self.s.name)
            .await
            .map_err(|e| format!("get Lease {}/{}: {e}", self.s.namespace, self.s.name))?;
        // Stamped when the GET answered, not when it was sent: what it shows
        // was current at the API server at some instant in between, and a slow
        // answer must not make the record look older than it is.
        let now = Instant::now();
        let Some(mut lease) = current else {
            return self.create().await;
        };
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().map(|(v, _)| v) != Some(&rv) {
            self.observed = Some((rv, now));
        }
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.s.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(s.max(1) as u64))
            .unwrap_or(self.s.lease_duration);
        let seen_at = self.observed.as_ref().map(|(_, t)| *t).unwrap_or(now);
        let expired = seen_at + duration < now;
        if !(ours || holder.is_none() || expired) {
            return Ok(Attempt::Follower(holder));
        }
        let stamp = MicroTime(k8s_openapi::jiff::Timestamp::now());
        if !ours {
            spec.acquire_time = Some(stamp.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.s.identity.clone());
        spec.lease_duration_seconds = Some(self.s.lease_duration.as_secs() as i32);
        spec.renew_time = Some(stamp);
        match self
            .api
            .replace(&self.s.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => Ok(self.took(written)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Err("another process wrote the lease first (409)".into())
            }
            Err(e) => Err(format!("replace Lease {}: {e}", self.s.name)),
        }
    }

    /// Our write of the record landed: we hold the lease, as of this version.
    fn took(&mut self, written: Lease) -> Attempt {
        let rv = written.metadata.resource_version.unwrap_or_default();
        self.observed = Some((rv, Instant::now()));
        Attempt::Leader
    }

    async fn create(&mut self) -> Result<Attempt, String> {
        let stamp = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.s.name.clone()),
                namespace: Some(self.s.namespace.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.s.identity.clone()),
                lease_duration_seconds: Some(self.s.lease_duration.as_secs() as i32),
                acquire_time: Some(stamp.clone()),
                renew_time: Some(stamp),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(written) => Ok(self.took(written)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Err("another process created the lease first (409)".into())
            }
            Err(e) => Err(format!(
                "create Lease {}/{}: {e}",
                self.s.namespace, self.s.name
            )),
        }
    }

    /// Gives the lease up (SIGTERM), only if still ours: the next leader need
    /// not wait out the lease.
    async fn release(&mut self) {
        self.fence.close();
        crate::telemetry::metrics::get().leader(false);
        let Ok(Some(mut lease)) = self.api.get_opt(&self.s.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.s.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        match self
            .api
            .replace(&self.s.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = self.s.name.as_str(), "released the lease"),
            Err(e) => {
                warn!(error = %e, "could not release the lease; the next leader waits it out")
            }
        }
    }
}
