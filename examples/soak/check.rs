//! The invariant table. Each row is computed from evidence a broken daemon
//! would leave: the audit log (what the daemons sent, by identity) and the
//! 2 Hz samples (what the cluster looked like). A row lists its first cases.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::arg;
use crate::audit::{self, Request};

/// The renew deadline: a leader's fence closes this long after the renewal
/// that last succeeded was sent (the API server received it a little later).
const RENEW_DEADLINE_MS: i64 = 10_000;
/// Loopback transit and a loaded API server's queue; reported, not hidden.
const FENCE_TOLERANCE_MS: i64 = 500;

struct Sample {
    at: DateTime<Utc>,
    v: Value,
}

struct Row {
    name: &'static str,
    cases: Vec<String>,
}

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let time = |k: &str| -> anyhow::Result<DateTime<Utc>> { Ok(arg(args, k)?.parse()?) };
    let (since, until) = (time("since")?, time("until")?);
    let prefix = arg(args, "prefix")?;
    let lease = arg(args, "lease")?;
    let namespace = arg(args, "namespace")?;
    let budget: usize = arg(args, "budget")?.parse()?;
    // A minute before the window too: the Lease writes that opened the fences
    // of the processes already leading at its start.
    let requests = audit::read(
        Path::new(arg(args, "audit")?),
        prefix,
        since - Duration::seconds(60),
        until,
    )?;
    let samples: Vec<Sample> = std::fs::read_to_string(arg(args, "samples")?)?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some(Sample {
                at: v["t"].as_str()?.parse().ok()?,
                v,
            })
        })
        .filter(|s| s.at >= since && s.at <= until)
        .collect();
    let alerts = std::fs::read_to_string(arg(args, "alerts")?).unwrap_or_default();
    let logs: String = arg(args, "logs")?
        .split(',')
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect();
    anyhow::ensure!(!samples.is_empty(), "no samples in the window");

    let pod_writes: Vec<&Request> = requests
        .iter()
        .filter(|r| r.namespace == namespace && (r.is_eviction() || r.is_pod_delete()) && r.ok())
        .collect();
    let rows = [
        pdb_violations(&pod_writes, &samples),
        pdb_below_minimum(&samples),
        cordoned_without_record(&samples),
        left_cordoned(&samples),
        evicted_twice(&pod_writes),
        alerted_not_handled(&alerts, &requests, &samples, &logs),
        writes_after_fence(&requests, lease),
        budget_overruns(&samples, budget),
    ];
    println!(
        "\n{} requests by the soak's daemons, {} samples ({} .. {})",
        requests.len(),
        samples.len(),
        since.format("%H:%M:%S"),
        until.format("%H:%M:%S")
    );
    context(&requests, lease, &pod_writes, &alerts);
    println!("\n| invariant | count |\n|---|---|");
    for r in &rows {
        println!("| {} | {} |", r.name, r.cases.len());
    }
    for r in rows.iter().filter(|r| !r.cases.is_empty()) {
        println!("\n{}:", r.name);
        for c in r.cases.iter().take(10) {
            println!("  {c}");
        }
    }
    if rows.iter().any(|r| !r.cases.is_empty()) {
        std::process::exit(1);
    }
    Ok(())
}

fn context(requests: &[Request], lease: &str, pod_writes: &[&Request], alerts: &str) {
    let mut holders = Vec::<&str>::new();
    for r in requests
        .iter()
        .filter(|r| r.is_lease(lease) && r.is_write() && r.ok())
    {
        if holders.last() != Some(&r.identity.as_str()) {
            holders.push(&r.identity);
        }
    }
    let evictions = pod_writes.iter().filter(|r| r.is_eviction()).count();
    let refused = requests
        .iter()
        .filter(|r| r.is_eviction() && r.code == 429)
        .count();
    let sent: BTreeSet<&str> = alerts.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    println!(
        "lease holders in turn: {} ({}); evictions: {evictions} (429 refused: {refused}); \
         pod deletions: {}; alerted nodes: {}",
        holders.len(),
        holders.join(" -> "),
        pod_writes.len() - evictions,
        sent.len()
    );
}

/// The last sample taken at or before `at`.
fn sample_at(samples: &[Sample], at: DateTime<Utc>) -> Option<&Sample> {
    samples.iter().take_while(|s| s.at <= at).last()
}

fn items<'a>(s: &'a Sample, key: &str) -> impl Iterator<Item = &'a Value> {
    s.v[key].as_array().into_iter().flatten()
}

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
fn pdb_violations(writes: &[&Request], samples: &[Sample]) -> Row {
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
fn pdb_below_minimum(samples: &[Sample]) -> Row {
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

fn recorded(n: &Value) -> bool {
    matches!(n["state"].as_str(), Some("cordoned" | "drained")) || !n["cordonedBy"].is_null()
}

fn cordoned_without_record(samples: &[Sample]) -> Row {
    let mut seen = BTreeMap::<String, String>::new();
    for s in samples {
        for n in items(s, "nodes").filter(|n| n["unschedulable"] == true && !recorded(n)) {
            let name = n["name"].as_str().unwrap_or_default().to_string();
            seen.entry(name.clone()).or_insert_with(|| {
                format!(
                    "{name} at {} (state {})",
                    s.at.format("%H:%M:%S%.3f"),
                    n["state"]
                )
            });
        }
    }
    Row {
        name: "nodes cordoned with no node-drain record",
        cases: seen.into_values().collect(),
    }
}

fn left_cordoned(samples: &[Sample]) -> Row {
    let last = samples.last().expect("samples");
    let cases = items(last, "nodes")
        .filter(|n| n["unschedulable"] == true && n["deleting"] != true)
        .map(|n| format!("{} (state {})", n["name"], n["state"]))
        .collect();
    Row {
        name: "nodes left cordoned at the end",
        cases,
    }
}

fn evicted_twice(writes: &[&Request]) -> Row {
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

/// An alerted node (a 202 from a daemon) is handled when a daemon wrote to it
/// afterwards (claimed, cordoned, restored), or it is gone or going, or a
/// daemon logged the alert settled as ignored (a do-not-disrupt node, ...).
fn alerted_not_handled(alerts: &str, requests: &[Request], samples: &[Sample], logs: &str) -> Row {
    let mut first = BTreeMap::<&str, DateTime<Utc>>::new();
    let mut sent = BTreeSet::<&str>::new();
    for l in alerts.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let [t, node, _slot, code] = f[..] else {
            continue;
        };
        sent.insert(node);
        if let (Ok(t), "202") = (t.parse::<DateTime<Utc>>(), code) {
            first.entry(node).or_insert(t);
        }
    }
    let last = samples.last().expect("samples");
    let mut cases = Vec::new();
    for node in &sent {
        let Some(at) = first.get(node) else {
            cases.push(format!(
                "{node}: no daemon ever accepted its alert (no 202)"
            ));
            continue;
        };
        let written = requests.iter().any(|r| {
            r.resource == "nodes" && r.name == *node && r.is_write() && r.ok() && r.at >= *at
        });
        let gone = !items(last, "nodes").any(|n| n["name"] == *node && n["deleting"] != true);
        let ignored = logs
            .lines()
            .any(|l| l.contains("alert admitted") && l.contains(node) && l.contains("gnored"));
        if !(written || gone || ignored) {
            cases.push(format!(
                "{node}: accepted at {}, never acted on",
                at.format("%H:%M:%S%.3f")
            ));
        }
    }
    Row {
        name: "alerted nodes not handled",
        cases,
    }
}

/// A write sent by a process whose fence had closed: more than the renew
/// deadline after its last successful Lease write, or after another identity
/// took the Lease.
fn writes_after_fence(requests: &[Request], lease: &str) -> Row {
    let mut renewed = BTreeMap::<&str, DateTime<Utc>>::new();
    let mut holder_since: Option<(&str, DateTime<Utc>)> = None;
    let mut cases = Vec::new();
    for r in requests {
        if r.is_lease(lease) {
            if r.is_write() && r.ok() {
                renewed.insert(&r.identity, r.at);
                if holder_since.is_none_or(|(h, _)| h != r.identity) {
                    holder_since = Some((&r.identity, r.at));
                }
            }
            continue;
        }
        if !r.is_write() {
            continue;
        }
        let case = match renewed.get(r.identity.as_str()) {
            None => Some("never held the Lease".to_string()),
            Some(t) if (r.at - *t).num_milliseconds() > RENEW_DEADLINE_MS + FENCE_TOLERANCE_MS => {
                Some(format!(
                    "{} ms after its last renewal",
                    (r.at - *t).num_milliseconds()
                ))
            }
            Some(_) => match holder_since {
                Some((h, since)) if h != r.identity => Some(format!(
                    "{h} holds the Lease since {}",
                    since.format("%H:%M:%S%.3f")
                )),
                _ => None,
            },
        };
        cases.extend(case.map(|c| format!("{}: {c}", r.describe())));
    }
    Row {
        name: "writes by a replica after its fence closed",
        cases,
    }
}

/// Samples where more initialized nodes of the pool were disrupted (cordoned,
/// recorded in drain, deleting, or tainted by Karpenter's disruption) than the
/// budget allows; one case per episode.
fn budget_overruns(samples: &[Sample], budget: usize) -> Row {
    let mut cases = Vec::new();
    let mut over = false;
    for s in samples {
        let disrupted: Vec<&str> = items(s, "nodes")
            .filter(|n| n["initialized"] == true)
            .filter(|n| {
                n["unschedulable"] == true
                    || recorded(n)
                    || n["deleting"] == true
                    || n["disruptedTaint"] == true
            })
            .filter_map(|n| n["name"].as_str())
            .collect();
        let now = disrupted.len() > budget;
        if now && !over {
            cases.push(format!(
                "{} disrupted > {budget} at {}: {}",
                disrupted.len(),
                s.at.format("%H:%M:%S%.3f"),
                disrupted.join(", ")
            ));
        }
        over = now;
    }
    Row {
        name: "budget overruns (episodes: more nodes disrupted than the budget)",
        cases,
    }
}
