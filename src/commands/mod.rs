//! One file per command. `run` wires the actors a command needs and maps its
//! outcome to the exit code (SPEC §1).

mod allocate_rate;
mod drain;
pub mod progress_bars;
pub mod render;

use actix::{Actor, Addr};
use tracing::error;

use crate::actors::{MetricsActor, PlannerActor};
use crate::cli::{Cli, Command, GlobalArgs, KarpenterCommand};
use crate::error::{Error, Result};
use crate::plan::validate_nodepool_name;
use crate::prometheus::PrometheusClient;

/// Runs the command inside the actix system; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let outcome = match cli.command {
        Command::Karpenter {
            command: KarpenterCommand::AllocateRate(args),
        } => allocate_rate::run(&cli.global, args).await,
        Command::Drain(args) => drain::run(&cli.global, args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            error!(error = e.to_string().as_str(), "node-drain failed");
            e.exit_code()
        }
    }
}

/// The MetricsActor for the configured Prometheus.
fn start_metrics(global: &GlobalArgs) -> Result<Addr<MetricsActor>> {
    let prometheus = PrometheusClient::new(
        &global.prometheus_address,
        &global.prometheus_org_id,
        std::time::Duration::from_secs(global.prometheus_timeout_seconds),
    )?;
    Ok(MetricsActor::new(prometheus, global.karpenter_metrics).start())
}

/// The PlannerActor with the one API client.
async fn start_planner(global: &GlobalArgs) -> Result<Addr<PlannerActor>> {
    let client = crate::kube_client::client(global.kube_config).await?;
    Ok(PlannerActor::new(client).start())
}

fn checked_nodepool(global: &GlobalArgs) -> Result<String> {
    validate_nodepool_name(&global.nodepool_name).map_err(Error::Usage)?;
    Ok(global.nodepool_name.clone())
}
