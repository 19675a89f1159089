//! Doing the one thing `step::next` named for a pod, and saying so: the
//! patch or the delete, the log line, the Event on the pod, the metric.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use tracing::{info, warn};

use super::config::GracefulConfig;
use super::record::{Mode, Record};
use super::step::Action;
use super::worker::Graceful;

/// What the task does after a step that was written.
pub enum Flow {
    /// Read the pod again after a tick.
    Next,
    /// The drain is over (deleted or restored).
    Finished,
}

/// The pod and what was read with it this round.
pub struct Step<'a> {
    pub pods: &'a Api<Pod>,
    pub target: &'a ObjectReference,
    pub uid: &'a str,
    pub config: &'a GracefulConfig,
    pub now: DateTime<Utc>,
    /// The resourceVersion read: every patch is conditional on it.
    pub rv: Option<&'a str>,
}

impl Graceful {
    pub(super) async fn act(
        &self,
        s: Step<'_>,
        record: &mut Record,
        action: Action,
    ) -> kube::Result<Flow> {
        let name = s.target.name.as_deref().unwrap_or_default();
        let namespace = s.target.namespace.as_deref().unwrap_or_default();
        let metrics = crate::telemetry::metrics::get();
        let patch = |body: serde_json::Value| async move {
            s.pods
                .patch(name, &PatchParams::default(), &Patch::Merge(&body))
                .await
                .map(|_| ())
        };
        match action {
            Action::Wait | Action::Done => Ok(Flow::Next),
            Action::Start(mode) => {
                patch(record.start_patch(mode, s.now, s.rv)).await?;
                let (reason, note) = match mode {
                    Mode::ReplaceFirst => ("GracefulDrainStarted", "replacement first: out of its ReplicaSet (pod-template-hash changed), still serving"),
                    Mode::IsolateFirst => ("GracefulDrainFallback", "fallback: a Service selects pod-template-hash, so the pod leaves its Services before its replacement starts"),
                    Mode::IsolateOnly => ("GracefulDrainFallback", "fallback: not a ReplicaSet's pod (its replacement can only follow the delete): out of its Services, then the grace period"),
                };
                info!(namespace, pod = name, mode = ?mode, "graceful drain started");
                self.event(s.target, false, reason, note.into()).await;
                Ok(Flow::Next)
            }
            Action::Isolate => {
                patch(record.isolate_patch(s.now, s.rv)).await?;
                info!(
                    namespace,
                    pod = name,
                    "graceful drain: replacement Ready, pod out of its Services"
                );
                let note = format!(
                    "replacement Ready: out of its Services; deleted in {}s",
                    s.config.grace_period_seconds
                );
                self.event(s.target, false, "GracefulDrainIsolated", note)
                    .await;
                Ok(Flow::Next)
            }
            Action::Delete { timed_out } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(s.uid.into()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                crate::k8s::gone_is_ok(s.pods.delete(name, &params).await)?;
                if timed_out {
                    metrics.graceful_drain("timeout");
                    warn!(
                        namespace,
                        pod = name,
                        "graceful drain: drainTimeoutSeconds passed; deleted anyway"
                    );
                    let note = format!(
                        "drainTimeoutSeconds ({}) passed at step {:?}: deleted anyway",
                        s.config.drain_timeout_seconds, record.step
                    );
                    self.event(s.target, true, "GracefulDrainTimedOut", note)
                        .await;
                } else {
                    metrics.graceful_drain("deleted");
                    info!(
                        namespace,
                        pod = name,
                        "graceful drain: grace period over; deleted"
                    );
                    let note = format!(
                        "{}s out of its Services: deleted with its own grace period",
                        s.config.grace_period_seconds
                    );
                    self.event(s.target, false, "GracefulDrainDeleted", note)
                        .await;
                }
                Ok(Flow::Finished)
            }
            Action::Restore => {
                patch(record.restore_patch(s.rv)).await?;
                metrics.graceful_drain("restored");
                info!(
                    namespace,
                    pod = name,
                    "graceful drain aborted: labels and ownership restored"
                );
                let note =
                    "aborted (namespace no longer included): labels and ownerReferences restored";
                self.event(s.target, true, "GracefulDrainRestored", note.into())
                    .await;
                Ok(Flow::Finished)
            }
        }
    }
}
