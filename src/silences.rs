//! Silencing the alerts node-drain itself causes: when it retires a node, the
//! node going down fires node-down, target-down and NotReady alerts nobody
//! needs. With `silences` in the daemon's config, before a node is retired an
//! Alertmanager silence (API v2) is created for that node's alerts — one per
//! label that can name the node (`node`: its name; `instance`: its name, or
//! its InternalIP with any port) — lasting the expected retirement; it is
//! expired once the node is gone. An unreachable or refusing Alertmanager
//! never blocks a drain: it is logged and counted
//! (`node_drain_silences_total{result="error"}`), and the silence's own end
//! bounds it if the expiry is lost.
//!
//! ```yaml
//! silences:
//!   alertmanager: http://alertmanager-operated.monitoring.svc:9093
//!   alertnames: [KubeNodeNotReady, KubeNodeUnreachable, TargetDown, NodeExporterDown]
//!   duration: 30m          # the expected retirement (default 30m)
//!   nodeLabels: [node, instance]   # the default
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::config::{current, SharedConfig};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SilenceConfig {
    /// Alertmanager's base URL (its API is `<url>/api/v2/`).
    pub alertmanager: String,
    /// The alerts silenced for a node being retired.
    pub alertnames: Vec<String>,
    /// How long a silence lasts at most (Go duration): the expected retirement.
    #[serde(default = "default_duration")]
    pub duration: String,
    /// The alert labels that name a node: `node` (its name), `instance` (its
    /// name, or its InternalIP with any port).
    #[serde(default = "default_labels")]
    pub node_labels: Vec<String>,
}

fn default_duration() -> String {
    "30m".into()
}

fn default_labels() -> Vec<String> {
    vec!["node".into(), "instance".into()]
}

impl SilenceConfig {
    /// Checks the section; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.alertmanager)
            .map_err(|e| format!("alertmanager: {:?}: {e}", self.alertmanager))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "alertmanager: {:?} is not http(s)",
                self.alertmanager
            ));
        }
        if self.alertnames.is_empty() || self.alertnames.iter().any(|a| a.trim().is_empty()) {
            return Err("alertnames: name at least one alert, none empty".into());
        }
        let d = crate::duration::parse_go_duration(&self.duration)
            .map_err(|e| format!("duration: {e}"))?;
        if d < Duration::from_secs(60) {
            return Err(format!("duration: {:?} is under a minute", self.duration));
        }
        if self.node_labels.is_empty() {
            return Err("nodeLabels: name at least one label".into());
        }
        Ok(())
    }

    fn ttl(&self) -> Duration {
        crate::duration::parse_go_duration(&self.duration).unwrap_or(Duration::from_secs(1800))
    }
}

/// Escapes a literal for an Alertmanager (RE2) regex matcher.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The silences (each a list of matchers) for `node` with InternalIP `ip`.
pub fn matchers(config: &SilenceConfig, node: &str, ip: Option<&str>) -> Vec<Value> {
    let names = config
        .alertnames
        .iter()
        .map(|a| regex_escape(a))
        .collect::<Vec<_>>()
        .join("|");
    let alertname = json!({"name": "alertname", "value": names, "isRegex": true, "isEqual": true});
    config
        .node_labels
        .iter()
        .map(|label| {
            let by_node = if label == "instance" {
                let mut value = regex_escape(node);
                if let Some(ip) = ip {
                    value = format!("{value}|{}(:[0-9]+)?", regex_escape(ip));
                }
                json!({"name": label, "value": value, "isRegex": true, "isEqual": true})
            } else {
                json!({"name": label, "value": node, "isRegex": false, "isEqual": true})
            };
            json!([alertname.clone(), by_node])
        })
        .collect()
}

/// Creates and expires silences with the config in use (re-read each time).
pub struct Silencer {
    config: SharedConfig,
    http: reqwest::Client,
}

static SILENCER: OnceLock<Silencer> = OnceLock::new();

/// The daemon installs its silencer once; the CLI has none.
pub fn install(config: SharedConfig) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .user_agent(crate::k8s::USER_AGENT)
        .build()
        .unwrap_or_default();
    let _ = SILENCER.set(Silencer { config, http });
}

pub fn get() -> Option<&'static Silencer> {
    SILENCER.get()
}

impl Silencer {
    fn config(&self) -> Option<SilenceConfig> {
        current(&self.config).silences.clone()
    }

    /// Silences `node`'s alerts before it is retired; returns the silence
    /// ids (none when not configured or Alertmanager failed: never an error).
    pub async fn silence(&self, node: &Node, comment: &str) -> Vec<String> {
        let Some(config) = self.config() else {
            return vec![];
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let ip = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone());
        let now = jiff::Timestamp::now();
        let ends = now + jiff::SignedDuration::try_from(config.ttl()).unwrap_or_default();
        let url = format!(
            "{}/api/v2/silences",
            config.alertmanager.trim_end_matches('/')
        );
        let mut ids = vec![];
        for matchers in matchers(&config, &name, ip.as_deref()) {
            let body = json!({
                "matchers": matchers,
                "startsAt": now.to_string(),
                "endsAt": ends.to_string(),
                "createdBy": "node-drain",
                "comment": comment,
            });
            match self.post(&url, &body).await {
                Ok(id) => ids.push(id),
                Err(e) => {
                    crate::telemetry::metrics::get().silence("error");
                    warn!(
                        nodeName = name.as_str(),
                        error = e.as_str(),
                        "could not silence the node's alerts; the drain goes on"
                    );
                }
            }
        }
        if !ids.is_empty() {
            crate::telemetry::metrics::get().silence("created");
            info!(nodeName = name.as_str(), silences = ids.join(",").as_str(), until = %ends, "silenced the node's alerts for its retirement");
        }
        ids
    }

    async fn post(&self, url: &str, body: &Value) -> Result<String, String> {
        let r = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("POST {url}: {status}: {}", text.trim()));
        }
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["silenceID"].as_str().map(String::from))
            .ok_or_else(|| format!("POST {url}: no silenceID in {text:?}"))
    }

    /// Expires `ids` once `node` is gone (polled every 10 s, for at most the
    /// silences' own duration, which ends them anyway).
    pub fn expire_when_gone(&'static self, client: kube::Client, node: String, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let Some(config) = self.config() else {
            return;
        };
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + config.ttl();
            while tokio::time::Instant::now() < deadline {
                if let Ok(None) = crate::k8s::nodes::get(&client, &node).await {
                    self.expire(&config, &node, &ids).await;
                    return;
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        });
    }

    async fn expire(&self, config: &SilenceConfig, node: &str, ids: &[String]) {
        let base = config.alertmanager.trim_end_matches('/');
        for id in ids {
            let url = format!("{base}/api/v2/silence/{id}");
            match self.http.delete(&url).send().await {
                Ok(r) if r.status().is_success() => {
                    crate::telemetry::metrics::get().silence("expired");
                    info!(
                        nodeName = node,
                        silence = id.as_str(),
                        "the node is gone: its silence expired"
                    );
                }
                Ok(r) => {
                    crate::telemetry::metrics::get().silence("error");
                    warn!(nodeName = node, silence = id.as_str(), status = %r.status(), "could not expire the silence; it ends on its own");
                }
                Err(e) => {
                    crate::telemetry::metrics::get().silence("error");
                    warn!(nodeName = node, silence = id.as_str(), error = %e, "could not expire the silence; it ends on its own");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SilenceConfig {
        serde_norway::from_str(
            "alertmanager: http://am:9093\nalertnames: [KubeNodeNotReady, TargetDown]\n",
        )
        .unwrap()
    }

    #[test]
    fn one_silence_per_label_that_names_the_node() {
        let m = matchers(&config(), "ip-10-0-1-5.ec2.internal", Some("10.0.1.5"));
        assert_eq!(
            m,
            vec![
                json!([
                    {"name": "alertname", "value": "KubeNodeNotReady|TargetDown", "isRegex": true, "isEqual": true},
                    {"name": "node", "value": "ip-10-0-1-5.ec2.internal", "isRegex": false, "isEqual": true}
                ]),
                json!([
                    {"name": "alertname", "value": "KubeNodeNotReady|TargetDown", "isRegex": true, "isEqual": true},
                    {"name": "instance", "value": "ip-10-0-1-5\\.ec2\\.internal|10\\.0\\.1\\.5(:[0-9]+)?", "isRegex": true, "isEqual": true}
                ]),
            ]
        );
    }

    #[test]
    fn a_bad_section_is_named() {
        let bad = |text: &str| {
            serde_norway::from_str::<SilenceConfig>(text)
                .map_err(|e| e.to_string())
                .and_then(|c| c.check())
                .unwrap_err()
        };
        assert!(bad("alertmanager: am:9093\nalertnames: [A]\n").starts_with("alertmanager: "));
        assert_eq!(
            bad("alertmanager: http://am\nalertnames: []\n"),
            "alertnames: name at least one alert, none empty"
        );
        assert_eq!(
            bad("alertmanager: http://am\nalertnames: [A]\nduration: 10s\n"),
            "duration: \"10s\" is under a minute"
        );
        assert!(
            bad("alertmanager: http://am\nalertnames: [A]\nmatchers: []\n").contains("matchers")
        );
    }
}
