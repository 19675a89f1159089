//! What the nodes of a wave (or of the whole rotation, for the preflight)
//! hold: the pods draining them would evict (their requests size the
//! placeholders, their namespaces are watched until they run again), the
//! blockers, pods with local storage, and PDBs allowing no disruption now.
//! Classification is `drain::pods`'s; this only lists and sorts.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::Client;
use serde::Serialize;

use crate::drain::pods::{plan_removals, NodeContext, PodAction, PodRef};
use crate::error::{Error, Result};
use crate::k8s::pods::selector_matches;

/// One evictable pod: what its placeholder copies.
#[derive(Debug, Clone, PartialEq)]
pub struct Evictable {
    pub pod: PodRef,
    pub node: String,
    pub requests: BTreeMap<String, f64>,
    pub labels: BTreeMap<String, String>,
    pub constraints: super::placeholder::Constraints,
    /// emptyDir or hostPath volumes: their data does not move with the pod.
    pub local_storage: Vec<String>,
}

/// What the nodes hold.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub evictable: Vec<Evictable>,
    /// `(node, "namespace/name (why)")` for each blocking pod.
    pub blockers: Vec<(String, String)>,
    /// The hostnames of the surveyed nodes.
    pub hostnames: BTreeMap<String, String>,
}

/// A blocker the preflight reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub node: String,
    pub what: String,
}

impl Survey {
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.evictable
            .iter()
            .map(|e| e.pod.namespace.clone())
            .collect()
    }

    /// Pods with local storage, one finding each.
    pub fn local_storage(&self) -> Vec<Finding> {
        self.evictable
            .iter()
            .filter(|e| !e.local_storage.is_empty())
            .map(|e| Finding {
                node: e.node.clone(),
                what: format!(
                    "{} has local storage ({}): its data does not move",
                    e.pod,
                    e.local_storage.join(", ")
                ),
            })
            .collect()
    }
}

fn local_volumes(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            if v.empty_dir.is_some() {
                Some(format!("emptyDir {}", v.name))
            } else if v.host_path.is_some() {
                Some(format!("hostPath {}", v.name))
            } else {
                None
            }
        })
        .collect()
}

/// Lists and classifies the pods of `nodes` (the Node objects as listed).
pub async fn survey(
    client: &Client,
    nodes: &[k8s_openapi::api::core::v1::Node],
    own_pod: Option<&PodRef>,
) -> Result<Survey> {
    let mut out = Survey::default();
    let now = Utc::now();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let hostname = node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/hostname").cloned())
            .unwrap_or_else(|| name.clone());
        out.hostnames.insert(name.clone(), hostname);
        let pods = crate::k8s::pods::of_node(client, &name)
            .await
            .map_err(|e| Error::kube(format!("list pods of node {name}"), e))?;
        let context = NodeContext {
            ready: crate::k8s::nodes::ready(node),
            now,
            own_pod,
        };
        for (pod, planned) in pods.iter().zip(plan_removals(&pods, context)) {
            match &planned.action {
                PodAction::Evict(_) => out.evictable.push(Evictable {
                    pod: planned.pod.clone(),
                    node: name.clone(),
                    requests: super::placeholder::requests_of(pod),
                    labels: pod.metadata.labels.clone().unwrap_or_default(),
                    constraints: super::placeholder::Constraints::of(pod),
                    local_storage: local_volumes(pod),
                }),
                PodAction::Block { .. } => {
                    if let Some(b) = planned.blocker() {
                        out.blockers.push((name.clone(), b));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// PDBs that allow no disruption now and select an evictable pod: each
/// finding names the PDB and the node whose drain it will hold up.
pub async fn pdbs_allowing_none(client: &Client, survey: &Survey) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for ns in survey.namespaces() {
        let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
        let pdbs = api
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::kube(format!("list PodDisruptionBudgets of {ns}"), e))?
            .items;
        for pdb in pdbs {
            let allowed = pdb
                .status
                .as_ref()
                .map(|s| s.disruptions_allowed)
                .unwrap_or(0);
            if allowed > 0 {
                continue;
            }
            let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
                continue;
            };
            let name = pdb.metadata.name.clone().unwrap_or_default();
            let mut nodes: BTreeSet<&str> = BTreeSet::new();
            for e in survey.evictable.iter().filter(|e| e.pod.namespace == ns) {
                if selector_matches(selector, &e.labels) {
                    nodes.insert(&e.node);
                }
            }
            for node in nodes {
                findings.push(Finding {
                    node: node.to_string(),
                    what: format!(
                        "PodDisruptionBudget {ns}/{name} allows no disruption now (disruptionsAllowed 0)"
                    ),
                });
            }
        }
    }
    Ok(findings)
}
