//! Builds the one kube `Client` the process uses, by `--kube-config` mode.
//! The client is cloned into every actor that talks to the API server.

use std::time::Duration;

use kube::client::ClientBuilder;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::Client;

use super::fence::{Fence, FenceLayer};

use crate::cli::KubeConfigMode;
use crate::error::{Error, Result};

/// The User-Agent of every request node-drain makes.
pub const USER_AGENT: &str = concat!("node-drain/", env!("CARGO_PKG_VERSION"));

pub async fn client(mode: KubeConfigMode) -> Result<Client> {
    let (config, fail) = config(mode).await?;
    Client::try_from(config).map_err(|e| fail(e.to_string()))
}

/// A client whose writes pass only while `fence` is open (the daemon's
/// actors); reads always pass.
pub async fn fenced(mode: KubeConfigMode, fence: Fence) -> Result<Client> {
    let (config, fail) = config(mode).await?;
    Ok(ClientBuilder::try_from(config)
        .map_err(|e| fail(e.to_string()))?
        .with_layer(&FenceLayer(fence))
        .build())
}

async fn config(mode: KubeConfigMode) -> Result<(Config, impl Fn(String) -> Error)> {
    let mode_name = match mode {
        KubeConfigMode::Local => "local",
        KubeConfigMode::Cluster => "cluster",
        KubeConfigMode::GithubAction => "github_action",
    }
    .to_string();
    let fail = move |reason: String| Error::KubeConfig {
        mode: mode_name.clone(),
        reason,
    };
    let mut config = match mode {
        KubeConfigMode::Cluster => Config::incluster().map_err(|e| {
            fail(format!("{e}: is node-drain running in a pod with a service account? Use --kube-config local outside the cluster"))
        })?,
        KubeConfigMode::Local => Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .map_err(|e| fail(format!("{e}: check KUBECONFIG or ~/.kube/config and the current context")))?,
        KubeConfigMode::GithubAction => {
            // A CI job has no one to answer a prompt: read the file, never run an
            // interactive login.
            let kubeconfig = Kubeconfig::read()
                .map_err(|e| fail(format!("{e}: the CI job must provide a kubeconfig in KUBECONFIG or ~/.kube/config")))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| fail(e.to_string()))?
        }
    };
    // kube 5 retries 429/503/504 by default (up to 15 times, up to 1000 s apart).
    // A 429 from an eviction is a PDB speaking: node-drain must see it at once
    // and apply its own policy (SPEC §3), so the client never retries silently.
    config.default_retry = false;
    // Named in the API server's audit log and request metrics as itself, and
    // which replica (the pod name) sent each request.
    let holder = crate::identity::Identity::from_env().holder;
    let agent = http::HeaderValue::from_str(&format!("{USER_AGENT} ({holder})"))
        .unwrap_or_else(|_| http::HeaderValue::from_static(USER_AGENT));
    config.headers.push((http::header::USER_AGENT, agent));
    config.connect_timeout = Some(Duration::from_secs(10));
    // No read timeout (kube 5 sets none; its 295 s is the *write* timeout): one
    // would cut every idle watch of a node's pods. So a request on a half-open
    // connection never ends by itself: the elector bounds each of its tries by
    // the renew deadline, and the fence layer bounds every write by what is
    // left of the leadership.
    Ok((config, fail))
}
