//! The daemon's fronts in-process against a fake API server (no cluster): a
//! leader whose Lease requests stop answering stops being ready and stops
//! taking alerts as soon as its fence closes, and its elector gives up within
//! the renew deadline and the retry period.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use node_drain::actors::planner::Identity;
use node_drain::actors::{self, Deps};
use node_drain::alerts::dedupe::Dedupe;
use node_drain::cli::DrainOptions;
use node_drain::config::DaemonConfig;
use node_drain::drain::{OnTimeout, Retire};
use node_drain::ingress::intake::Daemon;
use node_drain::k8s::fence::Fence;
use node_drain::k8s::lease::Role;
use serde_json::json;
use support::fake_lease::*;
use tokio::sync::watch;

const TOKEN: &str = "t0ken";

fn options() -> DrainOptions {
    DrainOptions {
        on_timeout: OnTimeout::Restore,
        drain_timeout: Duration::from_secs(60),
        retire: Retire::None,
        eviction_rate: 100,
        eviction_burst: 100,
        orphan_after: Duration::from_secs(60),
        slack_flush_timeout_seconds: 0,
        node_evictions_in_flight: 8,
    }
}

/// The daemon's shared state and its HTTP server on 127.0.0.1:0.
struct Fronts {
    daemon: Arc<Daemon>,
    url: String,
    /// The queue's receiving end: kept, so alerts can be queued (202).
    _queue: tokio::sync::mpsc::Receiver<node_drain::ingress::intake::Job>,
}

fn fronts(client: kube::Client, role: watch::Receiver<Role>, fence: Fence) -> Fronts {
    let actors = actors::start(Deps {
        client,
        prometheus: None,
        karpenter_metrics: None,
        slack: None,
        cluster: "test".into(),
        eviction_rate: 100,
        eviction_burst: 100,
        identity: Identity {
            holder: "me".into(),
            ..Default::default()
        },
        fault: None,
    });
    let config =
        DaemonConfig::parse("rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n")
            .unwrap();
    let (queue, rx) = tokio::sync::mpsc::channel(10_000);
    let daemon = Arc::new(Daemon {
        actors,
        config: Arc::new(RwLock::new(Arc::new(config))),
        nodepool: "pool".into(),
        opts: options(),
        max_nodes: 1,
        role,
        fence,
        reconciled: AtomicBool::new(true),
        shutting_down: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        queue,
        dedupe: Mutex::new(Dedupe::new(Duration::from_secs(60), 100)),
        token: RwLock::new(Some(TOKEN.as_bytes().to_vec())),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = node_drain::ingress::http::serve(listener, daemon.clone()).unwrap();
    actix::spawn(server);
    Fronts {
        daemon,
        url,
        _queue: rx,
    }
}

fn alert(n: u32) -> String {
    let labels = json!({"alertname": "NodeDiskPressure", "node": "n1"});
    support::daemon::alert(labels, &format!("2026-11-29T00:{:02}:00Z", n % 60)).to_string()
}

#[actix_rt::test]
async fn a_wedged_leader_stops_being_ready_and_taking_alerts_when_its_fence_closes() {
    let fake = fresh();
    let server = fake_api(fake.clone()).await;
    let s = settings("me");
    let (renew_deadline, bound) = (s.renew_deadline, s.renew_deadline + s.retry_period);
    let mut r = elect(client(&server).await, s);
    let front = fronts(client(&server).await, r.role.clone(), r.fence.clone());
    let url = front.url.clone();
    wait_leader(&mut r, Duration::from_secs(5)).await;
    assert_eq!(front.daemon.unavailable(), None, "the leader takes work");
    let http = reqwest::Client::new();
    let ready = || async {
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let post = |n: u32| {
        http.post(format!("{url}/v1/alerts"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(alert(n))
            .send()
    };
    assert_eq!(ready().await, 200, "the leader is ready");
    assert_eq!(post(0).await.unwrap().status(), 202, "and takes alerts");

    tokio::time::sleep(Duration::from_millis(700)).await;
    let last_write = {
        let mut f = fake.lock().unwrap();
        f.hang = true;
        f.writes.last().unwrap().0
    };
    let mut n = 1;
    let unready_after = loop {
        let code = ready().await;
        let alert = post(n).await.unwrap().status().as_u16();
        n += 1;
        if code == 503 {
            assert_eq!(
                alert, 503,
                "not ready: the alert must be refused (retried) too"
            );
            break last_write.elapsed();
        }
        assert_eq!(alert, 202, "ready ({code}): takes alerts");
        assert!(
            last_write.elapsed() < bound + Duration::from_secs(3),
            "still ready {:?} after the last renewal (fence open: {})",
            last_write.elapsed(),
            r.fence.is_open()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("a wedged leader stayed ready {unready_after:?} after its last renewal");
    assert!(
        unready_after <= renew_deadline + Duration::from_millis(300),
        "ready {unready_after:?} after the last renewal; want ≤ the renew deadline {renew_deadline:?}"
    );
    let ended = tokio::time::timeout(bound + Duration::from_secs(2), &mut r.task)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the elector still runs {:?} after the last renewal",
                last_write.elapsed()
            )
        });
    assert!(matches!(ended, Ok(Err(_))), "{ended:?}");
    eprintln!(
        "the elector returned Lost {:?} after the last renewal (bound {bound:?})",
        last_write.elapsed()
    );
}
