//! `node-drain drain --rotate`, a front of the rotation engine: the preflight
//! with `--dry-run`, else the rotation itself with progress bars per wave and
//! node on a terminal, and the summary at the end. SIGINT/SIGTERM stop it: the
//! wave's nodes not yet drained are restored, placeholders deleted, and the
//! progress stays on the NodePool for a rerun. Exit 1 when a node was skipped
//! or the rotation stopped early.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::progress_bars::Bars;
use super::{checked_nodepool, render, start_actors};
use crate::cli::{DrainArgs, GlobalArgs, OutputFormat};
use crate::drain::StopReason;
use crate::error::Result;
use crate::messages::{CancelRun, FlushNotifications, RecoverNodes};
use crate::rotation::{self, RotationDeps, RotationEvent, RotationSettings};

pub async fn run(global: &GlobalArgs, args: DrainArgs) -> Result<i32> {
    let nodepool = checked_nodepool(global)?;
    let actors = start_actors(
        global,
        true,
        args.opts.eviction_rate,
        args.opts.eviction_burst,
    )
    .await?;
    let deps = RotationDeps {
        client: crate::k8s::client(global.kube_config).await?,
        planner: actors.planner.clone(),
        metrics: actors.metrics.clone(),
        notifier: actors.notifier.clone(),
        cluster: global.cluster_name.clone(),
    };
    let r = &args.rotation;
    let settings = RotationSettings {
        nodepool: nodepool.clone(),
        target_allocate_rate: args.wave.target_allocate_rate,
        max_nodes: args.wave.max_nodes,
        drain: args.opts.settings(args.force),
        capacity_first: r.capacity_first,
        capacity_timeout: r.capacity_timeout,
        placeholder_namespace: r.placeholder_namespace.clone(),
        placeholder_image: r.placeholder_image.clone(),
        settle_timeout: r.settle_timeout,
        stall_timeout: r.stall_timeout,
        trigger: "node-drain drain --rotate (CLI)".into(),
        gate: Default::default(),
    };
    if args.dry_run {
        let preflight = rotation::preflight::preflight(&deps, &settings).await?;
        match args.output {
            OutputFormat::Json => println!("{}", render::json(&preflight)),
            OutputFormat::Text => print!("{}", render::preflight_text(&preflight)),
        }
        return Ok(0);
    }

    let recovered = actors
        .planner
        .send(RecoverNodes {
            nodepools: vec![nodepool.clone()],
            lease: None,
            elected_now: false,
            all_pools: false,
            orphan_after: args.opts.orphan_after,
            defaults: settings.drain.clone(),
        })
        .await??;
    for node in recovered.restored.iter().chain(&recovered.retired) {
        warn!(
            node = node.as_str(),
            "recovered a node an earlier node-drain left"
        );
    }

    let cancel = CancellationToken::new();
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let (planner, cancel, interrupted) =
            (actors.planner.clone(), cancel.clone(), interrupted.clone());
        crate::shutdown::on_signals(move |signal| {
            if !interrupted.swap(true, Ordering::SeqCst) {
                warn!(signal, "interrupted: stopping the rotation; the wave's nodes not yet drained are restored, the progress stays on the NodePool");
            }
            cancel.cancel();
            planner.do_send(CancelRun {
                run_id: None,
                reason: StopReason::Interrupted {
                    signal: signal.into(),
                },
            });
        });
    }

    let progress = actors.progress.clone();
    let mut bars: Option<Bars> = None;
    let mut observe = |event: RotationEvent<'_>| match event {
        RotationEvent::WaveStarted { number, nodes } => {
            info!(
                wave = number,
                nodes = nodes.join(",").as_str(),
                "rotation wave started"
            );
            bars = Bars::start_wave(number, nodes);
        }
        RotationEvent::Tick => {
            if let Some(b) = &bars {
                b.update(&progress);
            }
        }
        RotationEvent::WaveFinished { report } => {
            if let Some(b) = bars.take() {
                b.finish(&progress);
            }
            print!("{}", render::run_summary(report));
        }
    };
    let summary = rotation::rotate(&deps, &settings, &cancel, &mut observe).await;
    let timeout = Duration::from_secs(args.opts.slack_flush_timeout_seconds);
    let flushed = actors
        .notifier
        .send(FlushNotifications { timeout })
        .await
        .unwrap_or(false);
    if !flushed {
        warn!(
            seconds = args.opts.slack_flush_timeout_seconds,
            "Slack notifications still queued at exit were dropped"
        );
    }
    let summary = summary?;
    print!("{}", summary.text());
    Ok(if summary.finished && summary.skipped.is_empty() {
        0
    } else {
        1
    })
}
