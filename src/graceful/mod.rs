//! Graceful eviction (seed 002, issue 16): an eviction of a managed pod by
//! the VPA updater is taken over by a mutating admission webhook and turned
//! into "replace first, then remove" — the ReplicaSet's replacement is Ready
//! before the pod leaves its Services, and the pod is deleted a grace period
//! after that. Not a finalizer: a finalizer keeps the API object, not the
//! containers (the kubelet sends SIGTERM at the deletionTimestamp).
//!
//! - decide (pure): `config` (the `graceful:` section), `admission` (the
//!   AdmissionReview in, the answer out), `record` (the pod's annotation and
//!   the patches between steps), `step` (the next step of one pod), `budget`
//!   (a PDB's refusal), `flight` (the drains a PDB counts), `view` (what is
//!   kept and read of a watched pod);
//! - do: `worker` (a task per pod, the leader's reconciler), `act` (one
//!   step's write, log, Event, metric), `admit` (the webhook's reads and
//!   writes), `cache` (the watched pods and PDBs), `facts` (the
//!   replacement, the Services), `start` (the server in `serve`); `tls` (the
//!   certificate, `caBundle`).

mod act;
pub mod admission;
mod admit;
pub mod budget;
mod cache;
pub mod config;
mod facts;
mod flight;
pub mod record;
pub mod reload;

pub mod start;
pub mod step;
pub mod tls;
pub mod view;
pub mod worker;

pub use config::GracefulConfig;
pub use worker::Graceful;
