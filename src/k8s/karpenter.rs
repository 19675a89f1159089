//! The Karpenter objects node-drain reads and changes (karpenter.sh/v1), with
//! only the fields it uses; the rest of each object is kept as it is.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use crate::plan::budget::Budget;

/// The label Karpenter puts on every node of a NodePool.
pub const NODEPOOL_LABEL: &str = "karpenter.sh/nodepool";
/// The taint Karpenter puts on a node it is disrupting.
pub const DISRUPTED_TAINT: &str = "karpenter.sh/disrupted";

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

/// The NodePool a Node belongs to (Karpenter's label).
pub fn nodepool_of(node: &k8s_openapi::api::core::v1::Node) -> Option<&str> {
    node.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NODEPOOL_LABEL))
        .map(String::as_str)
}

/// The NodeClaim a Node's owner reference names (Karpenter sets one).
pub fn owner_nodeclaim(node: &k8s_openapi::api::core::v1::Node) -> Option<String> {
    node.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "NodeClaim")
        .map(|o| o.name.clone())
}

/// The NodeClaim behind a Node: named by the Node's owner reference, else found
/// by `status.nodeName` or `status.providerID`.
pub async fn nodeclaim_of(
    client: &kube::Client,
    node: &k8s_openapi::api::core::v1::Node,
) -> kube::Result<Option<String>> {
    let owned = owner_nodeclaim(node);
    if owned.is_some() {
        return Ok(owned);
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.clone());
    let claims: kube::Api<NodeClaim> = kube::Api::all(client.clone());
    let listed = claims.list(&Default::default()).await?;
    Ok(listed
        .items
        .into_iter()
        .find(|c| {
            let status = c.status.as_ref();
            status.and_then(|s| s.node_name.as_ref()) == Some(&name)
                || (provider_id.is_some()
                    && status.and_then(|s| s.provider_id.as_ref()) == provider_id.as_ref())
        })
        .and_then(|c| c.metadata.name))
}

/// Deletes a NodeClaim (gone already is done): Karpenter terminates the instance.
pub async fn delete_nodeclaim(client: &kube::Client, name: &str) -> kube::Result<()> {
    let claims: kube::Api<NodeClaim> = kube::Api::all(client.clone());
    super::gone_is_ok(claims.delete(name, &Default::default()).await)
}
