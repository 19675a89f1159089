//! How the fake API server answers each request: the Node (GET, JSON Patch),
//! the node's pods (LIST, a watch from a resourceVersion), evictions (their
//! body read as the API server reads it), pod DELETEs, and Events.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{Deletes, Evictions, Fake, Shared};
use crate::support::http::{Request, Response};

fn json_response(status: u16, body: Value) -> Response {
    Response::new(status, "application/json", body.to_string())
}

fn status(code: u16, reason: &str, message: &str, details: Value) -> Response {
    json_response(
        code,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code,
               "reason": reason, "message": message, "details": details}),
    )
}

/// APF's answer: plain text, the wait in the `Retry-After` header.
fn throttled() -> Response {
    Response::new(
        429,
        "text/plain; charset=utf-8",
        "Too many requests, please try again later.\n",
    )
    .with_header("Retry-After", "3")
}

fn query(target: &str, key: &str) -> Option<String> {
    let (_, q) = target.split_once('?')?;
    q.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

/// A watch from `resourceVersion` reports the events after it (the node's
/// for a watch of nodes, unless held; else the pods'), waiting up to a second
/// for one, then ends, as an idle watch the API server closes; the client
/// watches again from the last version it saw.
async fn watch(fake: &Shared, r: &Request) -> Response {
    let of_nodes = r.target.starts_with("/api/v1/nodes?");
    let from: u64 = query(&r.target, "resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if from > 0 && std::mem::take(&mut fake.lock().unwrap().expire_next_watch) {
        let expired = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("too old resource version: {from} (42)"), "reason": "Expired", "code": 410}});
        return Response::new(200, "application/json", format!("{expired}\n"));
    }
    let after = |f: &Fake| -> String {
        let events = match of_nodes {
            true if f.hold_node_events => &[][..],
            true => &f.node_events[..],
            false => &f.events[..],
        };
        events
            .iter()
            .filter(|(v, _)| *v > from)
            .map(|(_, e)| format!("{e}\n"))
            .collect()
    };
    for _ in 0..10 {
        let body = after(&fake.lock().unwrap());
        if !body.is_empty() {
            return Response::new(200, "application/json", body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Response::new(200, "application/json", "")
}

/// The eviction as the API server reads it: `deleteOptions.preconditions.uid`
/// must name the pod (else 409, as for a new pod under the same name); an
/// eviction without it is refused (node-drain always sends it).
fn eviction_precondition(f: &Fake, name: &str, body: &[u8]) -> Option<Response> {
    let body: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    let Some(uid) = body["deleteOptions"]["preconditions"]["uid"].as_str() else {
        return Some(status(
            422,
            "Invalid",
            &format!("the fake API server requires deleteOptions.preconditions.uid in every eviction; got {body}"),
            json!({}),
        ));
    };
    match f.uid_of(name) {
        Some(actual) if actual != uid => Some(status(
            409,
            "Conflict",
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
            ),
            json!({}),
        )),
        _ => None,
    }
}

fn evict(f: &mut Fake, name: &str, body: &[u8]) -> Response {
    f.evictions_at.push(Instant::now());
    if let Some(refused) = eviction_precondition(f, name, body) {
        return refused;
    }
    if f.ready_on_first_eviction && f.evictions_at.len() == 1 {
        f.set_ready(true);
    }
    if f.evictions == Evictions::ThrottledOnce && f.evictions_at.len() == 1 {
        return throttled();
    }
    if f.evictions != Evictions::PdbRefuses && !f.has_pod(name) {
        return status(
            404,
            "NotFound",
            &format!("pods \"{name}\" not found"),
            json!({}),
        );
    }
    match f.evictions {
        Evictions::StuckOnDeadNode => {
            f.start_terminating(name, chrono::Utc::now() - chrono::Duration::seconds(120));
            status(201, "", "", json!({}))
        }
        Evictions::Terminating => {
            f.start_terminating(name, chrono::Utc::now());
            status(201, "", "", json!({}))
        }
        Evictions::ThrottledOnce | Evictions::Allow => {
            f.remove_pod(name);
            status(201, "", "", json!({}))
        }
        Evictions::PdbRefuses => status(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
            json!({"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]}),
        ),
    }
}

fn delete(f: &mut Fake, name: &str, body: &[u8]) -> Response {
    let options: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    f.deletes_at.push((Instant::now(), options));
    if f.deletes == Deletes::ThrottledOnce && f.deletes_at.len() == 1 {
        return throttled();
    }
    match f.remove_pod(name) {
        Some(pod) => json_response(200, pod),
        None => status(
            404,
            "NotFound",
            &format!("pods \"{name}\" not found"),
            json!({}),
        ),
    }
}

fn patch_node(f: &mut Fake, body: &[u8]) -> Response {
    if f.patches_unavailable_until
        .is_some_and(|t| Instant::now() < t)
    {
        return status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            json!({}),
        );
    }
    let ops: json_patch::Patch = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => return status(400, "BadRequest", &e.to_string(), json!({})),
    };
    let mut node = f.node.clone();
    if let Err(e) = json_patch::patch(&mut node, &ops) {
        return status(
            422,
            "Invalid",
            &format!("the server rejected our request due to an error in our request: {e}"),
            json!({}),
        );
    }
    f.stamp_node(node);
    json_response(200, f.node.clone())
}

/// A LIST answers at the current resourceVersion, as the API server does
/// (a watch goes on from it).
fn list(f: &Fake, kind: &str, items: Vec<Value>) -> Response {
    json_response(
        200,
        json!({"apiVersion": "v1", "kind": kind,
               "metadata": {"resourceVersion": f.version.to_string()}, "items": items}),
    )
}

pub(super) async fn answer(fake: Shared, r: Request) -> Response {
    let path = r.target.split('?').next().unwrap_or("").to_string();
    if r.target.contains("watch=true") {
        return watch(&fake, &r).await;
    }
    let mut f = fake.lock().unwrap();
    f.log.push(format!("{} {path}", r.method));
    let pod_name = |p: &str| {
        p.trim_end_matches("/eviction")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    match (r.method.as_str(), path.as_str()) {
        ("GET", "/api/v1/nodes/n1") => json_response(200, f.node.clone()),
        ("PATCH", "/api/v1/nodes/n1") => patch_node(&mut f, &r.body),
        ("GET", "/api/v1/nodes") => list(&f, "NodeList", vec![f.node.clone()]),
        ("GET", "/apis/karpenter.sh/v1/nodepools/pool") => json_response(
            200,
            json!({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "pool"},
                   "spec": {"disruption": {"budgets": [{"nodes": "100%"}]}}}),
        ),
        ("GET", "/api/v1/pods") => {
            if std::mem::take(&mut f.ready_on_first_list) {
                f.set_ready(true);
            }
            list(&f, "PodList", f.pods.clone())
        }
        ("POST", p) if p.ends_with("/eviction") => evict(&mut f, &pod_name(p), &r.body),
        ("DELETE", p) if p.starts_with("/api/v1/namespaces/ns/pods/") => {
            delete(&mut f, &pod_name(p), &r.body)
        }
        ("POST", p) if p.contains("/events") => {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(json!({}));
            json_response(201, body)
        }
        ("PATCH", p) if p.contains("/events") => json_response(200, json!({})),
        _ => status(
            404,
            "NotFound",
            &format!("{} not served by the fake", r.target),
            json!({}),
        ),
    }
}
