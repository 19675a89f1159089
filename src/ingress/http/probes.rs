//! Probes, metrics and status.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::ingress::intake::{mailbox, Daemon};
use crate::messages::GetStatus;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok\n")
}

/// Ready only on the leader that has reconciled, so the Service routes
/// webhooks to it.
pub async fn readyz(daemon: web::Data<Daemon>) -> HttpResponse {
    match daemon.unavailable() {
        None => HttpResponse::Ok().body("ok\n"),
        Some(why) if why.starts_with("intake is paused") => {
            HttpResponse::Ok().body(format!("ok ({why})\n"))
        }
        Some(why) => HttpResponse::ServiceUnavailable().body(format!("{why}\n")),
    }
}

/// Ready as a replica: healthy, leader or follower (the Deployment's
/// readiness, so a rolling update finishes; webhooks reach the leader through
/// its Pod's role label, `k8s::role_label`).
pub async fn replica(daemon: web::Data<Daemon>) -> HttpResponse {
    match daemon.unhealthy() {
        None => {
            let role = match &*daemon.role.borrow() {
                crate::k8s::lease::Role::Leader => "leader",
                crate::k8s::lease::Role::Follower { .. } => "follower",
            };
            HttpResponse::Ok().body(format!("ok ({role})\n"))
        }
        Some(why) => HttpResponse::ServiceUnavailable().body(format!("{why}\n")),
    }
}

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(crate::telemetry::metrics::get().encode())
}

pub async fn status(daemon: web::Data<Daemon>) -> HttpResponse {
    match status_json(&daemon).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::InternalServerError().json(json!({"error": e.to_string()})),
    }
}

/// The daemon's status: leadership, intake, runs with each node's step,
/// progress and blockers, and the queue. Shared with the admin socket.
pub async fn status_json(daemon: &Daemon) -> crate::Result<serde_json::Value> {
    let snapshot = daemon
        .actors
        .planner
        .send(GetStatus)
        .await
        .map_err(mailbox)?;
    let role = match &*daemon.role.borrow() {
        crate::k8s::lease::Role::Leader => json!({"leader": true}),
        crate::k8s::lease::Role::Follower { holder } => json!({"leader": false, "holder": holder}),
    };
    let windows = &crate::config::current(&daemon.config).windows;
    let now = jiff::Timestamp::now();
    Ok(json!({
        "role": role,
        "maintenance": crate::maintenance::state(windows, now),
        "unavailable": daemon.unavailable(),
        "nodepools": daemon.nodepools(),
        "queue": daemon.queue.max_capacity() - daemon.queue.capacity(),
        "rotations": daemon.rotations.status().await,
        "status": snapshot,
    }))
}
