//! The Deployment's readiness (`/readyz/replica`) in-process against a fake
//! Lease API: a follower is Ready as a replica while `/readyz` (the leader's
//! readiness) refuses it, so two replicas are both Available and a rolling
//! update finishes; a replica that stops hearing from the API server stops
//! being Ready within the renew deadline and a retry.

mod support;

use std::time::{Duration, Instant};

use support::fake_lease::*;
use support::fronts::*;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("GET");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[actix_rt::test]
async fn a_follower_is_ready_as_a_replica_not_as_the_leader_and_neither_once_the_api_is_silent() {
    let fake = fresh();
    let server = fake_api(fake.clone()).await;
    let mut first = elect(client(&server).await, settings("first"));
    wait_leader(&mut first, Duration::from_secs(5)).await;
    let second = elect(client(&server).await, settings("second"));
    let leader = fronts(
        client(&server).await,
        first.role.clone(),
        first.fence.clone(),
        first.contact.clone(),
    );
    let follower = fronts(
        client(&server).await,
        second.role.clone(),
        second.fence.clone(),
        second.contact.clone(),
    );
    support::wait_for(
        "the follower to hear the lease",
        Duration::from_secs(5),
        || async {
            match get(&format!("{}/readyz/replica", follower.url)).await {
                (200, body) => Ok(Some(body)),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(
        get(&format!("{}/readyz/replica", follower.url)).await,
        (200, "ok (follower)\n".into())
    );
    assert_eq!(get(&format!("{}/readyz", follower.url)).await.0, 503);
    assert_eq!(
        get(&format!("{}/readyz/replica", leader.url)).await,
        (200, "ok (leader)\n".into())
    );
    assert_eq!(get(&format!("{}/readyz", leader.url)).await.0, 200);

    // The API server stops answering: neither replica is healthy any more.
    fake.lock().unwrap().hang = true;
    let silent = Instant::now();
    support::wait_for("the follower unready", Duration::from_secs(6), || async {
        match get(&format!("{}/readyz/replica", follower.url)).await {
            (503, body) => Ok(Some(body)),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (code, body) = get(&format!("{}/readyz/replica", follower.url)).await;
    assert_eq!(code, 503);
    assert!(body.starts_with("no answer from the API server"), "{body}");
    eprintln!(
        "the follower unready {:?} after the API went silent",
        silent.elapsed()
    );
    assert_eq!(get(&format!("{}/readyz/replica", leader.url)).await.0, 503);
}
