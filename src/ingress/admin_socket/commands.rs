//! What each admin request does. Read-only requests (status, plans, dry
//! runs) are answered by any replica; the others act only on the leader.

use serde_json::json;
use tracing::info;

use super::protocol::Request;
use crate::alerts::rules::Action;
use crate::drain::StopReason;
use crate::error::{Error, Result};
use crate::ingress::intake::{mailbox, Daemon};
use crate::k8s::lease::Role;
use crate::messages::{CancelNode, CancelRun, PlanWave, SetPaused, Target};

pub(super) fn available(daemon: &Daemon) -> Result<()> {
    match daemon.unavailable() {
        None => Ok(()),
        Some(why) => Err(Error::Usage(format!("not now: {why}"))),
    }
}

/// This replica's role, for the answer of a request that acts; an error on
/// a follower: pause, resume and cancel act on the leader's intake and runs,
/// and a follower answering "ok" would have done nothing.
fn on_the_leader(daemon: &Daemon) -> Result<serde_json::Value> {
    match &*daemon.role.borrow() {
        Role::Leader => Ok(json!({ "leader": true })),
        Role::Follower { holder } => Err(Error::Usage(format!(
            "not the leader (the lease is held by {}): send this to the leader's admin socket",
            holder.as_deref().unwrap_or("nobody yet")
        ))),
    }
}

pub async fn execute(request: Request, daemon: &Daemon, uid: u32) -> Result<serde_json::Value> {
    let by = format!("the admin socket (uid {uid})");
    info!(cmd = request.name(), uid, "admin request");
    let planner = &daemon.actors.planner;
    match request {
        Request::Status => crate::ingress::http::status_json(daemon).await,
        Request::Plan { nodepool } => {
            let pool = nodepool.unwrap_or_else(|| daemon.nodepool.clone());
            daemon
                .drain_nodepool(&pool, daemon.settings(None), by, true)
                .await
        }
        Request::DrainNode {
            node,
            dry_run: true,
        } => {
            let plan = planner
                .send(PlanWave {
                    nodepool: daemon.nodepool.clone(),
                    rates: None,
                    target_allocate_rate: 99,
                    max_nodes: None,
                    nodes: vec![node],
                    force: false,
                    list_named_pods: true,
                })
                .await
                .map_err(mailbox)??;
            Ok(json!({ "plan": plan }))
        }
        Request::DrainNode {
            node,
            dry_run: false,
        } => {
            available(daemon)?;
            let admit = daemon.admit(
                Action::DrainNode,
                Target::Node(node),
                daemon.settings(None),
                by,
                None,
            );
            let admitted = planner.send(admit).await.map_err(mailbox)??;
            Ok(json!({ "admitted": admitted }))
        }
        Request::DrainNodepool { nodepool, dry_run } => {
            if !dry_run {
                available(daemon)?;
            }
            daemon
                .drain_nodepool(&nodepool, daemon.settings(None), by, dry_run)
                .await
        }
        Request::Rotate { nodepool, dry_run } => {
            super::rotation::rotate(daemon, &nodepool, dry_run, by).await
        }
        Request::Rotation { nodepool, action } => {
            let role = on_the_leader(daemon)?;
            let mut answer = daemon.rotations.control(&nodepool, action).await?;
            answer["role"] = role;
            Ok(answer)
        }
        Request::Pause | Request::Resume => {
            let role = on_the_leader(daemon)?;
            let paused = matches!(request, Request::Pause);
            daemon
                .paused
                .store(paused, std::sync::atomic::Ordering::SeqCst);
            planner.send(SetPaused(paused)).await.map_err(mailbox)?;
            Ok(json!({ "paused": paused, "role": role }))
        }
        Request::Cancel { run: Some(run), .. } => {
            let role = on_the_leader(daemon)?;
            let told = planner
                .send(CancelRun {
                    run_id: Some(run),
                    reason: StopReason::Cancelled { by },
                })
                .await
                .map_err(mailbox)?;
            Ok(json!({ "nodes_stopped": told, "role": role }))
        }
        Request::Cancel {
            node: Some(node), ..
        } => {
            let role = on_the_leader(daemon)?;
            let stopped = planner
                .send(CancelNode {
                    node,
                    reason: StopReason::Cancelled { by },
                })
                .await
                .map_err(mailbox)?;
            Ok(json!({ "stopped": stopped, "role": role }))
        }
        Request::Cancel { .. } => Err(Error::Usage("cancel needs run or node".into())),
    }
}
