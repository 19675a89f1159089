//! Between waves: the next wave starts only when the previous one has settled —
//! its nodes are gone (retired), every node of the NodePool is Ready, and no
//! pod created since the wave began in the namespaces it evicted from is still
//! Pending (the evicted pods' replacements run again).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::Client;
use tokio_util::sync::CancellationToken;

use super::placeholder::PLACEHOLDER_LABEL;
use crate::error::{Error, Result};

/// What a settled wave is waited for.
#[derive(Debug, Clone)]
pub struct SettleCheck<'a> {
    pub nodepool: &'a str,
    /// The wave's nodes; they must be gone unless they were not retired.
    pub nodes: &'a [String],
    pub wait_gone: bool,
    pub namespaces: &'a BTreeSet<String>,
    pub since: DateTime<Utc>,
}

/// Whether a pod is a replacement still waiting: created since `since`, not
/// being deleted, not a placeholder, and Pending (or not yet bound).
pub fn still_pending(pod: &Pod, since: DateTime<Utc>) -> bool {
    let meta = &pod.metadata;
    let created = meta
        .creation_timestamp
        .as_ref()
        .map(crate::time::to_utc)
        .unwrap_or(since);
    let placeholder = meta
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(PLACEHOLDER_LABEL));
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let unbound = pod.spec.as_ref().is_none_or(|s| s.node_name.is_none());
    created >= since - chrono::Duration::seconds(1)
        && meta.deletion_timestamp.is_none()
        && !placeholder
        && (phase == Some("Pending") || phase.is_none() || unbound)
}

/// One look: None when settled, else what is still awaited.
pub async fn check(client: &Client, c: &SettleCheck<'_>) -> Result<Option<String>> {
    let pool = crate::k8s::nodes::of_nodepool(client, c.nodepool)
        .await
        .map_err(|e| Error::kube(format!("list nodes of NodePool {}", c.nodepool), e))?;
    let names: BTreeSet<String> = pool
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    if c.wait_gone {
        let left: Vec<&String> = c.nodes.iter().filter(|n| names.contains(*n)).collect();
        if !left.is_empty() {
            return Ok(Some(format!("wave nodes not gone yet: {left:?}")));
        }
    }
    let not_ready: Vec<String> = pool
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none() && !crate::k8s::nodes::ready(n))
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    if !not_ready.is_empty() {
        return Ok(Some(format!("nodes not Ready yet: {not_ready:?}")));
    }
    for ns in c.namespaces {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let listed = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::kube(format!("list pods of namespace {ns}"), e))?
            .items;
        let pending: Vec<String> = listed
            .iter()
            .filter(|p| still_pending(p, c.since))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if !pending.is_empty() {
            return Ok(Some(format!("pods still Pending in {ns}: {pending:?}")));
        }
    }
    Ok(None)
}

/// Waits until the wave settled, at most `bound`; Err names what did not.
pub async fn wait(
    client: &Client,
    c: &SettleCheck<'_>,
    bound: Duration,
    cancel: &CancellationToken,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        // A transient failure (the API server restarting) is looked at again
        // until the bound, as something not settled yet.
        let seen = match check(client, c).await {
            Ok(None) => return Ok(()),
            Ok(Some(seen)) => seen,
            Err(Error::Kube { action, source }) if crate::k8s::transient(&source) => {
                format!("could not {action}: {source}")
            }
            Err(e) => return Err(e),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Usage(format!(
                "the wave did not settle within {}s: {seen} (check the NodePool's limits and Karpenter's logs)",
                bound.as_secs()
            )));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(Error::Usage("interrupted".into())),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(created: &str, phase: &str, node: Option<&str>, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "creationTimestamp": created, "labels": labels},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn only_new_pending_pods_that_are_not_placeholders_hold_the_next_wave() {
        let since: DateTime<Utc> = "2026-11-29T10:00:00Z".parse().unwrap();
        let new = "2026-11-29T10:00:05Z";
        let old = "2026-11-29T09:00:00Z";
        assert!(still_pending(&pod(new, "Pending", None, json!({})), since));
        assert!(still_pending(
            &pod(new, "Pending", Some("n"), json!({})),
            since
        ));
        assert!(!still_pending(
            &pod(new, "Running", Some("n"), json!({})),
            since
        ));
        assert!(!still_pending(&pod(old, "Pending", None, json!({})), since));
        assert!(!still_pending(
            &pod(new, "Pending", None, json!({PLACEHOLDER_LABEL: "pool"})),
            since
        ));
    }
}
