//! Requests from the daemon's fronts (an alert, the admin socket) that the
//! PlannerActor admits: now, later (the NodePool's budget and the cap are
//! full), or never (with the reason).

use std::collections::BTreeMap;

use actix::Message;
use serde::Serialize;

use crate::alerts::rules::Action;
use crate::drain::DrainSettings;
use crate::error::Result;
use crate::messages::RunId;

#[derive(Debug, Clone)]
pub enum Target {
    /// A node by name (the admin socket).
    Node(String),
    /// The node an alert's labels name (resolved against the cluster's nodes).
    Labels(BTreeMap<String, String>),
}

/// Drain or cordon one node.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Admitted>")]
pub struct Admit {
    pub action: Action,
    pub target: Target,
    pub settings: DrainSettings,
    /// What asked, for Slack, Events and status.
    pub trigger: String,
    /// The NodePools the daemon manages now.
    pub nodepools: Vec<String>,
    /// Never more of a NodePool's nodes in flight at once than this.
    pub max_nodes: usize,
    /// Forgets the alert that asked (its dedupe key) when the request ends
    /// without a drain and may succeed later, so Alertmanager's next send
    /// counts. None: nothing to forget (the admin socket).
    pub release: Option<Release>,
}

/// Lets an alert be seen again (see `Admit::release`).
#[derive(Clone)]
pub struct Release(std::sync::Arc<dyn Fn() + Send + Sync>);

impl Release {
    pub fn new(forget: impl Fn() + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(forget))
    }

    pub fn forget(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Release")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "admitted", rename_all = "kebab-case")]
pub enum Admitted {
    Started {
        run_id: RunId,
        node: String,
    },
    Cordoned {
        node: String,
    },
    /// Waiting for room in the NodePool's budget or the cap.
    Queued {
        node: String,
        reason: String,
    },
    Ignored {
        reason: String,
        metric: String,
    },
    /// The node holds pods that block a drain (`namespace/name (why)`, as the
    /// plan and the drain name them): it was not claimed, nothing changed.
    /// `repeat`: these blockers were said already, not said again.
    Blocked {
        node: String,
        blockers: Vec<String>,
        repeat: bool,
    },
}

impl Admitted {
    /// Whether the alert that asked is settled: a drain started or is queued,
    /// or it can never apply (no such node, outside the managed NodePools, no
    /// node named). Anything else (a node held by another run, do-not-disrupt,
    /// blocking pods, already draining here, an error) may succeed on the
    /// next send: a blocker goes (its do-not-disrupt duration elapses, the
    /// bare pod ends), and the next send must drain.
    pub fn settles_alert(&self) -> bool {
        match self {
            Admitted::Started { .. } | Admitted::Cordoned { .. } | Admitted::Queued { .. } => true,
            Admitted::Blocked { .. } => false,
            Admitted::Ignored { metric, .. } => matches!(
                metric.as_str(),
                "unknown-node" | "unmanaged-node" | "no-node-label" | "ambiguous-ip"
            ),
        }
    }
}

/// Stop or restart intake (the admin socket's pause/resume); runs under way go on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetPaused(pub bool);

/// SIGTERM: every run stops where it is and leaves its nodes recorded as
/// orphaned, so the next leader resumes them at once. Answers the nodes.
#[derive(Debug, Message)]
#[rtype(result = "Vec<String>")]
pub struct HandOver;

/// Requests an earlier leader queued (see `Recovered::queued`), oldest first:
/// each waits in the planner's queue as if it had just been queued here.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Requeue(pub Vec<(crate::drain::queued::Found, Admit)>);
