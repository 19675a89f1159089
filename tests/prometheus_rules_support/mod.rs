//! What the Prometheus rule tests share: the shipped files under
//! deploy/prometheus, a shipped rule group loaded into the test environment's
//! Prometheus scoped to one test's series, scrape targets of a test's own, and
//! the alerts firing for a test. Every file written here is removed (and
//! Prometheus reloaded) when its guard drops.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{prometheus_query, wait_for, TestEnv};

/// A file under deploy/prometheus.
pub fn shipped(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/prometheus")
        .join(relative)
}

pub fn read_yaml(path: &std::path::Path) -> serde_norway::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The job names the shipped rules select; each gets the test's label added.
const JOBS: [&str; 3] = ["kube-state-metrics", "node-exporter", "node-drain"];

/// The shipped group `group` as a rules file for the test environment, scoped to
/// the series labelled `test="<test>"`: every selector gets that matcher, every
/// rule gets that label (so `ALERTS{test=...}` finds it), `for` becomes 0s (the
/// shipped `for`s are minutes to an hour; promtool's unit tests check them),
/// and only the alerts in `only` are kept when it is not empty.
pub fn scoped_group(group: &str, test: &str, only: &[&str]) -> String {
    let rules = read_yaml(&shipped("rules.yml"));
    let groups = rules["groups"].as_sequence().expect("groups");
    let shipped_group = groups
        .iter()
        .find(|g| g["name"].as_str() == Some(group))
        .unwrap_or_else(|| panic!("no group {group} in rules.yml"));
    let matcher = format!("test=\"{test}\"");
    let mut out = Vec::new();
    for rule in shipped_group["rules"].as_sequence().expect("rules") {
        let name = rule["alert"].as_str().expect("alert").to_string();
        if !only.is_empty() && !only.contains(&name.as_str()) {
            continue;
        }
        let mut expr = rule["expr"].as_str().expect("expr").to_string();
        for job in JOBS {
            expr = expr.replace(
                &format!("job=\"{job}\""),
                &format!("job=\"{job}\",{matcher}"),
            );
        }
        assert_eq!(
            expr.matches('{').count(),
            expr.matches(&matcher).count(),
            "{name}: a selector without a job matcher would see other tests' series: {expr}"
        );
        let mut labels = rule["labels"].clone();
        labels
            .as_mapping_mut()
            .expect("labels")
            .insert("test".into(), test.into());
        let mut scoped = serde_norway::Mapping::new();
        scoped.insert("alert".into(), name.into());
        scoped.insert("expr".into(), expr.into());
        scoped.insert("for".into(), "0s".into());
        scoped.insert("labels".into(), labels);
        out.push(serde_norway::Value::Mapping(scoped));
    }
    assert!(!out.is_empty(), "no rule of {group} kept ({only:?})");
    let file = json!({"groups": [{"name": format!("{test}-{group}"), "rules": out}]});
    serde_norway::to_string(&file).expect("render the rules")
}

/// Files of one test in the environment's Prometheus config (rules, scrape
/// targets): removed, and Prometheus reloaded, on drop.
pub struct PrometheusFiles {
    pub prometheus_url: String,
    pub files: Vec<PathBuf>,
}

impl PrometheusFiles {
    pub fn new(env: &TestEnv) -> Self {
        Self {
            prometheus_url: env.prometheus_url(),
            files: vec![],
        }
    }

    /// Writes `$TESTENV_STATE/prometheus/rules/<name>.yml`.
    pub fn rules(&mut self, env: &TestEnv, name: &str, text: &str) {
        let path = PathBuf::from(env.var("TESTENV_STATE"))
            .join("prometheus/rules")
            .join(format!("{name}.yml"));
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.files.push(path);
    }

    /// Writes a file_sd target file: `addr` scraped (job `extra`, honor_labels)
    /// with `labels` as target labels.
    pub fn target(&mut self, env: &TestEnv, name: &str, addr: &str, labels: Value) {
        let path =
            PathBuf::from(env.var("TESTENV_PROMETHEUS_TARGETS")).join(format!("{name}.json"));
        std::fs::write(
            &path,
            json!([{"targets": [addr], "labels": labels}]).to_string(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.files.push(path);
    }
}

impl Drop for PrometheusFiles {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        // No runtime here: a plain HTTP/1.0 request.
        let host = self
            .prometheus_url
            .trim_start_matches("http://")
            .to_string();
        if let Ok(mut s) = std::net::TcpStream::connect(&host) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = s.write_all(
                format!("POST /-/reload HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n")
                    .as_bytes(),
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
}

pub async fn reload(prometheus_url: &str) {
    let r = reqwest::Client::new()
        .post(format!("{prometheus_url}/-/reload"))
        .send()
        .await
        .expect("reload Prometheus");
    assert!(r.status().is_success(), "reload Prometheus: {}", r.status());
}

/// The rule groups Prometheus has loaded whose name starts with `prefix`
/// (a reload answers before it has read the files of other tests' reloads).
pub async fn wait_groups_loaded(env: &TestEnv, prefix: &str, count: usize) {
    let url = format!("{}/api/v1/rules", env.prometheus_url());
    wait_for(
        "Prometheus to load the test's rule groups",
        Duration::from_secs(30),
        || async {
            let answer: Value = reqwest::get(&url)
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            let names: Vec<String> = answer["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g["name"].as_str())
                .filter(|n| n.starts_with(prefix))
                .map(String::from)
                .collect();
            if names.len() == count {
                Ok(Some(()))
            } else {
                Err(format!("{names:?}"))
            }
        },
    )
    .await;
}

/// The firing alerts labelled `test="<test>"`: (alertname, the first of `keys`
/// it has).
pub async fn firing(env: &TestEnv, test: &str, keys: &[&str]) -> BTreeSet<(String, String)> {
    let answer = prometheus_query(
        env,
        &format!("ALERTS{{test=\"{test}\",alertstate=\"firing\"}}"),
    )
    .await;
    answer["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let m = &s["metric"];
            let label = |n: &str| m[n].as_str().unwrap_or("").to_string();
            let key = keys.iter().map(|k| label(k)).find(|v| !v.is_empty());
            (label("alertname"), key.unwrap_or_default())
        })
        .collect()
}

/// Waits until every alert of `want` fires for `test`; returns what fires then.
pub async fn wait_firing(
    env: &TestEnv,
    test: &str,
    keys: &[&str],
    want: &BTreeSet<(String, String)>,
    timeout: Duration,
) -> BTreeSet<(String, String)> {
    wait_for(&format!("{want:?} firing for {test}"), timeout, || async {
        let now = firing(env, test, keys).await;
        if want.is_subset(&now) {
            Ok(Some(now))
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await
}

pub fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}
