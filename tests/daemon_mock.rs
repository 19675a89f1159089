//! The daemon's fronts in-process against a fake API server (no cluster): a
//! leader whose Lease requests stop answering stops being ready and stops
//! taking alerts as soon as its fence closes, and its elector gives up within
//! the renew deadline and the retry period; the webhook token file going
//! missing or empty keeps the last good token (no token at all: 503, which
//! Alertmanager retries); a follower refuses `pause` and `cancel`; an idle
//! admin client is closed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use node_drain::ingress::intake::Daemon;
use node_drain::k8s::fence::Fence;
use node_drain::k8s::lease::{Contact, Role};
use serde_json::json;
use support::fake_lease::*;
use support::fronts::*;
use support::http::Server;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
    let front = fronts(
        client(&server).await,
        r.role.clone(),
        r.fence.clone(),
        r.contact.clone(),
    );
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
        // (The fence may close between the two requests.)
        assert!(
            alert == 202 || !r.fence.is_open(),
            "ready ({code}) and its fence open: takes alerts, got {alert}"
        );
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
        unready_after <= renew_deadline + Duration::from_secs(1),
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

/// The daemon as a reconciled leader with an open fence, against a fake API
/// server that has only a Lease.
async fn leader() -> (Fronts, Server) {
    let server = fake_api(fresh()).await;
    let (_, role) = watch::channel(Role::Leader);
    let fronts = fronts(
        client(&server).await,
        role,
        Fence::open(),
        Contact::default(),
    );
    (fronts, server)
}

async fn post(url: &str, token: &str, n: u32) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/v1/alerts"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(alert(n))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn a_missing_or_empty_token_file_keeps_the_last_good_token_and_no_token_is_503() {
    let (f, _server) = leader().await;
    let path = std::env::temp_dir().join(format!("node-drain-token-{}", fastrand::u64(..)));
    std::fs::write(&path, "first\n").unwrap();
    node_drain::ingress::intake::watch_token(
        f.daemon.clone(),
        path.clone(),
        Duration::from_millis(20),
    );
    support::wait_for("the token loaded", Duration::from_secs(5), || async {
        let code = post(&f.url, "first", 1).await;
        if code == 202 {
            Ok(Some(()))
        } else {
            Err(format!("{code}"))
        }
    })
    .await;
    assert_eq!(post(&f.url, "wrong", 2).await, 401, "a wrong token");
    // A Secret being rotated can leave the file empty, or gone, for a moment.
    std::fs::write(&path, "").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        post(&f.url, "first", 3).await,
        202,
        "empty file: last good token kept"
    );
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        post(&f.url, "first", 4).await,
        202,
        "no file: last good token kept"
    );
    std::fs::write(&path, "second\n").unwrap();
    support::wait_for("the rotated token", Duration::from_secs(5), || async {
        let (old, new) = (
            post(&f.url, "first", 5).await,
            post(&f.url, "second", 6).await,
        );
        if (old, new) == (401, 202) {
            Ok(Some(()))
        } else {
            Err(format!("old {old}, new {new}"))
        }
    })
    .await;
    let _ = std::fs::remove_file(&path);

    // No token ever read: Alertmanager must retry (5xx), not drop the alert (4xx).
    let (f, _server) = leader().await;
    *f.daemon.token.write().unwrap() = None;
    assert_eq!(post(&f.url, "anything", 7).await, 503);
}

/// One request on the admin socket of `daemon`; the answer.
async fn admin(socket: &std::path::Path, line: &str) -> serde_json::Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(socket).await.unwrap();
    s.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::io::BufReader::new(s)
        .read_line(&mut answer)
        .await
        .unwrap();
    serde_json::from_str(&answer).unwrap()
}

fn admin_socket(daemon: Arc<Daemon>, idle: Duration) -> (std::path::PathBuf, CancellationToken) {
    let path = std::env::temp_dir().join(format!("node-drain-admin-{}.sock", fastrand::u64(..)));
    let listener = node_drain::ingress::admin_socket::bind(&path, None).unwrap();
    let stop = CancellationToken::new();
    let options = node_drain::ingress::admin_socket::Options {
        idle,
        ..Default::default()
    };
    tokio::spawn(node_drain::ingress::admin_socket::run(
        listener,
        path.clone(),
        daemon,
        options,
        stop.clone(),
    ));
    (path, stop)
}

#[actix_rt::test]
async fn a_follower_refuses_pause_and_cancel_naming_the_leader_and_a_leader_answers_its_role() {
    let server = fake_api(fresh()).await;
    let (_, role) = watch::channel(Role::Follower {
        holder: Some("other-replica".into()),
    });
    let f = fronts(
        client(&server).await,
        role,
        Fence::closed(),
        Contact::default(),
    );
    let (socket, stop) = admin_socket(f.daemon.clone(), Duration::from_secs(30));
    for line in [
        r#"{"cmd":"pause"}"#,
        r#"{"cmd":"resume"}"#,
        r#"{"cmd":"cancel","node":"n1"}"#,
        r#"{"cmd":"cancel","run":"r1"}"#,
    ] {
        let answer = admin(&socket, line).await;
        assert_eq!(answer["ok"], json!(false), "{line} on a follower: {answer}");
        let error = answer["error"].as_str().unwrap_or("");
        assert!(
            error.contains("not the leader") && error.contains("other-replica"),
            "{line}: {answer}"
        );
    }
    assert!(!f.daemon.paused.load(std::sync::atomic::Ordering::SeqCst));
    stop.cancel();

    let (f, _server) = leader().await;
    let (socket, stop) = admin_socket(f.daemon.clone(), Duration::from_secs(30));
    let answer = admin(&socket, r#"{"cmd":"pause"}"#).await;
    assert_eq!(answer["ok"], json!(true), "{answer}");
    assert_eq!(answer["paused"], json!(true), "{answer}");
    assert_eq!(answer["role"]["leader"], json!(true), "{answer}");
    stop.cancel();
}

#[actix_rt::test]
async fn an_idle_admin_client_is_closed_after_the_idle_timeout() {
    use tokio::io::AsyncReadExt;
    let (f, _server) = leader().await;
    let (socket, stop) = admin_socket(f.daemon.clone(), Duration::from_millis(300));
    let mut s = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "an idle client still connected after 5 s (idle timeout 300 ms)"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed after {:?}, before the idle timeout",
        started.elapsed()
    );
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    stop.cancel();
}

#[actix_rt::test]
async fn the_daemons_own_uid_is_its_effective_uid_not_the_socket_files_owner() {
    let (f, _server) = leader().await;
    let path = std::env::temp_dir().join(format!("node-drain-admin-{}.sock", fastrand::u64(..)));
    let listener = node_drain::ingress::admin_socket::bind(&path, None).unwrap();
    // Someone else owns the file now (a chown, or a path reused): the daemon
    // is still who it is, and that someone is not let in by it.
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(node_drain::ingress::admin_socket::run(
        listener,
        path.clone(),
        f.daemon.clone(),
        Default::default(),
        stop.clone(),
    ));
    let answer = admin(&path, r#"{"cmd":"status"}"#).await;
    assert_eq!(answer["ok"], json!(true), "{answer}");
    stop.cancel();
}
