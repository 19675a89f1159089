//! The actors (SPEC §7), started in one place (`start`) and shared by every
//! front. Each has a folder: `mod.rs` the struct and its logic, `actor.rs` only
//! its lifecycle, `handlers.rs` only its message handlers.

pub mod evictor;
pub mod metrics;
pub mod node_drain;
pub mod notifier;
pub mod planner;

use actix::{Actor, Addr};
use kube::Client;

pub use evictor::{EvictorPool, PodEvictorActor};
pub use metrics::MetricsActor;
pub use node_drain::NodeDrainActor;
pub use notifier::NotifierActor;
pub use planner::PlannerActor;

use crate::drain::progress::Progress;
use crate::prometheus::PrometheusClient;
use crate::slack::WebhookUrl;

/// What the actors need from the outside.
pub struct Deps {
    pub client: Client,
    /// None when the command needs no Prometheus (named nodes).
    pub prometheus: Option<PrometheusClient>,
    pub karpenter_metrics: Option<crate::plan::MetricsGeneration>,
    pub slack: Option<WebhookUrl>,
    /// Shown in notifications.
    pub cluster: String,
    /// Evictions and deletions per second, cluster-wide, and the burst above it.
    pub eviction_rate: u32,
    pub eviction_burst: u32,
    pub identity: planner::Identity,
    /// The test-only fault hook (`NODE_DRAIN_TEST_FAULT`).
    pub fault: Option<node_drain::Fault>,
    /// The daemon's Lease (`namespace/name`), recorded on the nodes it claims;
    /// None for the CLI.
    pub lease: Option<String>,
}

/// The addresses every front sends its messages to.
#[derive(Clone)]
pub struct Actors {
    pub planner: Addr<PlannerActor>,
    pub metrics: Option<Addr<MetricsActor>>,
    pub notifier: Addr<NotifierActor>,
    /// Live drain progress of every node (status, progress bars).
    pub progress: Progress,
}

/// The MetricsActor alone: a command that reads Prometheus before it needs the
/// API server (`karpenter allocate-rate`) starts it first.
pub fn start_metrics(
    prometheus: PrometheusClient,
    generation: Option<crate::plan::MetricsGeneration>,
) -> Addr<MetricsActor> {
    MetricsActor::new(prometheus, generation).start()
}

/// Starts every actor once.
pub fn start(deps: Deps) -> Actors {
    let progress: Progress = Default::default();
    let evictors = EvictorPool::start(
        deps.client.clone(),
        progress.clone(),
        deps.eviction_rate,
        deps.eviction_burst,
        4,
    );
    let notifier = NotifierActor::new(notifier::NotifierConfig::new(deps.slack)).start();
    let metrics = deps
        .prometheus
        .map(|p| start_metrics(p, deps.karpenter_metrics));
    let recorder = crate::k8s::events::recorder(deps.client.clone(), &deps.identity.holder);
    let planner = PlannerActor::new(
        deps.client,
        planner::RunDeps {
            evictors,
            progress: progress.clone(),
            recorder,
            notifier: notifier.clone(),
            cluster: deps.cluster,
            identity: deps.identity,
            fault: deps.fault,
            lease: deps.lease,
        },
    )
    .start();
    Actors {
        planner,
        metrics,
        notifier,
        progress,
    }
}
