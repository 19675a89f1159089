//! What a zero-dip rotation test stands on: a NodePool of one pod a node whose
//! pods may carry `node-drain.io/graceful: "true"`, behind a Service and a PDB,
//! and a watch on the Service's EndpointSlices that records every change of
//! its ready count (no sample can miss a dip).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use kube::Client;
use serde_json::json;

use super::rotation::ONE_CPU;
use super::*;

/// A NodePool of `nodes` 4-CPU nodes under `budgets`, the Deployment `web` of
/// one 1-CPU pod a node (hostname anti-affinity; pods annotated
/// `node-drain.io/graceful: "true"` when `graceful`), the Service `web` and the
/// PDB `web` (`maxUnavailable: 1`); all Ready, Prometheus seeing the pool's CPU.
/// Answers the scene and the original nodes' names.
pub async fn graceful_spread_pool(
    prefix: &str,
    nodes: usize,
    budgets: serde_json::Value,
    graceful: bool,
) -> (Scene, Vec<String>) {
    let scene = Scene::new(prefix, "c-4x-amd64-linux", Some(budgets)).await;
    let w = scene.workloads();
    let mut spec = pod_spec(&scene.pool.name, ONE_CPU, 2);
    spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
    ]}});
    let annotations = if graceful {
        json!({"node-drain.io/graceful": "true"})
    } else {
        json!({})
    };
    let object: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": nodes,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}, "annotations": annotations},
                         "spec": spec}
        }
    }))
    .unwrap();
    Api::namespaced(scene.client.clone(), &scene.ns.name)
        .create(&PostParams::default(), &object)
        .await
        .expect("create Deployment");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(scene.client.clone(), &scene.ns.name)
        .create(&PostParams::default(), &service)
        .await
        .expect("create Service");
    w.pdb("web", "web", Some(1), None).await;
    let originals: Vec<String> = scene
        .pool
        .wait_ready_nodes(nodes, Duration::from_secs(180))
        .await
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    w.wait_running("web", nodes, Duration::from_secs(60)).await;
    wait_nodepool_cpu_metrics(&scene.env, &scene.pool.name, Some(4.0 * nodes as f64), None).await;
    (scene, originals)
}

/// Every change of a Service's ready endpoint count, from a watch on its
/// EndpointSlices: (time since the watch started, ready endpoints).
pub struct EndpointWatch {
    changes: Arc<Mutex<Vec<(Duration, usize)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EndpointWatch {
    pub fn start(client: &Client, namespace: &str, service: &str) -> Self {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
        let config =
            watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let out = changes.clone();
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut ready = BTreeMap::<String, usize>::new();
            let mut stream = watcher(api, config).boxed();
            while let Some(event) = stream.next().await {
                let (slice, gone) = match event {
                    Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => (s, false),
                    Ok(watcher::Event::Delete(s)) => (s, true),
                    _ => continue,
                };
                let name = slice.metadata.name.clone().unwrap_or_default();
                let count = slice
                    .endpoints
                    .iter()
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                    .count();
                ready.insert(name, if gone { 0 } else { count });
                let total = ready.values().sum();
                let mut c = out.lock().unwrap();
                if c.last().map(|(_, n)| *n) != Some(total) {
                    c.push((started.elapsed(), total));
                }
            }
        });
        Self { changes, task }
    }

    /// The ready count now (None: nothing seen yet).
    pub fn current(&self) -> Option<usize> {
        self.changes.lock().unwrap().last().map(|(_, n)| *n)
    }

    pub fn stop(self) -> Vec<(Duration, usize)> {
        self.task.abort();
        let changes = self.changes.lock().unwrap().clone();
        changes
    }
}

/// Every change of a Deployment's `status.readyReplicas`, from a watch:
/// (time since the watch started, readyReplicas).
pub struct ReadyReplicasWatch {
    changes: Arc<Mutex<Vec<(Duration, usize)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadyReplicasWatch {
    pub fn start(client: &Client, namespace: &str, deployment: &str) -> Self {
        let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={deployment}"));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let out = changes.clone();
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut stream = watcher(api, config).boxed();
            while let Some(event) = stream.next().await {
                let (Ok(watcher::Event::Apply(d)) | Ok(watcher::Event::InitApply(d))) = event
                else {
                    continue;
                };
                let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0) as usize;
                let mut c = out.lock().unwrap();
                if c.last().map(|(_, n)| *n) != Some(ready) {
                    c.push((started.elapsed(), ready));
                }
            }
        });
        Self { changes, task }
    }

    pub fn stop(self) -> Vec<(Duration, usize)> {
        self.task.abort();
        let changes = self.changes.lock().unwrap().clone();
        changes
    }
}

/// The lowest count after the first one that reached `want` (the watch's
/// first events may show a slice still filling).
pub fn min_after_full(changes: &[(Duration, usize)], want: usize) -> Option<usize> {
    let first = changes.iter().position(|(_, n)| *n >= want)?;
    changes[first..].iter().map(|(_, n)| *n).min()
}

/// Each stretch below `want`: when it started and how long it lasted.
pub fn dips(changes: &[(Duration, usize)], want: usize) -> Vec<(Duration, Duration)> {
    let mut out = Vec::new();
    let mut since = None;
    for (at, n) in changes {
        match since {
            None if *n < want => since = Some(*at),
            Some(s) if *n >= want => {
                out.push((s, *at - s));
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some((last, _))) = (since, changes.last()) {
        out.push((s, *last - s));
    }
    out
}
