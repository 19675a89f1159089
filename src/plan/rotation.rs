//! A rotation, sans IO: every node of a NodePool created before the request
//! (the cutoff) is replaced, wave after wave. The record below is what the
//! NodePool's `node-drain.io/rotation` annotation holds, so a restarted run
//! resumes; this module decides, from that record and one wave's plan, which
//! nodes the next wave drains, which are skipped for good (and why), how many
//! waves are left, how long they may take, and the final summary.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::candidates::{Candidate, SkipReason};

/// The NodePool annotation holding a rotation's progress (JSON of `RotationRecord`).
pub const ROTATION_ANNOTATION: &str = "node-drain.io/rotation";

/// What one wave takes when nothing has been measured yet: provisioning the
/// capacity, draining, and the evicted pods running again.
pub const DEFAULT_WAVE_ESTIMATE: Duration = Duration::from_secs(120);

/// A rotation's progress, recorded on the NodePool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationRecord {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    /// Nodes created at or before this instant are the ones to replace.
    pub cutoff: DateTime<Utc>,
    #[serde(default)]
    pub replaced: Vec<String>,
    #[serde(default)]
    pub skipped: Vec<SkippedNode>,
    #[serde(default)]
    pub waves: Vec<WaveRecord>,
    /// Set once capacity could not be reserved: the remaining waves are plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_fallback: Option<String>,
}

/// A node the rotation will not replace, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedNode {
    pub node: String,
    pub reason: String,
}

/// One finished wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveRecord {
    pub nodes: Vec<String>,
    pub seconds: f64,
    pub capacity: CapacityOutcome,
}

/// How a wave's replacement capacity was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "capacity", rename_all = "kebab-case")]
pub enum CapacityOutcome {
    /// Placeholders ran before the wave was cordoned.
    Reserved { placeholders: usize },
    /// The wave had nothing to evict: no capacity to reserve.
    NotNeeded,
    /// Placeholders did not run in time: the wave went plain.
    Fallback { reason: String },
    /// Capacity first was turned off (`--capacity-first=false`).
    Off,
}

impl std::fmt::Display for CapacityOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapacityOutcome::Reserved { placeholders } => {
                write!(
                    f,
                    "capacity reserved first ({placeholders} placeholder pods)"
                )
            }
            CapacityOutcome::NotNeeded => write!(f, "nothing to evict, no capacity needed"),
            CapacityOutcome::Fallback { reason } => {
                write!(f, "plain wave: no capacity ({reason})")
            }
            CapacityOutcome::Off => write!(f, "plain wave (capacity first off)"),
        }
    }
}

/// A node of the NodePool as the rotation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNode {
    pub name: String,
    pub created: DateTime<Utc>,
}

/// What the next wave does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaveChoice {
    /// Drained now, oldest first.
    pub drain: Vec<String>,
    /// Skipped for good from now on (blocked, do-not-disrupt, cordoned by someone else…).
    pub skip: Vec<SkippedNode>,
}

impl RotationRecord {
    pub fn new(run_id: String, now: DateTime<Utc>) -> Self {
        Self {
            run_id,
            started_at: now,
            cutoff: now,
            replaced: vec![],
            skipped: vec![],
            waves: vec![],
            capacity_fallback: None,
        }
    }

    /// Whether the rotation has already dealt with `node` (replaced or skipped).
    pub fn settled(&self, node: &str) -> bool {
        self.replaced.iter().any(|n| n == node) || self.skipped.iter().any(|s| s.node == node)
    }

    /// Nodes still to replace: created at or before the cutoff, not settled; oldest first.
    pub fn remaining(&self, nodes: &[PoolNode]) -> Vec<String> {
        let mut left: Vec<&PoolNode> = nodes
            .iter()
            .filter(|n| n.created <= self.cutoff && !self.settled(&n.name))
            .collect();
        left.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
        left.into_iter().map(|n| n.name.clone()).collect()
    }

    /// The next wave from one plan of the NodePool (its candidates in the
    /// planner's order, oldest first) and the wave size the planner allowed.
    /// Only nodes still to replace are taken; a node the planner skipped for a
    /// reason that will not pass by itself is skipped for good (never retried in
    /// a loop); one skipped for a passing reason (being deleted, Karpenter
    /// disrupting it, another drain) is left for a later wave.
    pub fn choose_wave(
        &self,
        candidates: &[Candidate],
        remaining: &[String],
        wave_size: usize,
    ) -> WaveChoice {
        let mut choice = WaveChoice::default();
        for c in candidates {
            if !remaining.contains(&c.node) {
                continue;
            }
            match &c.skipped {
                Some(reason) if lasting(reason) => choice.skip.push(SkippedNode {
                    node: c.node.clone(),
                    reason: reason.to_string(),
                }),
                Some(_) => {}
                None if choice.drain.len() < wave_size => choice.drain.push(c.node.clone()),
                None => {}
            }
        }
        choice
    }

    pub fn skip(&mut self, skipped: impl IntoIterator<Item = SkippedNode>) {
        for s in skipped {
            if !self.settled(&s.node) {
                self.skipped.push(s);
            }
        }
    }

    pub fn replace(&mut self, node: &str) {
        if !self.settled(node) {
            self.replaced.push(node.to_string());
        }
    }

    /// The duration one wave is expected to take: the mean of the waves done, else a default.
    pub fn wave_estimate(&self) -> Duration {
        if self.waves.is_empty() {
            return DEFAULT_WAVE_ESTIMATE;
        }
        let total: f64 = self.waves.iter().map(|w| w.seconds).sum();
        Duration::from_secs_f64(total / self.waves.len() as f64)
    }

    /// The summary at the end (or at an interruption), `elapsed` since `started_at`.
    pub fn summary(&self, nodepool: &str, elapsed: Duration, finished: bool) -> RotationSummary {
        RotationSummary {
            nodepool: nodepool.to_string(),
            run_id: self.run_id.clone(),
            replaced: self.replaced.clone(),
            skipped: self.skipped.clone(),
            waves: self.waves.len(),
            duration: elapsed,
            capacity_fallback: self.capacity_fallback.clone(),
            finished,
        }
    }
}

/// Whether a planner's skip reason stays true until someone acts.
fn lasting(reason: &SkipReason) -> bool {
    matches!(
        reason,
        SkipReason::BlockingPods { .. }
            | SkipReason::DoNotDisrupt
            | SkipReason::ControlPlane
            | SkipReason::CordonedByOther
            | SkipReason::AlreadyDrained
    )
}

/// Waves left for `nodes` nodes at `wave_size` a wave; None when no wave fits now.
pub fn expected_waves(nodes: usize, wave_size: usize) -> Option<usize> {
    if nodes == 0 {
        Some(0)
    } else if wave_size == 0 {
        None
    } else {
        Some(nodes.div_ceil(wave_size))
    }
}

/// How a rotation ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationSummary {
    pub nodepool: String,
    pub run_id: String,
    pub replaced: Vec<String>,
    pub skipped: Vec<SkippedNode>,
    pub waves: usize,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_fallback: Option<String>,
    /// False when stopped early (interrupted, a wave that did not settle): the
    /// record stays on the NodePool and a rerun continues.
    pub finished: bool,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl RotationSummary {
    /// The summary as printed at the end of `drain --rotate`.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let state = if self.finished {
            "finished"
        } else {
            "stopped (progress kept on the NodePool; rerun `drain --rotate` to continue)"
        };
        let _ = writeln!(
            out,
            "Rotation {} of NodePool {} {state} in {:.1}s: {} replaced, {} skipped, {} wave(s)",
            self.run_id,
            self.nodepool,
            self.duration.as_secs_f64(),
            self.replaced.len(),
            self.skipped.len(),
            self.waves
        );
        for node in &self.replaced {
            let _ = writeln!(out, "  {node}  replaced");
        }
        for s in &self.skipped {
            let _ = writeln!(out, "  {}  SKIPPED: {}", s.node, s.reason);
        }
        if let Some(reason) = &self.capacity_fallback {
            let _ = writeln!(out, "  capacity first fell back to plain waves: {reason}");
        }
        out
    }
}

/// "1h02m", "3m20s", "45s": an ETA a person reads.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod tests;
