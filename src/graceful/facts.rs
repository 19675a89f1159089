//! What a worker reads about its pod each round besides the pod itself:
//! whether a replacement is Ready (the ReplicaSet's pods are not watched:
//! listed by the original `pod-template-hash`), and whether a Service
//! selects `pod-template-hash` (the fallback's test, at the first step).

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};

use super::record::{Record, HASH};
use super::worker::Graceful;

impl Graceful {
    /// Whether a replacement is Ready, and whether a Service that selects
    /// the pod's original labels uses `pod-template-hash`.
    pub(super) async fn read_facts(
        &self,
        namespace: &str,
        record: &Record,
    ) -> kube::Result<(bool, bool)> {
        let mut ready = false;
        if let (Some(rs), Some(hash)) = (record.replica_set(), record.labels.get(HASH)) {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            let siblings = pods
                .list(&ListParams::default().labels(&format!("{HASH}={hash}")))
                .await?;
            ready = siblings.items.iter().any(|p| {
                let controlled = p
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == rs.uid);
                let new = p
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .is_some_and(|t| t.0.as_second() >= record.started.timestamp());
                controlled && new && p.metadata.deletion_timestamp.is_none() && pod_ready(p)
            });
        }
        let mut selects_hash = false;
        if record.step == super::record::Step::Requested {
            let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
            selects_hash = services
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .any(|s| {
                    let selector = s
                        .spec
                        .as_ref()
                        .and_then(|s| s.selector.clone())
                        .unwrap_or_default();
                    !selector.is_empty()
                        && selector.contains_key(HASH)
                        && selector
                            .iter()
                            .all(|(k, v)| record.labels.get(k) == Some(v))
                });
        }
        Ok((ready, selects_hash))
    }
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
