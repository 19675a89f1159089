//! What a cluster test stands on: a throwaway namespace and a NodePool of its
//! own (deleted after a panic too), and the `Scene` most tests start from.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};

use super::*;

/// Deletes a cluster object with kubectl, without waiting: what a guard does when
/// a test panicked before its own cleanup (a panic cannot await).
fn delete_on_drop(kind: &str, name: &str) {
    let env = TestEnv::load();
    let _ = std::process::Command::new(env.kubectl())
        .env("KUBECONFIG", env.kubeconfig())
        .args(["delete", kind, name, "--wait=false", "--ignore-not-found"])
        .output();
}

/// A namespace of the test's own, labelled so stray ones are easy to find;
/// deleted when dropped if the test did not get to `delete`.
pub struct TestNamespace {
    pub name: String,
    client: Client,
    deleted: bool,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !self.deleted {
            delete_on_drop("namespace", &self.name);
        }
    }
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = unique(prefix);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"node-drain.io/test": "true"}}
        }))
        .unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        // The ServiceAccount admission plugin refuses pods until "default" exists.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait_for(
            "the default ServiceAccount",
            Duration::from_secs(120),
            || async {
                Ok(accounts
                    .get_opt("default")
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|_| ()))
            },
        )
        .await;
        Self {
            name,
            client: client.clone(),
            deleted: false,
        }
    }

    pub async fn delete(mut self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.name, &DeleteParams::default())
            .await;
        self.deleted = true;
    }
}

fn nodepool_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"))
}

/// A NodePool of the test's own: nodes of one instance type, on-demand, never
/// consolidated or expired by Karpenter while the test runs. Deleted when dropped
/// if the test did not get to `delete`.
pub struct TestNodePool {
    pub name: String,
    client: Client,
    deleted: bool,
}

impl Drop for TestNodePool {
    fn drop(&mut self) {
        if !self.deleted {
            delete_on_drop("nodepool", &self.name);
        }
    }
}

impl TestNodePool {
    /// `budgets` is `spec.disruption.budgets` (None: Karpenter's default).
    pub async fn create(
        client: &Client,
        prefix: &str,
        instance_type: &str,
        budgets: Option<Value>,
    ) -> Self {
        let name = unique(prefix);
        let mut disruption =
            json!({"consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never"});
        if let Some(b) = budgets {
            disruption["budgets"] = b;
        }
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": name},
            "spec": {
                "template": {"spec": {
                    "nodeClassRef": {"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"},
                    "requirements": [
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance_type]},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}
                    ],
                    "expireAfter": "Never"
                }},
                "disruption": disruption
            }
        }))
        .unwrap();
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &nodepool_resource());
        api.create(&PostParams::default(), &object)
            .await
            .expect("create NodePool");
        Self {
            name,
            client: client.clone(),
            deleted: false,
        }
    }

    /// A handle on an existing NodePool that never deletes it (a sampler's).
    pub fn attach(client: &Client, name: &str) -> Self {
        Self {
            name: name.into(),
            client: client.clone(),
            deleted: true,
        }
    }

    /// The NodePool's nodes, oldest first.
    pub async fn nodes(&self) -> Vec<Node> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut items = nodes
            .list(&ListParams::default().labels(&format!("karpenter.sh/nodepool={}", self.name)))
            .await
            .expect("list nodes")
            .items;
        items.sort_by_key(|n| {
            (
                n.metadata.creation_timestamp.clone().map(|t| t.0),
                n.metadata.name.clone(),
            )
        });
        items
    }

    /// Waits until the NodePool has exactly `count` Ready nodes; returns them oldest first.
    pub async fn wait_ready_nodes(&self, count: usize, timeout: Duration) -> Vec<Node> {
        wait_for(
            &format!("{count} Ready nodes in NodePool {}", self.name),
            timeout,
            || async {
                let nodes = self.nodes().await;
                let ready = nodes.iter().filter(|n| is_ready(n)).count();
                if ready == count && nodes.len() == count {
                    Ok(Some(nodes))
                } else {
                    Err(format!("{} nodes, {ready} Ready", nodes.len()))
                }
            },
        )
        .await
    }

    /// Sets `spec.limits` (e.g. `{"cpu": "32"}`): Karpenter never provisions past it.
    pub async fn set_limits(&self, limits: Value) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &nodepool_resource());
        api.patch(
            &self.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"limits": limits}})),
        )
        .await
        .expect("set NodePool limits");
    }

    /// Deletes the NodePool; Karpenter then removes its NodeClaims and nodes.
    pub async fn delete(mut self) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &nodepool_resource());
        let _ = api.delete(&self.name, &DeleteParams::default()).await;
        self.deleted = true;
    }
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What most cluster tests start from: the environment, a client, a namespace
/// and a NodePool of their own (one instance type). `cleanup` at the end; the
/// guards clean up after a panic.
pub struct Scene {
    pub env: TestEnv,
    pub client: Client,
    pub ns: TestNamespace,
    pub pool: TestNodePool,
}

impl Scene {
    pub async fn new(prefix: &str, instance_type: &str, budgets: Option<Value>) -> Self {
        let env = TestEnv::load();
        let client = env.client().await;
        let ns = TestNamespace::create(&client, prefix).await;
        let pool = TestNodePool::create(&client, prefix, instance_type, budgets).await;
        Self {
            env,
            client,
            ns,
            pool,
        }
    }

    /// Workloads in the scene's namespace, pinned to its NodePool.
    pub fn workloads(&self) -> Workloads<'_> {
        Workloads {
            client: &self.client,
            namespace: &self.ns.name,
            nodepool: &self.pool.name,
        }
    }

    pub async fn cleanup(self) {
        self.ns.delete().await;
        self.pool.delete().await;
    }
}
