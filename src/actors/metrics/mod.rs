//! MetricsActor: asks Prometheus or Mimir how full the NodePool is. Detects the
//! Karpenter metrics generation, runs the seed's queries, logs the seed's lines
//! and returns the allocate rates. Any unusable answer is an error, never 0 %.

mod actor;
mod handlers;

use tracing::info;

use crate::error::{Error, Result};
use crate::plan::{AllocateRates, MetricsGeneration, RateError, Resource, ResourceUsage};
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

/// Which generation of Karpenter metrics Prometheus has for this NodePool.
/// The generation that counts capacity for it wins, v1 first: during an upgrade
/// both may exist, and Karpenter v1 exports 0 for a NodePool it has no nodes for.
/// A generation that exists only with 0 is still chosen (v1 first) so that the
/// answer is the clear "no capacity" error, not a guess.
pub async fn detect_generation(
    prometheus: &PrometheusClient,
    nodepool: &str,
) -> Result<MetricsGeneration, PrometheusError> {
    let selector = format!(
        r#"{{__name__=~"karpenter_nodepools?_usage",nodepool="{nodepool}",resource_type="cpu"}}"#
    );
    let counting = prometheus
        .query_vector(&format!("count by (__name__) ({selector} > 0)"))
        .await?;
    let any = prometheus
        .query_vector(&format!("count by (__name__) ({selector})"))
        .await?;
    let has = |samples: &[crate::prometheus::Sample], g: MetricsGeneration| {
        samples
            .iter()
            .any(|s| s.labels.get("__name__").map(String::as_str) == Some(g.usage_metric()))
    };
    for samples in [&counting, &any] {
        for generation in [MetricsGeneration::V1, MetricsGeneration::V0] {
            if has(samples, generation) {
                return Ok(generation);
            }
        }
    }
    Err(PrometheusError::Empty {
        query: format!("count by (__name__) ({selector})"),
    })
}

/// Measures both resources of the NodePool.
pub async fn measure(
    prometheus: &PrometheusClient,
    generation: Option<MetricsGeneration>,
    nodepool: &str,
) -> Result<AllocateRates> {
    let generation = match generation {
        Some(g) => g,
        None => detect_generation(prometheus, nodepool).await?,
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
    if capacity <= 0.0 {
        let source = RateError::NoCapacity {
            resource: resource.label(),
            capacity,
        };
        return Err(Error::Rate {
            nodepool: nodepool.to_string(),
            source,
        });
    }
    let requests_query = generation.requests_query(nodepool, resource);
    info!(query = requests_query.as_str(), "query");
    let requested = prometheus.query_value(&requests_query).await?;
    // The seed's order: both queries, then nodepoolUsage and podRequest, once each.
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
