//! The queue's record on the Nodes (`drain::queued`): a request queued for
//! want of room is written on its node (through the fenced client: only the
//! leader writes), so that the next leader admits it again (`requeue`, from
//! what `recover` read). The record goes with the claim (one PATCH), or when
//! the request ends without a drain; a node whose run finished has its record
//! removed too (a record that landed after the claim).

use actix::{AsyncContext, Context, WrapFuture};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use tracing::{info, warn};

use super::PlannerActor;
use crate::drain::annotations::{queued_patch, unqueue_patch, RecordedSettings};
use crate::drain::queued::{fate, order, Fate, Found, NodeState, QueuedRecord};
use crate::k8s::nodes::{self, NodePatchError};
use crate::messages::{Admit, Requeue};

impl PlannerActor {
    /// Records `msg`, queued for `node`, on the node (once per node).
    pub(super) fn record_queued(&mut self, node: &str, msg: &Admit, ctx: &mut Context<Self>) {
        let Some(lease) = &self.deps.lease else {
            return;
        };
        if self.records.contains_key(node) {
            return;
        }
        let record = QueuedRecord::new(
            msg.action,
            &msg.trigger,
            chrono::Utc::now(),
            &self.deps.identity.holder,
            lease,
            RecordedSettings::of(&msg.settings),
        );
        let raw = record.to_value();
        self.records.insert(node.to_string(), raw.clone());
        let client = self.client.clone();
        let node = node.to_string();
        ctx.spawn(
            async move {
                let patch = Patch::Merge(queued_patch(&raw));
                match Api::<Node>::all(client)
                    .patch(&node, &PatchParams::default(), &patch)
                    .await
                {
                    Ok(written) => crate::k8s::nodes::record_write(&written),
                    Err(e) => warn!(node = node.as_str(), error = %e, "could not record the queued request on the node; it waits in this process only"),
                }
            }
            .into_actor(self),
        );
    }

    /// Removes the record of `node`'s queued request, if this process knows
    /// one (and only that one: a later record is left alone).
    pub(super) fn forget_queued(&mut self, node: &str, ctx: &mut Context<Self>) {
        let Some(raw) = self.records.remove(node) else {
            return;
        };
        let client = self.client.clone();
        let node = node.to_string();
        ctx.spawn(async move { unqueue(&client, &node, &raw).await }.into_actor(self));
    }

    /// Queues again, in order, the requests an earlier leader recorded and
    /// this process does not know yet (not waiting, not draining here).
    pub(super) fn requeue(&mut self, msg: Requeue, ctx: &mut Context<Self>) {
        for (found, admit) in msg.0 {
            let node = found.node.clone();
            if self.pending.iter().any(|p| p.0 == node) || self.unfinished_run_of(&node).is_some() {
                continue;
            }
            info!(
                node = node.as_str(),
                trigger = found.record.trigger.as_str(),
                queued_at = found.record.queued_at.as_str(),
                queued_by = found.record.holder.as_str(),
                "a queued request admitted again (recorded on the node by an earlier leader)"
            );
            self.records.insert(node.clone(), found.raw);
            self.pending.push_back((node, admit));
        }
        self.retry_pending(ctx);
    }
}

/// Removes a record if it is still `raw`; a record already gone (the claim
/// took it) or replaced is no error.
pub async fn unqueue(client: &Client, node: &str, raw: &str) {
    match nodes::patch(client, node, unqueue_patch(raw)).await {
        Ok(_) | Err(NodePatchError::NotOwned { .. } | NodePatchError::Gone(_)) => {}
        Err(e) => warn!(node, error = %e, "could not remove the queued request's record"),
    }
}

/// The queued records of this Lease on `listed` (`recover`'s nodes), oldest
/// first; obsolete ones (the node deleting, its NodePool no longer managed,
/// unreadable) are removed here.
pub async fn read_records(
    client: &Client,
    listed: &[ObjectMeta],
    lease: &str,
    managed: &[String],
) -> Vec<Found> {
    let mut found = Vec::new();
    for meta in listed {
        let Some(raw) = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::drain::annotations::QUEUED))
        else {
            continue;
        };
        let name = meta.name.clone().unwrap_or_default();
        let pool = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::k8s::karpenter::NODEPOOL_LABEL))
            .map_or("", String::as_str);
        let state = NodeState {
            deleting: meta.deletion_timestamp.is_some(),
            managed: managed.iter().any(|p| p == pool),
        };
        match fate(raw, lease, state) {
            Fate::Leave => {}
            Fate::Remove { why } => {
                info!(
                    node = name.as_str(),
                    why = why.as_str(),
                    "a queued request is obsolete; its record is removed"
                );
                unqueue(client, &name, raw).await;
            }
            Fate::Readmit(record) => found.push(Found {
                node: name,
                raw: raw.clone(),
                record,
            }),
        }
    }
    order(&mut found);
    found
}
