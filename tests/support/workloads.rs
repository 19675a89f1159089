//! Workloads a test deploys in its namespace, pinned to its NodePool:
//! Deployments, StatefulSets, DaemonSets, PDBs, bare pods.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

use super::*;

/// Resource requests of one container.
#[derive(Clone, Copy)]
pub struct Requests {
    pub cpu: &'static str,
    pub memory: &'static str,
}

pub fn pod_spec(nodepool: &str, requests: Requests, grace_seconds: i64) -> Value {
    json!({
        "nodeSelector": {"karpenter.sh/nodepool": nodepool},
        "terminationGracePeriodSeconds": grace_seconds,
        "containers": [{
            "name": "app",
            "image": "registry.invalid/app:1",
            "resources": {"requests": {"cpu": requests.cpu, "memory": requests.memory}}
        }]
    })
}

/// Workloads created in a test namespace, pinned to a NodePool.
pub struct Workloads<'a> {
    pub client: &'a Client,
    pub namespace: &'a str,
    pub nodepool: &'a str,
}

impl Workloads<'_> {
    /// A one-replica Deployment pinned to `hostname`, with pod annotations and
    /// extra pod spec fields.
    pub async fn pinned(
        &self,
        name: &str,
        requests: Requests,
        hostname: &str,
        annotations: Value,
        extra: Value,
    ) -> Deployment {
        let mut spec = pod_spec(self.nodepool, requests, 2);
        spec["nodeSelector"]["kubernetes.io/hostname"] = json!(hostname);
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                spec.insert(k.clone(), v.clone());
            }
        }
        let object: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}, "annotations": annotations}, "spec": spec}
            }
        }))
        .unwrap();
        Api::<Deployment>::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create Deployment")
    }

    pub async fn deployment(
        &self,
        name: &str,
        replicas: i32,
        requests: Requests,
        grace_seconds: i64,
    ) -> Deployment {
        let object: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(self.nodepool, requests, grace_seconds)}
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create Deployment")
    }

    /// A StatefulSet whose pods each take a node of their own (hostname
    /// anti-affinity among themselves): stacked on one node they could leave it
    /// no room for a pod the test needs there.
    pub async fn statefulset(&self, name: &str, replicas: i32, requests: Requests) -> StatefulSet {
        let mut spec = pod_spec(self.nodepool, requests, 2);
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": name}}, "topologyKey": "kubernetes.io/hostname"}
        ]}});
        let object: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "serviceName": name,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec}
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create StatefulSet")
    }

    pub async fn daemonset(&self, name: &str, requests: Requests) -> DaemonSet {
        let object: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(self.nodepool, requests, 2)}
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create DaemonSet")
    }

    /// A PDB over `app=<selector>`: `max_unavailable` or `min_available` as given.
    pub async fn pdb(
        &self,
        name: &str,
        selector: &str,
        max_unavailable: Option<i32>,
        min_available: Option<i32>,
    ) -> PodDisruptionBudget {
        let mut spec = json!({"selector": {"matchLabels": {"app": selector}}});
        if let Some(m) = max_unavailable {
            spec["maxUnavailable"] = json!(m);
        }
        if let Some(m) = min_available {
            spec["minAvailable"] = json!(m);
        }
        let object: PodDisruptionBudget =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create PDB")
    }

    /// A pod with no controller, on `node` when given.
    pub async fn bare_pod(
        &self,
        name: &str,
        requests: Requests,
        annotations: Value,
        node: Option<&str>,
    ) -> Pod {
        let mut spec = pod_spec(self.nodepool, requests, 2);
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        let object: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
            "spec": spec
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create Pod")
    }

    /// A Deployment whose pods KWOK keeps waiting in `reason` (CrashLoopBackOff, ImagePullBackOff, …).
    pub async fn problem_deployment(
        &self,
        name: &str,
        replicas: i32,
        requests: Requests,
        reason: &str,
    ) -> Deployment {
        let object: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}, "annotations": {"kwok.node-drain.io/container-state": reason}},
                    "spec": pod_spec(self.nodepool, requests, 2)
                }
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create Deployment")
    }

    /// A Deployment whose pods each need a node of their own: hostname
    /// anti-affinity on the `spread` label that every such Deployment shares.
    pub async fn spread_deployment(
        &self,
        name: &str,
        replicas: i32,
        requests: Requests,
    ) -> Deployment {
        let mut spec = pod_spec(self.nodepool, requests, 2);
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"spread": "one-per-node"}}, "topologyKey": "kubernetes.io/hostname"}
        ]}});
        let object: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name, "spread": "one-per-node"}}, "spec": spec}
            }
        }))
        .unwrap();
        Api::namespaced(self.client.clone(), self.namespace)
            .create(&PostParams::default(), &object)
            .await
            .expect("create Deployment")
    }

    /// The namespace's pods with label `app=<app>`.
    pub async fn pods(&self, app: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.namespace);
        pods.list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .expect("list pods")
            .items
    }

    /// Waits until `count` pods of `app` are Running and Ready.
    pub async fn wait_running(&self, app: &str, count: usize, timeout: Duration) -> Vec<Pod> {
        wait_for(
            &format!("{count} Running pods of {app}"),
            timeout,
            || async {
                let pods = self.pods(app).await;
                let running: Vec<Pod> = pods
                    .into_iter()
                    .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
                    .collect();
                if running.len() == count {
                    Ok(Some(running))
                } else {
                    Err(format!("{} running", running.len()))
                }
            },
        )
        .await
    }
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions
                .as_ref()
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
}
