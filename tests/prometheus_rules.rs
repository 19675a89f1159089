//! The Prometheus side shipped in deploy/prometheus: `promtool check rules` on
//! the rules file and on the PrometheusRule's spec (which must be the same
//! groups), `promtool test rules` (every alert at its real `for` and thresholds,
//! with near misses), `amtool check-config` on the Alertmanager receiver, every
//! dashboard target through the real Prometheus, and the three disk-pressure
//! alerts firing on the test environment's Prometheus against series a test
//! exporter serves (near misses beside them stay quiet). node-drain's own
//! alerts against a real daemon: `prometheus_rules_daemon.rs`.
//! These tests touch only Prometheus rule and target files of their own.

mod prometheus_rules_support;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use prometheus_rules_support::*;
use serde_json::{json, Value};
use support::http::{serve, Request, Response};
use support::*;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e} (testenv/install-deps installs it)"));
    let text = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules_file_and_the_prometheusrule_spec_which_are_the_same_groups() {
    let rules = shipped("rules.yml");
    let out = run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&rules));
    assert!(out.contains("SUCCESS: 8 rules found"), "{out}");

    let resource = read_yaml(&shipped("prometheusrule.yaml"));
    assert_eq!(
        resource["apiVersion"].as_str(),
        Some("monitoring.coreos.com/v1")
    );
    assert_eq!(resource["kind"].as_str(), Some("PrometheusRule"));
    let spec = &resource["spec"];
    let spec_file = std::env::temp_dir().join(unique("prometheusrule-spec") + ".yml");
    std::fs::write(&spec_file, serde_norway::to_string(spec).unwrap()).unwrap();
    let checked = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&spec_file)
        .output();
    let _ = std::fs::remove_file(&spec_file);
    let checked = checked.expect("run promtool");
    assert!(
        checked.status.success(),
        "the PrometheusRule's spec: {}{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
    assert_eq!(
        spec,
        &read_yaml(&rules),
        "prometheusrule.yaml's spec differs from rules.yml: regenerate it"
    );
}

#[test]
fn promtool_unit_tests_fire_each_alert_at_its_real_for_and_not_on_near_misses() {
    let dir = shipped("tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let out = run(Command::new("promtool")
        .args(["test", "rules"])
        .args(&files));
    // Every alert of the rules file has a unit test.
    let tested: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for group in read_yaml(&shipped("rules.yml"))["groups"]
        .as_sequence()
        .unwrap()
    {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            assert!(
                tested.contains(&format!("alertname: {name}\n")),
                "{name} has no promtool unit test"
            );
        }
    }
    assert_eq!(out.matches("SUCCESS").count(), files.len(), "{out}");
}

#[test]
fn the_alertmanager_receiver_example_passes_amtool_and_says_what_node_drain_needs() {
    let path = shipped("alertmanager-receiver.yaml");
    let out = run(Command::new("amtool").arg("check-config").arg(&path));
    assert!(out.contains("SUCCESS"), "{out}");
    let config = read_yaml(&path);
    let receiver = config["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str() == Some("node-drain"))
        .expect("a node-drain receiver");
    let webhook = &receiver["webhook_configs"][0];
    assert_eq!(
        webhook["url"].as_str(),
        Some("http://node-drain.node-drain.svc:8080/v1/alerts")
    );
    assert!(webhook["http_config"]["authorization"]["credentials_file"]
        .as_str()
        .is_some());
    assert_eq!(webhook["send_resolved"].as_bool(), Some(true));
    assert!(webhook["max_alerts"].as_u64().is_some_and(|n| n > 0));
    let route = config["route"]["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["receiver"].as_str() == Some("node-drain"))
        .expect("a route to node-drain");
    let group_by: Vec<&str> = route["group_by"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(group_by, ["alertname", "node", "instance"]);
    // The route carries every alert the rules file sends to node-drain.
    let matcher = route["matchers"][0].as_str().unwrap();
    for name in [
        "KubeNodePressure",
        "NodeFilesystemAlmostOutOfSpace",
        "NodeFilesystemSpaceFillingUp",
    ] {
        assert!(matcher.contains(name), "{matcher}");
    }
}

/// A dashboard expression as Grafana sends it, its variables filled in.
fn grafana_expr(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$namespace", ".*")
        .replace("$job", "node-drain")
}

#[tokio::test]
async fn every_dashboard_target_parses_on_the_real_prometheus() {
    let env = TestEnv::load();
    let text = std::fs::read_to_string(shipped("dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard.json is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = std::collections::BTreeSet::new();
    let mut count = 0;
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate id"
        );
        for target in panel["targets"].as_array().expect("targets") {
            let expr = grafana_expr(target["expr"].as_str().expect("expr"));
            let answer = prometheus_query(&env, &expr).await;
            assert_eq!(
                answer["status"].as_str(),
                Some("success"),
                "panel {:?}: {expr}: {answer}",
                panel["title"]
            );
            count += 1;
        }
    }
    assert!(count >= 13, "{count} targets");
}

/// node-exporter filesystem series (kube-prometheus-stack's labels).
fn filesystem(test: &str, instance: &str, avail: f64, readonly: u8) -> String {
    let l = format!(
        "job=\"node-exporter\",test=\"{test}\",instance=\"{instance}\",device=\"/dev/nvme0n1p1\",fstype=\"ext4\",mountpoint=\"/\""
    );
    format!(
        "node_filesystem_avail_bytes{{{l}}} {avail}\nnode_filesystem_size_bytes{{{l}}} 1e11\nnode_filesystem_readonly{{{l}}} {readonly}\n"
    )
}

/// kube-state-metrics' DiskPressure condition of `node`, and whether it is cordoned.
fn disk_pressure(test: &str, node: &str, unschedulable: u8) -> String {
    let l = format!("job=\"kube-state-metrics\",test=\"{test}\",node=\"{node}\"");
    format!(
        "kube_node_status_condition{{{l},condition=\"DiskPressure\",status=\"true\"}} 1\nkube_node_spec_unschedulable{{{l}}} {unschedulable}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_pressure_alerts_fire_on_the_real_prometheus_and_near_misses_do_not() {
    let env = TestEnv::load();
    let test = unique("promrules-disk");
    let started = Instant::now();
    let t = test.clone();
    let exporter = serve(move |_req: Request| {
        // 15 % free and losing 0.01 % a second: empty within the 4 h horizon.
        let filling = 15e9 - 1e7 * started.elapsed().as_secs_f64();
        let body = [
            disk_pressure(&t, &format!("{t}-pressure"), 0),
            // Near miss: the node is already cordoned (node-drain at work).
            disk_pressure(&t, &format!("{t}-cordoned"), 1),
            filesystem(&t, &format!("{t}-full:9100"), 2e9, 0),
            filesystem(&t, &format!("{t}-filling:9100"), filling, 0),
            // Near misses: 4 % free (not critical), 15 % free and steady, 1 % free read-only.
            filesystem(&t, &format!("{t}-warning:9100"), 4e9, 0),
            filesystem(&t, &format!("{t}-steady:9100"), 15e9, 0),
            filesystem(&t, &format!("{t}-readonly:9100"), 1e9, 1),
        ]
        .concat();
        async move { Response::new(200, "text/plain; version=0.0.4", body) }
    })
    .await;
    let mut files = PrometheusFiles::new(&env);
    files.target(
        &env,
        &test,
        &exporter.addr.to_string(),
        json!({"test": test}),
    );
    files.rules(
        &env,
        &test,
        &scoped_group("node-drain-disk-pressure", &test, &[]),
    );
    reload(&env.prometheus_url()).await;
    wait_groups_loaded(&env, &test, 1).await;

    let want = set(&[
        ("KubeNodePressure", &format!("{test}-pressure")),
        (
            "NodeFilesystemAlmostOutOfSpace",
            &format!("{test}-full:9100"),
        ),
        (
            "NodeFilesystemSpaceFillingUp",
            &format!("{test}-filling:9100"),
        ),
    ]);
    // The node is in `node` (kube-state-metrics) or `instance` (node-exporter).
    let keys = ["node", "instance"];
    wait_firing(&env, &test, &keys, &want, Duration::from_secs(90)).await;
    // Two more evaluations (every 5 s): a near miss would fire by now.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        firing(&env, &test, &keys).await,
        want,
        "exactly the three alerts, each for its node"
    );
    drop(files);
    drop(exporter);
}

/// The ServiceMonitor selects exactly the Service over every replica that
/// kustomize renders, and names the job (from that Service's `jobLabel`
/// label) as the rules select it: `job="node-drain"`.
#[test]
fn the_service_monitor_scrapes_every_replica_as_the_job_the_rules_select() {
    let env = TestEnv::load();
    let monitor: Value = serde_json::to_value(read_yaml(&shipped("servicemonitor.yaml"))).unwrap();
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let rendered = run(Command::new(env.kubectl()).args(["kustomize", deploy]));
    let services: Vec<Value> = rendered
        .split("\n---\n")
        .map(|doc| serde_norway::from_str::<Value>(doc).unwrap())
        .filter(|o| o["kind"] == "Service")
        .collect();
    let wanted = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    let selected: Vec<&Value> = services
        .iter()
        .filter(|s| wanted.iter().all(|(k, v)| &s["metadata"]["labels"][k] == v))
        .collect();
    assert_eq!(selected.len(), 1, "one Service selected: {selected:?}");
    let service = selected[0];
    assert_eq!(service["metadata"]["name"], "node-drain-metrics");
    // Every replica: no leader label in its selector.
    assert!(
        service["spec"]["selector"]["node-drain.io/role"].is_null(),
        "{service}"
    );
    let port = monitor["spec"]["endpoints"][0]["port"].as_str().unwrap();
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == port),
        "port {port} on {service}"
    );
    let job_label = monitor["spec"]["jobLabel"].as_str().unwrap();
    let job = service["metadata"]["labels"][job_label].as_str().unwrap();
    let rules = std::fs::read_to_string(shipped("rules.yml")).unwrap();
    assert!(
        rules.contains(&format!("node_drain_leader{{job=\"{job}\"}}")),
        "the rules select job {job}"
    );
}
