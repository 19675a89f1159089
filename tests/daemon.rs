//! `node-drain serve` on the real test environment: an alert drains the node
//! it names, once (a re-sent alert is a duplicate); bad webhooks get the right
//! status and touch no node; the admin socket answers every command, refuses
//! garbage, and is 0600; SIGTERM exits 0 and releases the lease.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};
const TOKEN: &str = "s3cret-token";

struct Daemon {
    child: std::process::Child,
    url: String,
    socket: PathBuf,
    _dir: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    fn start(env: &TestEnv, nodepool: &str, lease: &str, identity: &str, config: &str) -> Self {
        let dir = std::env::temp_dir().join(unique("node-drain-daemon"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(dir.join("config.yaml"), config).unwrap();
        let socket = dir.join("admin.sock");
        let port = free_port();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        let mut cmd = env.node_drain();
        cmd.env("POD_NAME", identity)
            .args(["serve", "--nodepool-name", nodepool, "--lease-name", lease])
            .args(["--http-address", &format!("127.0.0.1:{port}")])
            .arg("--webhook-token-file")
            .arg(dir.join("token"))
            .arg("--config")
            .arg(dir.join("config.yaml"))
            .arg("--admin-socket")
            .arg(&socket)
            .args(["--retire", "nodeclaim", "--orphan-after", "20s"])
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        Self {
            child: cmd.spawn().expect("start node-drain serve"),
            url: format!("http://127.0.0.1:{port}"),
            socket,
            _dir: tempdir::Dir(dir),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("daemon.log")).unwrap_or_default()
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", self.url);
        wait_for(
            "the daemon ready (leader, reconciled)",
            Duration::from_secs(60),
            || async {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => Ok(Some(())),
                    Ok(r) => Err(format!("{}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
    }

    async fn post(&self, token: Option<&str>, body: impl Into<reqwest::Body>) -> u16 {
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/alerts", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("POST /v1/alerts").status().as_u16()
    }

    async fn admin(&self, line: &[u8]) -> Value {
        let mut s = tokio::net::UnixStream::connect(&self.socket)
            .await
            .expect("connect");
        s.write_all(line).await.unwrap();
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer).await.unwrap();
        serde_json::from_str(&answer).unwrap_or(json!({"raw": answer}))
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!(
            "the daemon did not exit within 30 s of SIGTERM:\n{}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alert(labels: Value, starts_at: &str) -> Value {
    json!({
        "version": "4", "status": "firing", "receiver": "node-drain", "groupKey": "{}:{}",
        "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager", "notification_reason": "new",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus", "fingerprint": "f00d"}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_drains_the_node_it_names_once_and_bad_requests_touch_nothing() {
    let scene = Scene::new("daemon-alert", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let mut daemon = Daemon::start(env, &pool.name, &unique("lease"), &unique("serve"), config);
    daemon.wait_ready().await;

    // Bad input: the right status each time, and no node touched.
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T03:00:00Z",
    );
    let mut wrong_version = good.clone();
    wrong_version["version"] = json!("3");
    let mut no_alerts = good.clone();
    no_alerts.as_object_mut().unwrap().remove("alerts");
    let cases: Vec<(Option<&str>, Vec<u8>, u16)> = vec![
        (None, good.to_string().into_bytes(), 401),
        (Some("wrong"), good.to_string().into_bytes(), 401),
        (Some(TOKEN), b"{\"version\": \"4\", ".to_vec(), 400),
        (Some(TOKEN), wrong_version.to_string().into_bytes(), 400),
        (Some(TOKEN), no_alerts.to_string().into_bytes(), 400),
        (Some(TOKEN), vec![b' '; 2 << 20], 413),
    ];
    for (token, body, want) in &cases {
        assert_eq!(
            daemon.post(*token, body.clone()).await,
            *want,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
    }
    for i in 0..300 {
        let (token, body, want) = &cases[i % (cases.len() - 1)];
        assert_eq!(daemon.post(*token, body.clone()).await, *want);
    }
    let health = reqwest::get(format!("{}/healthz", daemon.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let n = get_node(client, &node).await.unwrap();
    assert!(
        !unschedulable(&n) && annotation(&n, "node-drain.io/state").is_none(),
        "bad requests touched the node"
    );

    // The admin socket: 0600, every read-only command, garbage refused.
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let status = daemon.admin(b"{\"cmd\":\"status\"}\n").await;
    assert_eq!(status["ok"], json!(true), "{status}");
    assert_eq!(status["role"]["leader"], json!(true), "{status}");
    for garbage in [
        &b"hello\n"[..],
        b"{\"cmd\":\"reboot\"}\n",
        b"{\"cmd\":\"cancel\"}\n",
    ] {
        let answer = daemon.admin(garbage).await;
        assert_eq!(answer["ok"], json!(false), "{answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let dry = daemon
        .admin(
            format!(
                "{}\n",
                json!({"cmd": "drain-node", "node": node, "dry_run": true})
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(dry["ok"], json!(true), "{dry}");
    let paused = daemon.admin(b"{\"cmd\":\"pause\"}\n").await;
    assert_eq!(paused["paused"], json!(true), "{paused}");
    assert_eq!(
        daemon.post(Some(TOKEN), good.to_string()).await,
        503,
        "paused: Alertmanager must retry"
    );
    daemon.admin(b"{\"cmd\":\"resume\"}\n").await;

    // The alert, then Alertmanager sending it again: one drain.
    assert_eq!(daemon.post(Some(TOKEN), good.to_string()).await, 202);
    assert_eq!(daemon.post(Some(TOKEN), good.to_string()).await, 202);
    wait_for(
        "the node drained and retired",
        Duration::from_secs(120),
        || async {
            match get_node(client, &node).await {
                None => Ok(Some(())),
                Some(n) if n.metadata.deletion_timestamp.is_some() => Ok(Some(())),
                Some(n) => Err(format!("{:?}", annotation(&n, "node-drain.io/state"))),
            }
        },
    )
    .await;
    for (pod, count) in successful_evictions(env, &ns.name) {
        assert_eq!(count, 1, "pod {pod} evicted {count} times");
    }
    let metrics = reqwest::get(format!("{}/metrics", daemon.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("node_drain_alerts_total{outcome=\"duplicate\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("node_drain_webhook_requests_total{code=\"401\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("node_drain_leader 1"), "{metrics}");
    let log = daemon.log();
    assert_eq!(
        log.matches("draining the wave").count(),
        1,
        "one drain:\n{log}"
    );

    let status = daemon.terminate();
    assert!(
        status.success(),
        "SIGTERM: exit 0, got {status:?}\n{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("released the lease"),
        "{}",
        daemon.log()
    );
}

/// Two daemons on one Lease: only the leader acts. The leader is SIGKILLed
/// while a PDB holds its drain; the other takes the lease, takes the node over
/// once its heartbeat is stale, and completes the drain: every pod evicted
/// successfully exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_leaders_drain_is_completed_by_the_next_leader() {
    let scene = Scene::new("daemon-takeover", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    w.deployment("web", 2, SMALL, 2).await;
    w.pdb("frozen", "web", None, Some(2)).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let config = "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n";
    let lease = unique("lease");
    let mut first = Daemon::start(env, &pool.name, &lease, &unique("first"), config);
    first.wait_ready().await;
    let second = Daemon::start(env, &pool.name, &lease, &unique("second"), config);
    // The follower is alive, not ready, and refuses webhooks with 503.
    wait_for("the follower up", Duration::from_secs(30), || async {
        match reqwest::get(format!("{}/healthz", second.url)).await {
            Ok(r) if r.status() == 200 => Ok(Some(())),
            other => Err(format!("{:?}", other.map(|r| r.status()))),
        }
    })
    .await;
    let good = alert(
        json!({"alertname": "NodeDiskPressure", "node": node}),
        "2026-11-22T04:00:00Z",
    );
    assert_eq!(
        second.post(Some(TOKEN), good.to_string()).await,
        503,
        "a follower never acts"
    );
    let ready = reqwest::get(format!("{}/readyz", second.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    assert_eq!(first.post(Some(TOKEN), good.to_string()).await, 202);
    wait_state(client, &node, "cordoned").await;
    wait_for("a refused eviction", Duration::from_secs(30), || async {
        let refused = audit_events(env, &ns.name).iter().any(|e| {
            e.object
                .as_ref()
                .is_some_and(|o| o.subresource == "eviction")
                && e.response.as_ref().is_some_and(|r| r.code == 429)
        });
        Ok(refused.then_some(()))
    })
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    kube::Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
        client.clone(),
        &ns.name,
    )
    .delete("frozen", &Default::default())
    .await
    .unwrap();

    second.wait_ready().await;
    wait_for(
        "the node drained and retired by the new leader",
        Duration::from_secs(150),
        || async {
            match get_node(client, &node).await {
                None => Ok(Some(())),
                Some(n) if n.metadata.deletion_timestamp.is_some() => Ok(Some(())),
                Some(n) => Err(format!("{:?}", annotation(&n, "node-drain.io/state"))),
            }
        },
    )
    .await;
    let evicted = successful_evictions(env, &ns.name);
    assert!(!evicted.is_empty());
    for (pod, count) in evicted {
        assert_eq!(count, 1, "pod {pod} evicted {count} times");
    }
    assert!(second.log().contains("takeover of run"), "{}", second.log());
}
