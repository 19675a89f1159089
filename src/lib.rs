//! node-drain: safely drains and replaces the worker nodes of a Karpenter NodePool.
//!
//! Where things are decided (pure, unit-tested):
//! - the allocate rate, the wave size and its caps: `plan`, `plan::wave`, `plan::budget`;
//! - which nodes a wave takes: `plan::candidates`;
//! - what happens to each pod: `pods::classify`.
//!
//! Where things are done: the actors in `actors`, driven by the commands in `commands`.

pub mod actors;
pub mod cli;
pub mod commands;
pub mod error;
pub mod evict;
pub mod karpenter;
pub mod kube_client;
pub mod messages;
pub mod node_state;
pub mod plan;
pub mod pods;
pub mod progress;
pub mod prometheus;
pub mod slack;
pub mod telemetry;
pub mod time;
pub mod units;

pub use error::{Error, Result};
