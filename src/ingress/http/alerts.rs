//! `POST /v1/alerts`: the Alertmanager webhook (payload version 4). In order:
//! 401 without the bearer token (constant-time compare; 503 while no token has
//! been read at all), 413 past 1 MiB, 400 for a body that is not a version 4
//! payload (naming the field), 503 when this process may not take work or the
//! queue is full (Alertmanager retries only 5xx; never 429), else 202 once
//! every firing alert a rule matches is queued. Resolved alerts are counted
//! and never cancel a drain.

use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::alerts::payload::{self, Status};
use crate::alerts::rules::rule_for;
use crate::config::current;
use crate::ingress::intake::{Daemon, Job};
use crate::messages::Target;

pub const BODY_LIMIT: usize = 1 << 20;

pub async fn receive(
    req: HttpRequest,
    body: web::Payload,
    daemon: web::Data<Daemon>,
) -> HttpResponse {
    let response = handle(&req, body, &daemon).await;
    crate::telemetry::metrics::get().webhook_request(response.status().as_u16());
    response
}

fn answer(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"status": status.as_u16(), "message": message}))
}

/// Whether the request carries the webhook token: None when there is no
/// token to compare with (its file missing or empty since the start).
fn authorized(req: &HttpRequest, daemon: &Daemon) -> Option<bool> {
    let token = daemon.token.read().ok()?;
    let token = token.as_ref()?;
    let Some(given) = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return Some(false);
    };
    Some(given.len() == token.len() && bool::from(given.ct_eq(token)))
}

async fn handle(req: &HttpRequest, mut body: web::Payload, daemon: &Daemon) -> HttpResponse {
    use actix_web::http::StatusCode as S;
    match authorized(req, daemon) {
        Some(true) => {}
        Some(false) => return answer(S::UNAUTHORIZED, "missing or wrong bearer token"),
        // Not the sender's fault: Alertmanager retries a 5xx, never a 401.
        None => {
            return answer(
                S::SERVICE_UNAVAILABLE,
                "no webhook token loaded (--webhook-token-file is missing or empty)",
            )
        }
    }
    let mut bytes = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return answer(S::BAD_REQUEST, "could not read the body");
        };
        if bytes.len() + chunk.len() > BODY_LIMIT {
            return answer(S::PAYLOAD_TOO_LARGE, "body over 1 MiB");
        }
        bytes.extend_from_slice(&chunk);
    }
    let message = match payload::parse(&bytes) {
        Ok(m) => m,
        Err(e) => return answer(S::BAD_REQUEST, &e.to_string()),
    };
    if let Some(why) = daemon.unavailable() {
        return answer(S::SERVICE_UNAVAILABLE, &why);
    }
    let metrics = crate::telemetry::metrics::get();
    if message.truncated_alerts > 0 {
        metrics.alert("truncated", "max_alerts");
    }
    let config = current(&daemon.config);
    let now = std::time::Instant::now();
    let mut queued = 0;
    for alert in &message.alerts {
        if alert.status == Status::Resolved {
            metrics.alert("resolved", "");
            continue;
        }
        let Some(rule) = rule_for(&config.rules, alert) else {
            metrics.alert("ignored", "no-rule");
            continue;
        };
        let key = alert.key();
        if !daemon
            .dedupe
            .lock()
            .map(|mut d| d.first(key.clone(), now))
            .unwrap_or(true)
        {
            metrics.alert("duplicate", "");
            continue;
        }
        let trigger = format!(
            "alert {} {}",
            alert.name(),
            alert
                .labels
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let admit = daemon.admit(
            rule.action,
            Target::Labels(alert.labels.clone()),
            daemon.settings(Some(rule)),
            trigger,
            Some(daemon.release(key.clone())),
        );
        if daemon.queue.try_send(Job { admit }).is_err() {
            // Not queued: the retry must count, and say so.
            if let Ok(mut d) = daemon.dedupe.lock() {
                d.forget(&key);
            }
            return answer(S::SERVICE_UNAVAILABLE, "the queue is full; retry later");
        }
        queued += 1;
    }
    HttpResponse::Accepted().json(json!({"status": 202, "queued": queued}))
}
