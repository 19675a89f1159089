//! The sampler of the graceful tests: a Service's ready endpoints and the
//! app's pods, at 4 Hz (part of `support/graceful.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::Client;

/// Ready endpoints of a Service: pod UID per ready address.
pub async fn ready_endpoints(client: &Client, namespace: &str, service: &str) -> BTreeSet<String> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let list = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
        .filter_map(|e| e.target_ref.as_ref().and_then(|t| t.uid.clone()))
        .collect()
}

/// One sample: when, the ready endpoints, and the pods (uid → terminating).
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: tokio::time::Instant,
    pub ready: BTreeSet<String>,
    pub pods: BTreeMap<String, bool>,
}

/// Samples the Service's ready endpoints and the app's pods every 250 ms
/// (4 Hz) until dropped.
pub struct Sampler {
    pub samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(client: &Client, namespace: &str, app: &str) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (client, namespace, app, out) = (
            client.clone(),
            namespace.to_string(),
            app.to_string(),
            samples.clone(),
        );
        let task = tokio::spawn(async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            loop {
                let at = tokio::time::Instant::now();
                let ready = ready_endpoints(&client, &namespace, &app).await;
                let listed = pods
                    .list(&ListParams::default())
                    .await
                    .map(|l| l.items)
                    .unwrap_or_default();
                let pods = listed
                    .iter()
                    .filter_map(|p| {
                        Some((
                            p.metadata.uid.clone()?,
                            p.metadata.deletion_timestamp.is_some(),
                        ))
                    })
                    .collect();
                out.lock().unwrap().push(Sample { at, ready, pods });
                tokio::time::sleep_until(at + Duration::from_millis(250)).await;
            }
        });
        Self { samples, task }
    }

    pub fn take(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
