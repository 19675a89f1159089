//! The daemon's fronts (HTTP server, shared state, actors) in-process
//! against a fake API server, for the mock tests.

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
use node_drain::k8s::lease::{Contact, Role};
use tokio::sync::watch;

pub const TOKEN: &str = "t0ken";

pub fn options() -> DrainOptions {
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
pub struct Fronts {
    pub daemon: Arc<Daemon>,
    pub url: String,
    /// The queue's receiving end: kept, so alerts can be queued (202).
    _queue: tokio::sync::mpsc::Receiver<node_drain::ingress::intake::Job>,
}

/// `contact`: the elector's (`Contact::default()`: never heard, an unhealthy
/// replica).
pub fn fronts(
    client: kube::Client,
    role: watch::Receiver<Role>,
    fence: Fence,
    contact: Contact,
) -> Fronts {
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
        lease: Some("default/test".into()),
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
        dedupe: std::sync::Arc::new(Mutex::new(Dedupe::new(Duration::from_secs(60), 100))),
        token: RwLock::new(Some(TOKEN.as_bytes().to_vec())),
        contact,
        contact_window: Duration::from_millis(2300),
        rotations: Default::default(),
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
