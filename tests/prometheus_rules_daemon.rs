//! node-drain's own alerts (deploy/prometheus/rules.yml, group `node-drain`)
//! firing on the test environment's Prometheus, which scrapes real daemons:
//! a follower whose Lease another holder keeps (NodeDrainNoLeader), and a
//! leader that is sent a webhook without its token (NodeDrainWebhookClientErrors),
//! has its config file broken (NodeDrainConfigReloadFailing) and drains a node
//! whose only pod a PDB protects (NodeDrainEvictionsRefusedByPDB); the leader
//! must not fire NodeDrainNoLeader. A drain stuck past its deadline cannot be
//! made cheaply, so NodeDrainStuck fires on a test exporter's
//! `node_drain_drain_deadline_timestamp_seconds`. Every node_drain_*
//! name the rules and the dashboard use is one the daemon exports.

mod prometheus_rules_support;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use prometheus_rules_support::*;
use serde_json::json;
use support::daemon::Daemon;
use support::http::{serve, Request, Response};
use support::*;

const SMALL: Requests = Requests {
    cpu: "500m",
    memory: "512Mi",
};

const CONFIG: &str = "rules:\n  - alertname: NodeFilesystemAlmostOutOfSpace\n    labels: {severity: critical}\n    action: drain-node\n";

/// The `node_drain_*` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("node_drain_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if end > "node_drain_".len() {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Whether `name` (as a query writes it) is a series of a family in `/metrics`
/// (`# TYPE <family> <type>`).
fn exported(name: &str, exposition: &str) -> bool {
    let families: BTreeSet<(&str, &str)> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    families.iter().any(|(family, kind)| {
        name == *family
            || (*kind == "counter" && name == format!("{family}_total"))
            || (*kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{family}{s}")))
    })
}

/// The test's Leases (in `default`, where the daemon puts them outside a pod),
/// deleted when dropped, whether or not the test got to its end.
struct Leases(TestEnv, Vec<String>);

impl Drop for Leases {
    fn drop(&mut self) {
        let _ = std::process::Command::new(self.0.kubectl())
            .env("KUBECONFIG", self.0.kubeconfig())
            .args([
                "delete",
                "lease",
                "-n",
                "default",
                "--ignore-not-found",
                "--wait=false",
            ])
            .args(&self.1)
            .output();
    }
}

/// The families src/telemetry/metrics.rs registers, prefixed: `registry.register(\n "name",`.
fn registered_names() -> Vec<String> {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/telemetry/metrics.rs"
    ))
    .unwrap();
    source
        .split("registry.register(")
        .skip(1)
        .filter_map(|s| s.trim_start().strip_prefix('"')?.split('"').next())
        .map(|n| format!("node_drain_{n}"))
        .collect()
}

/// Whether `name` is a series of `family` (a counter's `_total`, a histogram's parts).
fn is_series_of(name: &str, family: &str) -> bool {
    ["", "_total", "_bucket", "_sum", "_count"]
        .iter()
        .any(|s| name == format!("{family}{s}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_drains_own_alerts_fire_against_real_daemons() {
    let scene = Scene::new("promrules", "c-4x-amd64-linux", None).await;
    let (env, client, pool) = (&scene.env, &scene.client, &scene.pool);
    let test = unique("promrules-own");
    let (leader_test, follower_test, stuck_test) = (
        format!("{test}-leader"),
        format!("{test}-follower"),
        format!("{test}-stuck"),
    );

    // A pod its PDB never lets go: the leader's drain is refused (429) until
    // its --drain-timeout.
    let w = scene.workloads();
    w.deployment("web", 1, SMALL, 1).await;
    w.pdb("web", "web", Some(0), None).await;
    let pods = w.wait_running("web", 1, Duration::from_secs(120)).await;
    let node = node_of(&pods[0]);

    // The follower's Lease, held by someone else for an hour.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let held = unique("promrules-held");
    let leader_lease = unique("promrules-lease");
    let _leases = Leases(env.clone(), vec![held.clone(), leader_lease.clone()]);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": held},
        "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 3600,
                 "acquireTime": now, "renewTime": now}
    }))
    .unwrap();
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create the held Lease");

    let leader = Daemon::start_args(
        env,
        &pool.name,
        &leader_lease,
        &unique("leader"),
        CONFIG,
        &[],
        &["--drain-timeout", "3m"],
    );
    let follower = Daemon::start(env, &pool.name, &held, &unique("follower"), CONFIG);
    leader.wait_ready().await;

    // Drains in progress: in namespace `slow` one is 10 minutes past its
    // deadline; in `fine` one has an hour left (the near miss).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let deadlines = serve(move |_req: Request| {
        let mut body = String::new();
        for (namespace, deadline) in [("slow", now - 600), ("fine", now + 3600)] {
            body += &format!(
                "node_drain_drain_deadline_timestamp_seconds{{job=\"node-drain\",namespace=\"{namespace}\",node=\"n-{namespace}\"}} {deadline}\n"
            );
        }
        async move { Response::new(200, "text/plain; version=0.0.4", body) }
    })
    .await;

    let mut files = PrometheusFiles::new(env);
    let addr = |url: &str| url.trim_start_matches("http://").to_string();
    for (name, url, label) in [
        (&leader_test, leader.url.clone(), &leader_test),
        (&follower_test, follower.url.clone(), &follower_test),
        (&stuck_test, deadlines.url(), &stuck_test),
    ] {
        files.target(
            env,
            name,
            &addr(&url),
            json!({"job": "node-drain", "test": label}),
        );
    }
    // The rules only once each daemon's node_drain_leader is in Prometheus: the
    // follower's alert must come from its 0, not from absent().
    for (t, want) in [(&leader_test, "1"), (&follower_test, "0")] {
        let query = format!("node_drain_leader{{test=\"{t}\"}}");
        wait_for(
            &format!("{query} == {want} in Prometheus"),
            Duration::from_secs(60),
            || async {
                let answer = prometheus_query(env, &query).await;
                let value = answer["data"]["result"][0]["value"][1].clone();
                if value.as_str() == Some(want) {
                    Ok(Some(()))
                } else {
                    Err(format!("{value}"))
                }
            },
        )
        .await;
    }
    files.rules(
        env,
        &leader_test,
        &scoped_group("node-drain", &leader_test, &[]),
    );
    files.rules(
        env,
        &follower_test,
        &scoped_group("node-drain", &follower_test, &[]),
    );
    files.rules(
        env,
        &stuck_test,
        &scoped_group("node-drain", &stuck_test, &["NodeDrainStuck"]),
    );
    reload(&env.prometheus_url()).await;
    wait_groups_loaded(env, &test, 3).await;

    // What the leader is put through.
    assert_eq!(leader.post(None, "{}").await, 401);
    std::fs::write(leader.dir.0.join("config.yaml"), "rules: [\n").unwrap();
    let answer = leader
        .admin(
            format!("{{\"cmd\":\"drain-node\",\"node\":\"{node}\",\"dry_run\":false}}\n")
                .as_bytes(),
        )
        .await;
    assert_eq!(answer["ok"], json!(true), "{answer}");

    let keys = ["code", "namespace"];
    let leader_alerts = set(&[
        ("NodeDrainWebhookClientErrors", "401"),
        ("NodeDrainConfigReloadFailing", ""),
        ("NodeDrainEvictionsRefusedByPDB", ""),
    ]);
    wait_firing(
        env,
        &leader_test,
        &keys,
        &leader_alerts,
        Duration::from_secs(120),
    )
    .await;
    // The PDB holds the leader's drain: its deadline is exported, --drain-timeout
    // (3m) after it started.
    let exposition = reqwest::get(format!("{}/metrics", leader.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("node_drain_drain_deadline_timestamp_seconds{{node=\"{node}\"}} ");
    let deadline: f64 = exposition
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {prefix}in:\n{exposition}"))
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        deadline > now && deadline <= now + 180.0,
        "deadline {deadline}, now {now}"
    );
    let follower_alerts = set(&[("NodeDrainNoLeader", "")]);
    wait_firing(
        env,
        &follower_test,
        &keys,
        &follower_alerts,
        Duration::from_secs(60),
    )
    .await;
    let stuck_alerts = set(&[("NodeDrainStuck", "slow")]);
    wait_firing(
        env,
        &stuck_test,
        &keys,
        &stuck_alerts,
        Duration::from_secs(60),
    )
    .await;
    // Two more evaluations (every 5 s): a near miss would fire by now.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        firing(env, &leader_test, &keys).await,
        leader_alerts,
        "the leader"
    );
    assert_eq!(
        firing(env, &follower_test, &keys).await,
        follower_alerts,
        "the follower"
    );
    assert_eq!(
        firing(env, &stuck_test, &keys).await,
        stuck_alerts,
        "the deadlines"
    );

    // Every node_drain_* name the rules and the dashboard query is exported.
    let exposition = reqwest::get(format!("{}/metrics", leader.url))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap();
    let mut used = metric_names(&std::fs::read_to_string(shipped("rules.yml")).unwrap());
    used.extend(metric_names(
        &std::fs::read_to_string(shipped("dashboard.json")).unwrap(),
    ));
    // A labelled family is exposed from its first value on: the others are
    // looked up among the names src/telemetry/metrics.rs registers.
    let registered = registered_names();
    assert!(registered.len() >= 13, "{registered:?}");
    let missing: Vec<_> = used
        .iter()
        .filter(|n| !exported(n, &exposition) && !registered.iter().any(|r| is_series_of(n, r)))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}\n{exposition}"
    );
    assert!(used.len() >= 13, "{used:?}");

    drop(files);
    drop(leader);
    drop(follower);
    scene.cleanup().await;
}
