//! `node-drain serve` started by a test: a temporary directory with the
//! webhook token, the config and the admin socket; HTTP on a free port; the
//! log kept for assertions and failures.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{unique, wait_for, TestEnv};

pub const TOKEN: &str = "s3cret-token";

pub struct Daemon {
    pub child: std::process::Child,
    pub url: String,
    pub socket: PathBuf,
    pub dir: tempdir::Dir,
}

pub mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    pub fn start(env: &TestEnv, nodepool: &str, lease: &str, identity: &str, config: &str) -> Self {
        Self::start_with(env, nodepool, lease, identity, config, &[])
    }

    /// As `start`, with extra environment (`NODE_DRAIN_TEST_FAULT`).
    pub fn start_with(
        env: &TestEnv,
        nodepool: &str,
        lease: &str,
        identity: &str,
        config: &str,
        vars: &[(&str, &str)],
    ) -> Self {
        Self::start_args(env, nodepool, lease, identity, config, vars, &[])
    }

    /// As `start_with`, with extra flags (`--orphan-after` given here replaces
    /// the tests' 20 s).
    pub fn start_args(
        env: &TestEnv,
        nodepool: &str,
        lease: &str,
        identity: &str,
        config: &str,
        vars: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let dir = std::env::temp_dir().join(unique("node-drain-daemon"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(dir.join("config.yaml"), config).unwrap();
        let socket = dir.join("admin.sock");
        let port = free_port();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        let mut cmd = env.node_drain();
        cmd.envs(vars.iter().copied());
        // An empty identity: no POD_NAME (nor HOSTNAME: the environment is
        // cleared), as under systemd.
        if !identity.is_empty() {
            cmd.env("POD_NAME", identity);
        }
        cmd.args(["serve", "--nodepool-name", nodepool, "--lease-name", lease])
            .args(["--http-address", &format!("127.0.0.1:{port}")])
            .arg("--webhook-token-file")
            .arg(dir.join("token"))
            .arg("--config")
            .arg(dir.join("config.yaml"))
            .arg("--admin-socket")
            .arg(&socket)
            .args(["--retire", "nodeclaim"])
            .args(if args.contains(&"--orphan-after") {
                &[][..]
            } else {
                &["--orphan-after", "20s"][..]
            })
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        Self {
            child: cmd.spawn().expect("start node-drain serve"),
            url: format!("http://127.0.0.1:{port}"),
            socket,
            dir: tempdir::Dir(dir),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("daemon.log")).unwrap_or_default()
    }

    pub async fn wait_ready(&self) {
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

    pub async fn post(&self, token: Option<&str>, body: impl Into<reqwest::Body>) -> u16 {
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/alerts", self.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("POST /v1/alerts").status().as_u16()
    }

    pub async fn admin(&self, line: &[u8]) -> Value {
        let mut s = tokio::net::UnixStream::connect(&self.socket)
            .await
            .expect("connect");
        s.write_all(line).await.unwrap();
        let mut answer = String::new();
        BufReader::new(s).read_line(&mut answer).await.unwrap();
        serde_json::from_str(&answer).unwrap_or(json!({"raw": answer}))
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
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

pub fn alert(labels: Value, starts_at: &str) -> Value {
    json!({
        "version": "4", "status": "firing", "receiver": "node-drain", "groupKey": "{}:{}",
        "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager", "notification_reason": "new",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus", "fingerprint": "f00d"}]
    })
}
