//! node-drain's record on a Node: annotations under `node-drain.io/`. They are
//! written before anything is changed, so a restarted node-drain knows which
//! nodes it touched and whether it cordoned them.

use std::collections::BTreeMap;

pub const STATE: &str = "node-drain.io/state";
pub const RUN_ID: &str = "node-drain.io/run-id";
pub const WAS_UNSCHEDULABLE: &str = "node-drain.io/was-unschedulable";
/// Refreshed by the run that owns the node; a stale one means that run died.
pub const HEARTBEAT: &str = "node-drain.io/heartbeat";

/// States after which node-drain no longer owns the node.
const FINISHED: [&str; 3] = ["drained", "restored", "failed"];

/// Whether node-drain's annotations say a drain of this node is under way.
pub fn drain_in_progress(annotations: Option<&BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(STATE))
        .is_some_and(|state| !FINISHED.contains(&state.as_str()))
}

/// Whether a drain recorded as in progress has lost its run: no heartbeat, an
/// unreadable one, or one older than `orphan_after` at `now`.
pub fn orphaned(
    annotations: Option<&BTreeMap<String, String>>,
    now: chrono::DateTime<chrono::Utc>,
    orphan_after: chrono::Duration,
) -> bool {
    if !drain_in_progress(annotations) {
        return false;
    }
    let beat = annotations
        .and_then(|a| a.get(HEARTBEAT))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    match beat {
        Some(t) => now - t.with_timezone(&chrono::Utc) > orphan_after,
        None => true,
    }
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

    #[test]
    fn orphans_are_in_progress_drains_without_a_fresh_heartbeat() {
        let now: chrono::DateTime<chrono::Utc> = "2026-11-21T12:00:00Z".parse().unwrap();
        let after = chrono::Duration::seconds(60);
        let node = |state: &str, beat: Option<&str>| {
            let mut a = BTreeMap::from([(STATE.to_string(), state.to_string())]);
            if let Some(b) = beat {
                a.insert(HEARTBEAT.to_string(), b.to_string());
            }
            a
        };
        assert!(orphaned(Some(&node("draining", None)), now, after));
        assert!(orphaned(
            Some(&node("draining", Some("2026-11-21T11:58:00Z"))),
            now,
            after
        ));
        assert!(orphaned(
            Some(&node("cordoning", Some("garbage"))),
            now,
            after
        ));
        assert!(!orphaned(
            Some(&node("draining", Some("2026-11-21T11:59:30Z"))),
            now,
            after
        ));
        assert!(!orphaned(Some(&node("drained", None)), now, after));
        assert!(!orphaned(None, now, after));
    }
}
