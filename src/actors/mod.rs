//! The actors (SPEC §7). Each has a folder: `mod.rs` the struct and its logic,
//! `actor.rs` only its lifecycle, `handlers.rs` only its message handlers.

pub mod evictor;
pub mod metrics;
pub mod node_drain;
pub mod notifier;
pub mod planner;

pub use evictor::{EvictorPool, PodEvictorActor};
pub use metrics::MetricsActor;
pub use node_drain::NodeDrainActor;
pub use notifier::NotifierActor;
pub use planner::PlannerActor;
