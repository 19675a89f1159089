//! How plans and rates read on a terminal, and as JSON for scripts.

use std::fmt::Write;

use crate::drain::pods::PodAction;
use crate::drain::DrainOutcome;
use crate::messages::RunReport;
use crate::plan::WavePlan;
use crate::rotation::preflight::Preflight;
use crate::units::format_resource;

pub fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The allocate-rate report: the rates, then the wave they imply.
pub fn allocate_rate_text(plan: &WavePlan) -> String {
    let mut out = String::new();
    if let Some(rates) = &plan.rates {
        let _ = writeln!(
            out,
            "NodePool {} (Karpenter metrics {:?})",
            plan.nodepool, rates.generation
        );
        for usage in [&rates.memory, &rates.cpu] {
            let _ = writeln!(
                out,
                "  {:<6}  requested {:>10} of {:>10}  allocate rate {:>3} %",
                usage.resource.label(),
                format_resource(usage.resource, usage.requested),
                format_resource(usage.resource, usage.capacity),
                usage.allocate_rate_percent
            );
        }
    }
    out.push_str(&plan_text(plan));
    out
}

/// The plan: the wave's arithmetic, then every node in order, chosen or why not,
/// and for chosen nodes what happens to each pod.
pub fn plan_text(plan: &WavePlan) -> String {
    let mut out = String::new();
    let w = &plan.wave;
    if plan.rates.is_some() {
        let _ = writeln!(
            out,
            "Wave: {} of {} nodes (max allocate rate {} %, target {} %, drainRate {:.2}, formula {})",
            w.wave_size, w.len_nodes, w.max_allocate_rate, w.target_allocate_rate, w.drain_rate, w.drain_node_count
        );
    } else {
        let _ = writeln!(out, "Wave: {} named node(s)", w.wave_size);
    }
    for cap in &w.limited_by {
        let _ = writeln!(out, "  limited by {cap}");
    }
    for (i, node) in plan.nodes.iter().enumerate() {
        let c = &node.candidate;
        let verdict = match (&c.skipped, c.chosen) {
            (_, true) => "DRAIN".to_string(),
            (Some(reason), _) => format!("skip: {reason}"),
            (None, false) => "not in this wave".to_string(),
        };
        let _ = writeln!(
            out,
            "{:>3}. {}  created {}  {}",
            i + 1,
            c.node,
            c.created.format("%Y-%m-%dT%H:%M:%SZ"),
            verdict
        );
        for pod in &node.pods {
            let what = match &pod.action {
                PodAction::Evict(tier) => format!("evict ({tier:?})"),
                PodAction::ForceDelete(reason) => format!("force-delete, grace 0 ({reason})"),
                PodAction::DeleteFinished => "delete (finished)".to_string(),
                PodAction::WaitTerminating => "wait (already terminating)".to_string(),
                PodAction::Skip(reason) => format!("skip ({reason})"),
                PodAction::Block { reason, .. } => format!("BLOCKS ({reason})"),
            };
            let _ = writeln!(out, "       {:<40} {}", pod.pod, what);
        }
    }
    if plan.nodes.is_empty() {
        out.push_str("  (the NodePool has no nodes)\n");
    }
    out
}

/// The end of a drain run: one line per node and the totals.
pub fn run_summary(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run {} finished in {:.1}s",
        report.run_id,
        report.elapsed.as_secs_f64()
    );
    for r in &report.nodes {
        let _ = match &r.outcome {
            DrainOutcome::Drained { retired, .. } => writeln!(
                out,
                "  {}  drained: {} evicted, {} force-deleted; {retired}",
                r.node, r.pods_evicted, r.pods_force_deleted
            ),
            DrainOutcome::RetiredElsewhere => writeln!(
                out,
                "  {}  drained: {} evicted, {} force-deleted; retired by someone else (the node was deleted while draining)",
                r.node, r.pods_evicted, r.pods_force_deleted
            ),
            DrainOutcome::Failed { reason, blockers } => writeln!(
                out,
                "  {}  NOT drained ({reason}): {}",
                r.node,
                blockers.join(", ")
            ),
        };
    }
    for node in &report.unfinished {
        let _ = writeln!(out, "  {node}  NOT drained (did not finish)");
    }
    let evicted: usize = report.nodes.iter().map(|r| r.pods_evicted).sum();
    let forced: usize = report.nodes.iter().map(|r| r.pods_force_deleted).sum();
    let drained = report.nodes.iter().filter(|r| r.outcome.drained()).count();
    let _ = writeln!(
        out,
        "Totals: {drained} of {} nodes drained, {evicted} pods evicted, {forced} force-deleted",
        report.nodes.len() + report.unfinished.len()
    );
    out
}

/// The preflight of `drain --rotate --dry-run`: the waves expected, the
/// estimate, what will be skipped and what may hold a wave up, then the first
/// wave's plan as `drain --dry-run` prints it.
pub fn preflight_text(p: &Preflight) -> String {
    let mut out = String::new();
    let resumed = if p.resumed {
        " (continuing the rotation recorded on the NodePool)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "Rotation preflight of NodePool {}{resumed}: {} node(s) created at or before {} to replace",
        p.nodepool,
        p.remaining.len(),
        p.cutoff.format("%Y-%m-%dT%H:%M:%SZ")
    );
    let capacity = if p.capacity_first {
        "capacity first (placeholder pods reserve each wave's replacements)"
    } else {
        "plain waves (capacity first off)"
    };
    let _ = writeln!(out, "Wave size now: {} node(s); {capacity}", p.wave_size);
    for cap in &p.limited_by {
        let _ = writeln!(out, "  limited by {cap}");
    }
    match p.estimated_duration {
        Some(d) => {
            let _ = writeln!(
                out,
                "Expected: {} wave(s), about {}",
                p.waves.len(),
                crate::plan::rotation::human_duration(d)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Expected: no wave fits the NodePool now (budget or allocate rate); the rotation would wait"
            );
        }
    }
    for (i, wave) in p.waves.iter().enumerate() {
        let _ = writeln!(out, "  wave {}: {}", i + 1, wave.join(", "));
    }
    if p.skipped.is_empty() {
        let _ = writeln!(out, "Will skip: nothing");
    } else {
        let _ = writeln!(out, "Will skip:");
        for f in &p.skipped {
            let _ = writeln!(out, "  {}  {}", f.node, f.what);
        }
    }
    if !p.warnings.is_empty() {
        let _ = writeln!(out, "May hold a wave up:");
        for f in &p.warnings {
            let _ = writeln!(out, "  {}  {}", f.node, f.what);
        }
    }
    if let Some(plan) = &p.plan {
        let _ = writeln!(out, "First wave's plan:");
        out.push_str(&plan_text(plan));
    }
    let _ = writeln!(out, "Nothing was changed (--dry-run).");
    out
}
