//! Disk pressure end to end, through the real Prometheus and Alertmanager of the
//! test environment: a test exporter serves node-exporter filesystem series at
//! 96 % full for one node (`instance="<its InternalIP>:9100"`, as
//! kube-prometheus-stack labels them) and for an IP every other KWOK node shares;
//! the node-exporter mixin's `NodeFilesystemAlmostOutOfSpace` rule fires;
//! Alertmanager (bearer token from `credentials_file`) calls the daemon; that
//! node and only it is drained and retired; the shared IP is ignored as
//! ambiguous; Alertmanager re-sending causes no second drain.
//! One test in this binary: it rewrites the environment's Alertmanager config.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::daemon::Daemon;
use support::http::{serve, Request, Response};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

/// Gives `node` its own InternalIP (every KWOK node has the same one; KWOK keeps
/// addresses a node already has).
async fn give_ip(client: &kube::Client, node: &str, ip: &str) {
    let patch = json!({"status": {"addresses": [
        {"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": node}]}});
    Api::<Node>::all(client.clone())
        .patch_status(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch the node's addresses");
}

fn filesystem_series(instance: &str, test: &str) -> String {
    let l = format!(
        "instance=\"{instance}\",job=\"node-exporter\",test=\"{test}\",device=\"/dev/nvme0n1p1\",fstype=\"ext4\",mountpoint=\"/\""
    );
    format!(
        "node_filesystem_avail_bytes{{{l}}} 4e9\nnode_filesystem_size_bytes{{{l}}} 1e11\nnode_filesystem_readonly{{{l}}} 0\n"
    )
}

async fn reload(url: &str) {
    let r = reqwest::Client::new()
        .post(format!("{url}/-/reload"))
        .send()
        .await
        .expect("reload");
    assert!(r.status().is_success(), "{url}/-/reload: {}", r.status());
}

struct Restore {
    files: Vec<std::path::PathBuf>,
    alertmanager_yml: std::path::PathBuf,
    original: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::write(&self.alertmanager_yml, &self.original);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_pressure_alert_from_prometheus_and_alertmanager_drains_that_node_only() {
    let scene = Scene::new("daemon-am", "c-4x-amd64-linux", None).await;
    let (env, client, ns, pool) = (&scene.env, &scene.client, &scene.ns, &scene.pool);
    let w = scene.workloads();
    // Two nodes: one gets its own IP, the other keeps the one KWOK nodes share.
    w.spread_deployment("web", 2, SMALL).await;
    let pods = w.wait_running("web", 2, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);
    let ip = format!("10.99.{}.{}", fastrand::u8(1..250), fastrand::u8(1..250));
    give_ip(client, &node, &ip).await;
    let shared_ip: Option<String> = {
        let other = pool
            .nodes()
            .await
            .into_iter()
            .find(|n| n.metadata.name.as_deref() != Some(node.as_str()));
        other
            .and_then(|n| {
                n.status?
                    .addresses?
                    .into_iter()
                    .find(|a| a.type_ == "InternalIP")
            })
            .map(|a| a.address)
    };

    assert!(shared_ip.is_some(), "a second node with the shared IP");
    let test = unique("am");
    let config = "rules:\n  - alertname: NodeFilesystemAlmostOutOfSpace\n    labels: {severity: critical}\n    action: drain-node\n";
    let daemon = Daemon::start(env, &pool.name, &unique("lease"), &unique("serve"), config);
    daemon.wait_ready().await;

    // The exporter: the node at 95 % full, and (when other nodes exist) an IP they share.
    let mut body = filesystem_series(&format!("{ip}:9100"), &test);
    if let Some(shared) = &shared_ip {
        body += &filesystem_series(&format!("{shared}:9100"), &test);
    }
    let exporter = serve(move |_req: Request| {
        let body = body.clone();
        async move { Response::new(200, "text/plain; version=0.0.4", body) }
    })
    .await;
    let state = std::path::PathBuf::from(env.var("TESTENV_STATE"));
    let alertmanager_yml = state.join("alertmanager/alertmanager.yml");
    let mut restore = Restore {
        files: vec![],
        original: std::fs::read_to_string(&alertmanager_yml).unwrap(),
        alertmanager_yml: alertmanager_yml.clone(),
    };
    let targets = std::path::PathBuf::from(env.var("TESTENV_PROMETHEUS_TARGETS"))
        .join(format!("{test}.json"));
    std::fs::write(
        &targets,
        json!([{"targets": [exporter.addr.to_string()], "labels": {"job": "node-exporter"}}])
            .to_string(),
    )
    .unwrap();
    restore.files.push(targets);

    // The node-exporter mixin's rule, as kube-prometheus renders it (for: 30m here 0s).
    let sel = format!("job=\"node-exporter\",fstype!=\"\",mountpoint!=\"\",test=\"{test}\"");
    let rule = format!(
        "groups:\n- name: {test}\n  rules:\n  - alert: NodeFilesystemAlmostOutOfSpace\n    expr: |\n      (\n        node_filesystem_avail_bytes{{{sel}}} / node_filesystem_size_bytes{{{sel}}} * 100 < 5\n      and\n        node_filesystem_readonly{{{sel}}} == 0\n      )\n    for: 0s\n    labels:\n      severity: critical\n"
    );
    let rule_file = state.join(format!("prometheus/rules/{test}.yml"));
    std::fs::write(&rule_file, rule).unwrap();
    restore.files.push(rule_file);
    reload(&env.prometheus_url()).await;

    // Alertmanager: this test's alerts go to the daemon, with the token from a file.
    let route = format!(
        "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 5s\n  routes:\n  - receiver: node-drain\n    matchers: ['test=\"{test}\"']\n    group_by: [alertname, instance]\n    group_wait: 1s\n    group_interval: 2s\n    repeat_interval: 4s\nreceivers:\n- name: blackhole\n- name: node-drain\n  webhook_configs:\n  - url: {}/v1/alerts\n    send_resolved: true\n    http_config:\n      authorization:\n        credentials_file: {}\n",
        daemon.url,
        daemon.dir.0.join("token").display()
    );
    std::fs::write(&alertmanager_yml, route).unwrap();
    let alertmanager = env.var("ALERTMANAGER_URL");
    reload(&alertmanager).await;

    wait_retired(
        client,
        &node,
        "the node drained and retired",
        Duration::from_secs(150),
    )
    .await;
    // Alertmanager repeats every 4 s: wait for a repeat, which must be a duplicate.
    let metrics_url = format!("{}/metrics", daemon.url);
    wait_for(
        "Alertmanager to send the alert again",
        Duration::from_secs(60),
        || async {
            let text = reqwest::get(&metrics_url)
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let duplicate = text.contains("node_drain_alerts_total{outcome=\"duplicate\"");
            let ambiguous = shared_ip.is_none() || text.contains("reason=\"ambiguous-ip\"");
            if duplicate && ambiguous {
                Ok(Some(()))
            } else {
                Err(text
                    .lines()
                    .filter(|l| l.starts_with("node_drain_alerts_total"))
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        },
    )
    .await;
    let log = daemon.log();
    assert_eq!(
        log.matches("draining the wave").count(),
        1,
        "one drain, of {node} only:\n{log}"
    );
    for n in pool.nodes().await {
        let name = n.metadata.name.clone().unwrap_or_default();
        if name != node {
            assert!(
                annotation(&n, "node-drain.io/state").is_none(),
                "{name} was touched"
            );
        }
    }
    assert_evicted_at_most_once(env, &ns.name);
    drop(restore);
    reload(&alertmanager).await;
    reload(&env.prometheus_url()).await;
}
