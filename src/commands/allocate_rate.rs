//! `node-drain karpenter allocate-rate`: the NodePool's capacity, requests and
//! allocate rates (the seed's log lines), and the wave they imply.

use tracing::info;

use super::{checked_nodepool, prometheus_client, render, start_actors};
use crate::cli::{AllocateRateArgs, GlobalArgs, OutputFormat};
use crate::error::Result;
use crate::messages::{MeasureAllocateRates, PlanWave};

pub async fn run(global: &GlobalArgs, args: AllocateRateArgs) -> Result<i32> {
    info!("Karpenter Allocate Rate 사용량 조회 커맨드를 실행합니다.");
    let nodepool = checked_nodepool(global)?;
    // Prometheus first: its answer is what this command is for, and an
    // unusable one (exit 3) is reported before the API server is needed.
    let metrics =
        crate::actors::start_metrics(prometheus_client(global)?, global.karpenter_metrics);
    let rates = metrics
        .send(MeasureAllocateRates {
            nodepool: nodepool.clone(),
        })
        .await??;
    info!(
        memoryAllocateRate = format!("{} %", rates.memory.allocate_rate_percent).as_str(),
        "Karpenter"
    );
    info!(
        cpuAllocateRate = format!("{} %", rates.cpu.allocate_rate_percent).as_str(),
        "Karpenter"
    );
    let started = start_actors(global, false, 1, 1).await?;
    let plan = started
        .planner
        .send(PlanWave {
            nodepool,
            rates: Some(rates),
            target_allocate_rate: args.wave.target_allocate_rate,
            max_nodes: args.wave.max_nodes,
            nodes: vec![],
            force: false,
            list_named_pods: true,
        })
        .await??;
    match args.output {
        OutputFormat::Json => println!("{}", render::json(&plan)),
        OutputFormat::Text => print!("{}", render::allocate_rate_text(&plan)),
    }
    Ok(0)
}
