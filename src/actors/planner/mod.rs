//! PlannerActor: plans waves (`plan`) and owns drain runs (`runs`): it admits a
//! run, starts one supervised NodeDrainActor per node, keeps the run's
//! heartbeat on every node it holds, tells Slack, and answers who awaits the
//! run, cancels it, or asks for status. `reconcile` restores the nodes of runs
//! that died. Every front (CLI, daemon, admin socket) sends it messages.

mod actor;
mod admission;
mod handlers;
mod notices;
mod own_node;
pub mod plan;
pub mod reconcile;
mod run_id;
mod runs;

use std::collections::HashMap;

use actix::Addr;
use kube::runtime::events::Recorder;
use kube::Client;

use crate::actors::evictor::EvictorPool;
use crate::actors::node_drain::Fault;
use crate::actors::NotifierActor;
use crate::drain::progress::Progress;
use crate::drain::PodRef;
use crate::messages::RunId;
pub use plan::node_facts;
use runs::Run;

/// Who this process is, for records on Nodes and to never evict itself.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// Pod or host name, recorded as the holder of the nodes a run claims.
    pub holder: String,
    /// node-drain's own pod (downward API `POD_NAMESPACE`/`POD_NAME`).
    pub own_pod: Option<PodRef>,
    /// The node it runs on (downward API `NODE_NAME`).
    pub own_node: Option<String>,
}

impl Identity {
    /// From the downward API variables, or the host name outside a pod.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let own_pod = match (var("POD_NAMESPACE"), var("POD_NAME")) {
            (Some(namespace), Some(name)) => Some(PodRef { namespace, name }),
            _ => None,
        };
        Self {
            holder: var("POD_NAME")
                .or_else(|| var("HOSTNAME"))
                .unwrap_or_else(|| "cli".into()),
            own_pod,
            own_node: var("NODE_NAME"),
        }
    }
}

/// What runs need besides the client; shared by every run of the process.
pub struct RunDeps {
    pub evictors: EvictorPool,
    pub progress: Progress,
    pub recorder: Recorder,
    pub notifier: Addr<NotifierActor>,
    pub cluster: String,
    pub identity: Identity,
    pub fault: Option<Fault>,
}

pub struct PlannerActor {
    /// The process's one API client.
    client: Client,
    deps: RunDeps,
    /// Runs under way and runs finished (kept for `AwaitRun` and status).
    runs: HashMap<RunId, Run>,
    /// The admin socket's pause: new requests are refused, runs go on.
    paused: bool,
    /// Requests waiting for room in their NodePool (node, request).
    pending: std::collections::VecDeque<(String, crate::messages::Admit)>,
}

impl PlannerActor {
    pub fn new(client: Client, deps: RunDeps) -> Self {
        Self {
            client,
            deps,
            runs: HashMap::new(),
            paused: false,
            pending: Default::default(),
        }
    }
}

impl PlannerActor {
    /// The run of this process draining `node` now.
    fn unfinished_run_of(&self, node: &str) -> Option<RunId> {
        self.runs
            .iter()
            .find(|(_, r)| r.report.is_none() && r.nodes.iter().any(|n| n == node))
            .map(|(id, _)| id.clone())
    }

    /// The nodes of `nodepool` this process is draining now.
    fn unfinished_nodes_of(&self, nodepool: &str) -> Vec<String> {
        self.runs
            .values()
            .filter(|r| r.report.is_none() && r.nodepool == nodepool)
            .flat_map(|r| {
                r.nodes
                    .iter()
                    .filter(|n| !r.results.iter().any(|done| &done.node == *n))
                    .cloned()
            })
            .collect()
    }
}
