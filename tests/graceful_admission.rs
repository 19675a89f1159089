//! The admission webhook in process, over its real HTTPS server with a
//! generated certificate, and no API server: an AdmissionReview in, the
//! answer out. A follower (and anything not a candidate) answers "allowed,
//! unchanged" with the request's uid, without a single API call (the client
//! points at a port that counts connections and closes them); a leader that
//! cannot read the pod lets it through too; a body that is not an
//! AdmissionReview is a 400.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};
use tokio::sync::watch;

use node_drain::config::DaemonConfig;
use node_drain::graceful::{tls, Graceful};
use node_drain::k8s::fence::Fence;
use node_drain::k8s::lease::Role;

struct Webhook {
    /// Connections made to the stand-in API server, but for the list of
    /// the drains in flight (`listed`).
    api_calls: Arc<AtomicUsize>,
    listed: Arc<AtomicUsize>,
    url: String,
    http: reqwest::Client,
    _role: watch::Sender<Role>,
}

async fn start(role: Role) -> Webhook {
    let serving = tls::generate(&["127.0.0.1".into()]).unwrap();
    let ca = reqwest::Certificate::from_pem(serving.ca_pem.as_deref().unwrap().as_bytes()).unwrap();
    let config = tls::server_config(&serving).unwrap();
    // No API server: a port that answers the leader's list of the drains in
    // flight (none) and counts every other connection, closing it unanswered.
    let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api_url = format!("http://{}", api.local_addr().unwrap());
    let api_calls = Arc::new(AtomicUsize::new(0));
    let listed = Arc::new(AtomicUsize::new(0));
    let (counter, lists) = (api_calls.clone(), listed.clone());
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for stream in api.incoming().flatten() {
            let mut line = String::new();
            let _ = std::io::BufReader::new(&stream).read_line(&mut line);
            if line.starts_with("GET /api/v1/pods?") && line.contains("graceful") {
                let body = r#"{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"1"},"items":[]}"#;
                let _ = write!(
                    &stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                lists.fetch_add(1, Ordering::SeqCst);
            } else {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let client = kube::Client::try_from(kube::Config::new(api_url.parse().unwrap())).unwrap();
    let (role_tx, role_rx) = watch::channel(role);
    let shared = Arc::new(RwLock::new(Arc::new(DaemonConfig::default())));
    let graceful = Graceful::new(
        client,
        shared,
        role_rx,
        Fence::open(),
        "test-lease".into(),
        "test",
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    graceful.spawn_reconciler(std::time::Duration::from_secs(60));
    let server = node_drain::ingress::admission::serve(listener, graceful, config).unwrap();
    actix_rt::spawn(server);
    let http = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap();
    Webhook {
        api_calls,
        listed,
        url: format!(
            "https://127.0.0.1:{port}{}",
            node_drain::ingress::admission::PATH
        ),
        http,
        _role: role_tx,
    }
}

fn review(user: &str, namespace: &str, dry_run: bool) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "0c2b-uid", "operation": "CREATE",
            "kind": {"group": "policy", "version": "v1", "kind": "Eviction"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "subResource": "eviction", "name": "web-1", "namespace": namespace,
            "userInfo": {"username": user},
            "object": {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1", "namespace": namespace}},
            "dryRun": dry_run
        }
    })
}

const VPA: &str = "system:serviceaccount:kube-system:vpa-updater";

async fn answer(webhook: &Webhook, body: &Value) -> Value {
    let response = webhook
        .http
        .post(&webhook.url)
        .json(body)
        .send()
        .await
        .expect("TLS to the webhook");
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn unchanged() -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "response": {"uid": "0c2b-uid", "allowed": true}})
}

#[actix_rt::test]
async fn a_follower_lets_the_vpa_updaters_eviction_through_unchanged() {
    let webhook = start(Role::Follower {
        holder: Some("other".into()),
    })
    .await;
    assert_eq!(
        answer(&webhook, &review(VPA, "shop", false)).await,
        unchanged()
    );
    assert_eq!(
        webhook.api_calls.load(Ordering::SeqCst),
        0,
        "a follower asks nothing"
    );
}

#[actix_rt::test]
async fn other_users_excluded_namespaces_and_dry_runs_are_let_through_unchanged() {
    let webhook = start(Role::Leader).await;
    for body in [
        review("system:serviceaccount:default:someone", "shop", false),
        review(VPA, "kube-system", false),
        review(VPA, "shop", true),
    ] {
        assert_eq!(answer(&webhook, &body).await, unchanged(), "{body}");
    }
    assert_eq!(
        webhook.api_calls.load(Ordering::SeqCst),
        0,
        "decided on the request alone"
    );
}

#[actix_rt::test]
async fn a_leader_that_cannot_read_the_pod_lets_the_eviction_through() {
    // The candidate's pod cannot be read (no API server): never a refusal.
    let webhook = start(Role::Leader).await;
    // Unchanged before it has listed the drains in flight (none), and after,
    // when it asks for the pod and cannot read it.
    for _ in 0..200 {
        assert_eq!(
            answer(&webhook, &review(VPA, "shop", false)).await,
            unchanged()
        );
        if webhook.api_calls.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(webhook.listed.load(Ordering::SeqCst) > 0, "listed first");
    assert!(
        webhook.api_calls.load(Ordering::SeqCst) > 0,
        "the leader asked for the pod"
    );
}

#[actix_rt::test]
async fn a_body_that_is_not_an_admission_review_is_a_400() {
    let webhook = start(Role::Leader).await;
    let response = webhook
        .http
        .post(&webhook.url)
        .body("{\"request\": 3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
