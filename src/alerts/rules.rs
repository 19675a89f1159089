//! Alert rules (the `rules:` of the daemon's config) and the node an alert
//! names. A rule matches on the alert name and, optionally, exact label
//! values; the first rule that matches decides the action.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;

use super::payload::Alert;
use crate::drain::{OnTimeout, Retire};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Drain (and retire) the node the alert names.
    DrainNode,
    /// One wave of the NodePool of the node the alert names, planned as the
    /// CLI plans it (the allocate rate, budgets, caps).
    DrainNodepool,
    /// Cordon the node only: an operator decides what comes next.
    Cordon,
    /// Rotate the whole NodePool named by the alert's `nodepool` label (the
    /// daemon's registry of rotations: one per NodePool at most).
    RotateNodepool,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DrainNode => "drain-node",
            Action::DrainNodepool => "drain-nodepool",
            Action::Cordon => "cordon",
            Action::RotateNodepool => "rotate-nodepool",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub alertname: String,
    /// Every label here must be on the alert with this value.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub action: Action,
    /// Per-rule drain options; the daemon's flags when absent.
    #[serde(default)]
    pub retire: Option<Retire>,
    #[serde(default)]
    pub force: Option<bool>,
    #[serde(default)]
    pub on_timeout: Option<OnTimeout>,
    /// A Go duration ("15m").
    #[serde(default)]
    pub drain_timeout: Option<String>,
}

impl Rule {
    pub fn matches(&self, alert: &Alert) -> bool {
        alert.name() == self.alertname
            && self
                .labels
                .iter()
                .all(|(k, v)| alert.labels.get(k) == Some(v))
    }
}

/// The first rule that matches `alert`.
pub fn rule_for<'a>(rules: &'a [Rule], alert: &Alert) -> Option<&'a Rule> {
    rules.iter().find(|r| r.matches(alert))
}

/// The labels that name a node, in the order they are tried.
pub const NODE_LABELS: [&str; 4] = ["node", "instance", "nodename", "kubernetes_node"];

/// What the resolver knows of the cluster's nodes.
#[derive(Debug, Default, Clone)]
pub struct NodeIndex {
    pub names: HashSet<String>,
    /// InternalIP → the nodes that have it.
    pub by_ip: HashMap<String, Vec<String>>,
}

impl NodeIndex {
    pub fn of(nodes: &[k8s_openapi::api::core::v1::Node]) -> Self {
        let mut index = Self::default();
        for n in nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            let addresses = n.status.as_ref().and_then(|s| s.addresses.as_ref());
            for a in addresses
                .into_iter()
                .flatten()
                .filter(|a| a.type_ == "InternalIP")
            {
                index
                    .by_ip
                    .entry(a.address.clone())
                    .or_default()
                    .push(name.clone());
            }
            index.names.insert(name);
        }
        index
    }
}

/// Why an alert names no node node-drain may act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("no node label (node, instance, nodename, kubernetes_node)")]
    NoNodeLabel,
    #[error("{label}={value:?} names no node of the cluster")]
    UnknownNode { label: &'static str, value: String },
    #[error("instance IP {ip} is shared by nodes {nodes:?}: ambiguous")]
    AmbiguousIp { ip: String, nodes: Vec<String> },
}

impl Unresolved {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Unresolved::NoNodeLabel => "no-node-label",
            Unresolved::UnknownNode { .. } => "unknown-node",
            Unresolved::AmbiguousIp { .. } => "ambiguous-ip",
        }
    }
}

/// The node `labels` name: `node` (authoritative: unknown, nothing else is
/// tried); `instance` as a node name, `<node name>:<port>`, or `IP:port` /
/// `IP` through the nodes' InternalIP; then `nodename`, `kubernetes_node`.
pub fn node_of(labels: &BTreeMap<String, String>, index: &NodeIndex) -> Result<String, Unresolved> {
    let mut first_unknown = None;
    for label in NODE_LABELS {
        let Some(value) = labels.get(label).filter(|v| !v.is_empty()) else {
            continue;
        };
        if index.names.contains(value) {
            return Ok(value.clone());
        }
        // `node` is authoritative: present but unknown (a node gone, a typo),
        // the alert names no node. Falling through to `instance` would let a
        // reused IP pick another node.
        if label == "node" {
            return Err(Unresolved::UnknownNode {
                label,
                value: value.clone(),
            });
        }
        if label == "instance" {
            let ip = strip_port(value);
            // `<node name>:<port>`: a target scraped by node name.
            if index.names.contains(ip) {
                return Ok(ip.to_string());
            }
            match index.by_ip.get(ip).map(Vec::as_slice) {
                Some([one]) => return Ok(one.clone()),
                Some(many) if many.len() > 1 => {
                    let mut nodes = many.to_vec();
                    nodes.sort();
                    return Err(Unresolved::AmbiguousIp {
                        ip: ip.to_string(),
                        nodes,
                    });
                }
                _ => {}
            }
        }
        first_unknown.get_or_insert(Unresolved::UnknownNode {
            label,
            value: value.clone(),
        });
    }
    Err(first_unknown.unwrap_or(Unresolved::NoNodeLabel))
}

/// Whether `node_of` may resolve `labels` by an InternalIP: then it must see
/// every node of the cluster, since an IP a managed node shares with one outside
/// the managed NodePools is ambiguous. Otherwise the managed nodes suffice.
pub fn resolves_by_ip(labels: &BTreeMap<String, String>) -> bool {
    labels.get("node").is_none_or(|v| v.is_empty())
        && labels
            .get("instance")
            .is_some_and(|v| strip_port(v).parse::<std::net::IpAddr>().is_ok())
}

/// "10.0.0.1:9100" → "10.0.0.1"; "[fd00::1]:9100" → "fd00::1"; an IP alone as is.
fn strip_port(instance: &str) -> &str {
    if let Some(rest) = instance.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match instance.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address.
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => instance,
    }
}

#[cfg(test)]
mod rotate_tests {
    use super::Action;

    #[test]
    fn rotate_nodepool_is_a_rule_action() {
        let config = crate::config::DaemonConfig::parse(
            "rules:\n  - alertname: RotateWorkers\n    action: rotate-nodepool\n",
        )
        .unwrap();
        assert_eq!(config.rules[0].action, Action::RotateNodepool);
        assert_eq!(Action::RotateNodepool.as_str(), "rotate-nodepool");
    }
}
