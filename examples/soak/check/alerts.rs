//! Whether every alert a daemon accepted (202) was acted on.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::{items, sample_at, Row, Sample};

/// An alerted node (a 202 from a daemon) is handled when a run claimed it
/// afterwards (a sample after the 202 names a run id the sample before did
/// not), or it is gone or going at the end, or a daemon logged its request
/// settled without a drain (the alert ignored: a do-not-disrupt node, ...; a
/// queued request dropped at its turn). A write to the node is no evidence: the
/// record of a queued request is one, and it drains nothing.
pub(super) fn alerted_not_handled(alerts: &str, samples: &[Sample], logs: &str) -> Row {
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
    let run_of = |s: &Sample, node: &str| {
        items(s, "nodes")
            .find(|n| n["name"] == node)
            .map(|n| n["runId"].clone())
    };
    let mut cases = Vec::new();
    for node in &sent {
        let Some(at) = first.get(node) else {
            cases.push(format!(
                "{node}: no daemon ever accepted its alert (no 202)"
            ));
            continue;
        };
        let before = sample_at(samples, *at).and_then(|s| run_of(s, node));
        let claimed = samples
            .iter()
            .filter(|s| s.at > *at)
            .filter_map(|s| run_of(s, node))
            .any(|run| !run.is_null() && Some(&run) != before.as_ref());
        let gone = !items(last, "nodes").any(|n| n["name"] == *node && n["deleting"] != true);
        let settled = logs.lines().any(|l| {
            l.contains(node)
                && ((l.contains("alert admitted") && l.contains("gnored"))
                    || l.contains("a queued request is dropped"))
        });
        if !(claimed || gone || settled) {
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
