//! The invariant table. Each row is computed from evidence a broken daemon
//! would leave: the audit log (what the daemons sent, by identity) and the
//! 2 Hz samples (what the cluster looked like). A row lists its first cases.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

mod alerts;
mod fence;
mod nodes;
mod pdb;

use super::arg;
use crate::audit::{self, Request};

/// The renew deadline: a leader's fence closes this long after the renewal
/// that last succeeded was sent (the API server received it a little later).
pub(crate) const RENEW_DEADLINE_MS: i64 = 10_000;
/// Loopback transit and a loaded API server's queue; reported, not hidden.
pub(crate) const FENCE_TOLERANCE_MS: i64 = 500;

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
        pdb::pdb_violations(&pod_writes, &samples),
        pdb::pdb_below_minimum(&samples),
        nodes::cordoned_without_record(&samples),
        nodes::left_cordoned(&samples),
        pdb::evicted_twice(&pod_writes),
        alerts::alerted_not_handled(&alerts, &samples, &logs),
        fence::writes_after_fence(&requests, lease),
        nodes::budget_overruns(&samples, budget),
        nodes::queued_left(&samples),
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
