//! The leader's label on its own Pod (see `k8s::role_label`): claimed once
//! the leader has reconciled, so the webhook Service routes to it; taken off
//! when it shuts down.

use std::time::Duration;

use tracing::{info, warn};

use crate::drain::PodRef;

/// This replica's Pod, which the leader labels (none outside a Pod).
#[derive(Clone)]
pub struct RoleLabel {
    pub client: kube::Client,
    pub own: Option<PodRef>,
}

impl RoleLabel {
    /// Whether the label is in place (or there is no Pod to label).
    pub async fn claim(&self) -> bool {
        let Some(own) = &self.own else {
            return true;
        };
        match crate::k8s::role_label::claim(&self.client, own).await {
            Ok(unlabelled) => {
                info!(
                    pod = own.name.as_str(),
                    unlabelled = unlabelled.join(",").as_str(),
                    "labelled this Pod the leader: the webhook Service routes here"
                );
                true
            }
            Err(e) => {
                warn!(
                    error = e.as_str(),
                    "could not label this Pod the leader; retrying"
                );
                false
            }
        }
    }

    pub async fn resign(&self) {
        let Some(own) = &self.own else {
            return;
        };
        let unlabel = crate::k8s::role_label::resign(&self.client, own);
        match tokio::time::timeout(Duration::from_secs(2), unlabel).await {
            Ok(Ok(())) => info!(
                pod = own.name.as_str(),
                "took the leader label off this Pod"
            ),
            Ok(Err(e)) => warn!(
                error = e.as_str(),
                "could not take the leader label off this Pod"
            ),
            Err(_) => warn!("taking the leader label off this Pod timed out"),
        }
    }
}
