//! The `node_drain_*` metrics of removals against the fake API server. A test
//! binary of its own: the registry is the process's, so no other test may
//! remove pods in the same process while this one counts.

mod fake_api;
mod support;

use std::time::Duration;

use fake_api::*;
use node_drain::drain::{DrainOutcome, DrainSettings};
use serde_json::json;

/// The value of an unlabelled counter in the OpenMetrics text.
fn counter(name: &str) -> f64 {
    let text = node_drain::telemetry::metrics::get().encode();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} "))?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[actix_rt::test]
async fn a_forced_deletion_retried_after_throttling_is_counted_once() {
    // A PDB refuses until the timeout; --on-timeout force deletes the pod, and
    // that delete is throttled once (429, Retry-After) before it is accepted.
    let fake = fresh(&["a"], Evictions::PdbRefuses, json!({}));
    fake.lock().unwrap().deletes = Deletes::ThrottledOnce;
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let before = counter("node_drain_forced_deletions_total");
    let id = run(
        &actors,
        DrainSettings {
            drain_timeout: Duration::from_secs(2),
            ..settings()
        },
    )
    .await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    assert_eq!(fake.lock().unwrap().deletes_at.len(), 2, "two DELETEs sent");
    assert_eq!(
        counter("node_drain_forced_deletions_total") - before,
        1.0,
        "one pod deleted by force: one forced deletion"
    );
}
