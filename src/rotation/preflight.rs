//! The preflight of a rotation (`drain --rotate --dry-run`): the waves it
//! expects, an estimated duration, and what will block, read before anything
//! is touched — this module only reads (the NodePool, its nodes and pods,
//! PDBs, Prometheus) and never writes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::survey::{self, Finding};
use super::{engine, record, RotationDeps, RotationSettings};
use crate::error::Result;
use crate::plan::rotation::{expected_waves, PoolNode, RotationRecord};
use crate::plan::WavePlan;

/// What `drain --rotate --dry-run` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preflight {
    pub nodepool: String,
    /// Nodes created at or before this are replaced.
    pub cutoff: DateTime<Utc>,
    /// A rotation recorded on the NodePool is continued.
    pub resumed: bool,
    /// Nodes still to replace, oldest first.
    pub remaining: Vec<String>,
    /// The wave size the NodePool allows now (formula and caps).
    pub wave_size: usize,
    pub limited_by: Vec<String>,
    /// The waves expected at today's wave size, each its nodes.
    pub waves: Vec<Vec<String>>,
    /// None when no wave fits now.
    #[serde(serialize_with = "secs")]
    pub estimated_duration: Option<Duration>,
    /// Nodes that will be skipped, with why (blocked, do-not-disrupt, …).
    pub skipped: Vec<Finding>,
    /// What may hold a wave up without skipping a node: PDBs allowing no
    /// disruption now, pods with local storage.
    pub warnings: Vec<Finding>,
    pub capacity_first: bool,
    /// The first wave's plan, as `drain --dry-run` shows it.
    #[serde(skip)]
    pub plan: Option<WavePlan>,
}

fn secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}

/// Reads everything the rotation would and answers what it expects.
pub async fn preflight(deps: &RotationDeps, settings: &RotationSettings) -> Result<Preflight> {
    let client = &deps.client;
    let recorded = record::read(client, &settings.nodepool).await?;
    let resumed = recorded.is_some();
    let rec = recorded.unwrap_or_else(|| RotationRecord::new("preflight".into(), Utc::now()));
    let plan = engine::plan_wave(deps, settings).await?;
    let nodes: Vec<PoolNode> = plan
        .seen
        .values()
        .filter_map(|n| {
            Some(PoolNode {
                name: n.metadata.name.clone()?,
                created: crate::time::to_utc(n.metadata.creation_timestamp.as_ref()?),
            })
        })
        .collect();
    let remaining = rec.remaining(&nodes);
    let remaining_nodes: Vec<_> = remaining
        .iter()
        .filter_map(|n| plan.seen.get(n).cloned())
        .collect();
    let surveyed = survey::survey(client, &remaining_nodes, None).await?;

    let mut skipped: Vec<Finding> = Vec::new();
    for node in plan.nodes.iter().map(|n| &n.candidate) {
        if !remaining.contains(&node.node) {
            continue;
        }
        if let Some(reason) = &node.skipped {
            if !matches!(
                reason,
                crate::plan::candidates::SkipReason::BlockingPods { .. }
            ) {
                skipped.push(Finding {
                    node: node.node.clone(),
                    what: reason.to_string(),
                });
            }
        }
    }
    if !settings.drain.force {
        for (node, blocker) in &surveyed.blockers {
            skipped.push(Finding {
                node: node.clone(),
                what: format!("blocking pod {blocker}"),
            });
        }
    }
    let mut warnings = survey::pdbs_allowing_none(client, &surveyed).await?;
    warnings.extend(surveyed.local_storage());

    let drainable: Vec<String> = remaining
        .iter()
        .filter(|n| !skipped.iter().any(|s| &s.node == *n))
        .cloned()
        .collect();
    let size = plan.wave.wave_size;
    let waves: Vec<Vec<String>> = if size == 0 {
        vec![]
    } else {
        drainable.chunks(size).map(<[String]>::to_vec).collect()
    };
    let estimated_duration =
        expected_waves(drainable.len(), size).map(|w| rec.wave_estimate() * w as u32);
    Ok(Preflight {
        nodepool: settings.nodepool.clone(),
        cutoff: rec.cutoff,
        resumed,
        remaining,
        wave_size: size,
        limited_by: plan.wave.limited_by.iter().map(|c| c.to_string()).collect(),
        waves,
        estimated_duration,
        skipped,
        warnings,
        capacity_first: settings.capacity_first,
        plan: Some(plan),
    })
}
