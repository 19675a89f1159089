//! The actors (SPEC §7). Each has a folder: `mod.rs` the struct and its logic,
//! `actor.rs` only its lifecycle, `handlers.rs` only its message handlers.

pub mod metrics;
pub mod planner;

pub use metrics::MetricsActor;
pub use planner::PlannerActor;
