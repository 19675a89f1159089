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
/// The daemon's Lease (`namespace/name`) whose leader claimed the node: a new
/// leader of that Lease knows the holder is fenced and takes the node at once.
pub const LEASE: &str = "node-drain.io/lease";
/// The run's drain settings (JSON), so whoever resumes the node drains it as
/// it was asked (a `retire: none` drain is never retired by a takeover).
pub const SETTINGS: &str = "node-drain.io/settings";
/// A request the daemon's leader queued for want of room (JSON, see
/// `drain::queued`): the next leader admits it again. The claim removes it.
pub const QUEUED: &str = "node-drain.io/queued";

/// What the annotations say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub phase: Option<Phase>,
    pub run_id: Option<String>,
    pub was_unschedulable: Option<bool>,
    pub heartbeat: Option<DateTime<Utc>>,
    pub retirement: Option<String>,
    /// The raw values a recovery judged, tested by its patch: if the owner
    /// wrote since, the recovery does not apply.
    pub raw_state: Option<String>,
    pub raw_heartbeat: Option<String>,
    pub lease: Option<String>,
    pub settings: Option<RecordedSettings>,
}

/// What a run records of its settings on each node it claims.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedSettings {
    pub force: bool,
    pub on_timeout: super::OnTimeout,
    /// Whole seconds.
    pub drain_timeout_seconds: u64,
    pub retire: super::Retire,
}

impl RecordedSettings {
    pub fn of(s: &super::DrainSettings) -> Self {
        Self {
            force: s.force,
            on_timeout: s.on_timeout,
            drain_timeout_seconds: s.drain_timeout.as_secs(),
            retire: s.retire,
        }
    }

    /// `defaults` (this process's) with what the run asked for.
    pub fn apply(&self, mut defaults: super::DrainSettings) -> super::DrainSettings {
        defaults.force = self.force;
        defaults.on_timeout = self.on_timeout;
        defaults.drain_timeout = std::time::Duration::from_secs(self.drain_timeout_seconds.max(1));
        defaults.retire = self.retire;
        defaults
    }
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
            raw_state: get(STATE),
            raw_heartbeat: get(HEARTBEAT),
            lease: get(LEASE),
            settings: get(SETTINGS).and_then(|s| serde_json::from_str(&s).ok()),
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

/// `dead_run`: a run known to be gone whatever its heartbeat says (a new
/// leader taking over its fenced predecessor's nodes).
pub fn ownership(
    record: &Record,
    run_id: &str,
    dead_run: Option<&str>,
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
    } else if record.orphaned(now, orphan_after) || dead_run == Some(run.as_str()) {
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

/// Who claims a node, and how: what the claim records beside the cordon.
#[derive(Debug, Clone)]
pub struct Claimant<'a> {
    pub run_id: &'a str,
    pub holder: &'a str,
    /// The daemon's Lease (`namespace/name`); None for the CLI.
    pub lease: Option<&'a str>,
    pub settings: &'a RecordedSettings,
}

/// The claim: intent and cordon in one PATCH, only if the Node is still the one
/// read (`resource_version`). `annotations`: the Node's as read (none: the map
/// is created first; a queued request's record goes with the claim, in the same
/// PATCH, so no restart sees the node both claimed and waiting, or neither).
/// `was_unschedulable` is kept from an orphan's record.
pub fn claim_patch(
    resource_version: &str,
    annotations: Option<&BTreeMap<String, String>>,
    who: &Claimant<'_>,
    was_unschedulable: bool,
    now: DateTime<Utc>,
) -> Value {
    let mut ops =
        vec![json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version})];
    match annotations {
        None => ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}})),
        Some(a) if a.contains_key(QUEUED) => {
            ops.push(json!({"op": "remove", "path": pointer(QUEUED)}))
        }
        Some(_) => {}
    }
    ops.extend(set_ops(&[
        (STATE, Phase::Cordoned.as_str().into()),
        (RUN_ID, who.run_id.into()),
        (HOLDER, who.holder.into()),
        (WAS_UNSCHEDULABLE, was_unschedulable.to_string()),
        (HEARTBEAT, now.to_rfc3339()),
        (LEASE, who.lease.unwrap_or_default().into()),
        (
            SETTINGS,
            serde_json::to_string(who.settings).unwrap_or_default(),
        ),
    ]));
    ops.push(json!({"op": "add", "path": "/spec/unschedulable", "value": true}));
    Value::Array(ops)
}

/// The owner's patches apply only while the record still names its run *and*
/// says the drain is in progress: a node restored (or taken) meanwhile makes
/// every later write of the run fail with 422, and the run stops.
fn owned(run_id: &str, mut ops: Vec<Value>) -> Value {
    ops.splice(
        0..0,
        [
            json!({"op": "test", "path": pointer(RUN_ID), "value": run_id}),
            json!({"op": "test", "path": pointer(STATE), "value": Phase::Cordoned.as_str()}),
        ],
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

/// Restores a node whose run died, only if its record is still exactly what
/// the recovery judged: the same run, state and heartbeat (or, without a
/// heartbeat, the same resourceVersion). A run that was merely slow and beat
/// since keeps its node.
pub fn orphan_restore_patch(
    record: &Record,
    resource_version: &str,
    uncordon: bool,
    reason: &str,
) -> Value {
    let mut ops = vec![
        json!({"op": "test", "path": pointer(RUN_ID), "value": record.run_id.clone().unwrap_or_default()}),
        json!({"op": "test", "path": pointer(STATE), "value": record.raw_state.clone().unwrap_or_default()}),
    ];
    ops.push(match &record.raw_heartbeat {
        Some(beat) => json!({"op": "test", "path": pointer(HEARTBEAT), "value": beat}),
        None => {
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version})
        }
    });
    ops.extend(set_ops(&[
        (STATE, Phase::Restored.as_str().into()),
        (REASON, reason.chars().take(500).collect()),
    ]));
    if uncordon {
        ops.push(json!({"op": "add", "path": "/spec/unschedulable", "value": false}));
    }
    Value::Array(ops)
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

/// Records a queued request (a merge patch: the Node may have no annotations).
pub fn queued_patch(value: &str) -> Value {
    json!({"metadata": {"annotations": {QUEUED: value}}})
}

/// Removes a queued request's record, only if it is still `value` (a later
/// record, or none, is left alone: the patch fails with 422).
pub fn unqueue_patch(value: &str) -> Value {
    json!([
        {"op": "test", "path": pointer(QUEUED), "value": value},
        {"op": "remove", "path": pointer(QUEUED)},
    ])
}

#[cfg(test)]
#[path = "annotations_tests.rs"]
mod tests;
