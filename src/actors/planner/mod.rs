//! PlannerActor: plans waves (`plan`) and owns drain runs (`runs`): it admits a
//! run, starts one supervised NodeDrainActor per node, keeps the run's
//! heartbeat on every node it holds, tells Slack, and answers who awaits the
//! run, cancels it, or asks for status. `reconcile` restores the nodes of runs
//! that died. Every front (CLI, daemon, admin socket) sends it messages.

mod actor;
mod admission;
mod blocked;
mod handlers;
mod notices;
mod own_node;
pub mod plan;
mod queue;
pub mod reconcile;
mod run_id;
mod runs;

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use kube::runtime::events::Recorder;
use kube::Client;

use crate::actors::evictor::EvictorPool;
use crate::actors::node_drain::Fault;
use crate::actors::NotifierActor;
use crate::drain::progress::Progress;
pub use crate::identity::Identity;
use crate::k8s::node_cache::NodeCache;
use crate::messages::RunId;
pub use plan::node_facts;
use runs::Run;

/// What runs need besides the client; shared by every run of the process.
pub struct RunDeps {
    pub evictors: EvictorPool,
    pub progress: Progress,
    pub recorder: Recorder,
    pub notifier: Addr<NotifierActor>,
    pub cluster: String,
    pub identity: Identity,
    pub fault: Option<Fault>,
    /// The daemon's Lease (`namespace/name`); None for the CLI.
    pub lease: Option<String>,
}

pub struct PlannerActor {
    /// The process's one API client.
    client: Client,
    deps: RunDeps,
    /// Runs under way and runs finished (kept for `AwaitRun` and status).
    runs: HashMap<RunId, Run>,
    /// The admin socket's pause: new requests are refused, runs go on.
    paused: bool,
    /// Nodes found blocked at admission: each said once per set of blockers.
    blocked_nodes: crate::alerts::dedupe::BlockedNodes,
    /// Requests waiting for room in their NodePool (node, request).
    pending: std::collections::VecDeque<(String, crate::messages::Admit)>,
    /// A round of `retry_pending` is under way (one request at a time).
    retrying: bool,
    /// The queued requests' records on their nodes (node → the value), for
    /// their removal (`queue`).
    records: HashMap<String, String>,
    /// The alerts of later requests merged into a waiting one (node → their
    /// releases): freed if the waiting request never runs.
    merged: HashMap<String, Vec<crate::messages::Release>>,
    /// The daemon's watched Nodes of its NodePools (`UseNodeCache`); None:
    /// every plan and admission LISTs them (the CLI).
    node_cache: Option<Arc<NodeCache>>,
}

/// The daemon's Node cache, for plans and admission from now on.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct UseNodeCache(pub Arc<NodeCache>);

impl actix::Handler<UseNodeCache> for PlannerActor {
    type Result = ();

    fn handle(&mut self, msg: UseNodeCache, _ctx: &mut Self::Context) {
        self.node_cache = Some(msg.0);
    }
}

impl PlannerActor {
    pub fn new(client: Client, deps: RunDeps) -> Self {
        Self {
            client,
            deps,
            runs: HashMap::new(),
            paused: false,
            blocked_nodes: crate::alerts::dedupe::BlockedNodes::new(
                blocked::SAY_AGAIN_AFTER,
                blocked::REMEMBERED,
            ),
            pending: Default::default(),
            retrying: false,
            records: HashMap::new(),
            merged: HashMap::new(),
            node_cache: None,
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
