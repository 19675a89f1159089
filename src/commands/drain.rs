//! `node-drain drain`: plans one wave (from the allocate rate, or `--nodes`),
//! prints it with `--dry-run`, or drains its nodes in parallel — one supervised
//! NodeDrainActor per node, every eviction through the evictor pool — and exits
//! 1 if any node was not drained.
//!
//! Before planning, a real run restores the NodePool's nodes whose earlier run
//! died mid-drain (stale heartbeat). While draining it refreshes its own
//! heartbeat, and SIGINT/SIGTERM restore every node not yet drained.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Supervisor;
use kube::runtime::events::{Recorder, Reporter};
use tracing::{info, warn};

use super::progress_bars::Bars;
use super::{checked_nodepool, render, start_metrics};
use crate::actors::node_drain::{heartbeat, recover_orphans, DrainContext, DrainSettings, Fault};
use crate::actors::notifier::{NotifierActor, NotifierConfig};
use crate::actors::{EvictorPool, NodeDrainActor, PlannerActor};
use crate::cli::{DrainArgs, GlobalArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::messages::{
    FlushNotifications, MeasureAllocateRates, NodeDrainFinished, Notify, PlanWave,
};
use crate::plan::WavePlan;
use crate::progress::DrainOutcome;
use crate::slack::{Notice, WebhookUrl};

pub async fn run(global: &GlobalArgs, args: DrainArgs) -> Result<i32> {
    info!("노드 드레인 커맨드를 실행합니다.");
    let nodepool = checked_nodepool(global)?;
    let webhook = WebhookUrl::parse(&global.slack_webhook_url).map_err(Error::Usage)?;
    let client = crate::kube_client::client(global.kube_config).await?;
    let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| "cli".into());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "node-drain".into(),
            instance: Some(instance),
        },
    );

    if !args.dry_run {
        let recovered = recover_orphans(&client, &recorder, &nodepool, args.orphan_after).await?;
        for node in &recovered {
            warn!(
                node = node.as_str(),
                "restored a node an earlier node-drain left mid-drain"
            );
        }
    }

    let rates = if args.nodes.is_empty() {
        info!("노드 사용률 조회 중");
        let metrics = start_metrics(global)?;
        let rates = metrics
            .send(MeasureAllocateRates {
                nodepool: nodepool.clone(),
            })
            .await??;
        info!(
            memoryAllocateRate = rates.memory.allocate_rate_percent,
            "Memory 사용률"
        );
        info!(
            cpuAllocateRate = rates.cpu.allocate_rate_percent,
            "Cpu 사용률"
        );
        info!(maxAllocateRate = rates.max_allocate_rate(), "최대 사용률");
        Some(rates)
    } else {
        None
    };
    let planner = actix::Actor::start(PlannerActor::new(client.clone()));
    let plan = planner
        .send(PlanWave {
            nodepool: nodepool.clone(),
            rates,
            target_allocate_rate: args.wave.target_allocate_rate,
            max_nodes: args.wave.max_nodes,
            nodes: args.nodes.clone(),
            force: args.force,
        })
        .await??;
    if plan.rates.is_some() {
        info!(drainRate = plan.wave.drain_rate, "드레인 비율");
        info!(
            drainNodeCount = plan.wave.drain_node_count,
            "드레인 할 노드 개수"
        );
    }
    if args.dry_run {
        match args.output {
            OutputFormat::Json => println!("{}", render::json(&plan)),
            OutputFormat::Text => print!("{}", render::plan_text(&plan)),
        }
        return Ok(0);
    }
    let chosen: Vec<String> = plan.chosen().map(|n| n.candidate.node.clone()).collect();
    if chosen.is_empty() {
        info!(
            nodepool = nodepool.as_str(),
            "nothing to drain in this wave"
        );
        print!("{}", render::plan_text(&plan));
        return Ok(0);
    }
    let notifier = actix::Actor::start(NotifierActor::new(NotifierConfig::new(webhook)));
    let code = drain_wave(global, &args, client, recorder, &plan, chosen, &notifier).await;
    // The drain is over; give Slack a bounded moment before the process exits.
    let timeout = Duration::from_secs(args.slack_flush_timeout_seconds);
    if !notifier
        .send(FlushNotifications { timeout })
        .await
        .unwrap_or(false)
    {
        warn!(
            seconds = args.slack_flush_timeout_seconds,
            "Slack notifications still queued at exit were dropped"
        );
    }
    Ok(code)
}

/// Drains the chosen nodes in parallel; returns the exit code.
async fn drain_wave(
    global: &GlobalArgs,
    args: &DrainArgs,
    client: kube::Client,
    recorder: Recorder,
    plan: &WavePlan,
    chosen: Vec<String>,
    notifier: &actix::Addr<NotifierActor>,
) -> i32 {
    let started = Instant::now();
    let nodepool = plan.nodepool.clone();
    let cluster = global.cluster_name.clone();
    let run_id = format!("{nodepool}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let progress: crate::progress::Progress = Arc::new(dashmap::DashMap::new());
    let interrupted = Arc::new(AtomicBool::new(false));
    let evictors = EvictorPool::start(
        client.clone(),
        progress.clone(),
        interrupted.clone(),
        args.eviction_rate,
        args.eviction_burst,
        4,
    );
    let (finished_tx, mut finished_rx) =
        tokio::sync::mpsc::unbounded_channel::<NodeDrainFinished>();
    let cx = Arc::new(DrainContext {
        interrupted: interrupted.clone(),
        client,
        evictors,
        settings: DrainSettings {
            run_id: run_id.clone(),
            force: args.force,
            on_timeout: args.on_timeout,
            drain_timeout: args.drain_timeout,
            retire: args.retire,
            node_in_flight: args.node_evictions_in_flight as usize,
            fault: Fault::from_env(),
        },
        progress: progress.clone(),
        recorder,
        finished: finished_tx,
    });
    info!(
        run = run_id.as_str(),
        nodes = chosen.join(",").as_str(),
        "draining the wave"
    );
    notifier.do_send(Notify(Notice::RunStarted {
        cluster: cluster.clone(),
        nodepool: nodepool.clone(),
        nodes: chosen.clone(),
        run_id: run_id.clone(),
    }));
    if let Some(rates) = &plan.rates {
        notifier.do_send(Notify(Notice::AllocateRates {
            cluster: cluster.clone(),
            nodepool: nodepool.clone(),
            memory_percent: rates.memory.allocate_rate_percent,
            cpu_percent: rates.cpu.allocate_rate_percent,
            max_percent: rates.max_allocate_rate(),
            len_nodes: plan.wave.len_nodes,
            drain_rate: plan.wave.drain_rate,
            wave_size: plan.wave.wave_size,
            limited_by: plan.wave.limited_by.iter().map(|c| c.to_string()).collect(),
        }));
    }
    // The addresses keep each supervised actor restartable until its node is done.
    let actors: Vec<_> = chosen
        .iter()
        .map(|node| {
            let (node, cx) = (node.clone(), cx.clone());
            Supervisor::start(move |_| NodeDrainActor::new(node, cx))
        })
        .collect();
    let bars = Bars::start(&chosen);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let mut beat = tokio::time::interval(Duration::from_secs(10));
    let mut terminate = signal_terminate();
    let mut results = Vec::new();
    while results.len() < chosen.len() {
        tokio::select! {
            done = finished_rx.recv() => {
                let Some(done) = done else { break };
                log_outcome(&done);
                notifier.do_send(Notify(node_notice(&cluster, &done)));
                results.push(done);
            }
            _ = ticker.tick() => {
                if let Some(bars) = &bars {
                    bars.update(&progress);
                }
            }
            _ = beat.tick() => heartbeat(&cx).await,
            _ = tokio::signal::ctrl_c() => interrupt(&interrupted),
            _ = terminate.recv() => interrupt(&interrupted),
        }
    }
    if let Some(bars) = bars {
        bars.finish(&progress);
    }
    drop(actors);
    drop(cx);
    let failed = results
        .iter()
        .filter(|r| matches!(r.outcome, DrainOutcome::Failed { .. }))
        .count()
        + (chosen.len() - results.len());
    let elapsed = started.elapsed();
    print!("{}", render::run_summary(&run_id, &results, elapsed));
    let nodes_where = |drained: bool| -> Vec<String> {
        results
            .iter()
            .filter(|r| matches!(r.outcome, DrainOutcome::Drained { .. }) == drained)
            .map(|r| r.node.clone())
            .collect()
    };
    notifier.do_send(Notify(Notice::RunFinished {
        cluster,
        nodepool,
        run_id,
        duration: elapsed,
        pods_evicted: results.iter().map(|r| r.pods_evicted).sum(),
        pods_force_deleted: results.iter().map(|r| r.pods_force_deleted).sum(),
        retired: nodes_where(true),
        failed: nodes_where(false),
    }));
    if failed > 0 {
        1
    } else {
        0
    }
}

fn interrupt(flag: &AtomicBool) {
    if !flag.swap(true, Ordering::SeqCst) {
        warn!("interrupted: stopping; every node not yet drained is restored");
    }
}

/// SIGTERM as a stream (a pod being stopped); never fires where it cannot be had.
fn signal_terminate() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        actix::spawn(async move {
            while term.recv().await.is_some() {
                let _ = tx.send(()).await;
            }
        });
    }
    rx
}

fn log_outcome(done: &NodeDrainFinished) {
    match &done.outcome {
        DrainOutcome::Drained { retired } => info!(
            node = done.node.as_str(),
            retired = retired.as_str(),
            podsEvicted = done.pods_evicted,
            podsForceDeleted = done.pods_force_deleted,
            "node drained"
        ),
        DrainOutcome::Failed { reason, blockers } => warn!(
            node = done.node.as_str(),
            reason = reason.as_str(),
            blockers = blockers.join(", ").as_str(),
            "node not drained"
        ),
    }
}

/// The Slack notice for one node's outcome.
fn node_notice(cluster: &str, done: &NodeDrainFinished) -> Notice {
    match &done.outcome {
        DrainOutcome::Drained { retired } => Notice::NodeDrained {
            cluster: cluster.to_string(),
            node: done.node.clone(),
            pods_evicted: done.pods_evicted,
            pods_force_deleted: done.pods_force_deleted,
            retired: retired.clone(),
        },
        DrainOutcome::Failed { reason, blockers } => Notice::NodeFailed {
            cluster: cluster.to_string(),
            node: done.node.clone(),
            reason: reason.clone(),
            blockers: blockers.clone(),
        },
    }
}
