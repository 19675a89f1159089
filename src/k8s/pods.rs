//! Pods: the pods bound to a node (one LIST with a field selector), a watch of
//! them, and the one request that removes a planned pod — an eviction (PDBs
//! apply) or a delete — always with the planned UID as a precondition, so a new
//! pod under the same name is never touched.

use futures::Stream;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::runtime::watcher;
use kube::Client;

pub use crate::drain::presence::PodChange;
use crate::drain::PodRef;

fn on_node(node: &str) -> String {
    format!("spec.nodeName={node}")
}

/// The pods bound to a node (no cluster-wide cache).
pub async fn of_node(client: &Client, node: &str) -> kube::Result<Vec<Pod>> {
    Ok(listed_at(client, node).await?.0)
}

/// The pods bound to a node and the resourceVersion of that list (a watch
/// started there sees every change since).
pub async fn listed_at(client: &Client, node: &str) -> kube::Result<(Vec<Pod>, Option<String>)> {
    let pods: Api<Pod> = Api::all(client.clone());
    let list = pods
        .list(&ListParams::default().fields(&on_node(node)))
        .await?;
    Ok((list.items, list.metadata.resource_version))
}

/// A watch of the pods bound to a node (the watcher re-lists after errors).
pub fn watch_node(
    client: &Client,
    node: &str,
) -> impl Stream<Item = Result<watcher::Event<Pod>, watcher::Error>> + Send + 'static {
    let pods: Api<Pod> = Api::all(client.clone());
    watcher(pods, watcher::Config::default().fields(&on_node(node)))
}

/// How a planned pod is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalRequest {
    /// The Eviction API: PodDisruptionBudgets apply.
    Evict,
    /// A delete with the pod's own grace period (finished pods, `--on-timeout force`).
    Delete,
    /// A delete with grace period 0 (problem pods, stuck terminating pods).
    DeleteNow,
}

/// A removal the API server refused (or never answered), with the seconds its
/// `Retry-After` header asked for: API Priority and Fairness says how long to
/// wait there, in a plain-text body that has no Status details.
#[derive(Debug)]
pub struct Refusal {
    pub error: kube::Error,
    pub retry_after: Option<u32>,
}

impl From<kube::Error> for Refusal {
    fn from(error: kube::Error) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// Sends one removal request for `pod` with `uid` as precondition.
pub async fn remove(
    client: &Client,
    pod: &PodRef,
    uid: &str,
    how: RemovalRequest,
) -> Result<(), Refusal> {
    let delete = DeleteParams {
        grace_period_seconds: (how == RemovalRequest::DeleteNow).then_some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let path = format!("/api/v1/namespaces/{}/pods/{}", pod.namespace, pod.name);
    let (request, body) = match how {
        RemovalRequest::Evict => (
            http::Request::post(format!("{path}/eviction")),
            eviction_body(pod, &delete),
        ),
        RemovalRequest::Delete | RemovalRequest::DeleteNow => (
            http::Request::delete(path),
            serde_json::to_value(&delete).map_err(kube::Error::SerdeError)?,
        ),
    };
    let body = serde_json::to_vec(&body).map_err(kube::Error::SerdeError)?;
    let request = request
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(kube::Error::HttpError)?;
    send(client, request).await
}

/// The body of an eviction as the API server reads it (`policy/v1` Eviction).
/// kube's own `Api::evict` names the field `delete_options`, which the API
/// server ignores: the UID precondition would never reach it.
pub fn eviction_body(pod: &PodRef, delete: &DeleteParams) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": pod.name, "namespace": pod.namespace},
        "deleteOptions": delete,
    })
}

/// Sends a removal as a raw request, so the answer's `Retry-After` header is
/// kept (API Priority and Fairness throttles deletes as it does evictions).
async fn send(client: &Client, request: http::Request<Vec<u8>>) -> Result<(), Refusal> {
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let code = response.status();
    if code.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let body = response.into_body().collect_bytes().await?;
    let text = String::from_utf8_lossy(&body);
    let mut status = serde_json::from_str::<kube::core::Status>(&text)
        .unwrap_or_else(|_| kube::core::Status::failure(text.trim(), ""));
    if status.code == 0 {
        status.code = code.as_u16(); // the HTTP code is the answer's, whatever the body says
    }
    Err(Refusal {
        error: kube::Error::Api(status.boxed()),
        retry_after,
    })
}

/// The PodDisruptionBudgets whose selector matches the pod: named when the
/// Eviction API refuses a pod that more than one of them selects.
pub async fn pdbs_selecting(client: &Client, pod: &PodRef) -> kube::Result<Vec<String>> {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let labels = pods
        .get(&pod.name)
        .await?
        .metadata
        .labels
        .unwrap_or_default();
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &pod.namespace);
    let mut names: Vec<String> = pdbs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|pdb| {
            pdb.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| selector_matches(sel, &labels))
        })
        .filter_map(|pdb| pdb.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Whether a label selector matches `labels` (matchLabels and matchExpressions;
/// an empty selector matches everything, as a PDB's does).
pub fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// The pods of a node as a stream of changes: from `version` when given (no
/// LIST: the caller knows the pods as of that version), else a LIST and a
/// watch (the watcher re-lists after errors). A resumed watch ends when the
/// API server closes it (after about 290 s); the caller resumes again.
pub async fn changes(
    client: &Client,
    node: &str,
    version: Option<&str>,
) -> kube::Result<futures::stream::BoxStream<'static, PodChange>> {
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let pods: Api<Pod> = Api::all(client.clone());
    match version {
        Some(version) => {
            let params = WatchParams::default().fields(&on_node(node)).timeout(290);
            let stream = pods.watch(&params, version).await?;
            Ok(stream
                .map(|event| match event {
                    Ok(WatchEvent::Added(p) | WatchEvent::Modified(p)) => PodChange::Applied(p),
                    Ok(WatchEvent::Deleted(p)) => PodChange::Deleted(p),
                    Ok(WatchEvent::Bookmark(b)) => PodChange::Version(b.metadata.resource_version),
                    Ok(WatchEvent::Error(s)) if s.code == 410 => PodChange::Expired,
                    Ok(WatchEvent::Error(s)) => PodChange::Error(s.message.clone()),
                    Err(e) => PodChange::Error(e.to_string()),
                })
                .boxed())
        }
        None => {
            let mut listed = Vec::new();
            Ok(watch_node(client, node)
                .filter_map(move |event| {
                    let change = match event {
                        Ok(watcher::Event::Init) => {
                            listed.clear();
                            None
                        }
                        Ok(watcher::Event::InitApply(p)) => {
                            listed.push(p);
                            None
                        }
                        Ok(watcher::Event::InitDone) => {
                            Some(PodChange::Listed(std::mem::take(&mut listed)))
                        }
                        Ok(watcher::Event::Apply(p)) => Some(PodChange::Applied(p)),
                        Ok(watcher::Event::Delete(p)) => Some(PodChange::Deleted(p)),
                        Err(e) => Some(PodChange::Error(e.to_string())),
                    };
                    futures::future::ready(change)
                })
                .boxed())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_eviction_body_carries_the_uid_precondition_where_the_api_server_reads_it() {
        let pod = PodRef {
            namespace: "ns".into(),
            name: "web-1".into(),
        };
        let delete = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some("uid-1".into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            eviction_body(&pod, &delete),
            json!({"apiVersion": "policy/v1", "kind": "Eviction",
                   "metadata": {"name": "web-1", "namespace": "ns"},
                   "deleteOptions": {"preconditions": {"uid": "uid-1"}}})
        );
    }

    #[test]
    fn label_selectors() {
        let labels = std::collections::BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "front".to_string()),
        ]);
        let cases = [
            (json!({}), true),
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
                false,
            ),
            (
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
                true,
            ),
        ];
        for (selector, want) in cases {
            let s = serde_json::from_value(selector.clone()).unwrap();
            assert_eq!(selector_matches(&s, &labels), want, "{selector}");
        }
    }
}
