//! The leader's label on its own Pod, as CloudNativePG and Patroni do: the
//! elected leader labels its Pod `node-drain.io/role=leader` and takes the
//! label off any other Pod of its namespace still wearing it (a killed
//! leader's), so a Service selecting the label routes Alertmanager's webhooks
//! to the leader alone, while every healthy replica stays Ready (the
//! Deployment's readiness is `/readyz/replica`, and a rolling update finishes).
//! Writes go through the fenced client: a leader whose lease lapsed labels
//! nothing.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::drain::PodRef;

pub const ROLE_LABEL: &str = "node-drain.io/role";
pub const LEADER: &str = "leader";

/// Labels `own` the leader, then unlabels every other Pod of its namespace
/// that still says leader. Returns the Pods unlabelled.
pub async fn claim(client: &Client, own: &PodRef) -> Result<Vec<String>, String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &own.namespace);
    set(&api, &own.name, Some(LEADER))
        .await
        .map_err(|e| format!("label Pod {}/{} leader: {e}", own.namespace, own.name))?;
    let selector = format!("{ROLE_LABEL}={LEADER}");
    let labelled = api
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("list Pods {selector} in {}: {e}", own.namespace))?;
    let mut unlabelled = vec![];
    for pod in labelled.items {
        let Some(name) = pod.metadata.name else {
            continue;
        };
        if name == own.name {
            continue;
        }
        match set(&api, &name, None).await {
            Ok(()) => unlabelled.push(name),
            Err(e) if crate::k8s::api_code(&e) == Some(404) => {}
            Err(e) => return Err(format!("unlabel Pod {}/{name}: {e}", own.namespace)),
        }
    }
    Ok(unlabelled)
}

/// Takes the label off `own` (a leader handing over on SIGTERM).
pub async fn resign(client: &Client, own: &PodRef) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &own.namespace);
    crate::k8s::gone_is_ok(set(&api, &own.name, None).await.map(|_| ()))
        .map_err(|e| format!("unlabel Pod {}/{}: {e}", own.namespace, own.name))
}

async fn set(api: &Api<Pod>, name: &str, value: Option<&str>) -> kube::Result<()> {
    let patch = json!({"metadata": {"labels": {ROLE_LABEL: value}}});
    api.patch_metadata(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}
