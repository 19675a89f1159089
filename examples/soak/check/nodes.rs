//! The node rows, from the samples: cordoned without a record, left cordoned,
//! more disrupted than the budget, queued requests left recorded.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{items, Row, Sample};

fn recorded(n: &Value) -> bool {
    matches!(n["state"].as_str(), Some("cordoned" | "drained")) || !n["cordonedBy"].is_null()
}

pub(super) fn cordoned_without_record(samples: &[Sample]) -> Row {
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

pub(super) fn left_cordoned(samples: &[Sample]) -> Row {
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

/// Samples where more initialized nodes of the pool were disrupted (cordoned,
/// recorded in drain, deleting, or tainted by Karpenter's disruption) than the
/// budget allows; one case per episode.
pub(super) fn budget_overruns(samples: &[Sample], budget: usize) -> Row {
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

/// Queued requests still recorded on a node (`node-drain.io/queued`) at the
/// end, when the daemons have settled: a request the leaders neither admitted
/// nor dropped.
pub(super) fn queued_left(samples: &[Sample]) -> Row {
    let last = samples.last().expect("samples");
    let cases = items(last, "nodes")
        .filter(|n| n["queued"] == true && n["deleting"] != true)
        .map(|n| format!("{} (state {})", n["name"], n["state"]))
        .collect();
    Row {
        name: "queued requests left recorded at the end",
        cases,
    }
}
