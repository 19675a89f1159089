//! In-process tests of the actors against a fake API server (`fake_api`, no
//! test cluster): exact request sequences for the cases a real cluster cannot
//! time precisely — a cancel during a PDB backoff, a restart while an eviction
//! is in flight, two runs on one node, a run that loses its node to another.
//! Removals and waits (throttling, watches resumed, stuck pods):
//! `actors_mock_removal.rs`.

mod fake_api;
mod support;

use std::time::Duration;

use fake_api::*;
use node_drain::actors::node_drain::Fault;
use node_drain::drain::{DrainOutcome, DrainSettings, StopReason};
use node_drain::messages::CancelRun;
use serde_json::json;

#[actix_rt::test]
async fn a_drain_is_one_claim_patch_one_list_one_eviction_per_pod_and_one_outcome_patch() {
    let fake = fresh(&["a", "b", "c"], Evictions::Allow, json!({}));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    assert_eq!(report.nodes[0].pods_evicted, 3);
    let log = fake.lock().unwrap().log.clone();
    let node_calls: Vec<&String> = log.iter().filter(|l| l.contains("/nodes/")).collect();
    assert_eq!(
        node_calls,
        vec![
            "GET /api/v1/nodes/n1",
            "PATCH /api/v1/nodes/n1",
            "PATCH /api/v1/nodes/n1"
        ],
        "read, claim (intent + cordon), outcome: {log:#?}"
    );
    assert_eq!(count(&fake, "/eviction"), 3, "{log:#?}");
    assert_eq!(
        count(&fake, "GET /api/v1/pods"),
        1,
        "one LIST: the wait watches from its resourceVersion: {log:#?}"
    );
    assert_eq!(
        annotation(&fake, "node-drain.io/state").as_deref(),
        Some("drained")
    );
    assert_eq!(
        fake.lock().unwrap().node["spec"]["unschedulable"],
        json!(true)
    );
}

#[actix_rt::test]
async fn a_cancel_during_a_pdb_backoff_sends_no_further_request_and_restores() {
    let fake = fresh(&["a"], Evictions::PdbRefuses, json!({}));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    support::wait_for("the first eviction", Duration::from_secs(10), || async {
        Ok((count(&fake, "/eviction") >= 1).then_some(()))
    })
    .await;
    let told = actors
        .planner
        .send(CancelRun {
            run_id: Some(id.clone()),
            reason: StopReason::Cancelled {
                by: "the test".into(),
            },
        })
        .await
        .unwrap();
    assert_eq!(told, 1);
    let report = report(&actors, id).await;
    let evictions_at_end = count(&fake, "/eviction");
    // Past the longest PDB backoff: nothing more is sent.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        count(&fake, "/eviction"),
        evictions_at_end,
        "no eviction after the cancel"
    );
    assert!(evictions_at_end <= 2, "at most one retry raced the cancel");
    assert_eq!(
        count(&fake, "DELETE"),
        0,
        "a cancel never forces, even with --on-timeout force"
    );
    match &report.nodes[0].outcome {
        DrainOutcome::Failed { reason, .. } => {
            assert!(reason.contains("cancelled by the test"), "{reason}")
        }
        other => panic!("a cancelled drain is not drained: {other:?}"),
    }
    assert_eq!(
        annotation(&fake, "node-drain.io/state").as_deref(),
        Some("restored")
    );
    assert_eq!(
        fake.lock().unwrap().node["spec"]["unschedulable"],
        json!(false),
        "uncordoned"
    );
}

#[actix_rt::test]
async fn a_restart_while_an_eviction_is_in_flight_sends_nothing_twice() {
    let fake = fresh(&["a", "b", "c", "d"], Evictions::Allow, json!({}));
    let server = fake_api(fake.clone()).await;
    let fault = Fault {
        point: "evict",
        panic: false,
        kill: false,
    };
    let actors = start(client(&server).await, Some(fault));
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    let restarts = actors.progress.get("n1").map(|p| p.restarts).unwrap_or(0);
    assert_eq!(
        restarts, 1,
        "the fault fired once and the actor was restarted"
    );
    let log = fake.lock().unwrap().log.clone();
    for p in ["a", "b", "c", "d"] {
        assert_eq!(
            log.iter()
                .filter(|l| l.ends_with(&format!("/pods/{p}/eviction")))
                .count(),
            1,
            "pod {p} evicted exactly once: {log:#?}"
        );
    }
    assert_eq!(
        log.iter()
            .filter(|l| l.starts_with("PATCH /api/v1/nodes/n1"))
            .count(),
        2,
        "the restart re-read the Node and claimed nothing twice: {log:#?}"
    );
}

#[actix_rt::test]
async fn a_node_held_by_another_live_run_is_not_touched() {
    let now = chrono::Utc::now().to_rfc3339();
    let fake = fresh(
        &["a"],
        Evictions::Allow,
        json!({"node-drain.io/state": "cordoned", "node-drain.io/run-id": "other-run",
               "node-drain.io/heartbeat": now, "node-drain.io/was-unschedulable": "false"}),
    );
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    match &report.nodes[0].outcome {
        DrainOutcome::Failed { reason, .. } => assert!(reason.contains("other-run"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&fake, "PATCH"), 0, "no claim, no restore");
    assert_eq!(count(&fake, "/eviction"), 0);
    assert_eq!(
        annotation(&fake, "node-drain.io/run-id").as_deref(),
        Some("other-run")
    );
}

#[actix_rt::test]
async fn a_run_that_loses_its_node_stops_touching_it() {
    let fake = fresh(&["a"], Evictions::PdbRefuses, json!({}));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let settings = DrainSettings {
        orphan_after: Duration::from_secs(2),
        ..settings()
    };
    let id = run(&actors, settings).await;
    support::wait_for("the first eviction", Duration::from_secs(10), || async {
        Ok((count(&fake, "/eviction") >= 1).then_some(()))
    })
    .await;
    // Another run takes the node over (as after a long pause of this one).
    fake.lock().unwrap().node["metadata"]["annotations"]["node-drain.io/run-id"] = json!("usurper");
    let report = report(&actors, id).await;
    match &report.nodes[0].outcome {
        DrainOutcome::Failed { reason, .. } => {
            assert!(reason.contains("another run owns"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let evictions = count(&fake, "/eviction");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(&fake, "/eviction"),
        evictions,
        "no eviction after the loss"
    );
    assert_eq!(
        annotation(&fake, "node-drain.io/run-id").as_deref(),
        Some("usurper")
    );
    assert_eq!(
        fake.lock().unwrap().node["spec"]["unschedulable"],
        json!(true),
        "the new owner decides; the old run does not uncordon"
    );
}

#[actix_rt::test]
async fn an_api_server_answering_503_is_waited_out_with_backoff_not_a_restart_storm() {
    let fake = fresh(&["a", "b"], Evictions::Allow, json!({}));
    fake.lock().unwrap().patches_unavailable_until =
        Some(std::time::Instant::now() + Duration::from_secs(4));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "drained once the API server answers again: {report:?}"
    );
    let patches = count(&fake, "PATCH /api/v1/nodes/n1");
    // Backoff 0.5, 1, 2, 4 s: a handful of claims in 4 s, then the outcome patch.
    // Without it, every restart retried at once and gave up within a second.
    assert!((3..=7).contains(&patches), "{patches} node patches");
    assert_eq!(count(&fake, "/eviction"), 2);
}
