//! `node-drain drain`: plans one wave (from the allocate rate, or `--nodes`)
//! and, with `--dry-run`, prints it and changes nothing.

use tracing::info;

use super::{checked_nodepool, render, start_metrics, start_planner};
use crate::cli::{DrainArgs, GlobalArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::messages::{MeasureAllocateRates, PlanWave};

pub async fn run(global: &GlobalArgs, args: DrainArgs) -> Result<i32> {
    info!("노드 드레인 커맨드를 실행합니다.");
    let nodepool = checked_nodepool(global)?;
    if !args.dry_run {
        // The drain engine lands with the [drain] issue; until then refuse plainly
        // rather than pretend.
        return Err(Error::Usage(
            "this build plans waves but does not drain yet: run `node-drain drain --dry-run`"
                .into(),
        ));
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
    let planner = start_planner(global).await?;
    let plan = planner
        .send(PlanWave {
            nodepool,
            rates,
            target_allocate_rate: args.wave.target_allocate_rate,
            max_nodes: args.wave.max_nodes,
            nodes: args.nodes.clone(),
        })
        .await??;
    if plan.rates.is_some() {
        info!(drainRate = plan.wave.drain_rate, "드레인 비율");
        info!(
            drainNodeCount = plan.wave.drain_node_count,
            "드레인 할 노드 개수"
        );
    }
    match args.output {
        OutputFormat::Json => println!("{}", render::json(&plan)),
        OutputFormat::Text => print!("{}", render::plan_text(&plan)),
    }
    Ok(0)
}
