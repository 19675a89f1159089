//! Test support for tests against the real test environment (`testenv/up`):
//! reads `.testenv/env`, gives each test a kube `Client`, a throwaway namespace
//! and a NodePool of its own, deploys workloads, and waits for conditions with
//! a timeout whose failure says what was last seen.
#![allow(dead_code)]

pub mod cluster;
pub mod daemon;
pub mod deploy;
pub mod fake_lease;
pub mod fronts;
pub mod http;
pub mod image;
pub mod image_pod;
pub mod manifests;
pub mod nodes;
pub mod observe;
pub mod rotation;
pub mod slack;
pub mod slack_script;
pub mod workloads;

#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use nodes::*;
#[allow(unused_imports)]
pub use observe::*;
#[allow(unused_imports)]
pub use workloads::*;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use kube::Client;

/// The environment `testenv/up` wrote.
#[derive(Clone, Debug)]
pub struct TestEnv {
    pub vars: BTreeMap<String, String>,
}

impl TestEnv {
    /// Reads `.testenv/env` (or `$TESTENV_ENV_FILE`). Fails with what to run when it is missing.
    pub fn load() -> Self {
        let path = std::env::var("TESTENV_ENV_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".testenv/env"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("the test environment is not up ({}: {e}): run `testenv/up` first, or use `scripts/test`", path.display())
        });
        let vars = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self { vars }
    }

    pub fn var(&self, name: &str) -> String {
        self.vars
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from .testenv/env"))
    }

    pub fn prometheus_url(&self) -> String {
        self.var("PROMETHEUS_URL")
    }

    pub fn kubeconfig(&self) -> String {
        self.var("KUBECONFIG")
    }

    pub fn kubectl(&self) -> PathBuf {
        PathBuf::from(self.var("TESTENV_BIN")).join("kubectl")
    }

    pub async fn client(&self) -> Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig())
            .expect("read the testenv kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("build a config from the testenv kubeconfig");
        // See src/kube_client.rs: a PDB's 429 must be seen, not retried for minutes.
        config.default_retry = false;
        Client::try_from(config).expect("build a kube client")
    }

    /// A command of node-drain's binary with the environment's kubeconfig and Prometheus set.
    pub fn node_drain(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_node-drain"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", self.kubeconfig())
            .env("PROMETHEUS_ADDRESS", self.prometheus_url())
            .env("PROMETHEUS_SCOPE_ORG_ID", "")
            .env("RUST_LOG", "info");
        cmd
    }
}

/// A short random suffix, so parallel tests never share names.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!("{prefix}-{:x}{n}", (nanos ^ std::process::id()) & 0xfffff)
}

/// Polls `check` until it returns Ok(Some(value)) or `timeout` passes. `check`
/// returns Ok(None) with nothing to say, or Err(observation) to be shown on timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut last_seen = String::from("nothing yet");
    loop {
        match check().await {
            Ok(Some(value)) => {
                eprintln!("waited {:.1?} for {what}", started.elapsed());
                return value;
            }
            Ok(None) => {}
            Err(seen) => last_seen = seen,
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last_seen}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs node-drain without blocking the runtime (test servers live on it).
pub async fn run_node_drain(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let mut cmd = env.node_drain();
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run node-drain"))
        .await
        .expect("join node-drain")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}
