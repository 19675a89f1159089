//! MetricsActor: asks Prometheus or Mimir how full the NodePool is. Detects the
//! Karpenter metrics generation, runs the seed's queries, logs the seed's lines
//! and returns the allocate rates. Any unusable answer is an error, never 0 %.

mod actor;
mod handlers;

use tracing::info;

use crate::error::{Error, Result};
use crate::plan::{AllocateRates, MetricsGeneration, Resource, ResourceUsage};
use crate::prometheus::{PrometheusClient, PrometheusError};
use crate::units::format_resource;

pub struct MetricsActor {
    /// The one client for the configured address and tenant.
    prometheus: PrometheusClient,
    /// `--karpenter-metrics`; None detects from what Prometheus has.
    generation: Option<MetricsGeneration>,
}

impl MetricsActor {
    pub fn new(prometheus: PrometheusClient, generation: Option<MetricsGeneration>) -> Self {
        Self {
            prometheus,
            generation,
        }
    }
}

/// Which generation of Karpenter metrics Prometheus has; v1 wins when both exist
/// (an upgrade in progress still exporting both).
pub async fn detect_generation(
    prometheus: &PrometheusClient,
) -> Result<MetricsGeneration, PrometheusError> {
    let query = r#"count by (__name__) ({__name__=~"karpenter_nodepools?_usage"})"#;
    let samples = prometheus.query_vector(query).await?;
    let has = |name: &str| {
        samples
            .iter()
            .any(|s| s.labels.get("__name__").map(String::as_str) == Some(name))
    };
    if has(MetricsGeneration::V1.usage_metric()) {
        Ok(MetricsGeneration::V1)
    } else if has(MetricsGeneration::V0.usage_metric()) {
        Ok(MetricsGeneration::V0)
    } else {
        Err(PrometheusError::Empty {
            query: query.to_string(),
        })
    }
}

/// Measures both resources of the NodePool.
pub async fn measure(
    prometheus: &PrometheusClient,
    generation: Option<MetricsGeneration>,
    nodepool: &str,
) -> Result<AllocateRates> {
    let generation = match generation {
        Some(g) => g,
        None => detect_generation(prometheus).await?,
    };
    let memory = measure_resource(prometheus, generation, nodepool, Resource::Memory).await?;
    let cpu = measure_resource(prometheus, generation, nodepool, Resource::Cpu).await?;
    Ok(AllocateRates {
        nodepool: nodepool.to_string(),
        generation,
        memory,
        cpu,
    })
}

async fn measure_resource(
    prometheus: &PrometheusClient,
    generation: MetricsGeneration,
    nodepool: &str,
    resource: Resource,
) -> Result<ResourceUsage> {
    let capacity_query = generation.capacity_query(nodepool, resource);
    info!(query = capacity_query.as_str(), "query");
    let capacity = prometheus.query_value(&capacity_query).await?;
    let requests_query = generation.requests_query(nodepool, resource);
    info!(query = requests_query.as_str(), "query");
    let requested = prometheus.query_value(&requests_query).await?;
    info!(
        nodepoolUsage = format_resource(resource, capacity).as_str(),
        "Karpenter"
    );
    info!(
        podRequest = format_resource(resource, requested).as_str(),
        "Karpenter"
    );
    ResourceUsage::new(resource, capacity, requested).map_err(|source| Error::Rate {
        nodepool: nodepool.to_string(),
        source,
    })
}
