//! The daemon's watched Node cache (issue 17): one watch of the managed
//! NodePools' Nodes (`karpenter.sh/nodepool in (...)`, a paginated initial
//! LIST, then the events), so a plan or an admitted alert reads them from
//! memory instead of LISTing the NodePool's every Node (a ~5 MB list at 1,000
//! nodes). The CLI does not use it: it LISTs once per command.
//!
//! Each Node is kept slim: its metadata without `managedFields` (every label
//! and annotation stays: the records live there), `spec.unschedulable`,
//! `spec.taints`, `spec.providerID`, `status.conditions` and
//! `status.addresses` (what `node_facts`, `nodes::ready`, the NodeClaim owner,
//! `NodeIndex` and rotation's checks read); images, nodeInfo, capacity and
//! allocatable are dropped.
//!
//! Freshness, safety first:
//! - It answers only when synced (an initial list complete) and healthy (no
//!   watcher error since that list). After an error the watch starts again
//!   from a new list; meanwhile, and before the first list, the caller LISTs
//!   as before (`of_nodepools`; the reason is logged once).
//! - Read-your-writes: every write node-drain makes to a Node records the
//!   resourceVersion the API server answered, by NodePool
//!   (`nodes::record_write`). Before answering for some NodePools the cache
//!   waits until it has seen an event at or after the highest of theirs (at
//!   most `WAIT_FOR_WRITES`, then the caller LISTs). resourceVersions are etcd
//!   revisions, and a watch delivers events in their order.
//! - Others' writes (Karpenter's disrupted taint, a person's cordon, a
//!   deletion) arrive through the watch within milliseconds; a plan from a
//!   view that is that much behind is no less safe than one from a LIST a
//!   moment old: the claim's JSON Patch `test` operations and
//!   resourceVersion precondition remain the authority, so a stale view can
//!   never claim a node someone else holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::karpenter::NODEPOOL_LABEL;
use super::nodes::{self, NodePools};

/// How long an answer waits for the events of node-drain's own writes.
pub const WAIT_FOR_WRITES: Duration = Duration::from_secs(2);
/// The initial list's page size (the watcher's default).
const PAGE: u32 = 500;
/// Restarting the watch after an error: first wait, longest wait.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Why the cache did not answer (the caller LISTs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The initial list is not complete yet.
    NotSynced,
    /// The watch failed since its last complete list; a new one is under way.
    Unhealthy,
    /// The events of node-drain's own last write did not arrive in time.
    BehindWrites,
    /// A NodePool the cache does not watch.
    Unwatched,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::NotSynced => "not-synced",
            Fallback::Unhealthy => "unhealthy",
            Fallback::BehindWrites => "behind-writes",
            Fallback::Unwatched => "unwatched-nodepool",
        }
    }
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, Node>,
    /// The list under way (Init .. InitDone).
    listing: Option<HashMap<String, Node>>,
    synced: bool,
    healthy: bool,
    /// The last fallback logged (each said once, until the cache answers).
    said: Option<Fallback>,
}

struct Shared {
    pools: Vec<String>,
    state: Mutex<State>,
    /// The highest resourceVersion seen (an event, or a listed Node).
    seen: tokio::sync::watch::Sender<u64>,
}

/// The watched Nodes of the managed NodePools; the watch stops when the
/// cache is dropped (or `stop`).
pub struct NodeCache {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for NodeCache {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl NodeCache {
    /// Starts watching the Nodes of `pools` (none: nothing to watch, the
    /// cache answers only for no NodePool).
    pub fn start(client: Client, pools: Vec<String>) -> Self {
        let (seen, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            pools,
            state: Mutex::new(State::default()),
            seen,
        });
        let stop = CancellationToken::new();
        if !shared.pools.is_empty() {
            tokio::spawn(watch(client, shared.clone(), stop.clone()));
        }
        Self { shared, stop }
    }

    /// The NodePools watched.
    pub fn pools(&self) -> &[String] {
        &self.shared.pools
    }

    /// The number of Nodes held.
    pub fn len(&self) -> usize {
        self.shared.lock().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an initial list is complete and no error came since.
    pub fn ready(&self) -> bool {
        let state = self.shared.lock();
        state.synced && state.healthy
    }

    /// The Nodes of `pools`, once the cache is synced, healthy and has seen
    /// node-drain's own writes to them; else why not.
    pub async fn nodes(&self, pools: &[String]) -> Result<Vec<Node>, Fallback> {
        if pools.iter().any(|p| !self.shared.pools.contains(p)) {
            return Err(Fallback::Unwatched);
        }
        self.check()?;
        let mark = nodes::written(pools);
        let mut seen = self.shared.seen.subscribe();
        // The borrow `wait_for` answers (a read lock on the value) ends here:
        // held on, it would block the watch raising the value.
        let caught_up = matches!(
            tokio::time::timeout(WAIT_FOR_WRITES, seen.wait_for(|v| *v >= mark)).await,
            Ok(Ok(_))
        );
        if !caught_up {
            return Err(Fallback::BehindWrites);
        }
        let mut state = self.shared.lock();
        if !(state.synced && state.healthy) {
            return Err(Fallback::Unhealthy);
        }
        if state.said.take().is_some() {
            info!(nodes = state.nodes.len(), "the node cache answers again");
        }
        Ok(state
            .nodes
            .values()
            .filter(|n| in_pools(n, pools))
            .cloned()
            .collect())
    }

    fn check(&self) -> Result<(), Fallback> {
        let state = self.shared.lock();
        match (state.synced, state.healthy) {
            (false, _) => Err(Fallback::NotSynced),
            (_, false) => Err(Fallback::Unhealthy),
            _ => Ok(()),
        }
    }

    /// Logs a fallback once (until the cache answers again).
    fn said(&self, why: Fallback) {
        let mut state = self.shared.lock();
        if state.said != Some(why) {
            state.said = Some(why);
            info!(
                reason = why.as_str(),
                "the node cache cannot answer; listing the nodes from the API server"
            );
        }
    }
}

/// The Nodes of `pools`: from the cache when there is one and it can answer,
/// else one LIST (as the CLI always does).
pub async fn of_nodepools(
    cache: Option<&NodeCache>,
    client: &Client,
    pools: &[String],
) -> Result<Vec<Node>, (String, kube::Error)> {
    if let Some(cache) = cache {
        match cache.nodes(pools).await {
            Ok(found) => return Ok(found),
            Err(why) => cache.said(why),
        }
    }
    nodes::of_nodepools(client, NodePools::Named(pools)).await
}

/// The metadata of the Nodes of `pools`: from the cache when there is one,
/// the NodePools are named and it can answer, else one metadata-only LIST.
pub async fn metadata_of_nodepools(
    cache: Option<&NodeCache>,
    client: &Client,
    pools: NodePools<'_>,
) -> Result<Vec<ObjectMeta>, (String, kube::Error)> {
    if let (Some(cache), NodePools::Named(named)) = (cache, &pools) {
        match cache.nodes(named).await {
            Ok(found) => return Ok(found.into_iter().map(|n| n.metadata).collect()),
            Err(why) => cache.said(why),
        }
    }
    nodes::metadata_of_nodepools(client, pools).await
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Raises the highest resourceVersion seen (waking who waits for it).
    fn saw_version(&self, v: u64) {
        self.seen.send_if_modified(|seen| {
            let newer = v > *seen;
            *seen = (*seen).max(v);
            newer
        });
    }

    /// Applies one event; the highest resourceVersion seen is raised after
    /// the Node is stored (and the lock released), so who waits for it finds
    /// the Node.
    fn apply(&self, event: Event<Node>) {
        let mut state = self.lock();
        let version = match event {
            Event::Init => {
                state.listing = Some(HashMap::new());
                None
            }
            Event::InitApply(node) => {
                let node = slim(node);
                if let (Some(listing), Some(name)) =
                    (&mut state.listing, node.metadata.name.clone())
                {
                    listing.insert(name, node);
                }
                None
            }
            Event::InitDone => {
                state.nodes = state.listing.take().unwrap_or_default();
                state.synced = true;
                state.healthy = true;
                info!(nodes = state.nodes.len(), "the node cache is synced");
                state
                    .nodes
                    .values()
                    .filter_map(nodes::resource_version)
                    .max()
            }
            Event::Apply(node) => {
                let node = slim(node);
                let version = nodes::resource_version(&node);
                if let Some(name) = node.metadata.name.clone() {
                    state.nodes.insert(name, node);
                }
                version
            }
            Event::Delete(node) => {
                if let Some(name) = &node.metadata.name {
                    state.nodes.remove(name);
                }
                nodes::resource_version(&node)
            }
        };
        drop(state);
        if let Some(version) = version {
            self.saw_version(version);
        }
    }

    fn failed(&self) {
        let mut state = self.lock();
        state.healthy = false;
        state.listing = None;
    }
}

/// Watches until `stop`; after an error, starts again from a new list.
async fn watch(client: Client, shared: Arc<Shared>, stop: CancellationToken) {
    let selector = format!("{NODEPOOL_LABEL} in ({})", shared.pools.join(","));
    let config = watcher::Config::default().labels(&selector).page_size(PAGE);
    let mut backoff = BACKOFF.0;
    loop {
        let mut events = watcher::watcher(Api::<Node>::all(client.clone()), config.clone()).boxed();
        let error = loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = events.next() => next,
            };
            match next {
                Some(Ok(event)) => {
                    if matches!(event, Event::InitDone) {
                        backoff = BACKOFF.0;
                    }
                    shared.apply(event);
                }
                Some(Err(e)) => break e.to_string(),
                None => break "the watch ended".to_string(),
            }
        };
        shared.failed();
        warn!(error = error.as_str(), retryIn = ?backoff, "the node watch failed; the cache answers again after a new list");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

fn in_pools(node: &Node, pools: &[String]) -> bool {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NODEPOOL_LABEL))
        .is_some_and(|p| pools.contains(p))
}

/// What node-drain reads of a Node, nothing more (see the module's doc).
pub fn slim(node: Node) -> Node {
    let Node {
        mut metadata,
        spec,
        status,
    } = node;
    metadata.managed_fields = None;
    Node {
        metadata,
        spec: spec.map(|s| NodeSpec {
            unschedulable: s.unschedulable,
            taints: s.taints,
            provider_id: s.provider_id,
            ..Default::default()
        }),
        status: status.map(|s| NodeStatus {
            conditions: s.conditions,
            addresses: s.addresses,
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slim_keeps_what_node_drain_reads_and_drops_the_rest() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n", "labels": {"a": "1"}, "annotations": {"r": "x"},
                         "managedFields": [{"manager": "kubelet"}]},
            "spec": {"unschedulable": true, "providerID": "kwok://n",
                     "taints": [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}],
                     "podCIDR": "10.0.0.0/24"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "images": [{"names": ["big"]}], "capacity": {"cpu": "4"}}
        }))
        .unwrap();
        let slim = serde_json::to_value(slim(node)).unwrap();
        assert_eq!(
            slim,
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n", "labels": {"a": "1"}, "annotations": {"r": "x"}},
                "spec": {"unschedulable": true, "providerID": "kwok://n",
                         "taints": [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                           "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}
            })
        );
    }
}
