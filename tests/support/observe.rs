//! What tests observe besides the objects: Prometheus answers, the API
//! server's audit log (evictions, deletions, writes by holder), Node Events.

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Api, ListParams};
use kube::Client;
use serde_json::Value;

use super::*;

/// Asks Prometheus one instant query; returns the raw JSON answer.
pub async fn prometheus_query(env: &TestEnv, query: &str) -> Value {
    let url = format!("{}/api/v1/query", env.prometheus_url());
    reqwest::Client::new()
        .get(url)
        .query(&[("query", query)])
        .send()
        .await
        .expect("reach Prometheus")
        .json()
        .await
        .expect("Prometheus JSON")
}

/// One line of the API server's audit log (only what the tests read).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AuditEvent {
    pub verb: String,
    #[serde(rename = "objectRef", default)]
    pub object: Option<AuditObject>,
    #[serde(rename = "responseStatus", default)]
    pub response: Option<AuditStatus>,
    #[serde(rename = "requestObject", default)]
    pub request: Option<Value>,
    #[serde(default)]
    pub stage: String,
    #[serde(rename = "userAgent", default)]
    pub user_agent: String,
    #[serde(rename = "requestReceivedTimestamp", default)]
    pub received: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct AuditObject {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct AuditStatus {
    #[serde(default)]
    pub code: u16,
}

/// Audit events (ResponseComplete) about pods of `namespace` made by node-drain
/// (by its User-Agent: KWOK, Karpenter and the tests use the same identity).
pub fn audit_events(env: &TestEnv, namespace: &str) -> Vec<AuditEvent> {
    let text = std::fs::read_to_string(env.var("TESTENV_AUDIT_LOG")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| e.stage == "ResponseComplete")
        .filter(|e| e.user_agent.starts_with("node-drain/"))
        .filter(|e| {
            e.object
                .as_ref()
                .is_some_and(|o| o.namespace == namespace && o.resource == "pods")
        })
        .collect()
}

/// Every write (create, update, patch, delete) a node-drain process sent as
/// `holder` (its User-Agent names it) received at or after `since` (RFC 3339).
pub fn writes_by(env: &TestEnv, holder: &str, since: &str) -> Vec<String> {
    let text = std::fs::read_to_string(env.var("TESTENV_AUDIT_LOG")).unwrap_or_default();
    let tag = format!("({holder})");
    text.lines()
        .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
        .filter(|e| e.stage == "ResponseComplete" && e.user_agent.ends_with(&tag))
        .filter(|e| matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .filter(|e| e.received.as_str() >= since)
        .map(|e| format!("{} {:?} at {}", e.verb, e.object, e.received))
        .collect()
}

/// Successful evictions node-drain made, per pod name in `namespace`.
pub fn successful_evictions(env: &TestEnv, namespace: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in audit_events(env, namespace) {
        let (Some(o), Some(r)) = (e.object, e.response) else {
            continue;
        };
        if e.verb == "create" && o.subresource == "eviction" && (200..300).contains(&r.code) {
            // SPEC §6: never a pod other than the planned UID. The audit log
            // records the Eviction as the API server read it.
            let uid = e.request.as_ref().and_then(|b| {
                b.pointer("/deleteOptions/preconditions/uid")?
                    .as_str()
                    .map(str::to_string)
            });
            assert!(
                uid.is_some_and(|u| !u.is_empty()),
                "eviction of {}/{} without a UID precondition: {:?}",
                o.namespace,
                o.name,
                e.request
            );
            *counts.entry(o.name).or_insert(0) += 1;
        }
    }
    counts
}

/// Events node-drain recorded on a Node: (reason, note).
pub async fn node_events(client: &Client, node: &str) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::all(client.clone());
    let listed = events
        .list(&ListParams::default().fields(&format!("regarding.kind=Node,regarding.name={node}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    listed
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("node-drain"))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Waits until Prometheus answers `query` with a first value that `accept`s; returns it.
pub async fn wait_prometheus_value(
    env: &TestEnv,
    what: &str,
    query: &str,
    accept: impl Fn(f64) -> bool,
) -> f64 {
    wait_for(what, Duration::from_secs(120), || async {
        let answer = prometheus_query(env, query).await;
        let value: Option<f64> = answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok());
        match value {
            Some(v) if accept(v) => Ok(Some(v)),
            _ => Err(format!("{value:?}")),
        }
    })
    .await
}

/// Waits until Prometheus has both of the NodePool's CPU metrics node-drain reads:
/// capacity (`karpenter_nodepools_usage`) and requests (summed node metrics),
/// each equal to the given value (None: any value above 0).
pub async fn wait_nodepool_cpu_metrics(
    env: &TestEnv,
    nodepool: &str,
    capacity: Option<f64>,
    requests: Option<f64>,
) {
    let usage =
        format!("karpenter_nodepools_usage{{nodepool=\"{nodepool}\",resource_type=\"cpu\"}}");
    let requested = format!(
        "sum(karpenter_nodes_total_pod_requests{{nodepool=\"{nodepool}\",resource_type=\"cpu\"}})"
    );
    let check = |want: Option<f64>| move |v: f64| want.map_or(v > 0.0, |w| (v - w).abs() < 1e-9);
    wait_prometheus_value(
        env,
        "Prometheus to have the NodePool's CPU capacity",
        &usage,
        check(capacity),
    )
    .await;
    wait_prometheus_value(
        env,
        "Prometheus to have the NodePool's CPU requests",
        &requested,
        check(requests),
    )
    .await;
}
