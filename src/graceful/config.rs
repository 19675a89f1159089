//! The `graceful:` section of the daemon's config file: the seed's ConfigMap
//! keys (`gracePeriodSeconds`, `drainTimeoutSeconds`, `namespaceSelector`),
//! which pods are managed, and whose evictions the webhook takes over. Reloaded
//! with the rest of the file (`crate::config::watch`): a bad value keeps the
//! last good config and the error names the field.
//!
//! ```yaml
//! graceful:
//!   gracePeriodSeconds: 30
//!   drainTimeoutSeconds: 300
//!   namespaceSelector: {include: [], exclude: [kube-system, kube-public]}
//!   evictingUsers:
//!     - system:serviceaccount:kube-system:vpa-updater
//!     - system:serviceaccount:node-drain:node-drain   # node drains too
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct GracefulConfig {
    /// How long a pod stays alive once out of its Services, so load
    /// balancers deregister it before it gets SIGTERM.
    pub grace_period_seconds: u64,
    /// Past this (from the eviction), the pod is deleted whatever the step.
    pub drain_timeout_seconds: u64,
    /// Which namespaces the webhook acts in (the seed's JSON string is taken too).
    #[serde(deserialize_with = "selector_or_json")]
    pub namespace_selector: NamespaceSelector,
    /// A label or annotation whose value "true" marks a pod managed (the seed's).
    pub managed_marker: String,
    /// Annotations whose presence marks a pod managed (VPA's own).
    pub managed_annotations: Vec<String>,
    /// The users whose evictions are made graceful: VPA's updater (Helm
    /// charts rename its ServiceAccount), and node-drain's own ServiceAccount,
    /// so a node drain replaces a managed pod before it goes (its eviction
    /// comes back through this webhook like anyone's).
    pub evicting_users: Vec<String>,
}

impl Default for GracefulConfig {
    fn default() -> Self {
        Self {
            grace_period_seconds: 30,
            drain_timeout_seconds: 300,
            namespace_selector: NamespaceSelector::default(),
            managed_marker: "vpa-managed".into(),
            managed_annotations: vec![
                "vpa-updater.client.k8s.io/last-updated".into(),
                "vpa.k8s.io/resource-name".into(),
            ],
            evicting_users: vec![
                "system:serviceaccount:kube-system:vpa-updater".into(),
                "system:serviceaccount:node-drain:node-drain".into(),
            ],
        }
    }
}

/// `include` empty means every namespace; `exclude` wins over `include`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSelector {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Default for NamespaceSelector {
    fn default() -> Self {
        Self {
            include: vec![],
            exclude: vec!["kube-system".into(), "kube-public".into()],
        }
    }
}

fn selector_or_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NamespaceSelector, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Object(NamespaceSelector),
        Json(String),
    }
    match Raw::deserialize(d)? {
        Raw::Object(s) => Ok(s),
        Raw::Json(text) => serde_json::from_str(&text)
            .map_err(|e| serde::de::Error::custom(format!("namespaceSelector (JSON): {e}"))),
    }
}

/// The annotation node-drain itself reads as "managed" (node drains, issue 16).
pub const OPT_IN: &str = "node-drain.io/graceful";

impl GracefulConfig {
    /// Checks the values; the error names the field under `graceful.`.
    pub fn check(&self) -> Result<(), String> {
        if self.drain_timeout_seconds == 0 {
            return Err("drainTimeoutSeconds: must be more than 0".into());
        }
        if self.grace_period_seconds >= self.drain_timeout_seconds {
            return Err(format!(
                "gracePeriodSeconds: {} must be less than drainTimeoutSeconds ({})",
                self.grace_period_seconds, self.drain_timeout_seconds
            ));
        }
        if self.drain_timeout_seconds > 24 * 3600 {
            return Err("drainTimeoutSeconds: at most 86400 (a day)".into());
        }
        for (field, names) in [
            (
                "namespaceSelector.include",
                &self.namespace_selector.include,
            ),
            (
                "namespaceSelector.exclude",
                &self.namespace_selector.exclude,
            ),
            ("managedAnnotations", &self.managed_annotations),
            ("evictingUsers", &self.evicting_users),
        ] {
            if let Some(i) = names.iter().position(|n| n.trim().is_empty()) {
                return Err(format!("{field}[{i}]: empty"));
            }
        }
        Ok(())
    }

    pub fn namespace_included(&self, namespace: &str) -> bool {
        let s = &self.namespace_selector;
        !s.exclude.iter().any(|n| n == namespace)
            && (s.include.is_empty() || s.include.iter().any(|n| n == namespace))
    }

    pub fn user_evicts(&self, username: &str) -> bool {
        self.evicting_users.iter().any(|u| u == username)
    }

    /// Whether a pod with these labels and annotations is drained gracefully.
    pub fn managed(
        &self,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> bool {
        let marked =
            |m: &BTreeMap<String, String>, key: &str| m.get(key).is_some_and(|v| v == "true");
        marked(labels, &self.managed_marker)
            || marked(annotations, &self.managed_marker)
            || marked(annotations, OPT_IN)
            || self
                .managed_annotations
                .iter()
                .any(|a| annotations.contains_key(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GracefulConfig, String> {
        let c: GracefulConfig = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        c.check().map(|_| c)
    }

    #[test]
    fn the_seed_defaults_and_its_json_namespace_selector() {
        let c = parse("{}").unwrap();
        assert_eq!((c.grace_period_seconds, c.drain_timeout_seconds), (30, 300));
        assert!(c.user_evicts("system:serviceaccount:kube-system:vpa-updater"));
        assert!(!c.namespace_included("kube-system"));
        assert!(c.namespace_included("production"));
        let c = parse(
            "namespaceSelector: |\n  {\"include\": [\"default\", \"production\"], \"exclude\": [\"kube-system\"]}\n",
        )
        .unwrap();
        assert!(c.namespace_included("production"));
        assert!(!c.namespace_included("staging"));
        let c = parse("namespaceSelector: {include: [a], exclude: [a]}\n").unwrap();
        assert!(!c.namespace_included("a"), "exclude wins");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, needle) in [
            ("drainTimeoutSeconds: 0\n", "drainTimeoutSeconds"),
            ("gracePeriodSeconds: 300\n", "gracePeriodSeconds"),
            ("gracePeriodSeconds: -1\n", "gracePeriodSeconds"),
            ("gracePeriod: 3\n", "gracePeriod"),
            ("evictingUsers: ['']\n", "evictingUsers[0]"),
            ("namespaceSelector: '{nope'\n", "namespaceSelector"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err} should name {needle}");
        }
    }

    #[test]
    fn managed_by_label_annotation_or_vpa_annotations() {
        let c = GracefulConfig::default();
        let map = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        let none = BTreeMap::new();
        assert!(c.managed(&map("vpa-managed", "true"), &none));
        assert!(c.managed(&none, &map("vpa-managed", "true")));
        assert!(c.managed(&none, &map("vpa.k8s.io/resource-name", "web")));
        assert!(c.managed(&none, &map(OPT_IN, "true")));
        assert!(!c.managed(&map("vpa-managed", "false"), &none));
        assert!(!c.managed(&map("app", "web"), &none));
    }
}
