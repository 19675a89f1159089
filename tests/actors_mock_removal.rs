//! The actors' removals and waits against the fake API server (`fake_api`):
//! throttling (`Retry-After`) for evictions and deletes, the UID precondition
//! in every eviction, a watch resumed from where the last one ended, pods stuck
//! terminating on a NotReady node, and a node whose readiness changed.

mod fake_api;
mod support;

use std::time::Duration;

use fake_api::*;
use node_drain::drain::DrainOutcome;
use serde_json::json;

#[actix_rt::test]
async fn api_throttling_is_waited_out_as_its_retry_after_header_says() {
    let fake = fresh(&["a"], Evictions::ThrottledOnce, json!({}));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    let at = fake.lock().unwrap().evictions_at.clone();
    assert_eq!(at.len(), 2, "refused once, then evicted");
    // The header said 3 s; without it the fallback is 1 s.
    assert!(
        at[1] - at[0] >= Duration::from_millis(2900),
        "waited as Retry-After asked: {:?}",
        at[1] - at[0]
    );
}

#[actix_rt::test]
async fn a_watch_version_too_old_to_resume_lists_again() {
    let fake = fresh(&["a", "b"], Evictions::Allow, json!({}));
    fake.lock().unwrap().expire_next_watch = true;
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    assert!(
        !fake.lock().unwrap().expire_next_watch,
        "the resumed watch was refused"
    );
    assert_eq!(
        count(&fake, "GET /api/v1/pods"),
        2,
        "the plan's LIST, then a LIST again after the 410"
    );
}

#[actix_rt::test]
async fn a_pod_stuck_terminating_on_a_notready_node_is_deleted_with_grace_0_and_waited_for() {
    let fake = fresh(&["a"], Evictions::StuckOnDeadNode, json!({}));
    fake.lock().unwrap().node["status"]["conditions"][0]["status"] = json!("False");
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, settings()).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    assert_eq!(count(&fake, "/eviction"), 1);
    assert_eq!(
        count(&fake, "DELETE /api/v1/namespaces/ns/pods/a"),
        1,
        "one grace-0 delete"
    );
    assert_eq!(report.nodes[0].pods_force_deleted, 1);
}

#[actix_rt::test]
async fn an_eviction_carries_the_planned_uid_as_its_precondition() {
    let fake = fresh(&["a"], Evictions::Allow, json!({}));
    let server = fake_api(fake.clone()).await;
    let client = client(&server).await;
    let pod = node_drain::drain::PodRef {
        namespace: "ns".into(),
        name: "a".into(),
    };
    use node_drain::k8s::pods::{remove, RemovalRequest};
    // A new pod under the same name since the plan: the API server refuses (409).
    let stale = remove(&client, &pod, "uid-of-an-older-pod", RemovalRequest::Evict).await;
    let refusal = stale.expect_err("a stale UID is refused");
    assert_eq!(
        node_drain::k8s::api_code(&refusal.error),
        Some(409),
        "{:?}",
        refusal.error
    );
    assert_eq!(fake.lock().unwrap().pods.len(), 1, "the pod is still there");
    remove(&client, &pod, "uid-a", RemovalRequest::Evict)
        .await
        .expect("the planned UID is evicted");
    assert!(fake.lock().unwrap().pods.is_empty());
}

fn removal_settings(timeout_secs: u64) -> node_drain::drain::DrainSettings {
    node_drain::drain::DrainSettings {
        drain_timeout: Duration::from_secs(timeout_secs),
        on_timeout: node_drain::drain::OnTimeout::Restore,
        ..settings()
    }
}

#[actix_rt::test]
async fn a_later_tiers_pod_deleted_by_someone_else_while_an_earlier_tier_waits_is_seen() {
    let fake = fresh_with(
        vec![pod("a"), owned_pod("s", "StatefulSet")],
        Evictions::Terminating,
        json!({}),
    );
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let started = std::time::Instant::now();
    let id = run(&actors, removal_settings(10)).await;
    support::wait_for(
        "the stateless pod's eviction",
        Duration::from_secs(10),
        || async { Ok((count(&fake, "/pods/a/eviction") == 1).then_some(())) },
    )
    .await;
    // While the stateless tier waits for `a`, someone else deletes `s`.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.lock().unwrap().remove_pod("s");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fake.lock().unwrap().remove_pod("a");
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "the node completes: {report:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "well before the drain timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(
        count(&fake, "/pods/s/eviction"),
        0,
        "a pod seen gone is not evicted"
    );
}

#[actix_rt::test]
async fn a_statefulset_pod_is_never_deleted_with_grace_0_once_its_node_is_ready_again() {
    // NotReady at the claim; Ready again (a kubelet back) by the first eviction.
    // The pod then looks stuck terminating: only a NotReady node would justify grace 0.
    let fake = fresh_with(
        vec![owned_pod("db", "StatefulSet")],
        Evictions::StuckOnDeadNode,
        json!({}),
    );
    {
        let mut f = fake.lock().unwrap();
        f.set_ready(false);
        f.ready_on_first_eviction = true;
    }
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, removal_settings(4)).await;
    let report = report(&actors, id).await;
    assert_eq!(count(&fake, "/pods/db/eviction"), 1, "evicted normally");
    let deletes = fake.lock().unwrap().deletes_at.clone();
    assert!(
        deletes.is_empty(),
        "no delete of a StatefulSet pod on a Ready node: {deletes:?}"
    );
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Failed { .. }),
        "it stays terminating until the timeout: {report:?}"
    );
}

#[actix_rt::test]
async fn a_crashlooping_statefulset_pod_planned_on_a_notready_node_is_evicted_once_it_is_ready() {
    let mut db = owned_pod("db", "StatefulSet");
    db["status"]["containerStatuses"] = json!([{"name": "c", "image": "i", "ready": false, "restartCount": 3,
        "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]);
    let fake = fresh_with(vec![db], Evictions::Allow, json!({}));
    {
        let mut f = fake.lock().unwrap();
        f.set_ready(false);
        f.ready_on_first_list = true;
    }
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, removal_settings(10)).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    let deletes = fake.lock().unwrap().deletes_at.clone();
    assert!(
        deletes.is_empty(),
        "Ready when the delete would be sent: evicted, not deleted with grace 0: {deletes:?}"
    );
    assert_eq!(count(&fake, "/pods/db/eviction"), 1);
}

#[actix_rt::test]
async fn a_delete_throttled_with_retry_after_is_sent_again_after_that_wait() {
    let mut done = pod("done");
    done["status"]["phase"] = json!("Succeeded");
    let fake = fresh_with(vec![done], Evictions::Allow, json!({}));
    fake.lock().unwrap().deletes = Deletes::ThrottledOnce;
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, removal_settings(20)).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    let at: Vec<std::time::Instant> = fake
        .lock()
        .unwrap()
        .deletes_at
        .iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(at.len(), 2, "throttled once, then deleted");
    assert!(
        at[1] - at[0] >= Duration::from_millis(2900),
        "waited as Retry-After asked (3 s): {:?}",
        at[1] - at[0]
    );
    assert_eq!(
        report.nodes[0].pods_force_deleted, 0,
        "a finished pod is not forced"
    );
}

#[actix_rt::test]
async fn a_forced_delete_throttled_with_retry_after_waits_inside_its_window_and_counts_once() {
    // A PDB refuses until the timeout; --on-timeout force deletes the pod, and
    // that delete is throttled once.
    let fake = fresh(&["a"], Evictions::PdbRefuses, json!({}));
    fake.lock().unwrap().deletes = Deletes::ThrottledOnce;
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let settings = node_drain::drain::DrainSettings {
        drain_timeout: Duration::from_secs(2),
        ..settings()
    };
    let id = run(&actors, settings).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    let deletes = fake.lock().unwrap().deletes_at.clone();
    assert_eq!(
        deletes.len(),
        2,
        "throttled once, then deleted: {deletes:?}"
    );
    assert!(
        deletes[1].0 - deletes[0].0 >= Duration::from_millis(2900),
        "waited as Retry-After asked (3 s), inside the force window: {:?}",
        deletes[1].0 - deletes[0].0
    );
    assert_eq!(report.nodes[0].pods_force_deleted, 1);
}

#[actix_rt::test]
async fn a_finished_pod_is_deleted_and_not_counted_as_forced() {
    let mut done = pod("done");
    done["status"]["phase"] = json!("Succeeded");
    let fake = fresh_with(vec![done, pod("web")], Evictions::Allow, json!({}));
    let server = fake_api(fake.clone()).await;
    let actors = start(client(&server).await, None);
    let id = run(&actors, removal_settings(20)).await;
    let report = report(&actors, id).await;
    assert!(
        matches!(report.nodes[0].outcome, DrainOutcome::Drained { .. }),
        "{report:?}"
    );
    let deletes = fake.lock().unwrap().deletes_at.clone();
    assert_eq!(deletes.len(), 1, "the finished pod is deleted");
    assert_eq!(
        deletes[0].1.get("gracePeriodSeconds"),
        None,
        "with its own grace period"
    );
    assert_eq!(
        (
            report.nodes[0].pods_evicted,
            report.nodes[0].pods_force_deleted
        ),
        (1, 0),
        "one evicted, none forced: a finished pod is neither"
    );
}
