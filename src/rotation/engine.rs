//! The wave loop of a rotation. Before each wave the allocate rate is measured
//! again and the planner re-reads the budgets (`PlanWave`), so no wave is
//! larger than the pool can spare then; `RotationRecord::choose_wave` takes
//! the nodes; capacity is reserved first; a run of the PlannerActor drains
//! them; the placeholders go (whatever happened); the record is written; the
//! next wave waits until this one settled.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{capacity, placeholder};
use super::{record, settle, survey, RotationDeps, RotationSettings};
use crate::drain::{DrainOutcome, Retire, StopReason};
use crate::error::{Error, Result};
use crate::messages::{
    AwaitRun, CancelRun, MeasureAllocateRates, Notify, PlanWave, RunReport, StartRun,
};
use crate::plan::rotation::{
    CapacityOutcome, PoolNode, RotationRecord, RotationSummary, SkippedNode, WaveRecord,
};
use crate::plan::WavePlan;
use crate::slack::{Notice, RotationNotice};

/// What a front shows while the rotation runs.
#[derive(Debug)]
pub enum RotationEvent<'a> {
    /// A wave was started: its nodes are in the shared progress map.
    WaveStarted { number: usize, nodes: &'a [String] },
    /// A moment in a wave: refresh what is shown.
    Tick,
    /// The wave's run ended.
    WaveFinished { report: &'a RunReport },
}

/// Runs (or resumes) the rotation of `settings.nodepool`. Answers the summary;
/// `finished: false` when stopped early (cancelled), the record kept.
pub async fn rotate(
    deps: &RotationDeps,
    settings: &RotationSettings,
    cancel: &CancellationToken,
    observe: &mut (dyn FnMut(RotationEvent<'_>) + Send),
) -> Result<RotationSummary> {
    let pool = settings.nodepool.as_str();
    let client = &deps.client;
    let leftovers = capacity::delete(client, &placeholder::nodepool_selector(pool)).await?;
    let labelled = capacity::unlabel_leftovers(client, pool).await?;
    if leftovers + labelled > 0 {
        warn!(
            nodepool = pool,
            placeholders = leftovers,
            labelledNodes = labelled,
            "removed the placeholder pods and wave labels an earlier rotation left"
        );
    }
    let (mut rec, resumed) = match record::read(client, pool).await? {
        Some(r) => {
            info!(nodepool = pool, run = r.run_id.as_str(), cutoff = %r.cutoff, replaced = r.replaced.len(), "resuming the rotation recorded on the NodePool");
            (r, true)
        }
        None => {
            let now = Utc::now();
            let id = format!("rot-{}", now.format("%Y%m%d-%H%M%S"));
            (RotationRecord::new(id, now), false)
        }
    };
    record::write(client, pool, &rec).await?;
    let mut announced = false;
    // Held by a closed window or a pause at the start: announce first (nodes,
    // waves, ETA), so Slack reads "started", then "held", then the waves.
    if !matches!(settings.gate.check(), super::gate::WaveGate::Open) {
        let plan = plan_wave(deps, settings).await?;
        let remaining = rec.remaining(&pool_nodes(&plan));
        super::report::announce(deps, settings, &rec, &remaining, &plan, resumed);
        announced = true;
    }
    let mut stalled_since: Option<tokio::time::Instant> = None;
    loop {
        let tell = &mut |news| super::report::gate_news(deps, settings, &rec, news);
        if cancel.is_cancelled() || super::gate::wait_open(&settings.gate, pool, cancel, tell).await
        {
            return Ok(super::report::finish(deps, settings, &rec, false).await);
        }
        let plan = plan_wave(deps, settings).await?;
        let nodes = pool_nodes(&plan);
        let remaining = rec.remaining(&nodes);
        if !announced {
            announced = true;
            super::report::announce(deps, settings, &rec, &remaining, &plan, resumed);
        }
        if remaining.is_empty() {
            return Ok(super::report::finish(deps, settings, &rec, true).await);
        }
        let candidates: Vec<_> = plan.nodes.iter().map(|n| n.candidate.clone()).collect();
        let choice = rec.choose_wave(&candidates, &remaining, plan.wave.wave_size);
        let skipped_now: Vec<String> = choice
            .skip
            .iter()
            .map(|s| format!("{}: {}", s.node, s.reason))
            .collect();
        for s in &choice.skip {
            warn!(
                node = s.node.as_str(),
                reason = s.reason.as_str(),
                "rotation skips a node"
            );
        }
        if !choice.skip.is_empty() {
            rec.skip(choice.skip.clone());
            record::write(client, pool, &rec).await?;
        }
        if choice.drain.is_empty() {
            if rec.remaining(&nodes).is_empty() {
                continue; // every node left was skipped: the next look finishes
            }
            let since = *stalled_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() >= settings.stall_timeout {
                warn!(
                    nodepool = pool,
                    "no room for a wave within the stall timeout; stopping (progress kept)"
                );
                return Ok(super::report::finish(deps, settings, &rec, false).await);
            }
            info!(
                nodepool = pool,
                waveSize = plan.wave.wave_size,
                remaining = remaining.len(),
                "no wave fits the NodePool now; waiting"
            );
            if sleep_or_cancel(Duration::from_secs(5), cancel).await {
                return Ok(super::report::finish(deps, settings, &rec, false).await);
            }
            continue;
        }
        stalled_since = None;
        let number = rec.waves.len() + 1;
        let started = tokio::time::Instant::now();
        let since = Utc::now();
        let wave_nodes: Vec<_> = choice
            .drain
            .iter()
            .filter_map(|n| plan.seen.get(n).cloned())
            .collect();
        let surveyed = survey::survey(client, &wave_nodes, None).await?;
        // Run ids are to the second: two rotations started in the same second
        // (two NodePools) would share the label, and one's cleanup (by label,
        // in every namespace) would delete the other's placeholders.
        let placeholder_run = format!("{}-w{number}-{:04x}", rec.run_id, fastrand::u16(..));
        let capacity = capacity::reserve(
            deps,
            settings,
            &mut rec,
            &surveyed,
            &placeholder_run,
            cancel,
        )
        .await;
        let capacity = match capacity {
            Ok(c) => c,
            Err(e) => {
                let _ =
                    capacity::delete(client, &placeholder::run_selector(&placeholder_run)).await;
                let _ = capacity::label_wave(client, &choice.drain, None).await;
                return Err(e);
            }
        };
        // Asked again just before the cordon: a pause, cancel or closing window
        // that came while the capacity was being reserved holds this wave too
        // (nothing of it is cordoned yet); its reservation goes.
        if settings.gate.check() != super::WaveGate::Open {
            let _ = capacity::delete(client, &placeholder::run_selector(&placeholder_run)).await;
            let _ = capacity::label_wave(client, &choice.drain, None).await;
            info!(
                nodepool = pool,
                wave = number,
                "rotation wave held before its cordon"
            );
            continue;
        }
        info!(nodepool = pool, wave = number, nodes = choice.drain.join(",").as_str(), capacity = %capacity, "rotation wave");
        deps.notifier
            .do_send(Notify(Notice::Rotation(RotationNotice::Wave {
                cluster: deps.cluster.clone(),
                nodepool: pool.to_string(),
                number,
                nodes: choice.drain.clone(),
                capacity: capacity.to_string(),
                skipped: skipped_now,
            })));
        // The capacity is Ready: release it just before the wave is cordoned, so
        // the evicted pods' replacements schedule at once on the new nodes. (Left
        // for them to preempt, each replacement waited about a second for the
        // preemption: one replica short, which a 4 Hz sampler sees.)
        if matches!(capacity, CapacityOutcome::Reserved { .. }) {
            capacity::delete(client, &placeholder::run_selector(&placeholder_run)).await?;
        }
        let report = drain_wave(deps, settings, &choice.drain, plan, number, cancel, observe).await;
        // The placeholders go when the wave ends, whatever happened.
        if let Err(e) = capacity::delete(client, &placeholder::run_selector(&placeholder_run)).await
        {
            warn!(error = %e, "could not delete this wave's placeholders; the next run removes them");
        }
        if let Err(e) = capacity::label_wave(client, &choice.drain, None).await {
            warn!(error = %e, "could not remove the wave label; the next run removes it");
        }
        let report = match report {
            // An alert took a node of this wave while its capacity was being
            // reserved: the wave never started (nothing cordoned); the next plan
            // counts that drain against the budget. (Failing here ended the
            // rotation until the next leader: bench/soak.)
            Err(Error::NodeInRun { node, run }) => {
                info!(nodepool = pool, wave = number, node = node.as_str(), run = run.as_str(),
                    "another run took a node of this wave before its cordon; planning the wave again");
                continue;
            }
            other => other?,
        };
        observe(RotationEvent::WaveFinished { report: &report });
        let interrupted = cancel.is_cancelled();
        for r in &report.nodes {
            match &r.outcome {
                DrainOutcome::Drained { .. } | DrainOutcome::RetiredElsewhere => {
                    rec.replace(&r.node)
                }
                DrainOutcome::Failed { .. } if interrupted => {}
                DrainOutcome::Failed { reason, blockers } => {
                    let why = if blockers.is_empty() {
                        reason.clone()
                    } else {
                        format!("{reason}: {}", blockers.join(", "))
                    };
                    warn!(
                        node = r.node.as_str(),
                        reason = why.as_str(),
                        "rotation skips a node it could not drain"
                    );
                    rec.skip([SkippedNode {
                        node: r.node.clone(),
                        reason: why,
                    }]);
                }
            }
        }
        rec.waves.push(WaveRecord {
            nodes: choice.drain.clone(),
            seconds: started.elapsed().as_secs_f64(),
            capacity,
        });
        record::write(client, pool, &rec).await?;
        if interrupted {
            return Ok(super::report::finish(deps, settings, &rec, false).await);
        }
        let drained: Vec<String> = report
            .nodes
            .iter()
            .filter(|r| r.outcome.drained())
            .map(|r| r.node.clone())
            .collect();
        let namespaces: BTreeSet<String> = surveyed.namespaces();
        let check = settle::SettleCheck {
            nodepool: pool,
            nodes: &drained,
            wait_gone: settings.drain.retire != Retire::None,
            namespaces: &namespaces,
            since,
        };
        if let Err(e) = settle::wait(client, &check, settings.settle_timeout, cancel).await {
            warn!(nodepool = pool, error = %e, "the wave did not settle; stopping the rotation (progress kept)");
            return Ok(super::report::finish(deps, settings, &rec, false).await);
        }
        // Recorded wave time includes the settling: what the next ETA uses.
        if let Some(w) = rec.waves.last_mut() {
            w.seconds = started.elapsed().as_secs_f64();
        }
        record::write(client, pool, &rec).await?;
    }
}

/// Measures the allocate rate again and asks the planner for a wave (budgets re-read).
pub(super) async fn plan_wave(
    deps: &RotationDeps,
    settings: &RotationSettings,
) -> Result<WavePlan> {
    let rates = match &deps.metrics {
        Some(m) => Some(
            m.send(MeasureAllocateRates {
                nodepool: settings.nodepool.clone(),
            })
            .await??,
        ),
        None => None,
    };
    if let Some(r) = &rates {
        info!(maxAllocateRate = r.max_allocate_rate(), "최대 사용률");
    }
    let plan = deps
        .planner
        .send(PlanWave {
            nodepool: settings.nodepool.clone(),
            rates,
            target_allocate_rate: settings.target_allocate_rate,
            max_nodes: settings.max_nodes,
            nodes: vec![],
            force: settings.drain.force,
            list_named_pods: false,
        })
        .await??;
    info!(
        drainNodeCount = plan.wave.drain_node_count,
        waveSize = plan.wave.wave_size,
        "드레인 할 노드 개수"
    );
    Ok(plan)
}

/// Drains one wave through a run of the PlannerActor; a cancel stops the run
/// (each node not yet drained is restored).
async fn drain_wave(
    deps: &RotationDeps,
    settings: &RotationSettings,
    nodes: &[String],
    plan: WavePlan,
    number: usize,
    cancel: &CancellationToken,
    observe: &mut (dyn FnMut(RotationEvent<'_>) + Send),
) -> Result<RunReport> {
    let run_id = deps
        .planner
        .send(StartRun {
            nodepool: settings.nodepool.clone(),
            nodes: nodes.to_vec(),
            settings: settings.drain.clone(),
            trigger: format!("{} (rotation wave {number})", settings.trigger),
            plan: Some(plan),
            take_over: None,
        })
        .await??;
    observe(RotationEvent::WaveStarted { number, nodes });
    let awaited = deps.planner.send(AwaitRun {
        run_id: run_id.clone(),
    });
    tokio::pin!(awaited);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut cancelled = false;
    loop {
        tokio::select! {
            report = &mut awaited => return report?,
            _ = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                deps.planner.do_send(CancelRun {
                    run_id: Some(run_id.clone()),
                    reason: StopReason::Interrupted { signal: "rotation cancelled".into() },
                });
            }
            _ = ticker.tick() => observe(RotationEvent::Tick),
        }
    }
}

async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// The pool's nodes as the plan saw them, with their creation times.
fn pool_nodes(plan: &WavePlan) -> Vec<PoolNode> {
    plan.seen
        .values()
        .filter_map(|n| {
            Some(PoolNode {
                name: n.metadata.name.clone()?,
                created: crate::time::to_utc(n.metadata.creation_timestamp.as_ref()?),
            })
        })
        .collect()
}
