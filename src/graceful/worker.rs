//! The do part: one task per pod being drained gracefully, each reading the
//! pod, asking `step::next`, doing that one thing and writing the new step
//! onto the pod. The record is on the pod, so a task is all the state there
//! is: the leader's reconciler LISTs the labelled pods every few seconds and
//! starts a task for each one without (after a restart, on a new leader).
//! Plain tokio tasks, not an actor: a task owns one pod and needs no mailbox;
//! the map of pods in flight keeps two tasks off one pod. A waiting task is
//! woken by the watched cache (its pod or a ReplicaSet's pod changed) or by
//! a timer (the grace period, the timeout, a reloaded config); it reads the
//! API again after each write and every BACKSTOP, in case a watch misses.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::Recorder;
use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use super::act::{Flow, Step};
use super::record::{Record, ANNOTATION, LABEL, LABEL_VALUE};
use super::step::{next, Action, Facts};
use crate::config::{current, SharedConfig};
use crate::k8s::fence::Fence;
use crate::k8s::lease::Role;

/// How often a waiting task reads the API rather than the watched cache.
pub const BACKSTOP: Duration = Duration::from_secs(30);
/// The longest a waiting task sleeps without a look (a reloaded config's
/// grace period or timeout applies within it).
const LOOK: Duration = Duration::from_secs(5);

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The pod was deleted (or found deleted or gone): PDBs count it on.
    Deleted,
    /// Restored, dropped, or no longer leader.
    Left,
}

pub struct Graceful {
    /// The daemon's fenced client: a former leader writes nothing.
    pub(super) client: Client,
    /// Read at every step, so a reloaded grace period applies at once.
    pub(super) config: SharedConfig,
    pub(super) role: watch::Receiver<Role>,
    pub(super) fence: Fence,
    /// This daemon's Lease: it resumes only the drains recorded under it.
    pub(super) lease: String,
    /// Pods (by UID) a task is draining now, and those deleted that a PDB
    /// may still count: their namespace and the labels they had when
    /// evicted (what a PDB selected them by).
    in_flight: super::flight::InFlight,
    /// Whether the marked pods were listed (and their drains registered)
    /// since this process last became the leader: until then the drains in
    /// flight are not all known, and the webhook lets evictions through.
    synced: AtomicBool,
    /// The admissions under way, per PDB.
    pub(super) pending: super::budget::Pending,
    /// The watched pods and PDBs (`spawn_caches`); unset, the webhook reads.
    pub(super) caches: std::sync::OnceLock<Arc<super::cache::Caches>>,
    recorder: Recorder,
    /// How long a task sleeps between two reads of its pod without the
    /// watched cache (and after a failed read, four times that).
    tick: Duration,
}

impl Graceful {
    pub fn new(
        client: Client,
        config: SharedConfig,
        role: watch::Receiver<Role>,
        fence: Fence,
        lease: String,
        instance: &str,
    ) -> Arc<Self> {
        Arc::new(Self {
            recorder: crate::k8s::events::recorder(client.clone(), instance),
            client,
            config,
            role,
            fence,
            lease,
            in_flight: Default::default(),
            synced: AtomicBool::new(false),
            pending: Default::default(),
            caches: Default::default(),
            tick: Duration::from_millis(500),
        })
    }

    /// Only the leader (its lease renewed in time) acts.
    pub fn leading(&self) -> bool {
        *self.role.borrow() == Role::Leader && self.fence.is_open()
    }

    /// Starts the webhook's watched caches (`serve` does; without them it reads).
    pub fn spawn_caches(&self) {
        let _ = self.caches.set(super::cache::Caches::spawn(&self.client));
    }

    /// Leading, and the drains a former leader left are known.
    pub fn leading_synced(&self) -> bool {
        self.leading() && self.synced.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The graceful drains `pdb` (of `namespace`, its status as read) must
    /// count, other than the pod `except`: see `flight`.
    pub fn in_flight_against(
        &self,
        namespace: &str,
        pdb: &k8s_openapi::api::policy::v1::PodDisruptionBudget,
        except: &str,
    ) -> usize {
        let caches = self.caches.get();
        self.in_flight
            .against(namespace, pdb, except, |selector, gone| {
                caches.and_then(|c| c.healthy_selected(namespace, selector, gone))
            })
    }

    /// Starts draining a marked pod unless a task already does; `labels`
    /// are the pod's labels before the drain.
    pub fn ensure(
        self: &Arc<Self>,
        uid: &str,
        namespace: &str,
        name: &str,
        labels: BTreeMap<String, String>,
    ) {
        if self.in_flight.start(uid, namespace, labels) {
            let this = self.clone();
            let (uid, namespace, name) = (uid.to_string(), namespace.to_string(), name.to_string());
            tokio::spawn(async move {
                let ended = this.drive(&uid, &namespace, &name).await;
                this.in_flight.end(&uid, ended == Ended::Deleted);
            });
        }
    }

    /// While leader, every `period`: finds the pods an earlier process left
    /// marked and drains them on.
    pub fn spawn_reconciler(self: &Arc<Self>, period: Duration) {
        let this = self.clone();
        let mut role = self.role.clone();
        tokio::spawn(async move {
            loop {
                this.in_flight.sweep();
                if this.leading() {
                    match this.resume().await {
                        Ok(()) => this.synced.store(true, Ordering::SeqCst),
                        Err(e) => {
                            warn!(error = %e, "graceful drains: could not list the marked pods; retrying")
                        }
                    }
                } else {
                    this.synced.store(false, Ordering::SeqCst);
                }
                // At once on an election: the webhook waits for this list.
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = role.changed() => {}
                }
            }
        });
    }

    async fn resume(self: &Arc<Self>) -> kube::Result<()> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let marked = pods
            .list(&ListParams::default().labels(&format!("{LABEL}={LABEL_VALUE}")))
            .await?;
        for pod in marked.items {
            let m = &pod.metadata;
            let record = m
                .annotations
                .as_ref()
                .and_then(Record::parse)
                .and_then(Result::ok);
            let ours = record
                .as_ref()
                .is_none_or(|r| r.lease.as_deref().is_none_or(|l| l == self.lease));
            if let (Some(uid), Some(ns), Some(name), true) = (&m.uid, &m.namespace, &m.name, ours) {
                if m.deletion_timestamp.is_none() && !self.in_flight.contains(uid) {
                    info!(
                        namespace = ns.as_str(),
                        pod = name.as_str(),
                        "graceful drain: resuming a pod an earlier process marked"
                    );
                    let labels = record.map(|r| r.labels).unwrap_or_default();
                    self.ensure(uid, ns, name, labels);
                }
            }
        }
        Ok(())
    }

    async fn drive(&self, uid: &str, namespace: &str, name: &str) -> Ended {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let target = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some(uid.into()),
            ..Default::default()
        };
        let caches = self.caches.get().cloned();
        // The first read, the one after a write (the watch may not have
        // it yet) and one every BACKSTOP are the API's; the others the watch's.
        let mut fresh = true;
        let mut read_at = Instant::now();
        loop {
            if !self.leading() {
                return Ended::Left;
            }
            if read_at.elapsed() >= BACKSTOP {
                fresh = true;
            }
            if fresh {
                read_at = Instant::now();
            }
            // Armed before the read: a change after it ends the wait below.
            let changed = caches.as_ref().map(|c| c.changed.clone());
            let notified = changed.as_ref().map(|n| n.notified());
            let mut notified = std::pin::pin!(notified);
            if let Some(n) = notified.as_mut().as_pin_mut() {
                n.enable();
            }
            let watched = caches
                .as_ref()
                .filter(|_| !fresh)
                .and_then(|c| c.pod(namespace, name))
                .filter(|p| p.metadata.uid.as_deref() == Some(uid));
            let read_fresh = std::mem::take(&mut fresh);
            let pod = match watched {
                Some(p) => p,
                None => match pods.get_opt(name).await {
                    Ok(Some(p)) if p.metadata.uid.as_deref() == Some(uid) => Arc::new(p),
                    Ok(_) => return Ended::Deleted,
                    Err(e) => {
                        warn!(pod = name, error = %e, "graceful drain: could not read the pod; retrying");
                        tokio::time::sleep(self.tick * 4).await;
                        continue;
                    }
                },
            };
            let annotations = pod.metadata.annotations.clone().unwrap_or_default();
            let mut record = match Record::parse(&annotations) {
                Some(Ok(r)) => r,
                other => {
                    // A label without a readable record: nothing to finish or
                    // restore from; take the label off so it is not retried.
                    let why = match other {
                        Some(Err(e)) => e,
                        _ => format!("no {ANNOTATION} annotation"),
                    };
                    warn!(pod = name, reason = why.as_str(), "graceful drain: dropped");
                    let patch = serde_json::json!({"metadata": {"labels": {LABEL: null}}});
                    let _ = pods
                        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                    return Ended::Left;
                }
            };
            let config = current(&self.config).graceful.clone();
            let rv = pod.metadata.resource_version.clone();
            let mut facts = Facts {
                terminating: pod.metadata.deletion_timestamp.is_some(),
                excluded: !config.namespace_included(namespace),
                ..Facts::default()
            };
            if !facts.terminating && !facts.excluded {
                match self.read_facts(namespace, &record, read_fresh).await {
                    Ok((ready, hash)) => {
                        facts.replacement_ready = ready;
                        facts.service_selects_hash = hash;
                    }
                    Err(e) => {
                        warn!(pod = name, error = %e, "graceful drain: could not read the replacement or Services; retrying");
                        tokio::time::sleep(self.tick * 4).await;
                        continue;
                    }
                }
            }
            let grace = chrono::Duration::seconds(config.grace_period_seconds as i64);
            let timeout = chrono::Duration::seconds(config.drain_timeout_seconds as i64);
            let now = Utc::now();
            let action = next(&record, facts, grace, timeout, now);
            let written = match action {
                Action::Wait => Ok(Flow::Next),
                Action::Done => return Ended::Deleted,
                _ => {
                    let step = Step {
                        pods: &pods,
                        target: &target,
                        uid,
                        config: &config,
                        now,
                        rv: rv.as_deref(),
                    };
                    self.act(step, &mut record, action).await
                }
            };
            match written {
                Ok(Flow::Finished) => {
                    let deleted = matches!(action, Action::Delete { .. });
                    return if deleted { Ended::Deleted } else { Ended::Left };
                }
                Ok(Flow::Next) => fresh = action != Action::Wait,
                // A conflict: the pod changed under us; read it again at once.
                Err(e) if crate::k8s::api_code(&e) == Some(409) => {
                    fresh = true;
                    continue;
                }
                Err(e) => {
                    warn!(namespace, pod = name, action = ?action, error = %e, "graceful drain: step failed; retrying")
                }
            }
            // Until the watch wakes it (the pod or a ReplicaSet's pod
            // changed), or the next thing due: the timeout, the end of the
            // grace period, a look for a reloaded config, the backstop.
            let look = match &caches {
                None => self.tick,
                Some(_) => {
                    let mut due = record.started + timeout;
                    if let (super::record::Step::Isolated, Some(at)) =
                        (record.step, record.isolated_at)
                    {
                        due = due.min(at + grace);
                    }
                    let backstop = BACKSTOP.saturating_sub(read_at.elapsed());
                    // Past due (the grace period over, the replacement
                    // awaited): the watch wakes it.
                    (due - Utc::now())
                        .to_std()
                        .unwrap_or(LOOK)
                        .min(LOOK)
                        .min(backstop)
                        .max(self.tick / 5)
                }
            };
            match notified.as_mut().as_pin_mut() {
                Some(n) => {
                    tokio::select! {
                        _ = n => {}
                        _ = tokio::time::sleep(look) => {}
                    }
                }
                None => tokio::time::sleep(look).await,
            }
        }
    }

    pub(super) async fn event(
        &self,
        target: &ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        crate::k8s::events::publish(&self.recorder, target, warning, reason, note).await;
    }
}
