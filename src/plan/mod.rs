//! The drain plan, sans IO: allocate rates (SPEC §2), the wave size and its caps
//! (`wave`), the NodePool's disruption budgets (`budget`), and which nodes the
//! wave takes (`candidates`). Actors gather the facts; these modules decide.

pub mod budget;
pub mod candidates;
pub mod rotation;
pub mod wave;

use serde::Serialize;

use crate::drain::PlannedRemoval;

/// The resources the allocate rate is computed for, by Karpenter's `resource_type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Memory,
    Cpu,
}

impl Resource {
    pub fn label(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Cpu => "cpu",
        }
    }
}

/// Which Karpenter metric names Prometheus has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MetricsGeneration {
    /// Before Karpenter v1: `karpenter_nodepool_usage`; requests = pod + daemon requests.
    V0,
    /// Karpenter v1: `karpenter_nodepools_usage`; pod requests already include DaemonSets.
    V1,
}

impl MetricsGeneration {
    pub fn usage_metric(self) -> &'static str {
        match self {
            MetricsGeneration::V0 => "karpenter_nodepool_usage",
            MetricsGeneration::V1 => "karpenter_nodepools_usage",
        }
    }

    /// The capacity query, in the seed's own spelling.
    pub fn capacity_query(self, nodepool: &str, resource: Resource) -> String {
        format!(
            "{}{{nodepool='{nodepool}', resource_type='{}'}}",
            self.usage_metric(),
            resource.label()
        )
    }

    /// The requests query. In v1 `total_pod_requests` already includes DaemonSet pods:
    /// adding `total_daemon_requests` would count them twice.
    pub fn requests_query(self, nodepool: &str, resource: Resource) -> String {
        let selector = format!(
            "{{nodepool='{nodepool}',resource_type='{}'}}",
            resource.label()
        );
        match self {
            MetricsGeneration::V0 => format!(
                "sum(karpenter_nodes_total_pod_requests{selector} + karpenter_nodes_total_daemon_requests{selector})"
            ),
            MetricsGeneration::V1 => format!("sum(karpenter_nodes_total_pod_requests{selector})"),
        }
    }
}

/// Capacity, requests and the allocate rate of one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceUsage {
    pub resource: Resource,
    /// Cores or bytes.
    pub capacity: f64,
    pub requested: f64,
    /// Exact percent.
    pub allocate_rate: f64,
    /// Whole percent, rounded half-up: what the seed logs and the formula uses.
    pub allocate_rate_percent: u32,
}

/// Why an allocate rate cannot be computed from the numbers Prometheus gave.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    #[error("{resource} capacity of the NodePool is {capacity}: no nodes, or Karpenter has not counted them yet")]
    NoCapacity {
        resource: &'static str,
        capacity: f64,
    },
    #[error("{resource} requests are negative ({requested})")]
    NegativeRequests {
        resource: &'static str,
        requested: f64,
    },
}

impl ResourceUsage {
    pub fn new(resource: Resource, capacity: f64, requested: f64) -> Result<Self, RateError> {
        if capacity.is_nan() || capacity <= 0.0 {
            return Err(RateError::NoCapacity {
                resource: resource.label(),
                capacity,
            });
        }
        if requested < 0.0 {
            return Err(RateError::NegativeRequests {
                resource: resource.label(),
                requested,
            });
        }
        let allocate_rate = requested / capacity * 100.0;
        Ok(Self {
            resource,
            capacity,
            requested,
            allocate_rate,
            allocate_rate_percent: wave::whole_percent(allocate_rate),
        })
    }
}

/// Both allocate rates of a NodePool, as the MetricsActor reports them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocateRates {
    pub nodepool: String,
    pub generation: MetricsGeneration,
    pub memory: ResourceUsage,
    pub cpu: ResourceUsage,
}

impl AllocateRates {
    /// `max(memoryAllocateRate, cpuAllocateRate)` in whole percents.
    pub fn max_allocate_rate(&self) -> u32 {
        self.memory
            .allocate_rate_percent
            .max(self.cpu.allocate_rate_percent)
    }
}

/// One node of the plan with, when chosen, its pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedNode {
    #[serde(flatten)]
    pub candidate: candidates::Candidate,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PlannedRemoval>,
}

/// The whole plan of one wave.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WavePlan {
    pub nodepool: String,
    /// None when nodes were named with `--nodes` (no formula).
    pub rates: Option<AllocateRates>,
    pub wave: wave::WaveSize,
    pub nodes: Vec<PlannedNode>,
    /// The Nodes as the plan read them: a run claims each with its
    /// resourceVersion without reading it again (a stale one is re-read).
    #[serde(skip)]
    pub seen: std::collections::BTreeMap<String, k8s_openapi::api::core::v1::Node>,
}

impl WavePlan {
    pub fn chosen(&self) -> impl Iterator<Item = &PlannedNode> {
        self.nodes.iter().filter(|n| n.candidate.chosen)
    }
}

/// A NodePool name is a DNS-1123 subdomain; anything else is refused before it
/// reaches a PromQL string or a label selector.
pub fn validate_nodepool_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "NodePool name {name:?} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_numbers_give_the_seed_rates() {
        let memory = ResourceUsage::new(Resource::Memory, 331e9, 91e9).unwrap();
        let cpu = ResourceUsage::new(Resource::Cpu, 48.0, 34.0).unwrap();
        assert_eq!(memory.allocate_rate_percent, 27);
        assert_eq!(cpu.allocate_rate_percent, 71);
        let rates = AllocateRates {
            nodepool: "p".into(),
            generation: MetricsGeneration::V0,
            memory,
            cpu,
        };
        assert_eq!(rates.max_allocate_rate(), 71);
    }

    #[test]
    fn zero_capacity_is_an_error_not_zero_percent() {
        assert!(matches!(
            ResourceUsage::new(Resource::Cpu, 0.0, 0.0),
            Err(RateError::NoCapacity { .. })
        ));
        assert!(matches!(
            ResourceUsage::new(Resource::Cpu, f64::NAN, 1.0),
            Err(RateError::NoCapacity { .. })
        ));
        assert!(ResourceUsage::new(Resource::Cpu, 4.0, -1.0).is_err());
    }

    #[test]
    fn queries_are_the_seeds() {
        let v0 = MetricsGeneration::V0;
        assert_eq!(
            v0.capacity_query("nodepool-name", Resource::Memory),
            "karpenter_nodepool_usage{nodepool='nodepool-name', resource_type='memory'}"
        );
        assert_eq!(
            v0.requests_query("nodepool-name", Resource::Cpu),
            "sum(karpenter_nodes_total_pod_requests{nodepool='nodepool-name',resource_type='cpu'} + karpenter_nodes_total_daemon_requests{nodepool='nodepool-name',resource_type='cpu'})"
        );
        let v1 = MetricsGeneration::V1;
        assert_eq!(
            v1.requests_query("p", Resource::Memory),
            "sum(karpenter_nodes_total_pod_requests{nodepool='p',resource_type='memory'})"
        );
    }

    #[test]
    fn nodepool_names() {
        for good in ["default", "worker-nodepool-name", "a.b-c1"] {
            assert!(validate_nodepool_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Upper", "a'}or vector(1)", "-x", "x-", "a b"] {
            assert!(validate_nodepool_name(bad).is_err(), "{bad}");
        }
    }
}
