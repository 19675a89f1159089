//! The `node_drain_*` metrics (SPEC §8), one registry for the process, served
//! by the daemon's `/metrics` (OpenMetrics text, prometheus-client).

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    drains: Family<Labels, Counter>,
    evictions: Family<Labels, Counter>,
    forced_deletions: Counter,
    drain_duration: Histogram,
    blocked_pods: Family<Labels, Counter>,
    wave_size: Gauge,
    allocate_rate: Family<Labels, Gauge<f64, AtomicU64>>,
    webhook_requests: Family<Labels, Counter>,
    leader: Gauge,
    lease_renew_failures: Counter,
    alerts: Family<Labels, Counter>,
    config_reloads: Family<Labels, Counter>,
    admin_requests: Family<Labels, Counter>,
    silences: Family<Labels, Counter>,
    drain_deadline: Family<Labels, Gauge<f64, AtomicU64>>,
    config_last_reload_successful: Gauge,
    graceful_drains: Family<Labels, Counter>,
    admissions: Family<Labels, Counter>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("node_drain");
        let m = Self {
            drains: Family::default(),
            evictions: Family::default(),
            forced_deletions: Counter::default(),
            drain_duration: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            blocked_pods: Family::default(),
            wave_size: Gauge::default(),
            allocate_rate: Family::default(),
            webhook_requests: Family::default(),
            leader: Gauge::default(),
            lease_renew_failures: Counter::default(),
            alerts: Family::default(),
            config_reloads: Family::default(),
            admin_requests: Family::default(),
            silences: Family::default(),
            drain_deadline: Family::default(),
            config_last_reload_successful: Gauge::default(),
            graceful_drains: Family::default(),
            admissions: Family::default(),
            registry: Registry::default(),
        };
        registry.register("drains", "Node drains by result", m.drains.clone());
        registry.register(
            "evictions",
            "Evictions by the API server's response code",
            m.evictions.clone(),
        );
        registry.register(
            "forced_deletions",
            "Pods deleted instead of evicted (--force, --on-timeout force, a NotReady node)",
            m.forced_deletions.clone(),
        );
        registry.register(
            "drain_duration_seconds",
            "Time from a node's claim to its outcome",
            m.drain_duration.clone(),
        );
        registry.register(
            "blocked_pods",
            "Pods that kept a node from draining, by reason",
            m.blocked_pods.clone(),
        );
        registry.register(
            "wave_size",
            "Nodes in the last planned wave",
            m.wave_size.clone(),
        );
        registry.register(
            "allocate_rate_percent",
            "The NodePool's last measured allocate rate, by resource",
            m.allocate_rate.clone(),
        );
        registry.register(
            "webhook_requests",
            "Alertmanager webhook requests by HTTP status",
            m.webhook_requests.clone(),
        );
        registry.register(
            "leader",
            "1 while this process holds the lease",
            m.leader.clone(),
        );
        registry.register(
            "lease_renew_failures",
            "Failed attempts to take or renew the lease",
            m.lease_renew_failures.clone(),
        );
        registry.register(
            "alerts",
            "Alerts received, by outcome (accepted, duplicate, resolved, ignored) and reason",
            m.alerts.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads by result",
            m.config_reloads.clone(),
        );
        registry.register(
            "admin_requests",
            "Admin socket requests by command and result",
            m.admin_requests.clone(),
        );
        registry.register(
            "silences",
            "Alertmanager silences for retired nodes, by result (created, expired, error)",
            m.silences.clone(),
        );
        registry.register(
            "drain_deadline_timestamp_seconds",
            "When each node in drain reaches its --drain-timeout (unix seconds); gone with its outcome",
            m.drain_deadline.clone(),
        );
        registry.register(
            "config_last_reload_successful",
            "1 when the config file's last load or reload was taken, 0 when refused",
            m.config_last_reload_successful.clone(),
        );
        // Counted from 0, so increase() sees the first refused reload.
        for result in ["ok", "error"] {
            let _ = m
                .config_reloads
                .get_or_create(&labels(&[("result", result)]));
        }
        registry.register(
            "graceful_drains",
            "Graceful drains of evicted pods by result (deleted, timeout: deleted at drainTimeoutSeconds, restored)",
            m.graceful_drains.clone(),
        );
        registry.register(
            "admission_requests",
            "pods/eviction admission requests by outcome (graceful, refused-pdb, unmanaged, other-user, not-leader, ...)",
            m.admissions.clone(),
        );
        Self { registry, ..m }
    }

    pub fn drain_finished(&self, result: &str, seconds: f64) {
        self.drains
            .get_or_create(&labels(&[("result", result)]))
            .inc();
        self.drain_duration.observe(seconds);
    }
    pub fn eviction(&self, code: u16) {
        self.evictions
            .get_or_create(&labels(&[("code", &code.to_string())]))
            .inc();
    }
    pub fn forced_deletion(&self) {
        self.forced_deletions.inc();
    }
    pub fn blocked_pod(&self, reason: &str) {
        self.blocked_pods
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }
    pub fn wave_size(&self, size: usize) {
        self.wave_size.set(size as i64);
    }
    pub fn allocate_rate(&self, nodepool: &str, resource: &str, percent: f64) {
        self.allocate_rate
            .get_or_create(&labels(&[("nodepool", nodepool), ("resource", resource)]))
            .set(percent);
    }
    pub fn webhook_request(&self, code: u16) {
        self.webhook_requests
            .get_or_create(&labels(&[("code", &code.to_string())]))
            .inc();
    }
    pub fn leader(&self, leader: bool) {
        self.leader.set(leader as i64);
    }
    pub fn lease_renew_failure(&self) {
        self.lease_renew_failures.inc();
    }
    pub fn alert(&self, outcome: &str, reason: &str) {
        self.alerts
            .get_or_create(&labels(&[("outcome", outcome), ("reason", reason)]))
            .inc();
    }
    pub fn config_reloads(&self, result: &str) {
        self.config_reloads
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }
    pub fn admin_request(&self, command: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.admin_requests
            .get_or_create(&labels(&[("command", command), ("result", result)]))
            .inc();
    }

    /// `node` reaches its drain timeout `after` from now.
    pub fn drain_deadline(&self, node: &str, after: std::time::Duration) {
        let at = std::time::SystemTime::now() + after;
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        self.drain_deadline
            .get_or_create(&labels(&[("node", node)]))
            .set(secs);
    }

    /// `node`'s drain has its outcome.
    pub fn drain_over(&self, node: &str) {
        self.drain_deadline.remove(&labels(&[("node", node)]));
    }

    pub fn config_loaded(&self, ok: bool) {
        self.config_last_reload_successful.set(i64::from(ok));
    }

    pub fn silence(&self, result: &str) {
        self.silences
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    pub fn graceful_drain(&self, result: &str) {
        self.graceful_drains
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    pub fn admission(&self, outcome: &str) {
        self.admissions
            .get_or_create(&labels(&[("outcome", outcome)]))
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_family_is_exposed_with_its_prefix_and_labels_are_escaped() {
        let m = super::get();
        m.eviction(429);
        m.alert("ignored", "unknown-node \"x\"\n");
        m.drain_finished("drained", 3.0);
        let text = m.encode();
        assert!(
            text.contains("node_drain_evictions_total{code=\"429\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("reason=\"unknown-node \\\"x\\\"\\n\""),
            "{text}"
        );
        assert!(
            text.contains("node_drain_drain_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("node_drain_leader"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
