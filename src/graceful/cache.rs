//! The watched caches, so an admission and a worker need no read of their
//! own: every pod of the cluster, stripped to what is read of it
//! (`view::slim`: metadata, phase, Ready), and the PodDisruptionBudgets. The
//! webhook reads a pod's metadata and readiness and its namespace's PDBs
//! here; the workers read their pod and its replacement's readiness here
//! and are woken by the watch when a pod of a ReplicaSet (or a drained one)
//! changes, instead of polling. A cache may lag: the pod's record is
//! written conditional on the cached resourceVersion (a stale one is a 409,
//! and the admission reads the pod again), a pod not yet cached is read
//! with a GET, a PDB's status is read fresh whenever it is what allows the
//! drain (see `admit`), and a worker reads the API again after each write
//! and every `worker::BACKSTOP`. Until a cache has listed once, its readers
//! read the API instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::sync::Notify;
use tracing::warn;

use super::record::{HASH, LABEL};
use super::view;

pub struct Caches {
    /// Every pod, slim.
    pods: Store<Pod>,
    pdbs: Store<PodDisruptionBudget>,
    pods_listed: Arc<AtomicBool>,
    pdbs_listed: Arc<AtomicBool>,
    /// Woken at every change of a ReplicaSet's pod (`pod-template-hash`)
    /// or of a pod being drained: what a waiting worker waits for.
    pub changed: Arc<Notify>,
}

impl Caches {
    /// Starts both watches (for the life of the process).
    pub fn spawn(client: &Client) -> Arc<Self> {
        let (pods, pods_writer) = reflector::store();
        let (pdbs, pdbs_writer) = reflector::store();
        let caches = Arc::new(Self {
            pods,
            pdbs,
            pods_listed: Arc::new(AtomicBool::new(false)),
            pdbs_listed: Arc::new(AtomicBool::new(false)),
            changed: Arc::new(Notify::new()),
        });
        let config = watcher::Config::default().any_semantic();
        let pods_api: Api<Pod> = Api::all(client.clone());
        let changed = caches.changed.clone();
        let stream = watcher::watcher(pods_api, config.clone())
            .default_backoff()
            .modify(view::slim);
        let stream = reflector::reflector(pods_writer, stream).inspect(move |event| {
            let wakes = match event {
                Ok(Event::Apply(p) | Event::Delete(p)) => p
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(HASH) || l.contains_key(LABEL)),
                // A relist after a broken watch: what changed meanwhile.
                Ok(Event::InitDone) => true,
                _ => false,
            };
            if wakes {
                changed.notify_waiters();
            }
        });
        tokio::spawn(drive(stream, caches.pods_listed.clone(), "pods"));
        let pdbs_api: Api<PodDisruptionBudget> = Api::all(client.clone());
        let stream = watcher::watcher(pdbs_api, config).default_backoff();
        tokio::spawn(drive(
            reflector::reflector(pdbs_writer, stream),
            caches.pdbs_listed.clone(),
            "pdbs",
        ));
        caches
    }

    /// The pod (slim) as last seen; `None` when not (yet) cached.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        if !self.pods_listed.load(Ordering::SeqCst) {
            return None;
        }
        self.pods.get(&ObjectRef::new(name).within(namespace))
    }

    /// Whether a replacement of a pod of the ReplicaSet `replica_set` (its
    /// UID) drained since `since` is Ready; `None` until the pods are listed.
    pub fn replacement_ready(
        &self,
        namespace: &str,
        replica_set: &str,
        since: DateTime<Utc>,
    ) -> Option<bool> {
        if !self.pods_listed.load(Ordering::SeqCst) {
            return None;
        }
        let found = self.pods.find(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && view::ready_replacement(p, replica_set, since)
        });
        Some(found.is_some())
    }

    /// How many of the namespace's pods `selector` selects that the
    /// disruption controller counts as healthy; `None` until listed.
    pub fn healthy_selected(
        &self,
        namespace: &str,
        selector: &LabelSelector,
        gone: &super::flight::Gone,
    ) -> Option<usize> {
        if !self.pods_listed.load(Ordering::SeqCst) {
            return None;
        }
        let pods = self.pods.state_filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && !gone.contains(p.metadata.uid.as_deref(), p.metadata.name.as_deref())
        });
        Some(view::healthy_selected(pods.iter().map(|p| &**p), selector))
    }

    /// The namespace's PDBs; `None` until the watch has listed them.
    pub fn pdbs(&self, namespace: &str) -> Option<Vec<PodDisruptionBudget>> {
        if !self.pdbs_listed.load(Ordering::SeqCst) {
            return None;
        }
        let all = self
            .pdbs
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(namespace));
        Some(all.iter().map(|p| (**p).clone()).collect())
    }
}

async fn drive<K, S>(stream: S, listed: Arc<AtomicBool>, what: &'static str)
where
    S: futures::Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::InitDone) => listed.store(true, Ordering::SeqCst),
            Ok(_) => {}
            Err(e) => warn!(cache = what, error = %e, "graceful cache: watch failed; retrying"),
        }
    }
}
