//! Burst safety. The webhook asks the PodDisruptionBudget with a dry-run
//! eviction, and a dry run records nothing in the PDB: N evictions at once
//! would each be told "allowed" by a PDB that allows one. So the admissions
//! of one PDB's pods take turns (a lock per PDB, held from the dry run until
//! the drain is registered), and the graceful drains node-drain has in flight
//! are counted against the PDB's `disruptionsAllowed`.
//!
//! What the disruption controller sees of a drain in flight: a replace-first
//! pod still matches the PDB's selector and is Ready until it leaves its
//! Services (its replacement is not counted until Ready, and a Ready one
//! only raises the count while the old pod still serves): the PDB's status
//! does not show the drain at all. So each drain in flight is counted, by
//! the labels the pod had when it was evicted, until it is over (the pod
//! deleted or restored) — a disruption the API would have recorded in
//! `disruptedPods` until the pod was gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use dashmap::DashMap;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::json;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::k8s::pods::selector_matches;

/// The PDBs of a namespace that select `labels`.
pub fn selecting<'a>(
    pdbs: impl IntoIterator<Item = &'a PodDisruptionBudget>,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a PodDisruptionBudget> {
    pdbs.into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|s| selector_matches(s, labels))
        })
        .collect()
}

/// The refusal the API would give if it had recorded the `in_flight`
/// graceful drains this PDB covers; `None` when one more is allowed.
pub fn refusal(pdb: &PodDisruptionBudget, in_flight: usize) -> Option<kube::core::Status> {
    let status = pdb.status.clone().unwrap_or_default();
    let allowed = i64::from(status.disruptions_allowed) - in_flight as i64;
    if allowed > 0 {
        return None;
    }
    let name = pdb.metadata.name.as_deref().unwrap_or_default();
    serde_json::from_value(json!({
        "status": "Failure", "code": 429, "reason": "TooManyRequests",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "details": {"causes": [{
            "reason": "DisruptionBudget",
            "message": format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently \
                 ({in_flight} of them being drained gracefully by node-drain)",
                status.desired_healthy, status.current_healthy
            ),
        }]},
    }))
    .ok()
}

/// One lock per PDB (namespace/name), created on first use.
#[derive(Default)]
pub struct Turns {
    locks: DashMap<String, Arc<Mutex<()>>>,
}

impl Turns {
    /// Waits for the turn of every PDB named (in name order, so two
    /// admissions never wait on each other crosswise).
    pub async fn take(&self, namespace: &str, names: &[String]) -> Vec<OwnedMutexGuard<()>> {
        let mut keys: Vec<String> = names.iter().map(|n| format!("{namespace}/{n}")).collect();
        keys.sort();
        keys.dedup();
        let mut held = Vec::with_capacity(keys.len());
        for key in keys {
            let lock = self.locks.entry(key).or_default().clone();
            held.push(lock.lock_owned().await);
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(allowed: i32, selector: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "web-budget", "namespace": "shop"},
            "spec": {"minAvailable": 4, "selector": selector},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": 5, "desiredHealthy": 4,
                       "expectedPods": 5, "observedGeneration": 1}
        }))
        .unwrap()
    }

    #[test]
    fn drains_in_flight_use_up_the_budget() {
        let one = pdb(1, json!({"matchLabels": {"app": "web"}}));
        assert!(refusal(&one, 0).is_none());
        let refused = refusal(&one, 1).expect("the one disruption is in flight");
        assert_eq!(refused.code, 429);
        assert_eq!(refused.reason, "TooManyRequests");
        let cause = &refused.details.unwrap().causes[0];
        assert!(cause
            .message
            .contains("disruption budget web-budget needs 4 healthy pods"));
        assert!(refusal(&pdb(2, json!({})), 1).is_none());
        assert!(refusal(&pdb(0, json!({})), 0).is_some());
    }

    #[test]
    fn only_the_pdbs_selecting_the_pods_labels_count() {
        let web = pdb(1, json!({"matchLabels": {"app": "web"}}));
        let api = pdb(
            1,
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["api"]}]}),
        );
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let chosen = selecting([&web, &api], &labels);
        assert_eq!(chosen.len(), 1);
        assert!(std::ptr::eq(chosen[0], &web));
    }

    #[tokio::test]
    async fn one_admission_per_pdb_at_a_time() {
        let turns = Arc::new(Turns::default());
        let held = turns.take("shop", &["web-budget".into()]).await;
        let other = turns.take("shop", &["api-budget".into()]).await;
        assert_eq!(other.len(), 1, "another PDB's turn is free");
        let t = turns.clone();
        let waiting =
            tokio::spawn(async move { t.take("shop", &["web-budget".into()]).await.len() });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the same PDB's turn waits");
        drop(held);
        assert_eq!(waiting.await.unwrap(), 1);
    }
}
