//! The PDB rows: evictions and deletions against a PDB at 0, apps below their
//! PDB's minimum, and pods evicted twice.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{items, sample_at, Row, Sample};
use crate::audit::Request;

fn pod_of<'a>(s: &'a Sample, r: &Request) -> Option<&'a Value> {
    items(s, "pods").find(|p| match &r.uid {
        Some(uid) => p["uid"] == uid.as_str(),
        None => p["name"] == r.name.as_str(),
    })
}

/// Ready, not terminating, and its PDB allowed no disruption in `s`.
fn guarded_at_zero(s: &Sample, r: &Request) -> Option<String> {
    let pod = pod_of(s, r)?;
    if pod["ready"] != true || pod["deleting"] == true {
        return None;
    }
    let pdb = items(s, "pdbs").find(|b| b["app"] == pod["app"] && !pod["app"].is_null())?;
    (pdb["allowed"] == 0).then(|| format!("{} (PDB {} allowed 0)", r.describe(), pdb["name"]))
}

/// A deletion bypasses the PDB: its sample before is the evidence. An eviction
/// is admitted by the API server on its own stored status, which 2 Hz samples
/// can miss (bench/soak saw a budget open for 0.3 s between two samples, a
/// Pending replica turned Ready, and the eviction waiting on it admitted): so
/// an eviction counts only when the app is below its PDB's desiredHealthy in
/// the first sample after it, as well as guarded at 0 in the one before.
pub(super) fn pdb_violations(writes: &[&Request], samples: &[Sample]) -> Row {
    let mut cases = Vec::new();
    for r in writes {
        let before = sample_at(samples, r.at).and_then(|s| guarded_at_zero(s, r));
        let case = if r.is_pod_delete() {
            before
        } else {
            let app = sample_at(samples, r.at)
                .and_then(|s| pod_of(s, r))
                .map(|p| p["app"].clone());
            let after = samples.iter().find(|s| s.at > r.at);
            match (before, app, after) {
                (Some(c), Some(app), Some(after)) => below_minimum(after, &app)
                    .map(|(ready, want)| format!("{c}; then {ready} Ready < {want}")),
                _ => None,
            }
        };
        cases.extend(case);
    }
    Row {
        name: "PDB violations (a Ready pod evicted or deleted while its PDB allowed 0)",
        cases,
    }
}

/// (Ready pods, desiredHealthy) of `app` in `s` when the first is below.
fn below_minimum(s: &Sample, app: &Value) -> Option<(i64, i64)> {
    let pdb = items(s, "pdbs").find(|b| &b["app"] == app)?;
    let want = pdb["desiredHealthy"].as_i64()?;
    let ready = items(s, "pods")
        .filter(|p| &p["app"] == app && p["ready"] == true && p["deleting"] != true)
        .count() as i64;
    (ready < want).then_some((ready, want))
}

/// Episodes where an app had fewer Ready pods than its PDB's desiredHealthy.
pub(super) fn pdb_below_minimum(samples: &[Sample]) -> Row {
    let mut cases = Vec::new();
    let mut below = BTreeSet::<String>::new();
    for s in samples {
        let mut now = BTreeSet::new();
        for b in items(s, "pdbs") {
            if let Some((ready, want)) = below_minimum(s, &b["app"]) {
                let app = b["app"].as_str().unwrap_or_default().to_string();
                if !below.contains(&app) {
                    cases.push(format!(
                        "{app}: {ready} Ready < {want} at {}",
                        s.at.format("%H:%M:%S%.3f")
                    ));
                }
                now.insert(app);
            }
        }
        below = now;
    }
    Row {
        name: "PDB below its minimum (2 Hz samples, episodes)",
        cases,
    }
}

pub(super) fn evicted_twice(writes: &[&Request]) -> Row {
    let mut by_pod = BTreeMap::<String, Vec<&Request>>::new();
    for r in writes.iter().filter(|r| r.is_eviction()) {
        let key = r
            .uid
            .clone()
            .unwrap_or_else(|| format!("{}/{}", r.namespace, r.name));
        by_pod.entry(key).or_default().push(r);
    }
    let cases = by_pod
        .values()
        .filter(|v| v.len() > 1)
        .map(|v| {
            v.iter()
                .map(|r| r.describe())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect();
    Row {
        name: "pods evicted twice (one UID, two successful evictions)",
        cases,
    }
}
