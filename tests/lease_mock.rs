//! The leader elector against a fake API server (HTTP on 127.0.0.1:0, no
//! cluster), with short durations: expiry judged by the follower's own
//! observation of a change (never the holder's `renewTime`), stamped when the
//! GET answered; a 409 is a lost race; a leader whose writes fail while reads
//! work, or whose Lease requests never answer, loses within the renew deadline
//! and the retry period, its fence closed.

mod support;

use std::time::Duration;

use node_drain::k8s::lease::{Lost, Role};
use support::fake_lease::*;

#[tokio::test]
async fn a_lease_that_never_answers_loses_leadership_within_the_renew_deadline_and_retry() {
    let fake = fresh();
    let server = fake_api(fake.clone()).await;
    let s = settings("me");
    let bound = s.renew_deadline + s.retry_period;
    let mut r = elect(client(&server).await, s);
    wait_leader(&mut r, Duration::from_secs(5)).await;
    // Let one renewal land, then the API server stops answering.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let last_write = {
        let mut f = fake.lock().unwrap();
        f.hang = true;
        f.writes.last().unwrap().0
    };
    let ended = tokio::time::timeout(bound + Duration::from_secs(3), &mut r.task).await;
    let lost_after = last_write.elapsed();
    let ended = ended.unwrap_or_else(|_| {
        panic!(
            "the elector still runs {lost_after:?} after its last renewal (role {:?}, fence open {})",
            *r.role.borrow(),
            r.fence.is_open()
        )
    });
    assert!(
        matches!(ended, Ok(Err(_))),
        "a wedged leader returns Lost: {ended:?}"
    );
    assert!(!r.fence.is_open(), "the fence is closed");
    assert!(
        lost_after <= bound + Duration::from_secs(1),
        "lost {lost_after:?} after the last renewal; want ≤ {bound:?}"
    );
    eprintln!("a wedged leader lost its lease {lost_after:?} after its last renewal");
}

#[tokio::test]
async fn a_renewal_refused_while_reads_work_loses_leadership() {
    let fake = fresh();
    let server = fake_api(fake.clone()).await;
    let s = settings("me");
    let bound = s.renew_deadline + s.retry_period;
    let mut r = elect(client(&server).await, s);
    wait_leader(&mut r, Duration::from_secs(5)).await;
    let last_write = {
        let mut f = fake.lock().unwrap();
        f.put_fails = Some(500);
        f.writes.last().unwrap().0
    };
    let ended = tokio::time::timeout(bound + Duration::from_secs(3), &mut r.task)
        .await
        .expect("the elector ends");
    let lost_after = last_write.elapsed();
    assert!(matches!(ended, Ok(Err(_))), "{ended:?}");
    assert!(!r.fence.is_open(), "the fence is closed");
    assert!(
        lost_after <= bound + Duration::from_secs(1),
        "lost {lost_after:?} after the last renewal; want ≤ {bound:?}"
    );
}

#[tokio::test]
async fn a_409_is_a_lost_race() {
    // A candidate whose take is beaten (409) stays a follower, its fence closed.
    let fake = fresh();
    fake.lock()
        .unwrap()
        .store(lease(None, 3, "2026-11-29T00:00:00.000000Z"));
    fake.lock().unwrap().stolen_by = Some("other".into());
    let server = fake_api(fake.clone()).await;
    let r = elect(client(&server).await, settings("me"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        *r.role.borrow(),
        Role::Follower {
            holder: Some("other".into())
        }
    );
    assert!(!r.fence.is_open());
    assert!(fake.lock().unwrap().writes.is_empty());

    // A leader whose renewal is beaten (409), and the Lease shows another holder: lost.
    let fake = fresh();
    let server = fake_api(fake.clone()).await;
    let mut r = elect(client(&server).await, settings("me"));
    wait_leader(&mut r, Duration::from_secs(5)).await;
    fake.lock().unwrap().stolen_by = Some("other".into());
    let ended = tokio::time::timeout(Duration::from_secs(3), &mut r.task)
        .await
        .expect("the elector ends");
    assert!(
        matches!(&ended, Ok(Err(Lost(why))) if why.contains("other")),
        "{ended:?}"
    );
    assert!(!r.fence.is_open());
}

#[tokio::test]
async fn expiry_is_judged_by_the_observed_change_not_the_holders_renew_time() {
    // The holder's renewTime is years old, but the follower has only just seen
    // the record: it waits a whole lease duration from its own observation.
    let fake = fresh();
    fake.lock()
        .unwrap()
        .store(lease(Some("other"), 1, "2000-01-01T00:00:00.000000Z"));
    let server = fake_api(fake.clone()).await;
    let mut r = elect(client(&server).await, settings("me"));
    wait_leader(&mut r, Duration::from_secs(5)).await;
    let waited = {
        let f = fake.lock().unwrap();
        f.writes[0].0 - f.gets_answered[0]
    };
    assert!(
        waited >= Duration::from_secs(1),
        "took the lease {waited:?} after first seeing it; its duration is 1 s"
    );

    // A holder that keeps renewing (the version changes) is never taken.
    let fake = fresh();
    fake.lock()
        .unwrap()
        .store(lease(Some("other"), 1, "2000-01-01T00:00:00.000000Z"));
    let server = fake_api(fake.clone()).await;
    let r = elect(client(&server).await, settings("me"));
    let renewer = {
        let fake = fake.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let mut f = fake.lock().unwrap();
                let l = f.lease.clone().unwrap();
                f.store(l);
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    renewer.abort();
    assert!(
        fake.lock().unwrap().writes.is_empty(),
        "a live holder taken"
    );
    assert!(!r.fence.is_open());
}

#[tokio::test]
async fn the_observation_is_stamped_when_the_get_answers() {
    // A slow GET: what it shows was current when it answered, not when it was
    // sent. The take must wait a lease duration from the answer.
    let fake = fresh();
    {
        let mut f = fake.lock().unwrap();
        f.store(lease(Some("other"), 1, "2000-01-01T00:00:00.000000Z"));
        f.get_delays = vec![Duration::from_millis(1500)];
    }
    let server = fake_api(fake.clone()).await;
    let mut r = elect(client(&server).await, settings("me"));
    wait_leader(&mut r, Duration::from_secs(6)).await;
    let f = fake.lock().unwrap();
    let waited = f.writes[0].0 - f.gets_answered[0];
    assert!(
        waited >= Duration::from_secs(1),
        "took the lease {waited:?} after the slow GET answered; its duration is 1 s"
    );
}
