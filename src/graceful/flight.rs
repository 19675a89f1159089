//! The graceful drains a PodDisruptionBudget must count, as the Eviction
//! API would have recorded them: each drain in flight, by the labels its
//! pod had when evicted (the disruption controller does not see a
//! replace-first drain: the pod stays Ready and selected until its
//! replacement is Ready), and, once the pod is deleted, until the PDB's
//! status shows the deletion. The API keeps an evicted pod in the PDB's
//! `disruptedPods` until the controller sees it go; without that, a drain
//! that ended (at its timeout, say) would stop counting while the PDB still
//! counted the pod as healthy, and a second eviction in that window would
//! be allowed against a budget already spent.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::k8s::pods::selector_matches;

/// How long a deleted pod counts at most: the API's own bound on a
/// `disruptedPods` entry (`DeletionTimeout`, 2 minutes).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// A drain, as a PDB sees it.
struct Drain {
    namespace: String,
    labels: BTreeMap<String, String>,
    /// When its pod was deleted (or found deleted); `None` while in flight.
    deleted_at: Option<Instant>,
}

/// Whether a drained pod deleted `since` ago still counts against a PDB
/// whose status counts `status_healthy` healthy pods, `healthy_now` of its
/// pods being healthy as watched: until the status counts no more than
/// that (the controller has seen the deletion), at most DELETION_TIMEOUT.
/// Not known (`None`, the pods not watched yet): it counts.
pub fn deleted_still_counts(
    since: Duration,
    status_healthy: i32,
    healthy_now: Option<usize>,
) -> bool {
    if since >= DELETION_TIMEOUT {
        return false;
    }
    healthy_now.is_none_or(|n| i64::from(status_healthy) > n as i64)
}

/// The pods a PDB's healthy count as watched must leave out (`against`).
#[derive(Debug, Default)]
pub struct Gone {
    /// The deleted drains' pods, by UID.
    pub uids: std::collections::HashSet<String>,
    /// The PDB's `disruptedPods`, by name.
    pub names: std::collections::HashSet<String>,
}

impl Gone {
    pub fn contains(&self, uid: Option<&str>, name: Option<&str>) -> bool {
        uid.is_some_and(|u| self.uids.contains(u)) || name.is_some_and(|n| self.names.contains(n))
    }
}

#[derive(Default)]
pub struct InFlight {
    /// Pod UID → its drain, while a task drives it.
    live: DashMap<String, Drain>,
    /// Pod UID → its drain, its pod deleted, until no PDB need count it.
    deleted: DashMap<String, Drain>,
}

impl InFlight {
    /// Registers a drain; false when one is registered already.
    pub fn start(&self, uid: &str, namespace: &str, labels: BTreeMap<String, String>) -> bool {
        let drain = Drain {
            namespace: namespace.to_string(),
            labels,
            deleted_at: None,
        };
        self.live.insert(uid.to_string(), drain).is_none()
    }

    /// The task is over; `deleted`: its pod was deleted (or is gone), so the
    /// drain counts on until the PDBs show it.
    pub fn end(&self, uid: &str, deleted: bool) {
        if deleted {
            if let Some(d) = self.live.get(uid) {
                // Kept before it leaves `live`: never counted by neither.
                let kept = Drain {
                    namespace: d.namespace.clone(),
                    labels: d.labels.clone(),
                    deleted_at: Some(Instant::now()),
                };
                drop(d);
                self.deleted.insert(uid.to_string(), kept);
            }
        }
        self.live.remove(uid);
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.live.contains_key(uid)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Forgets the deleted pods past DELETION_TIMEOUT.
    pub fn sweep(&self) {
        self.deleted
            .retain(|_, d| d.deleted_at.is_some_and(|t| t.elapsed() < DELETION_TIMEOUT));
    }

    /// The drains `pdb` must count, other than the pod `except`: those in
    /// flight that it selects, and its deleted ones its status does not show
    /// yet; `healthy_now` gives how many of its pods are healthy as watched
    /// (asked only when a deleted drain is in question), leaving out the pods
    /// `gone` names: the deleted drains' own (the pod watch may not have
    /// delivered their deletion yet: counted as healthy there, they would
    /// hide themselves) and the PDB's `disruptedPods` (evicted, which the
    /// status no longer counts).
    pub fn against(
        &self,
        namespace: &str,
        pdb: &PodDisruptionBudget,
        except: &str,
        healthy_now: impl FnOnce(&LabelSelector, &Gone) -> Option<usize>,
    ) -> usize {
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let selects = |uid: &str, d: &Drain| {
            uid != except && d.namespace == namespace && selector_matches(&selector, &d.labels)
        };
        let live = self.live.iter().filter(|d| selects(d.key(), d)).count();
        let deleted: Vec<Duration> = self
            .deleted
            .iter()
            .filter(|d| selects(d.key(), d))
            .filter_map(|d| d.deleted_at.map(|t| t.elapsed()))
            .collect();
        if deleted.is_empty() {
            return live;
        }
        let status_healthy = pdb.status.as_ref().map_or(0, |s| s.current_healthy);
        let gone = Gone {
            uids: self.deleted.iter().map(|d| d.key().clone()).collect(),
            names: pdb
                .status
                .as_ref()
                .and_then(|s| s.disrupted_pods.as_ref())
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default(),
        };
        let now = healthy_now(&selector, &gone);
        live + deleted
            .into_iter()
            .filter(|since| deleted_still_counts(*since, status_healthy, now))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(current_healthy: i32) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "web-budget", "namespace": "shop"},
            "spec": {"minAvailable": 4, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 1, "currentHealthy": current_healthy,
                       "desiredHealthy": 4, "expectedPods": 5}
        }))
        .unwrap()
    }

    fn web() -> BTreeMap<String, String> {
        BTreeMap::from([("app".to_string(), "web".to_string())])
    }

    #[test]
    fn a_deleted_pod_counts_until_the_status_shows_it_or_the_timeout() {
        let second = Duration::from_secs(1);
        assert!(deleted_still_counts(second, 5, Some(4)), "status behind");
        assert!(!deleted_still_counts(second, 4, Some(4)), "status shows it");
        assert!(!deleted_still_counts(second, 3, Some(4)), "others evicted");
        assert!(deleted_still_counts(second, 5, None), "pods not watched");
        assert!(!deleted_still_counts(DELETION_TIMEOUT, 5, Some(4)));
    }

    /// The pod watch has not delivered the deletion yet: the deleted pod is
    /// still healthy in the cache, as in the status. It must still count
    /// (before: 5 healthy watched, 5 in the status, so it counted for none).
    #[test]
    fn a_deleted_pod_the_watch_still_shows_counts_until_the_status_shows_it() {
        let flight = InFlight::default();
        assert!(flight.start("a", "shop", web()));
        flight.end("a", true);
        let watched = ["a", "b", "c", "d", "e"];
        let healthy = |gone: &Gone| {
            Some(
                watched
                    .iter()
                    .filter(|uid| !gone.contains(Some(uid), Some(&format!("web-{uid}"))))
                    .count(),
            )
        };
        assert_eq!(flight.against("shop", &pdb(5), "x", |_, g| healthy(g)), 1);
        // The status shows it: 4 healthy.
        assert_eq!(flight.against("shop", &pdb(4), "x", |_, g| healthy(g)), 0);
        // Another pod evicted by the API (in disruptedPods, still watched):
        // the status counts 4, the watch 5 less the two gone.
        let mut evicted = pdb(4);
        evicted.status.as_mut().unwrap().disrupted_pods =
            serde_json::from_value(json!({"web-b": "2026-11-29T10:00:00Z"})).unwrap();
        assert_eq!(flight.against("shop", &evicted, "x", |_, g| healthy(g)), 1);
    }

    #[test]
    fn drains_count_while_in_flight_and_after_deletion_until_the_status_shows_it() {
        let flight = InFlight::default();
        assert!(flight.start("a", "shop", web()));
        assert!(!flight.start("a", "shop", web()), "one task a pod");
        assert!(flight.start("b", "shop", web()));
        assert!(flight.start("c", "other", web()));
        let behind = pdb(5);
        assert_eq!(flight.against("shop", &behind, "x", |_, _| Some(4)), 2);
        assert_eq!(flight.against("shop", &behind, "a", |_, _| Some(4)), 1);
        flight.end("a", true);
        flight.end("b", false);
        assert!(!flight.contains("a") && flight.len() == 1);
        assert_eq!(flight.against("shop", &behind, "x", |_, _| Some(4)), 1);
        assert_eq!(flight.against("shop", &pdb(4), "x", |_, _| Some(4)), 0);
        let api: PodDisruptionBudget = serde_json::from_value(json!({
            "spec": {"selector": {"matchLabels": {"app": "api"}}}}))
        .unwrap();
        assert_eq!(flight.against("shop", &api, "x", |_, _| Some(0)), 0);
        flight.sweep();
        assert_eq!(flight.against("shop", &behind, "x", |_, _| Some(4)), 1);
    }
}
