//! node-drain: safely drains and replaces the worker nodes of a Karpenter NodePool.
//!
//! Three layers:
//! - **decide** (pure, table-tested, no IO): `plan` (the allocate rate, the wave
//!   size and its caps, budgets, candidates) and `drain` (one node: pod
//!   classification, the eviction answer policy, the recorded state, and the
//!   state machine that names the next step);
//! - **do**: `actors`, started once by `actors::start` and shared by every front;
//! - **edges**: `k8s` (every API call), `commands` (one file per subcommand, each
//!   a front that sends the actors messages), `prometheus`, `slack`.

/// The actors of the design card and the one function that starts them.
pub mod actors;
/// Alertmanager webhooks: payload, rules, the node an alert names, dedupe.
pub mod alerts;
/// clap only: flags and env vars into settings.
pub mod cli;
/// One file per subcommand; each is a front of the actors.
pub mod commands;
/// The daemon config file: alert rules and managed NodePools.
pub mod config;
/// What happens to one node, decided without IO.
pub mod drain;
/// The one duration parser (Go syntax) for flags, budgets and annotations.
pub mod duration;
/// The crate's error and its exit codes.
pub mod error;
/// Graceful eviction of VPA-managed pods: the admission webhook's decisions
/// and the replace-first drain of one pod.
pub mod graceful;
/// Who this process is: the holder of claims and of the Lease.
pub mod identity;
/// The daemon's fronts: HTTP and the admin socket.
pub mod ingress;
/// Every Kubernetes API call.
pub mod k8s;
/// Maintenance windows: when rotation waves may start.
pub mod maintenance;
/// Every message the actors exchange.
pub mod messages;
/// The wave: allocate rates, size and caps, budgets, candidates.
pub mod plan;
/// The Prometheus / Mimir HTTP client.
pub mod prometheus;
/// Rotating a whole NodePool, wave after wave, capacity first.
pub mod rotation;
/// SIGINT/SIGTERM, listened for once.
pub mod shutdown;
/// Alertmanager silences for the nodes node-drain retires.
pub mod silences;
/// Slack incoming-webhook messages.
pub mod slack;
/// tracing setup.
pub mod telemetry;
pub mod time;
/// Quantities ("500m", "2Gi") and their display.
pub mod units;

pub use error::{Error, Result};

/// Property-test cases: 256 in CI; `PROPTEST_CASES=100000` for a long run.
#[cfg(test)]
pub(crate) fn proptest_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}
