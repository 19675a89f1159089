//! What a worker reads about its pod each round besides the pod itself:
//! whether a replacement is Ready (from the watched cache; from the API
//! after a write and at each backstop), and whether a Service selects
//! `pod-template-hash` (the fallback's test, at the first step only).

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};

use super::record::{Record, HASH};
use super::view;
use super::worker::Graceful;

impl Graceful {
    /// Whether a replacement is Ready, and whether a Service that selects
    /// the pod's original labels uses `pod-template-hash`. `fresh`: read
    /// the API, not the cache.
    pub(super) async fn read_facts(
        &self,
        namespace: &str,
        record: &Record,
        fresh: bool,
    ) -> kube::Result<(bool, bool)> {
        let mut ready = false;
        if let (Some(rs), Some(hash)) = (record.replica_set(), record.labels.get(HASH)) {
            let cached = self
                .caches
                .get()
                .filter(|_| !fresh)
                .and_then(|c| c.replacement_ready(namespace, &rs.uid, record.started));
            ready = match cached {
                Some(ready) => ready,
                None => {
                    let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
                    let siblings = pods
                        .list(&ListParams::default().labels(&format!("{HASH}={hash}")))
                        .await?;
                    siblings
                        .items
                        .iter()
                        .any(|p| view::ready_replacement(p, &rs.uid, record.started))
                }
            };
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
