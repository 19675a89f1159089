//! The daemon's config file (`serve --config`, a ConfigMap in-cluster): alert
//! rules and the NodePools it manages. Read at start (a bad file stops the
//! daemon, exit 2) and re-read when it changes (a bad reload keeps the last
//! good config and says why). This is the smallest that works:
//!
//! ```yaml
//! rules:
//!   - alertname: NodeDiskPressure
//!     action: drain-node
//! ```

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

use crate::alerts::rules::Rule;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// NodePools managed besides `--nodepool-name`.
    #[serde(default)]
    pub nodepools: Vec<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// When rotation waves may start (none: any time).
    #[serde(default, rename = "maintenanceWindows")]
    pub maintenance_windows: Vec<crate::maintenance::WindowSpec>,
    /// Silence the alerts of nodes node-drain retires (`crate::silences`).
    #[serde(default)]
    pub silences: Option<crate::silences::SilenceConfig>,
    /// Graceful eviction of VPA-managed pods (`crate::graceful`).
    #[serde(default)]
    pub graceful: crate::graceful::GracefulConfig,
    /// `maintenance_windows`, checked.
    #[serde(skip)]
    pub windows: Vec<crate::maintenance::Window>,
}

impl DaemonConfig {
    /// Parses and checks a config file's text; the error names the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        // An empty file (an empty ConfigMap key, a truncated write) is refused
        // like a bad one: taken as "no rules", every alert would be dropped.
        let document: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| e.to_string())?;
        if document.is_null() {
            return Err(
                "the config is empty (no rules, no nodepools); write `rules: []` to mean no rules"
                    .into(),
            );
        }
        let mut config: DaemonConfig = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        if let Some(silences) = &config.silences {
            silences.check().map_err(|e| format!("silences.{e}"))?;
        }
        config
            .graceful
            .check()
            .map_err(|e| format!("graceful.{e}"))?;
        for (i, spec) in config.maintenance_windows.iter().enumerate() {
            let window = crate::maintenance::Window::new(spec.clone())
                .map_err(|e| format!("maintenanceWindows[{i}].{e}"))?;
            config.windows.push(window);
        }
        for (i, pool) in config.nodepools.iter().enumerate() {
            crate::plan::validate_nodepool_name(pool)
                .map_err(|e| format!("nodepools[{i}]: {e}"))?;
        }
        for (i, rule) in config.rules.iter().enumerate() {
            if rule.alertname.trim().is_empty() {
                return Err(format!("rules[{i}].alertname: empty"));
            }
            if let Some(t) = &rule.drain_timeout {
                let d = crate::duration::parse_go_duration(t)
                    .map_err(|e| format!("rules[{i}].drainTimeout: {e}"))?;
                if d.is_zero() {
                    return Err(format!("rules[{i}].drainTimeout: must be more than 0"));
                }
            }
        }
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// The managed NodePools: `global` (from `--nodepool-name`) first.
    pub fn nodepools(&self, global: &str) -> Vec<String> {
        let mut pools = vec![global.to_string()];
        for p in &self.nodepools {
            if !pools.contains(p) {
                pools.push(p.clone());
            }
        }
        pools
    }
}

/// The config in use, replaced whole on a good reload.
pub type SharedConfig = Arc<RwLock<Arc<DaemonConfig>>>;

pub fn current(shared: &SharedConfig) -> Arc<DaemonConfig> {
    shared.read().map(|c| c.clone()).unwrap_or_default()
}

/// Re-reads `path` every `period` and swaps in a changed config that parses;
/// logs a bad one and keeps the last good. Ends with the process.
pub fn watch(path: std::path::PathBuf, shared: SharedConfig, period: Duration) {
    // Read now, not when the task first runs: a change in between is seen.
    let mut last = std::fs::read(&path).ok();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let now = std::fs::read(&path).ok();
            if now == last {
                continue;
            }
            last = now;
            match DaemonConfig::load(&path) {
                Ok(config) => {
                    tracing::info!(
                        path = %path.display(),
                        rules = config.rules.len(),
                        nodepools = config.nodepools.len(),
                        "config reloaded"
                    );
                    crate::telemetry::metrics::get().config_reloads("ok");
                    crate::telemetry::metrics::get().config_loaded(true);
                    if let Ok(mut c) = shared.write() {
                        *c = Arc::new(config);
                    }
                }
                Err(e) => {
                    crate::telemetry::metrics::get().config_reloads("error");
                    crate::telemetry::metrics::get().config_loaded(false);
                    tracing::error!(
                        error = e.as_str(),
                        "config reload refused; keeping the last good config"
                    )
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_changed_file_is_reloaded_and_a_bad_one_keeps_the_last_good() {
        let path =
            std::env::temp_dir().join(format!("node-drain-config-{}.yaml", fastrand::u64(..)));
        std::fs::write(&path, "rules: []\n").unwrap();
        let shared: SharedConfig =
            Arc::new(RwLock::new(Arc::new(DaemonConfig::load(&path).unwrap())));
        watch(path.clone(), shared.clone(), Duration::from_millis(20));
        let rules = |n: usize| {
            let shared = shared.clone();
            async move {
                for _ in 0..200 {
                    if current(&shared).rules.len() == n {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                false
            }
        };
        std::fs::write(&path, "rules:\n  - {alertname: A, action: cordon}\n").unwrap();
        assert!(rules(1).await, "reloaded");
        std::fs::write(&path, "rules:\n  - {alertname: A, action: explode}\n").unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            current(&shared).rules.len(),
            1,
            "a bad file keeps the last good config"
        );
        std::fs::write(
            &path,
            "rules:\n  - {alertname: A, action: cordon}\n  - {alertname: B, action: cordon}\n",
        )
        .unwrap();
        assert!(rules(2).await, "a good file after a bad one is taken");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_config_shipped_in_deploy_parses() {
        let manifest = include_str!("../deploy/daemon/config.yaml");
        let first = manifest.split("\n---\n").next().unwrap();
        let configmap: serde_norway::Value = serde_norway::from_str(first).unwrap();
        let text = configmap["data"]["config.yaml"].as_str().unwrap();
        let config = DaemonConfig::parse(text).unwrap();
        assert_eq!(config.rules.len(), 3);
    }

    #[test]
    fn the_smallest_config_works_and_typos_are_named() {
        let c = DaemonConfig::parse(
            "rules:\n  - alertname: NodeDiskPressure\n    action: drain-node\n",
        )
        .unwrap();
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.nodepools("main"), vec!["main".to_string()]);
        let c = DaemonConfig::parse(
            "rules: []\nmaintenanceWindows:\n  - schedule: '0 2 * * TUE'\n    duration: 4h\n    timeZone: Europe/Berlin\n",
        )
        .unwrap();
        assert_eq!(c.windows.len(), 1);
        for (text, needle) in [
            // An empty file (a ConfigMap key left empty, a truncated write) is
            // refused like a bad one, never taken as "no rules".
            ("", "empty"),
            ("\n  \n", "empty"),
            ("# rules: come later\n", "empty"),
            ("~\n", "empty"),
            (
                "rules:\n  - alertname: X\n    action: drain\n",
                "rules[0].action",
            ),
            (
                "rules:\n  - alertname: X\n    action: cordon\n    retry: 3\n",
                "retry",
            ),
            ("rulez: []\n", "rulez"),
            (
                "rules:\n  - alertname: X\n    action: cordon\n    drainTimeout: soon\n",
                "rules[0].drainTimeout",
            ),
            (
                "rules:\n  - alertname: ''\n    action: cordon\n",
                "rules[0].alertname",
            ),
            ("nodepools: ['Bad Name']\n", "nodepools[0]"),
            (
                "maintenanceWindows:\n  - {schedule: '0 2 * * TUE', duration: 4h, timeZone: Mars/Base}\n",
                "maintenanceWindows[0].timeZone: \"Mars/Base\" is not an IANA time zone",
            ),
            (
                "maintenanceWindows:\n  - {schedule: '0 25 * * *', duration: 4h}\n",
                "maintenanceWindows[0].schedule: hour: 25 is outside 0-23",
            ),
            (
                "maintenanceWindows:\n  - {schedule: '0 2 * * *', duration: 4h, tz: UTC}\n",
                "tz",
            ),
            ("rules: 3\n", "rules"),
            (
                "graceful:\n  gracePeriodSeconds: 400\n",
                "graceful.gracePeriodSeconds",
            ),
            ("graceful:\n  drainTimeout: 3\n", "drainTimeout"),
        ] {
            let err = DaemonConfig::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err} should name {needle}");
        }
    }
}
