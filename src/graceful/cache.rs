//! The webhook's watched caches, so an admission needs no read of its own:
//! the pods' metadata (labels, annotations, owners, deletionTimestamp,
//! resourceVersion: all the webhook reads of a pod) and the
//! PodDisruptionBudgets, both watched across namespaces. A cache may lag:
//! the pod's record is written conditional on the cached resourceVersion (a
//! stale one is a 409, and the admission reads the pod again), a pod not yet
//! cached is read with a GET, and a PDB's status is read fresh whenever it
//! is what allows the drain (see `admit`). Until a cache has listed once,
//! the admission reads the API instead. And one watch of the pods being
//! drained (by the drain label), from which the workers read their pod and
//! by which they are woken, instead of polling each pod.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::sync::Notify;
use tracing::warn;

use super::record::{LABEL, LABEL_VALUE};

pub struct Caches {
    pods: Store<PartialObjectMeta<Pod>>,
    pdbs: Store<PodDisruptionBudget>,
    /// The pods being drained (label `node-drain.io/graceful=draining`),
    /// whole: the workers read their pod here instead of polling it.
    drains: Store<Pod>,
    pods_listed: Arc<AtomicBool>,
    pdbs_listed: Arc<AtomicBool>,
    drains_listed: Arc<AtomicBool>,
    /// Woken at every change of a pod being drained.
    pub changed: Arc<Notify>,
}

impl Caches {
    /// Starts both watches (for the life of the process).
    pub fn spawn(client: &Client) -> Arc<Self> {
        let (pods, pods_writer) = reflector::store();
        let (pdbs, pdbs_writer) = reflector::store();
        let (drains, drains_writer) = reflector::store();
        let caches = Arc::new(Self {
            pods,
            pdbs,
            drains,
            pods_listed: Arc::new(AtomicBool::new(false)),
            pdbs_listed: Arc::new(AtomicBool::new(false)),
            drains_listed: Arc::new(AtomicBool::new(false)),
            changed: Arc::new(Notify::new()),
        });
        let config = watcher::Config::default().any_semantic();
        // Metadata-only requests (`PartialObjectMeta`): no spec, no status.
        let pods_api: Api<PartialObjectMeta<Pod>> = Api::all(client.clone());
        let listed = caches.pods_listed.clone();
        let stream = watcher::watcher(pods_api, config.clone()).default_backoff();
        tokio::spawn(drive(
            reflector::reflector(pods_writer, stream),
            listed,
            "pods",
        ));
        let pdbs_api: Api<PodDisruptionBudget> = Api::all(client.clone());
        let listed = caches.pdbs_listed.clone();
        let stream = watcher::watcher(pdbs_api, config).default_backoff();
        tokio::spawn(drive(
            reflector::reflector(pdbs_writer, stream),
            listed,
            "pdbs",
        ));
        let drains_api: Api<Pod> = Api::all(client.clone());
        let by_label = watcher::Config::default().labels(&format!("{LABEL}={LABEL_VALUE}"));
        let stream = watcher::watcher(drains_api, by_label).default_backoff();
        let (listed, changed) = (caches.drains_listed.clone(), caches.changed.clone());
        let stream =
            reflector::reflector(drains_writer, stream).inspect(move |_| changed.notify_waiters());
        tokio::spawn(drive(stream, listed, "drains"));
        caches
    }

    /// The pod's metadata as last seen; `None` when not (yet) cached.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<ObjectMeta> {
        if !self.pods_listed.load(Ordering::SeqCst) {
            return None;
        }
        let key = ObjectRef::new(name).within(namespace);
        self.pods.get(&key).map(|p| p.metadata.clone())
    }

    /// The pod being drained as last seen; `None` when not (or no longer) in
    /// the watch.
    pub fn drain(&self, namespace: &str, name: &str) -> Option<Pod> {
        if !self.drains_listed.load(Ordering::SeqCst) {
            return None;
        }
        let key = ObjectRef::new(name).within(namespace);
        self.drains.get(&key).map(|p| (*p).clone())
    }

    /// The namespace's PDBs; `None` until the watch has listed them.
    pub fn pdbs(&self, namespace: &str) -> Option<Vec<PodDisruptionBudget>> {
        if !self.pdbs_listed.load(Ordering::SeqCst) {
            return None;
        }
        let all = self.pdbs.state();
        Some(
            all.iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
                .map(|p| (**p).clone())
                .collect(),
        )
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
            Err(e) => warn!(cache = what, error = %e, "admission cache: watch failed; retrying"),
        }
    }
}
