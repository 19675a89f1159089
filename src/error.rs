//! The crate's error, and the exit code each failure maps to (SPEC §1):
//! 0 done, 1 a node failed to drain, 2 bad usage or configuration,
//! 3 a dependency (Prometheus, API server) unusable.

use crate::plan::budget::BudgetError;
use crate::plan::RateError;
use crate::prometheus::PrometheusError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("kube config ({mode}): {reason}")]
    KubeConfig { mode: String, reason: String },
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    #[error("NodePool {nodepool:?}: {source}")]
    Rate { nodepool: String, source: RateError },
    #[error("Kubernetes API: could not {action}: {}", describe_kube(source))]
    Kube { action: String, source: kube::Error },
    #[error("NodePool {0:?} not found: check --nodepool-name (NODEPOOL_NAME) and `kubectl get nodepools`")]
    NodePoolNotFound(String),
    #[error("NodePool {nodepool:?} has a disruption budget node-drain cannot read: {source}")]
    Budget {
        nodepool: String,
        source: BudgetError,
    },
    #[error("node {node:?} {reason}")]
    Node { node: String, reason: String },
    /// A run of this process already drains the node: a rotation's wave that
    /// meets it (an alert took the node while the wave reserved capacity)
    /// plans again instead of failing.
    #[error("node {node:?} is already being drained by run {run}")]
    NodeInRun { node: String, run: String },
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A kube error as one readable line: the API server's code, reason and message
/// (not kube's Debug of the Status), with what to check for the common ones.
pub fn describe_kube(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let hint = match s.code {
                401 => " (check the kubeconfig's credentials)",
                403 => " (check node-drain's RBAC: deploy/base/rbac.yaml)",
                _ => "",
            };
            format!("HTTP {} {}: {}{hint}", s.code, s.reason, s.message)
        }
        other => format!(
            "{} (is the API server reachable? check --kube-config and the kubeconfig's server)",
            crate::telemetry::error_chain(other)
        ),
    }
}

impl Error {
    /// The label of this failure in metrics (`node_drain_*_total{error}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::KubeConfig { .. } => "kube-config",
            Error::Prometheus(_) => "prometheus",
            Error::Rate { .. } => "rate",
            Error::Kube { .. } => "kubernetes-api",
            Error::NodePoolNotFound(_) => "nodepool-not-found",
            Error::Budget { .. } => "budget",
            Error::Node { .. } | Error::NodeInRun { .. } => "node",
            Error::Internal(_) => "internal",
        }
    }

    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_)
            | Error::KubeConfig { .. }
            | Error::NodePoolNotFound(_)
            | Error::Node { .. }
            | Error::NodeInRun { .. } => 2,
            Error::Prometheus(PrometheusError::BadAddress { .. }) => 2,
            Error::Prometheus(_)
            | Error::Rate { .. }
            | Error::Kube { .. }
            | Error::Budget { .. } => 3,
            Error::Internal(_) => 1,
        }
    }
}

impl From<actix::MailboxError> for Error {
    fn from(e: actix::MailboxError) -> Self {
        Error::Internal(format!("actor mailbox: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::NodePoolNotFound("x".into()).exit_code(), 2);
        assert_eq!(
            Error::Prometheus(PrometheusError::Empty { query: "q".into() }).exit_code(),
            3
        );
        assert_eq!(
            Error::Prometheus(PrometheusError::NoOrgId {
                address: "a".into()
            })
            .exit_code(),
            3
        );
        assert_eq!(
            Error::Prometheus(PrometheusError::BadAddress {
                address: "a".into(),
                reason: "r".into()
            })
            .exit_code(),
            2
        );
    }
}
