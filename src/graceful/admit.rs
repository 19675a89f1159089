//! The webhook's IO around the pure decisions of `admission`: read the pod,
//! ask the Eviction API whether the PDB allows it (a dry run as node-drain),
//! record the drain on the pod, start its task, answer. Every failure on the
//! way lets the eviction through unchanged: the webhook never blocks an
//! eviction the API would allow (`failurePolicy: Ignore` says the same).

use std::sync::Arc;

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::Value;
use tracing::{info, warn};

use super::admission::{as_dry_run, refused, screen, unchanged, AdmissionReview, Screen};
use super::budget;
use super::record::{Record, LABEL, LABEL_VALUE};
use super::worker::Graceful;
use crate::config::current;

impl Graceful {
    /// The answer to one AdmissionReview.
    pub async fn admit(self: &Arc<Self>, review: AdmissionReview) -> Value {
        let Some(request) = review.request else {
            return unchanged("");
        };
        let started = std::time::Instant::now();
        let (outcome, answer) = self.decide(&request).await;
        crate::telemetry::metrics::get().admission(outcome);
        info!(
            namespace = request.namespace.as_str(),
            pod = request.name.as_str(),
            user = request.user_info.username.as_str(),
            outcome,
            millis = started.elapsed().as_millis() as u64,
            "admission: pods/eviction"
        );
        answer
    }

    async fn decide(
        self: &Arc<Self>,
        request: &super::admission::AdmissionRequest,
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
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let pod = match pods.get_opt(&name).await {
            Ok(Some(p)) => p,
            Ok(None) => return ("pod-gone", unchanged(uid)),
            Err(e) => {
                warn!(pod = name.as_str(), error = %e, "admission: could not read the pod; eviction let through");
                return ("error", unchanged(uid));
            }
        };
        let m = &pod.metadata;
        if m.deletion_timestamp.is_some() {
            return ("terminating", unchanged(uid));
        }
        let labels = m.labels.clone().unwrap_or_default();
        let annotations = m.annotations.clone().unwrap_or_default();
        if labels.get(LABEL).map(String::as_str) == Some(LABEL_VALUE) {
            // Already being drained: the evicter's retry is answered as done.
            return ("already-draining", as_dry_run(uid, &request.object));
        }
        if !config.managed(&labels, &annotations) {
            return ("unmanaged", unchanged(uid));
        }
        let Some(pod_uid) = m.uid.clone() else {
            return ("error", unchanged(uid));
        };
        // The admissions of one PDB's pods take turns, from the dry run until
        // the drain is registered (see `budget`).
        let pdbs: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), &namespace);
        let budgets = match pdbs.list(&ListParams::default()).await {
            Ok(list) => budget::selecting(&list.items, &labels)
                .into_iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect::<Vec<_>>(),
            Err(e) => {
                warn!(pod = name.as_str(), error = %e, "admission: could not list the PDBs; eviction let through");
                return ("error", unchanged(uid));
            }
        };
        let _turn = self.turns.take(&namespace, &budgets).await;
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
        match pods.evict(&name, &probe).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 429 => {
                return ("refused-pdb", refused(uid, &status));
            }
            Err(e) => {
                warn!(pod = name.as_str(), error = %e, "admission: the dry-run eviction failed; eviction let through");
                return ("error", unchanged(uid));
            }
        }
        // The dry run counted none of the drains in flight: count them.
        if !budgets.is_empty() {
            let fresh = match pdbs.list(&ListParams::default()).await {
                Ok(list) => list.items,
                Err(e) => {
                    warn!(pod = name.as_str(), error = %e, "admission: could not read the PDBs; eviction let through");
                    return ("error", unchanged(uid));
                }
            };
            for pdb in budget::selecting(&fresh, &labels) {
                let selector = pdb.spec.as_ref().and_then(|s| s.selector.clone());
                let in_flight =
                    self.in_flight_selected(&namespace, &selector.unwrap_or_default(), &pod_uid);
                if let Some(status) = budget::refusal(pdb, in_flight) {
                    return ("refused-pdb-in-flight", refused(uid, &status));
                }
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
        if let Err(e) = pods
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            // Two evictions of one pod at once: the one that lost the race
            // finds the other's record, and is answered as already done.
            if crate::k8s::api_code(&e) == Some(409) {
                if let Ok(Some(now)) = pods.get_opt(&name).await {
                    let labels = now.metadata.labels.unwrap_or_default();
                    if now.metadata.uid.as_deref() == Some(pod_uid.as_str())
                        && labels.get(LABEL).map(String::as_str) == Some(LABEL_VALUE)
                    {
                        return ("already-draining", as_dry_run(uid, &request.object));
                    }
                }
            }
            warn!(pod = name.as_str(), error = %e, "admission: could not record the graceful drain; eviction let through");
            return ("error", unchanged(uid));
        }
        self.ensure(&pod_uid, &namespace, &name, record.labels);
        ("graceful", as_dry_run(uid, &request.object))
    }
}
