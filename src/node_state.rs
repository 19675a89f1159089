//! node-drain's record on a Node: annotations under `node-drain.io/`. They are
//! written before anything is changed, so a restarted node-drain knows which
//! nodes it touched and whether it cordoned them.

use std::collections::BTreeMap;

pub const STATE: &str = "node-drain.io/state";
pub const RUN_ID: &str = "node-drain.io/run-id";
pub const WAS_UNSCHEDULABLE: &str = "node-drain.io/was-unschedulable";

/// States after which node-drain no longer owns the node.
const FINISHED: [&str; 3] = ["drained", "restored", "failed"];

/// Whether node-drain's annotations say a drain of this node is under way.
pub fn drain_in_progress(annotations: Option<&BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(STATE))
        .is_some_and(|state| !FINISHED.contains(&state.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_progress_states() {
        let with = |s: &str| BTreeMap::from([(STATE.to_string(), s.to_string())]);
        assert!(!drain_in_progress(None));
        assert!(!drain_in_progress(Some(&BTreeMap::new())));
        assert!(drain_in_progress(Some(&with("cordoned"))));
        assert!(drain_in_progress(Some(&with("evicting"))));
        assert!(!drain_in_progress(Some(&with("drained"))));
        assert!(!drain_in_progress(Some(&with("restored"))));
    }
}
