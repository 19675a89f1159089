//! Flags of the daemon (`serve`) and of its admin client (`admin`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{DrainOptions, OutputFormat};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the HTTP server listens: /v1/alerts, /healthz, /readyz, /metrics, /v1/status.
    #[arg(long, env = "HTTP_ADDRESS", default_value = "0.0.0.0:8080")]
    pub http_address: String,
    /// The bearer token Alertmanager sends (a mounted Secret; re-read when it changes).
    #[arg(long, env = "WEBHOOK_TOKEN_FILE")]
    pub webhook_token_file: PathBuf,
    /// Alert rules and managed NodePools (YAML; re-read when it changes).
    #[arg(long, env = "NODE_DRAIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// The admin socket: mode 0600, only the daemon's own uid may talk (0660
    /// with --admin-gid).
    #[arg(
        long,
        env = "ADMIN_SOCKET",
        default_value = "/var/run/node-drain/admin.sock"
    )]
    pub admin_socket: PathBuf,
    /// A group whose members may talk on the admin socket too: the socket is
    /// then 0660 and this group's (the daemon must be able to chown to it).
    #[arg(long, env = "ADMIN_GID")]
    pub admin_gid: Option<u32>,
    /// Namespace of the leader-election Lease: the pod's namespace in-cluster, else `default`.
    #[arg(long, env = "LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "node-drain")]
    pub lease_name: String,
    /// Never more nodes of one NodePool in flight at once (besides its disruption budget).
    #[arg(long, env = "MAX_NODES", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_nodes: u64,
    /// Alerts waiting to be admitted; more are answered 503 (Alertmanager retries).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=100000))]
    pub queue_size: u64,
    /// Graceful eviction: the admission webhook (boxed: the flags are rarely set).
    #[command(flatten)]
    pub admission: Box<AdmissionArgs>,
    #[command(flatten)]
    pub rotation: DaemonRotateOptions,
    #[command(flatten)]
    pub opts: DrainOptions,
}

/// How the daemon's rotations run (`admin rotate`, `rotate-nodepool`): the
/// flags of `drain --rotate`, but the placeholder pods default to the
/// daemon's own namespace (POD_NAMESPACE) in-cluster.
#[derive(Debug, Clone, Args)]
pub struct DaemonRotateOptions {
    /// Reserve each wave's replacement capacity (placeholder pods) before cordoning it.
    #[arg(long, env = "CAPACITY_FIRST", default_value_t = true, action = clap::ArgAction::Set)]
    pub capacity_first: bool,
    /// How long placeholders may take to run before the wave falls back to a plain one.
    #[arg(long, env = "CAPACITY_TIMEOUT", default_value = "5m", value_parser = super::parse_timeout)]
    pub capacity_timeout: std::time::Duration,
    /// Namespace of the placeholder pods: the daemon's own (POD_NAMESPACE) when unset, else `default`.
    #[arg(long, env = "PLACEHOLDER_NAMESPACE")]
    pub placeholder_namespace: Option<String>,
    /// Image of the placeholder pods.
    #[arg(long, env = "PLACEHOLDER_IMAGE", default_value = "pause:3.10")]
    pub placeholder_image: String,
    /// How long a wave may take to settle (its nodes gone, its pods running again).
    #[arg(long, env = "SETTLE_TIMEOUT", default_value = "10m", value_parser = super::parse_timeout)]
    pub settle_timeout: std::time::Duration,
    /// How long to wait for the NodePool to allow the next wave (budget, allocate rate).
    #[arg(long, env = "STALL_TIMEOUT", default_value = "10m", value_parser = super::parse_timeout)]
    pub stall_timeout: std::time::Duration,
}

/// The admission webhook of graceful eviction (`crate::graceful`).
#[derive(Debug, Args)]
pub struct AdmissionArgs {
    /// Where the admission webhook (HTTPS, graceful eviction of VPA-managed
    /// pods) listens, e.g. 0.0.0.0:8443. Off when unset.
    #[arg(long = "admission-address", env = "ADMISSION_ADDRESS")]
    pub address: Option<String>,
    /// A mounted Secret with the webhook's tls.crt and tls.key (and ca.crt to
    /// write into the caBundle); unset: a certificate is generated at start.
    #[arg(long = "admission-cert-dir", env = "ADMISSION_CERT_DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Names of the generated certificate (DNS names or IPs): the webhook
    /// Service's names.
    #[arg(
        long = "admission-dns-names",
        env = "ADMISSION_DNS_NAMES",
        value_delimiter = ',',
        default_value = "node-drain-admission.node-drain.svc,localhost,127.0.0.1"
    )]
    pub dns_names: Vec<String>,
    /// The MutatingWebhookConfiguration whose caBundle the leader keeps equal
    /// to the CA it serves with (empty: never written, e.g. cert-manager's).
    #[arg(
        long = "admission-webhook-configuration",
        env = "ADMISSION_WEBHOOK_CONFIGURATION"
    )]
    pub webhook_configuration: Option<String>,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The daemon's admin socket.
    #[arg(
        long,
        env = "ADMIN_SOCKET",
        default_value = "/var/run/node-drain/admin.sock"
    )]
    pub admin_socket: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Runs, nodes, phases, blockers, the queue, leadership.
    Status,
    /// The wave the daemon would drain now (a dry run).
    Plan {
        #[arg(long)]
        nodepool: Option<String>,
    },
    /// Drain one node.
    DrainNode {
        node: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Drain one wave of a NodePool, planned as `drain` plans it.
    DrainNodepool {
        nodepool: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Rotate a whole NodePool in the daemon (with --dry-run: the preflight).
    Rotate {
        nodepool: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Pause, resume or cancel the rotation of a NodePool (the wave in flight finishes).
    Rotation {
        #[arg(value_enum)]
        action: crate::rotation::daemon::RotationAction,
        nodepool: String,
    },
    /// Stop admitting alerts and requests (runs under way go on).
    Pause,
    /// Admit again.
    Resume,
    /// Stop a run (its nodes are restored), or the drain of one node.
    Cancel {
        #[arg(long, conflicts_with = "node", required_unless_present = "node")]
        run: Option<String>,
        #[arg(long)]
        node: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::AdminCommand;
    use crate::cli::{Cli, Command};
    use crate::rotation::daemon::RotationAction;

    fn admin(args: &[&str]) -> AdminCommand {
        let cli = Cli::try_parse_from([&["node-drain", "admin"], args].concat()).unwrap();
        match cli.command {
            Command::Admin(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn admin_rotate_and_rotation_parse() {
        assert!(matches!(
            admin(&["rotate", "p", "--dry-run"]),
            AdminCommand::Rotate { nodepool, dry_run: true } if nodepool == "p"
        ));
        for (word, want) in [
            ("pause", RotationAction::Pause),
            ("resume", RotationAction::Resume),
            ("cancel", RotationAction::Cancel),
        ] {
            assert!(matches!(
                admin(&["rotation", word, "p"]),
                AdminCommand::Rotation { action, nodepool } if action == want && nodepool == "p"
            ));
        }
        assert!(Cli::try_parse_from(["node-drain", "admin", "rotation", "stop", "p"]).is_err());
    }
}
