//! The webhook's IO around the pure decisions of `admission`: read the pod
//! and its PDB (both watched), refuse at once where the PDB as watched has
//! no room left for it (what is under way counted), else ask the Eviction
//! API whether the PDB allows it (a dry run as node-drain), record the drain
//! on the pod, start its task, answer. Only an admission that can succeed
//! waits for the API. Every failure on the way lets the eviction through
//! unchanged (`failurePolicy: Ignore` says the same).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::Value;
use tracing::{info, warn};

use super::admission::{
    as_dry_run, refused, screen, unchanged, AdmissionRequest, AdmissionReview, Screen,
};
use super::budget;
use super::record::{Record, LABEL, LABEL_VALUE};
use super::view;
use super::worker::Graceful;
use crate::config::current;

/// Where an admission's time went: its calls to the API, and of them the
/// dry-run eviction (the rest is waiting for a thread and deciding).
#[derive(Default)]
struct Spent {
    api: Duration,
    dry_run: Duration,
}

impl Spent {
    async fn api<T>(&mut self, call: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let answer = call.await;
        self.api += started.elapsed();
        answer
    }
}

impl Graceful {
    /// The answer to one AdmissionReview.
    pub async fn admit(self: &Arc<Self>, review: AdmissionReview) -> Value {
        let Some(request) = review.request else {
            return unchanged("");
        };
        let started = Instant::now();
        let mut spent = Spent::default();
        let (outcome, answer) = self.decide(&request, &mut spent).await;
        crate::telemetry::metrics::get().admission(outcome);
        info!(
            namespace = request.namespace.as_str(),
            pod = request.name.as_str(),
            user = request.user_info.username.as_str(),
            outcome,
            millis = started.elapsed().as_millis() as u64,
            api_millis = spent.api.as_millis() as u64,
            dry_run_millis = spent.dry_run.as_millis() as u64,
            "admission: pods/eviction"
        );
        answer
    }

    async fn decide(
        self: &Arc<Self>,
        request: &AdmissionRequest,
        spent: &mut Spent,
    ) -> (&'static str, Value) {
        let uid = request.uid.as_str();
        let config = current(&self.config).graceful.clone();
        let (namespace, name) = match screen(request, &config) {
            Screen::Pass(why) => return (why, unchanged(uid)),
            Screen::Candidate { namespace, name } => (namespace, name),
        };
        // A follower answers "allowed, unchanged": only the leader drains,
        // and the eviction then happens as if node-drain were not there.
        if !self.leading() {
            return ("not-leader", unchanged(uid));
        }
        // A new leader lets evictions through until it knows the drains in
        // flight (the PDB accounting below counts them).
        if !self.leading_synced() {
            return ("not-synced", unchanged(uid));
        }
        let cached = self.caches.get().and_then(|c| c.pod(&namespace, &name));
        let from_cache = cached.is_some();
        let answer = self
            .candidate(request, &config, &namespace, &name, cached, spent)
            .await;
        match answer {
            // The cached pod was stale (its record not written): once more, read.
            None if from_cache => self
                .candidate(request, &config, &namespace, &name, None, spent)
                .await
                .unwrap_or(("error", unchanged(uid))),
            None => ("error", unchanged(uid)),
            Some(answer) => answer,
        }
    }

    /// The decision on a candidate's pod (`cached`: as watched, else read
    /// now). `None`: the record's write met a newer pod.
    async fn candidate(
        self: &Arc<Self>,
        request: &AdmissionRequest,
        config: &super::GracefulConfig,
        namespace: &str,
        name: &str,
        cached: Option<Arc<Pod>>,
        spent: &mut Spent,
    ) -> Option<(&'static str, Value)> {
        let uid = request.uid.as_str();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = match cached {
            Some(p) => p,
            None => match spent.api(pods.get_opt(name)).await {
                Ok(Some(p)) => Arc::new(p),
                Ok(None) => return Some(("pod-gone", unchanged(uid))),
                Err(e) => {
                    warn!(pod = name, error = %e, "admission: could not read the pod; eviction let through");
                    return Some(("error", unchanged(uid)));
                }
            },
        };
        let m = &pod.metadata;
        if m.deletion_timestamp.is_some() {
            return Some(("terminating", unchanged(uid)));
        }
        let labels = m.labels.clone().unwrap_or_default();
        let annotations = m.annotations.clone().unwrap_or_default();
        if labels.get(LABEL).map(String::as_str) == Some(LABEL_VALUE) {
            // Already being drained: the evicter's retry is answered as done.
            return Some(("already-draining", as_dry_run(uid, &request.object)));
        }
        if !config.managed(&labels, &annotations) {
            return Some(("unmanaged", unchanged(uid)));
        }
        let Some(pod_uid) = m.uid.clone() else {
            return Some(("error", unchanged(uid)));
        };
        // The PDBs that select the pod, and what is under way against each:
        // the admissions that reserved before this one and the drains.
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), namespace);
        let listed = match self.caches.get().and_then(|c| c.pdbs(namespace)) {
            Some(l) => l,
            None => match spent.api(pdbs.list(&ListParams::default())).await {
                Ok(l) => l.items,
                Err(e) => {
                    warn!(pod = name, error = %e, "admission: could not list the PDBs; eviction let through");
                    return Some(("error", unchanged(uid)));
                }
            },
        };
        let selected = budget::selecting(&listed, &labels);
        let names: Vec<String> = selected
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let (reservation, ahead) = self.pending.reserve(namespace, &names);
        let under_way = |pdb: &PodDisruptionBudget, ahead: usize| {
            ahead + self.in_flight_against(namespace, pdb, &pod_uid)
        };
        // The PDB as watched has no room left: refused now, as the API
        // would refuse a Running, Ready pod (it lets others go under rules
        // of its own, and refuses a pod with two PDBs otherwise: both are
        // left to the dry run).
        if let ([pdb], true) = (selected.as_slice(), view::running_ready(&pod)) {
            let n = under_way(pdb, ahead[0]);
            if let Some(status) = budget::refusal(pdb, n) {
                let outcome = if n > 0 {
                    "refused-pdb-in-flight"
                } else {
                    "refused-pdb-watched"
                };
                return Some((outcome, refused(uid, &status)));
            }
        }
        // Would the PDB allow it? Asked as node-drain, as a dry run (this
        // webhook lets its own dry run through unchanged).
        let probe = EvictParams {
            post_options: PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            delete_options: Some(kube::api::DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(pod_uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            }),
        };
        let before = spent.api;
        let dry_run = spent.api(pods.evict(name, &probe)).await;
        spent.dry_run = spent.api - before;
        match dry_run {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 429 => {
                return Some(("refused-pdb", refused(uid, &status)));
            }
            Err(e) => {
                warn!(pod = name, error = %e, "admission: the dry-run eviction failed; eviction let through");
                return Some(("error", unchanged(uid)));
            }
        }
        // The dry run counted nothing under way: where anything is, the PDB
        // (read fresh: the watch may lag) must allow more than that.
        for (pdb, ahead) in names.iter().zip(ahead) {
            let watched = selected
                .iter()
                .find(|p| p.metadata.name.as_ref() == Some(pdb));
            if watched.is_none_or(|p| under_way(p, ahead) == 0) {
                continue;
            }
            let fresh = match spent.api(pdbs.get(pdb)).await {
                Ok(p) => p,
                Err(e) => {
                    warn!(pod = name, error = %e, "admission: could not read the PDB; eviction let through");
                    return Some(("error", unchanged(uid)));
                }
            };
            if let Some(status) = budget::refusal(&fresh, under_way(&fresh, ahead)) {
                return Some(("refused-pdb-in-flight", refused(uid, &status)));
            }
        }
        let record = Record::new(
            Utc::now(),
            &request.user_info.username,
            Some(self.lease.clone()),
            labels,
            m.owner_references.clone().unwrap_or_default(),
        );
        let patch = record.mark_patch(m.resource_version.as_deref());
        let written = spent
            .api(pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch)))
            .await;
        if let Err(e) = written {
            if crate::k8s::api_code(&e) == Some(409) {
                // A newer pod than read: the caller reads it again (and then
                // finds another eviction's record, if that was the change).
                return None;
            }
            warn!(pod = name, error = %e, "admission: could not record the graceful drain; eviction let through");
            return Some(("error", unchanged(uid)));
        }
        self.ensure(&pod_uid, namespace, name, record.labels);
        drop(reservation);
        Some(("graceful", as_dry_run(uid, &request.object)))
    }
}
