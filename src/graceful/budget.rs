//! Burst safety. The webhook asks the PodDisruptionBudget with a dry-run
//! eviction, and a dry run records nothing in the PDB: N evictions at once
//! would each be told "allowed" by a PDB that allows one. So each admission
//! counts the admissions of the same PDB's pods under way before it
//! (`Pending`) and the graceful drains the PDB must count (`flight`); the
//! PDB's `disruptionsAllowed` must exceed them, or the admission is refused
//! as the API would refuse it (`refusal`). Checked first against the PDB as
//! watched (a refusal needs no API call), then, where anything is under
//! way, against its status read fresh after the dry run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::json;

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
    let name = pdb.metadata.name.as_deref().unwrap_or_default();
    // As the API: a PDB whose spec the controller has not processed yet
    // refuses every eviction (its `disruptionsAllowed` is of the old spec).
    let unprocessed =
        status.observed_generation.unwrap_or(0) < pdb.metadata.generation.unwrap_or(0);
    let message = if unprocessed {
        format!("The disruption budget {name} is still being processed by the server.")
    } else if i64::from(status.disruptions_allowed) - (in_flight as i64) > 0 {
        return None;
    } else {
        format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently{}",
            status.desired_healthy,
            status.current_healthy,
            if in_flight > 0 {
                format!(" ({in_flight} of them being drained gracefully by node-drain)")
            } else {
                String::new()
            }
        )
    };
    serde_json::from_value(json!({
        "status": "Failure", "code": 429, "reason": "TooManyRequests",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "details": {"causes": [{"reason": "DisruptionBudget", "message": message}]},
    }))
    .ok()
}

/// The admissions under way, per PDB (namespace/name): each counts those
/// that reserved before it, so N at once never see the same room twice,
/// and none waits for another (no lock held across an API call).
#[derive(Default)]
pub struct Pending {
    counts: DashMap<String, Arc<AtomicUsize>>,
}

/// Held until the drain is registered in flight (or refused).
pub struct Reservation(Vec<Arc<AtomicUsize>>);

impl Drop for Reservation {
    fn drop(&mut self) {
        for c in &self.0 {
            c.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Pending {
    /// Reserves a place with each PDB named; returns, per name, how many
    /// admissions had reserved before.
    pub fn reserve(&self, namespace: &str, names: &[String]) -> (Reservation, Vec<usize>) {
        let mut held = Vec::with_capacity(names.len());
        let mut ahead = Vec::with_capacity(names.len());
        for name in names {
            let key = format!("{namespace}/{name}");
            let count = self.counts.entry(key).or_default().clone();
            ahead.push(count.fetch_add(1, Ordering::SeqCst));
            held.push(count);
        }
        (Reservation(held), ahead)
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

    /// As the API: a spec the disruption controller has not processed yet
    /// refuses, whatever the old status allows.
    #[test]
    fn a_pdb_not_yet_processed_refuses() {
        let mut raised = pdb(3, json!({"matchLabels": {"app": "web"}}));
        assert!(refusal(&raised, 0).is_none());
        raised.metadata.generation = Some(2);
        let refused = refusal(&raised, 0).expect("generation 2 observed 1");
        assert_eq!(refused.code, 429);
        assert_eq!(
            refused.details.unwrap().causes[0].message,
            "The disruption budget web-budget is still being processed by the server."
        );
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

    #[test]
    fn each_admission_counts_those_that_reserved_before_it() {
        let pending = Pending::default();
        let names = ["web-budget".to_string()];
        let (first, ahead) = pending.reserve("shop", &names);
        assert_eq!(ahead, [0]);
        let (second, ahead) = pending.reserve("shop", &names);
        assert_eq!(ahead, [1]);
        assert_eq!(
            pending.reserve("shop", &["api".into()]).1,
            [0],
            "another PDB"
        );
        assert_eq!(pending.reserve("other", &names).1, [0], "another namespace");
        drop(first);
        drop(second);
        assert_eq!(pending.reserve("shop", &names).1, [0], "released");
    }
}
