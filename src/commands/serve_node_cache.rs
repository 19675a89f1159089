//! The daemon's watched Node cache (`k8s::node_cache`): started for the
//! NodePools the config names and handed to the planner; a config naming
//! other NodePools starts a new watch (the old one stops once no plan holds
//! it). It stops with the daemon.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::actors::planner::UseNodeCache;
use crate::actors::PlannerActor;
use crate::ingress::intake::Daemon;
use crate::k8s::node_cache::NodeCache;

/// How often the config's NodePools are compared with the watched ones.
const CHECK_EVERY: Duration = Duration::from_secs(10);

pub async fn keep(
    client: kube::Client,
    daemon: Arc<Daemon>,
    planner: Addr<PlannerActor>,
    stop: CancellationToken,
) {
    let mut current: Option<Arc<NodeCache>> = None;
    loop {
        let pools = daemon.nodepools();
        if current.as_ref().map(|c| c.pools()) != Some(pools.as_slice()) {
            info!(
                nodepools = pools.join(",").as_str(),
                "watching the managed NodePools' nodes"
            );
            let cache = Arc::new(NodeCache::start(client.clone(), pools));
            planner.do_send(UseNodeCache(cache.clone()));
            current = Some(cache);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}
