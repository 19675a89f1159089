//! The command line: the seed's global flags, each with its env var (flag wins),
//! and one struct per command.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::plan::MetricsGeneration;

mod daemon;
pub use daemon::{AdminArgs, AdminCommand, ServeArgs};

#[derive(Debug, Parser)]
#[command(
    name = "node-drain",
    version,
    about = "Safely drains and replaces the worker nodes of a Karpenter NodePool"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Prometheus (or Mimir) address; the query API is <address>/api/v1/query.
    #[arg(
        long,
        env = "PROMETHEUS_ADDRESS",
        default_value = "http://localhost:8080/prometheus",
        global = true
    )]
    pub prometheus_address: String,

    /// Tenant sent as X-Scope-OrgID (Mimir); empty sends no header.
    #[arg(
        long,
        env = "PROMETHEUS_SCOPE_ORG_ID",
        default_value = "organization-dev",
        global = true
    )]
    pub prometheus_org_id: String,

    /// Slack incoming webhook; empty turns notifications off.
    #[arg(
        long,
        env = "SLACK_WEBHOOK_URL",
        default_value = "",
        global = true,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub slack_webhook_url: String,

    /// How to reach the API server.
    #[arg(
        long,
        env = "KUBE_CONFIG",
        value_enum,
        default_value = "local",
        global = true
    )]
    pub kube_config: KubeConfigMode,

    /// Shown in notifications.
    #[arg(long, env = "CLUSTER_NAME", default_value = "", global = true)]
    pub cluster_name: String,

    /// The Karpenter NodePool to drain.
    #[arg(
        long,
        env = "NODEPOOL_NAME",
        default_value = "devel-nodepool-name",
        global = true
    )]
    pub nodepool_name: String,

    /// Karpenter metric names: detected from what Prometheus has unless set.
    #[arg(long, env = "KARPENTER_METRICS", value_enum, global = true)]
    pub karpenter_metrics: Option<MetricsGeneration>,

    /// Timeout of each Prometheus query, in seconds.
    #[arg(long, env = "PROMETHEUS_TIMEOUT_SECONDS", default_value_t = 10, global = true, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub prometheus_timeout_seconds: u64,

    /// Log format.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KubeConfigMode {
    /// The kubeconfig file (KUBECONFIG honoured, else ~/.kube/config).
    Local,
    /// The in-cluster service account.
    Cluster,
    /// A kubeconfig in a CI job (KUBECONFIG or the default path), never interactive.
    #[value(name = "github_action")]
    GithubAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Karpenter views of the NodePool.
    Karpenter {
        #[command(subcommand)]
        command: KarpenterCommand,
    },
    /// Plan one wave of the NodePool's oldest nodes and drain it.
    Drain(DrainArgs),
    /// The daemon: Alertmanager webhooks, the admin socket, leader election.
    Serve(ServeArgs),
    /// Talk to a running daemon through its admin socket.
    Admin(AdminArgs),
}

#[derive(Debug, Subcommand)]
pub enum KarpenterCommand {
    /// Capacity, requests and the memory/CPU allocate rate of the NodePool, and the wave it implies.
    AllocateRate(AllocateRateArgs),
}

/// How the wave is sized: shared by `allocate-rate` and `drain`.
#[derive(Debug, Clone, Args)]
pub struct WaveArgs {
    /// The allocate rate (percent) the NodePool may reach while a wave is out.
    #[arg(long, env = "TARGET_ALLOCATE_RATE", default_value_t = 99, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub target_allocate_rate: u32,

    /// Never more nodes than this in one wave.
    #[arg(long, env = "MAX_NODES")]
    pub max_nodes: Option<usize>,
}

#[derive(Debug, Args)]
pub struct AllocateRateArgs {
    #[command(flatten)]
    pub wave: WaveArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub wave: WaveArgs,
    /// Print the plan (nodes, order, pods, blockers) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Drain these nodes (comma-separated) instead of planning from the allocate rate.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Output of --dry-run.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Drain nodes despite blocking pods (bare pods, do-not-disrupt): they are evicted (PDBs still apply).
    #[arg(long)]
    pub force: bool,
    /// Rotate the whole NodePool: waves until every node created before now is
    /// replaced (with --dry-run: the preflight).
    #[arg(long, conflicts_with = "nodes")]
    pub rotate: bool,
    #[command(flatten)]
    pub rotation: RotateOptions,
    #[command(flatten)]
    pub opts: DrainOptions,
}

/// How `drain --rotate` runs its waves.
#[derive(Debug, Clone, Args)]
pub struct RotateOptions {
    /// Reserve each wave's replacement capacity (placeholder pods) before cordoning it.
    #[arg(long, env = "CAPACITY_FIRST", default_value_t = true, action = clap::ArgAction::Set)]
    pub capacity_first: bool,
    /// How long placeholders may take to run before the wave falls back to a plain one.
    #[arg(long, env = "CAPACITY_TIMEOUT", default_value = "5m", value_parser = parse_timeout)]
    pub capacity_timeout: std::time::Duration,
    /// Namespace of the placeholder pods.
    #[arg(long, env = "PLACEHOLDER_NAMESPACE", default_value = "default")]
    pub placeholder_namespace: String,
    /// Image of the placeholder pods (never started for long: the pause image your nodes already have).
    #[arg(long, env = "PLACEHOLDER_IMAGE", default_value = "pause:3.10")]
    pub placeholder_image: String,
    /// How long a wave may take to settle (its nodes gone, its pods running again).
    #[arg(long, env = "SETTLE_TIMEOUT", default_value = "10m", value_parser = parse_timeout)]
    pub settle_timeout: std::time::Duration,
    /// How long to wait for the NodePool to allow the next wave (budget, allocate rate).
    #[arg(long, env = "STALL_TIMEOUT", default_value = "10m", value_parser = parse_timeout)]
    pub stall_timeout: std::time::Duration,
}

/// How each node is drained: shared by `drain` and `serve`.
#[derive(Debug, Clone, Args)]
pub struct DrainOptions {
    /// What a node that is not drained within --drain-timeout gets.
    #[arg(long, value_enum, default_value = "restore")]
    pub on_timeout: crate::drain::OnTimeout,
    /// Bound on the whole drain of one node ("10m", "90s", "1h30m").
    #[arg(long, env = "DRAIN_TIMEOUT", default_value = "10m", value_parser = parse_timeout)]
    pub drain_timeout: std::time::Duration,
    /// How a drained node is retired.
    #[arg(long, value_enum, default_value = "nodeclaim")]
    pub retire: crate::drain::Retire,
    /// Evictions and deletions per second, cluster-wide.
    #[arg(long, env = "EVICTION_RATE", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub eviction_rate: u32,
    /// Burst above --eviction-rate.
    #[arg(long, env = "EVICTION_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub eviction_burst: u32,
    /// A node whose recorded drain has had no heartbeat for this long belongs to
    /// a node-drain that died: the next run restores it before planning.
    #[arg(long, env = "ORPHAN_AFTER", default_value = "60s", value_parser = parse_timeout)]
    pub orphan_after: std::time::Duration,
    /// At exit, wait at most this long for queued Slack notifications (seconds).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub slack_flush_timeout_seconds: u64,
    /// Evictions of one node in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub node_evictions_in_flight: u64,
}

impl DrainOptions {
    /// The drain settings of a run; `force` comes from the command or the rule.
    pub fn settings(&self, force: bool) -> crate::drain::DrainSettings {
        crate::drain::DrainSettings {
            force,
            on_timeout: self.on_timeout,
            drain_timeout: self.drain_timeout,
            retire: self.retire,
            node_in_flight: self.node_evictions_in_flight as usize,
            orphan_after: self.orphan_after,
        }
    }
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let d = crate::duration::parse_go_duration(text)?;
    if d.is_zero() {
        return Err("the drain timeout must be more than 0".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seed_invocation_parses() {
        let cli = Cli::try_parse_from([
            "node-drain",
            "drain",
            "--prometheus-address",
            "http://localhost:8080/prometheus",
            "--prometheus-org-id",
            "organization-dev",
            "--nodepool-name",
            "worker-nodepool-name",
            "--kube-config",
            "github_action",
            "--cluster-name",
            "devel_eks_cluster",
        ])
        .unwrap();
        assert_eq!(cli.global.kube_config, KubeConfigMode::GithubAction);
        assert_eq!(cli.global.nodepool_name, "worker-nodepool-name");
        assert!(matches!(cli.command, Command::Drain(_)));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            vec!["node-drain", "drain", "--kube-config", "laptop"],
            vec!["node-drain", "drain", "--target-allocate-rate", "0"],
            vec!["node-drain", "drain", "--target-allocate-rate", "101"],
            vec![
                "node-drain",
                "karpenter",
                "allocate-rate",
                "--output",
                "yaml",
            ],
        ] {
            let err = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
