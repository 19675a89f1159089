//! node-drain's record on a Node: annotations under `node-drain.io/`, and the
//! JSON Patches that change them. Every patch after the claim carries a `test`
//! of the run id, so the API server itself refuses a change by a run that no
//! longer owns the node (422), and the claim carries a `test` of the Node's
//! resourceVersion (optimistic concurrency): two runs never both own a node.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Phase;

pub const STATE: &str = "node-drain.io/state";
pub const RUN_ID: &str = "node-drain.io/run-id";
/// Who runs the run (pod or host name), for a person reading the Node.
pub const HOLDER: &str = "node-drain.io/holder";
pub const WAS_UNSCHEDULABLE: &str = "node-drain.io/was-unschedulable";
/// Refreshed by the run that owns the node; a stale one means that run died.
pub const HEARTBEAT: &str = "node-drain.io/heartbeat";
/// Why the node was restored, or how it was retired.
pub const REASON: &str = "node-drain.io/reason";
pub const RETIREMENT: &str = "node-drain.io/retirement";

/// What the annotations say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub phase: Option<Phase>,
    pub run_id: Option<String>,
    pub was_unschedulable: Option<bool>,
    pub heartbeat: Option<DateTime<Utc>>,
    pub retirement: Option<String>,
}

impl Record {
    pub fn read(annotations: Option<&BTreeMap<String, String>>) -> Self {
        let get = |k: &str| annotations.and_then(|a| a.get(k)).cloned();
        Self {
            phase: get(STATE).as_deref().and_then(Phase::parse),
            run_id: get(RUN_ID),
            was_unschedulable: get(WAS_UNSCHEDULABLE).map(|v| v == "true"),
            heartbeat: get(HEARTBEAT)
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
            retirement: get(RETIREMENT),
        }
    }

    pub fn in_progress(&self) -> bool {
        self.phase.is_some_and(Phase::in_progress)
    }

    /// A drain recorded as in progress whose run is gone: no heartbeat, an
    /// unreadable one, or one older than `orphan_after` at `now`.
    pub fn orphaned(&self, now: DateTime<Utc>, orphan_after: chrono::Duration) -> bool {
        self.in_progress()
            && match self.heartbeat {
                Some(t) => now - t > orphan_after,
                None => true,
            }
    }
}

/// Whether `run_id` may take the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// No live run holds it: claim it.
    Free,
    /// This run already holds it (a restart of this run): resume.
    Ours,
    /// Another run holds it and its heartbeat is fresh: do not touch.
    HeldBy { run: String },
    /// Another run held it and stopped beating: take it over.
    Orphaned { run: String },
}

pub fn ownership(
    record: &Record,
    run_id: &str,
    now: DateTime<Utc>,
    orphan_after: chrono::Duration,
) -> Ownership {
    let run = record.run_id.clone().unwrap_or_default();
    if !record.in_progress() {
        return if record.phase == Some(Phase::Drained) && run == run_id {
            Ownership::Ours
        } else {
            Ownership::Free
        };
    }
    if run == run_id {
        Ownership::Ours
    } else if record.orphaned(now, orphan_after) {
        Ownership::Orphaned { run }
    } else {
        Ownership::HeldBy { run }
    }
}

/// `/metadata/annotations/<key>` as a JSON Pointer (`/` is `~1`).
fn pointer(key: &str) -> String {
    format!(
        "/metadata/annotations/{}",
        key.replace('~', "~0").replace('/', "~1")
    )
}

fn set_ops(values: &[(&str, String)]) -> Vec<Value> {
    values
        .iter()
        .map(|(k, v)| json!({"op": "add", "path": pointer(k), "value": v}))
        .collect()
}

/// The claim: intent and cordon in one PATCH, only if the Node is still the one
/// read (`resource_version`). `has_annotations`: a Node without any needs the
/// map created first. `was_unschedulable` is kept from an orphan's record.
pub fn claim_patch(
    resource_version: &str,
    has_annotations: bool,
    run_id: &str,
    holder: &str,
    was_unschedulable: bool,
    now: DateTime<Utc>,
) -> Value {
    let mut ops =
        vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version})];
    if !has_annotations {
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
    }
    ops.extend(set_ops(&[
        (STATE, Phase::Cordoned.as_str().into()),
        (RUN_ID, run_id.into()),
        (HOLDER, holder.into()),
        (WAS_UNSCHEDULABLE, was_unschedulable.to_string()),
        (HEARTBEAT, now.to_rfc3339()),
    ]));
    ops.push(json!({"op": "add", "path": "/spec/unschedulable", "value": true}));
    Value::Array(ops)
}

fn owned(run_id: &str, mut ops: Vec<Value>) -> Value {
    ops.insert(
        0,
        json!({"op": "test", "path": pointer(RUN_ID), "value": run_id}),
    );
    Value::Array(ops)
}

/// Refreshes the heartbeat, only while `run_id` owns the node.
pub fn heartbeat_patch(run_id: &str, now: DateTime<Utc>) -> Value {
    owned(run_id, set_ops(&[(HEARTBEAT, now.to_rfc3339())]))
}

/// Restores the node in one PATCH: uncordon (if node-drain cordoned it) and the
/// `restored` record together, so no restart can see one without the other.
pub fn restore_patch(run_id: &str, uncordon: bool, reason: &str) -> Value {
    let mut ops = set_ops(&[
        (STATE, Phase::Restored.as_str().into()),
        (REASON, reason.chars().take(500).collect()),
    ]);
    if uncordon {
        ops.push(json!({"op": "add", "path": "/spec/unschedulable", "value": false}));
    }
    owned(run_id, ops)
}

/// The outcome and the retirement record in one PATCH, before retiring.
pub fn drained_patch(run_id: &str, retirement: &str) -> Value {
    owned(
        run_id,
        set_ops(&[
            (STATE, Phase::Drained.as_str().into()),
            (RETIREMENT, retirement.into()),
        ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> DateTime<Utc> {
        t.parse().unwrap()
    }

    fn record(state: &str, run: &str, beat: Option<&str>) -> Record {
        let mut a = BTreeMap::from([
            (STATE.to_string(), state.to_string()),
            (RUN_ID.to_string(), run.to_string()),
        ]);
        if let Some(b) = beat {
            a.insert(HEARTBEAT.to_string(), b.to_string());
        }
        Record::read(Some(&a))
    }

    #[test]
    fn every_state_written_is_read_back() {
        for phase in [Phase::Cordoned, Phase::Drained, Phase::Restored] {
            assert_eq!(Phase::parse(phase.as_str()), Some(phase));
        }
        assert_eq!(Phase::parse("draining"), Some(Phase::Cordoned));
        assert_eq!(Phase::parse("nonsense"), None);
        assert!(!Record::read(None).in_progress());
    }

    #[test]
    fn ownership_table() {
        let now = at("2026-11-21T12:00:00Z");
        let after = chrono::Duration::seconds(60);
        let fresh = Some("2026-11-21T11:59:30Z");
        let stale = Some("2026-11-21T11:58:00Z");
        let cases = [
            (Record::default(), Ownership::Free),
            (record("restored", "a", fresh), Ownership::Free),
            (record("drained", "b", fresh), Ownership::Free),
            (record("drained", "a", fresh), Ownership::Ours),
            (record("cordoned", "a", stale), Ownership::Ours),
            (
                record("cordoned", "b", fresh),
                Ownership::HeldBy { run: "b".into() },
            ),
            (
                record("cordoned", "b", stale),
                Ownership::Orphaned { run: "b".into() },
            ),
            (
                record("cordoned", "b", None),
                Ownership::Orphaned { run: "b".into() },
            ),
            (
                record("cordoned", "b", Some("garbage")),
                Ownership::Orphaned { run: "b".into() },
            ),
        ];
        for (rec, want) in cases {
            assert_eq!(ownership(&rec, "a", now, after), want, "{rec:?}");
        }
    }

    #[test]
    fn patches_test_what_they_depend_on() {
        let now = at("2026-11-21T12:00:00Z");
        let claim = claim_patch("42", false, "run-1", "host", false, now);
        assert_eq!(claim[0]["op"], "test");
        assert_eq!(claim[0]["path"], "/metadata/resourceVersion");
        assert_eq!(claim[1]["path"], "/metadata/annotations");
        assert_eq!(
            claim[2]["path"],
            "/metadata/annotations/node-drain.io~1state"
        );
        assert_eq!(claim[2]["value"], "cordoned");
        let last = claim.as_array().unwrap().last().unwrap();
        assert_eq!(last["path"], "/spec/unschedulable");
        for patch in [
            heartbeat_patch("run-1", now),
            restore_patch("run-1", true, "r"),
            drained_patch("run-1", "nodeclaim/x"),
        ] {
            assert_eq!(patch[0]["op"], "test");
            assert_eq!(
                patch[0]["path"],
                "/metadata/annotations/node-drain.io~1run-id"
            );
            assert_eq!(patch[0]["value"], "run-1");
        }
        let keep = restore_patch("run-1", false, "r");
        assert!(!keep.to_string().contains("unschedulable"));
    }
}
