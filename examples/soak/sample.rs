//! 2 Hz samples: every 500 ms one JSON line with the NodePool's nodes (cordon,
//! node-drain's recorded state, deleting, Ready, the Karpenter disruption taint),
//! the soak namespace's pods (app, UID, Ready, deleting) and its PDBs. A sample
//! the API server cannot answer within 2 s (an outage) is skipped, not invented.

use std::io::Write;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let [out, pool, namespace] = args else {
        anyhow::bail!("usage: soak sample OUT NODEPOOL NAMESPACE");
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(out, pool, namespace))
}

async fn run(out: &str, pool: &str, namespace: &str) -> anyhow::Result<()> {
    let mut config = kube::Config::infer().await?;
    config.read_timeout = Some(Duration::from_secs(2));
    config.connect_timeout = Some(Duration::from_secs(2));
    let client = kube::Client::try_from(config)?;
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, namespace);
    let all = ListParams::default();
    let by_pool = ListParams::default().labels(&format!("karpenter.sh/nodepool={pool}"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let t = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let listed = tokio::try_join!(nodes.list(&by_pool), pods.list(&all), pdbs.list(&all));
        let Ok((n, p, b)) = listed else { continue };
        let line = json!({
            "t": t,
            "nodes": n.items.iter().map(node).collect::<Vec<_>>(),
            "pods": p.items.iter().map(pod).collect::<Vec<_>>(),
            "pdbs": b.items.iter().map(pdb).collect::<Vec<_>>(),
        });
        writeln!(file, "{line}")?;
    }
}

/// Whether the (type, status) conditions say Ready.
fn ready<'a>(mut conditions: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    conditions.any(|(t, s)| t == "Ready" && s == "True")
}

fn node(n: &Node) -> Value {
    let m = &n.metadata;
    let ann = |k: &str| m.annotations.as_ref().and_then(|a| a.get(k)).cloned();
    let label = |k: &str| m.labels.as_ref().and_then(|l| l.get(k)).cloned();
    let spec = n.spec.as_ref();
    let conditions = n.status.iter().flat_map(|s| s.conditions.iter().flatten());
    let conditions = conditions.map(|c| (c.type_.as_str(), c.status.as_str()));
    json!({
        "name": m.name,
        "unschedulable": spec.and_then(|s| s.unschedulable).unwrap_or(false),
        "state": ann("node-drain.io/state"),
        "runId": ann("node-drain.io/run-id"),
        "queued": ann("node-drain.io/queued").is_some(),
        "cordonedBy": ann("node-drain.io/cordoned-by"),
        "deleting": m.deletion_timestamp.is_some(),
        "ready": ready(conditions),
        "initialized": label("karpenter.sh/initialized").as_deref() == Some("true"),
        "disruptedTaint": spec.and_then(|s| s.taints.as_ref()).is_some_and(|t| t
            .iter()
            .any(|t| t.key == "karpenter.sh/disrupted")),
    })
}

fn pod(p: &Pod) -> Value {
    let m = &p.metadata;
    let conditions = p.status.iter().flat_map(|s| s.conditions.iter().flatten());
    let conditions = conditions.map(|c| (c.type_.as_str(), c.status.as_str()));
    json!({
        "name": m.name,
        "uid": m.uid,
        "app": m.labels.as_ref().and_then(|l| l.get("app")),
        "node": p.spec.as_ref().and_then(|s| s.node_name.clone()),
        "ready": ready(conditions),
        "deleting": m.deletion_timestamp.is_some(),
    })
}

fn pdb(b: &PodDisruptionBudget) -> Value {
    let s = b.status.as_ref();
    let app = b
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| s.match_labels.as_ref())
        .and_then(|l| l.get("app").cloned());
    json!({
        "name": b.metadata.name,
        "app": app,
        "allowed": s.map(|s| s.disruptions_allowed),
        "desiredHealthy": s.map(|s| s.desired_healthy),
        "currentHealthy": s.map(|s| s.current_healthy),
    })
}
