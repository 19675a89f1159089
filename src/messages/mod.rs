//! Every message the actors exchange, by topic. A message says what is asked or
//! what happened; its `rtype` is the answer. Every front (the CLI, the daemon's
//! HTTP and admin socket, startup reconciliation) drives the actors with these.

mod admit;
mod evict;
mod notify;
mod plan;
mod run;

pub use admit::{Admit, Admitted, HandOver, Release, Requeue, SetPaused, Target};
pub use evict::RemovePod;
pub use notify::{FlushNotifications, GetNotifierStats, Notify};
pub use plan::{MeasureAllocateRates, PlanWave};
pub use run::{
    AwaitRun, CancelNode, CancelRun, GetStatus, NodeDrainFinished, NodeStatus, RecoverNodes,
    Recovered, RunId, RunReport, RunStatus, StartRun, StatusSnapshot,
};
