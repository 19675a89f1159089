//! The Karpenter objects node-drain reads and changes (karpenter.sh/v1), with
//! only the fields it uses; the rest of each object is kept as it is.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use crate::plan::budget::Budget;

/// The label Karpenter puts on every node of a NodePool.
pub const NODEPOOL_LABEL: &str = "karpenter.sh/nodepool";

#[derive(CustomResource, Debug, Clone, Default, Serialize, Deserialize)]
#[kube(
    group = "karpenter.sh",
    version = "v1",
    kind = "NodePool",
    schema = "disabled"
)]
pub struct NodePoolSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<Disruption>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Disruption {
    /// Absent means Karpenter's default, `nodes: 10%` (defaulted by the CRD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Vec<Budget>>,
}

impl NodePool {
    /// The budgets as Karpenter applies them: the CRD's default when none are set.
    pub fn budgets(&self) -> Vec<Budget> {
        self.spec
            .disruption
            .as_ref()
            .and_then(|d| d.budgets.clone())
            .unwrap_or_else(|| {
                vec![Budget {
                    nodes: "10%".into(),
                    ..Default::default()
                }]
            })
    }
}

#[derive(CustomResource, Debug, Clone, Default, Serialize, Deserialize)]
#[kube(
    group = "karpenter.sh",
    version = "v1",
    kind = "NodeClaim",
    schema = "disabled",
    status = "NodeClaimStatus"
)]
pub struct NodeClaimSpec {}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
}
