//! Rotating a whole NodePool: waves until every node created before the
//! request has been replaced, capacity first. This is the "do" of a rotation,
//! driven by any front (the CLI's `drain --rotate` today; the daemon's planner
//! later): each wave is sized and chosen by the existing planner (`PlanWave`)
//! and drained by a run of the PlannerActor (`StartRun`); the decisions are
//! `plan::rotation`'s. The progress is recorded on the NodePool (`record`).
//!
//! - `engine`: the wave loop; `preflight`: what `--dry-run` prints;
//! - `placeholder` (what), `reservation` (when one is stuck) and `capacity` (the IO): capacity
//!   first; `settle`: the wait between waves;
//! - `survey`: what the wave's nodes hold; `record`: the NodePool annotation;
//! - `gate`: what holds the next wave (pause, cancel, windows); `daemon`: the daemon's running rotations.

pub mod capacity;
pub mod daemon;
pub mod engine;
pub mod gate;
pub mod placeholder;
pub mod preflight;
pub mod record;
mod report;
pub mod reservation;
pub mod settle;
pub mod survey;

use std::time::Duration;

use actix::Addr;
use kube::Client;

use crate::actors::{MetricsActor, NotifierActor, PlannerActor};
use crate::drain::DrainSettings;

pub use engine::{rotate, RotationEvent};
pub use gate::{Gate, WaveGate};

/// The actors and client a rotation drives.
#[derive(Clone)]
pub struct RotationDeps {
    pub client: Client,
    pub planner: Addr<PlannerActor>,
    /// None only in tests without Prometheus: then every wave is sized by the budget alone.
    pub metrics: Option<Addr<MetricsActor>>,
    pub notifier: Addr<NotifierActor>,
    /// Shown in notifications.
    pub cluster: String,
}

/// How a rotation runs.
#[derive(Debug, Clone)]
pub struct RotationSettings {
    pub nodepool: String,
    pub target_allocate_rate: u32,
    pub max_nodes: Option<usize>,
    /// How each node is drained.
    pub drain: DrainSettings,
    /// Reserve each wave's replacement capacity before cordoning it.
    pub capacity_first: bool,
    /// How long placeholders may take to be on Ready nodes before the fallback.
    pub capacity_timeout: Duration,
    pub placeholder_namespace: String,
    pub placeholder_image: String,
    /// How long a wave may take to settle (nodes gone, pods running again).
    pub settle_timeout: Duration,
    /// How long to wait for room for the next wave (budget, allocate rate).
    pub stall_timeout: Duration,
    /// What asked for the rotation (Slack, run triggers).
    pub trigger: String,
    /// Asked before each wave: pause, cancel, maintenance windows (the CLI's: always open).
    pub gate: Gate,
}
