//! `node-drain drain`, a front of the actors: plans one wave (from the allocate
//! rate, or `--nodes`), prints it with `--dry-run`, or starts a run on the
//! PlannerActor and awaits its report — bars on a terminal, log lines
//! otherwise — and exits 1 if any node was not drained. SIGINT/SIGTERM cancel
//! the run: every node not yet drained is restored (never forced).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::progress_bars::Bars;
use super::{checked_nodepool, render, start_actors};
use crate::cli::{DrainArgs, GlobalArgs, OutputFormat};
use crate::drain::StopReason;
use crate::error::{Error, Result};
use crate::messages::{
    AwaitRun, CancelRun, FlushNotifications, MeasureAllocateRates, PlanWave, RecoverNodes, StartRun,
};

pub async fn run(global: &GlobalArgs, args: DrainArgs) -> Result<i32> {
    info!("노드 드레인 커맨드를 실행합니다.");
    let nodepool = checked_nodepool(global)?;
    if args.rotate {
        return super::rotate::run(global, args).await;
    }
    let actors = start_actors(
        global,
        args.nodes.is_empty(),
        args.opts.eviction_rate,
        args.opts.eviction_burst,
    )
    .await?;

    let planner = actors.planner.clone();
    if !args.dry_run {
        let recovered = planner
            .send(RecoverNodes {
                nodepools: vec![nodepool.clone()],
                lease: None,
                elected_now: false,
                all_pools: false,
                orphan_after: args.opts.orphan_after,
                defaults: args.opts.settings(args.force),
            })
            .await??;
        for node in &recovered.restored {
            warn!(
                node = node.as_str(),
                "restored a node an earlier node-drain left mid-drain"
            );
        }
        for node in &recovered.retired {
            warn!(
                node = node.as_str(),
                "retired a node an earlier node-drain drained but did not retire"
            );
        }
    }

    let rates = match &actors.metrics {
        Some(metrics) => {
            info!("노드 사용률 조회 중");
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
        }
        None => None,
    };
    let plan = planner
        .send(PlanWave {
            nodepool: nodepool.clone(),
            rates,
            target_allocate_rate: args.wave.target_allocate_rate,
            max_nodes: args.wave.max_nodes,
            nodes: args.nodes.clone(),
            force: args.force,
            list_named_pods: args.dry_run,
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

    // One listener for the whole run, installed before it starts.
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (planner, interrupted) = (planner.clone(), interrupted.clone());
        crate::shutdown::on_signals(move |signal| {
            if !interrupted.swap(true, Ordering::SeqCst) {
                warn!(
                    signal,
                    "interrupted: stopping; every node not yet drained is restored"
                );
            }
            planner.do_send(CancelRun {
                run_id: None,
                reason: StopReason::Interrupted {
                    signal: signal.into(),
                },
            });
        });
    }
    let run_id = planner
        .send(StartRun {
            nodepool: nodepool.clone(),
            nodes: chosen.clone(),
            settings: args.opts.settings(args.force),
            trigger: "node-drain drain (CLI)".into(),
            plan: Some(plan),
            take_over: None,
        })
        .await??;
    if interrupted.load(Ordering::SeqCst) {
        planner.do_send(CancelRun {
            run_id: Some(run_id.clone()),
            reason: StopReason::Interrupted {
                signal: "signal before the run started".into(),
            },
        });
    }
    let bars = Bars::start(&chosen);
    let awaited = planner.send(AwaitRun { run_id });
    tokio::pin!(awaited);
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    let report = loop {
        tokio::select! {
            report = &mut awaited => break report??,
            _ = ticker.tick() => {
                if let Some(bars) = &bars {
                    bars.update(&actors.progress);
                }
            }
        }
    };
    if let Some(bars) = bars {
        bars.finish(&actors.progress);
    }
    print!("{}", render::run_summary(&report));
    // The drain is over; give Slack a bounded moment before the process exits.
    let timeout = Duration::from_secs(args.opts.slack_flush_timeout_seconds);
    if !actors
        .notifier
        .send(FlushNotifications { timeout })
        .await
        .unwrap_or(false)
    {
        warn!(
            seconds = args.opts.slack_flush_timeout_seconds,
            "Slack notifications still queued at exit were dropped"
        );
    }
    Ok(if report.failed() > 0 { 1 } else { 0 })
}

impl From<tokio::sync::oneshot::error::RecvError> for Error {
    fn from(e: tokio::sync::oneshot::error::RecvError) -> Self {
        Error::Internal(format!("run report: {e}"))
    }
}
