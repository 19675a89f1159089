//! Capacity first, the IO: the PriorityClass, the wave's label on its nodes,
//! the placeholders created, waited for (created again when one is stuck:
//! `reservation` decides), and deleted. What a placeholder is: `placeholder`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::placeholder::{
    self, PlaceholderSpec, PLACEHOLDER_RUN_LABEL, PRIORITY_CLASS, WAVE_LABEL,
};
use super::reservation::{self, Standing};
use super::{survey, RotationDeps, RotationSettings};
use crate::error::{Error, Result};
use crate::k8s::karpenter::NODEPOOL_LABEL;
use crate::messages::Notify;
use crate::plan::rotation::{CapacityOutcome, RotationRecord};
use crate::slack::{Notice, RotationNotice};

/// Capacity first for one wave: placeholders for its evictable pods, waited
/// for up to the bound; the fallback (recorded once) when they do not run.
pub(super) async fn reserve(
    deps: &RotationDeps,
    settings: &RotationSettings,
    rec: &mut RotationRecord,
    surveyed: &survey::Survey,
    run: &str,
    cancel: &CancellationToken,
) -> Result<CapacityOutcome> {
    if !settings.capacity_first {
        return Ok(CapacityOutcome::Off);
    }
    if surveyed.evictable.is_empty() {
        return Ok(CapacityOutcome::NotNeeded);
    }
    if let Some(reason) = &rec.capacity_fallback {
        return Ok(CapacityOutcome::Fallback {
            reason: reason.clone(),
        });
    }
    let client = &deps.client;
    ensure_priority_class(client).await?;
    let wave: Vec<String> = surveyed.hostnames.keys().cloned().collect();
    label_wave(client, &wave, Some(run)).await?;
    let spec = PlaceholderSpec {
        nodepool: &settings.nodepool,
        run_id: run,
        namespace: &settings.placeholder_namespace,
        image: &settings.placeholder_image,
        avoid_wave: true,
    };
    let pods: Vec<_> = placeholder::numbered(
        surveyed
            .evictable
            .iter()
            .map(|e| placeholder::placeholder_pod(&spec, &e.requests, &e.constraints))
            .collect(),
    );
    let count = create(client, &settings.placeholder_namespace, &pods).await?;
    info!(
        nodepool = settings.nodepool.as_str(),
        placeholders = count,
        "capacity first: placeholder pods created; waiting for them to run"
    );
    let waited = tokio::select! {
        w = wait_bound(client, &settings.placeholder_namespace, run, &pods, settings.capacity_timeout) => w?,
        _ = cancel.cancelled() => return Err(Error::Usage("interrupted while reserving capacity".into())),
    };
    match waited {
        None => Ok(CapacityOutcome::Reserved {
            placeholders: count,
        }),
        Some(reason) => {
            warn!(
                nodepool = settings.nodepool.as_str(),
                reason = reason.as_str(),
                "no capacity for the wave: falling back to plain waves"
            );
            delete(client, &placeholder::run_selector(run)).await?;
            rec.capacity_fallback = Some(reason.clone());
            deps.notifier
                .do_send(Notify(Notice::Rotation(RotationNotice::Wave {
                    cluster: deps.cluster.clone(),
                    nodepool: settings.nodepool.clone(),
                    number: rec.waves.len() + 1,
                    nodes: vec![],
                    capacity: format!("no capacity, falling back to plain waves: {reason}"),
                    skipped: vec![],
                })));
            Ok(CapacityOutcome::Fallback { reason })
        }
    }
}

/// Creates the PriorityClass when absent (an existing one is left as it is).
pub async fn ensure_priority_class(client: &Client) -> Result<()> {
    let api: Api<PriorityClass> = Api::all(client.clone());
    match api
        .create(&PostParams::default(), &placeholder::priority_class())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if crate::k8s::api_code(&e) == Some(409) => Ok(()),
        Err(e) => Err(Error::kube(
            format!("create PriorityClass {PRIORITY_CLASS}"),
            e,
        )),
    }
}

/// Creates the placeholders; answers how many.
pub async fn create(client: &Client, namespace: &str, pods: &[Pod]) -> Result<usize> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for pod in pods {
        api.create(&PostParams::default(), pod)
            .await
            .map_err(|e| Error::kube(format!("create a placeholder pod in {namespace}"), e))?;
    }
    Ok(pods.len())
}

/// Waits (at most `bound`) until every placeholder (`specs`, created with
/// `create`) is bound to a Ready node that can take the wave: the capacity
/// exists. A placeholder that is gone, parked unbound, or on a node that
/// cannot take the wave is created again (`reservation`). Answers None when
/// the capacity exists, else what is still missing (the fallback's reason).
pub async fn wait_bound(
    client: &Client,
    namespace: &str,
    run_id: &str,
    specs: &[Pod],
    bound: Duration,
) -> Result<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let nodes: Api<Node> = Api::all(client.clone());
    let params = ListParams::default().labels(&format!("{PLACEHOLDER_RUN_LABEL}={run_id}"));
    let expected = specs.len();
    let started = tokio::time::Instant::now();
    let deadline = started + bound;
    // Per index: since when it has stood as it does (not on a Ready node), and
    // how often it was created again.
    let mut stuck_since: Vec<Option<tokio::time::Instant>> = vec![None; expected];
    let mut recreated = vec![0usize; expected];
    loop {
        // A transient failure (the API server restarting) is looked at again
        // until the bound: the reservation outlives a short outage.
        let (listed, seen) = match observe(&pods, &nodes, &params).await {
            Ok(seen) => seen,
            Err(e) if crate::k8s::transient(&e) && tokio::time::Instant::now() < deadline => {
                warn!(error = %e, "capacity first: could not look at the placeholders; looking again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(Error::kube("list placeholder pods and their nodes", e)),
        };
        let live = reservation::live_by_index(&listed, expected);
        let standings: Vec<Standing> = live
            .iter()
            .map(|p| reservation::standing(*p, &seen))
            .collect();
        let on_ready = standings
            .iter()
            .filter(|s| **s == Standing::OnReadyNode)
            .count();
        if on_ready >= expected {
            return Ok(None);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let stuck: Vec<String> = standings
                .iter()
                .enumerate()
                .filter(|(_, s)| **s != Standing::OnReadyNode)
                .map(|(i, s)| {
                    format!(
                        "placeholder {i} {} (created again {} times)",
                        s.describe(),
                        recreated[i]
                    )
                })
                .collect();
            return Ok(Some(format!(
                "{on_ready} of {expected} placeholder pods on a Ready node after {}s (a NodePool limit, or no instance type fits?): {}",
                bound.as_secs(),
                stuck.join("; ")
            )));
        }
        for (index, standing) in standings.iter().enumerate() {
            if *standing == Standing::OnReadyNode {
                stuck_since[index] = None;
                continue;
            }
            let since = *stuck_since[index].get_or_insert(now);
            if !reservation::recreate(standing, now - since) {
                continue;
            }
            let Some(spec) = specs.get(index) else {
                continue;
            };
            info!(
                placeholder = index,
                standing = standing.describe().as_str(),
                "capacity first: creating a placeholder again"
            );
            let name = live[index].and_then(|p| p.metadata.name.as_deref());
            match recreate(&pods, name, spec).await {
                Ok(()) => {
                    recreated[index] += 1;
                    stuck_since[index] = None;
                }
                Err(e) if crate::k8s::transient(&e) => {
                    warn!(error = %e, placeholder = index, "could not create a placeholder again; trying again");
                }
                Err(e) => return Err(Error::kube("create a placeholder pod again", e)),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The placeholders of a wave, and the nodes (by name) they are bound to.
async fn observe(
    pods: &Api<Pod>,
    nodes: &Api<Node>,
    params: &ListParams,
) -> kube::Result<(Vec<Pod>, BTreeMap<String, Node>)> {
    let listed = pods.list(params).await?.items;
    let mut seen = BTreeMap::new();
    let bound: std::collections::BTreeSet<String> = listed
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .collect();
    for name in bound {
        if let Some(node) = nodes.get_opt(&name).await? {
            seen.insert(name, node);
        }
    }
    Ok((listed, seen))
}

/// Deletes a stuck placeholder (`name`, when one is left) and creates it again.
async fn recreate(pods: &Api<Pod>, name: Option<&str>, spec: &Pod) -> kube::Result<()> {
    if let Some(name) = name {
        let zero = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        crate::k8s::gone_is_ok(pods.delete(name, &zero).await)?;
    }
    pods.create(&PostParams::default(), spec).await?;
    Ok(())
}

/// Deletes placeholders by label, in every namespace: one run's
/// (`node-drain.io/placeholder-run=<run>`) or every leftover of a NodePool.
pub async fn delete(client: &Client, selector: &str) -> Result<usize> {
    let api: Api<Pod> = Api::all(client.clone());
    let listed = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| Error::kube(format!("list placeholder pods ({selector})"), e))?
        .items;
    let zero = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for pod in &listed {
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            continue;
        };
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        crate::k8s::gone_is_ok(pods.delete(name, &zero).await)
            .map_err(|e| Error::kube(format!("delete placeholder pod {ns}/{name}"), e))?;
    }
    Ok(listed.len())
}

/// Labels (`Some(run)`) or unlabels (`None`) nodes with `WAVE_LABEL`; a node
/// already gone is skipped.
pub async fn label_wave(client: &Client, nodes: &[String], run: Option<&str>) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let body = json!({"metadata": {"labels": {WAVE_LABEL: run}}});
    for node in nodes {
        crate::k8s::gone_is_ok(
            api.patch(
                node,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&body),
            )
            .await
            .map(|written| crate::k8s::nodes::record_write(&written)),
        )
        .map_err(|e| Error::kube(format!("label node {node} {WAVE_LABEL}"), e))?;
    }
    Ok(())
}

/// Nodes of `nodepool` still labelled by a wave (a run that died): unlabelled.
pub async fn unlabel_leftovers(client: &Client, nodepool: &str) -> Result<usize> {
    let api: Api<Node> = Api::all(client.clone());
    let listed = api
        .list(&ListParams::default().labels(&format!("{NODEPOOL_LABEL}={nodepool},{WAVE_LABEL}")))
        .await
        .map_err(|e| Error::kube(format!("list nodes labelled {WAVE_LABEL}"), e))?
        .items;
    let names: Vec<String> = listed.into_iter().filter_map(|n| n.metadata.name).collect();
    label_wave(client, &names, None).await?;
    Ok(names.len())
}
