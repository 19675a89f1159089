//! Kubernetes Events on a Node: every start, block, success, failure and
//! retirement (SPEC §8). An Event that cannot be written is logged, never fatal.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use tracing::warn;

/// A recorder naming node-drain and this instance as the source.
pub fn recorder(client: Client, instance: &str) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: "node-drain".into(),
            instance: Some(instance.into()),
        },
    )
}

/// A reference to a Node by name (and uid when known), for Events.
pub fn node_ref(name: &str, uid: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.into()),
        uid,
        ..Default::default()
    }
}

/// Publishes an Event on `node`.
pub async fn publish(
    recorder: &Recorder,
    node: &ObjectReference,
    warning: bool,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Drain".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, node).await {
        warn!(
            node = node.name.as_deref().unwrap_or(""),
            reason,
            error = e.to_string().as_str(),
            "could not record an Event"
        );
    }
}
