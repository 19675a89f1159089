//! One file per command; a command is a front of the actors. `run` maps its
//! outcome to the exit code (SPEC §1).

mod admin;
mod allocate_rate;
mod drain;
pub mod progress_bars;
pub mod render;
mod rotate;
mod serve;
mod serve_node_cache;
mod serve_role;

use tracing::error;

use crate::actors::{Actors, Deps};
use crate::cli::{Cli, Command, GlobalArgs, KarpenterCommand};
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::plan::validate_nodepool_name;
use crate::prometheus::PrometheusClient;
use crate::slack::WebhookUrl;

/// Runs the command inside the actix system; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let outcome = match cli.command {
        Command::Karpenter {
            command: KarpenterCommand::AllocateRate(args),
        } => allocate_rate::run(&cli.global, args).await,
        Command::Drain(args) => drain::run(&cli.global, args).await,
        Command::Serve(args) => serve::run(&cli.global, args).await,
        Command::Admin(args) => admin::run(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            error!(error = e.to_string().as_str(), "node-drain failed");
            e.exit_code()
        }
    }
}

/// Validates the global flags and starts every actor once.
async fn start_actors(
    global: &GlobalArgs,
    with_prometheus: bool,
    eviction_rate: u32,
    eviction_burst: u32,
) -> Result<Actors> {
    let slack = WebhookUrl::parse(&global.slack_webhook_url).map_err(Error::Usage)?;
    let prometheus = if with_prometheus {
        Some(prometheus_client(global)?)
    } else {
        None
    };
    let client = crate::k8s::client(global.kube_config).await?;
    let identity = Identity::from_env();
    Ok(crate::actors::start(Deps {
        client,
        prometheus,
        karpenter_metrics: global.karpenter_metrics,
        slack,
        cluster: global.cluster_name.clone(),
        eviction_rate,
        eviction_burst,
        identity,
        fault: crate::actors::node_drain::Fault::from_env(),
        lease: None,
    }))
}

fn prometheus_client(global: &GlobalArgs) -> Result<PrometheusClient> {
    Ok(PrometheusClient::new(
        &global.prometheus_address,
        &global.prometheus_org_id,
        std::time::Duration::from_secs(global.prometheus_timeout_seconds),
    )?)
}

fn checked_nodepool(global: &GlobalArgs) -> Result<String> {
    validate_nodepool_name(&global.nodepool_name).map_err(Error::Usage)?;
    Ok(global.nodepool_name.clone())
}
