//! The daemon's HTTP server, one address: `POST /v1/alerts` (the Alertmanager
//! webhook, `alerts`), `GET /healthz`, `/readyz` (the leader), `/readyz/replica` (any
//! healthy replica), `/metrics`, `/v1/status`
//! (`probes`). Handlers read and answer; work goes through `Daemon`.

mod alerts;
mod probes;

pub use probes::status_json;

use std::sync::Arc;

use actix_web::{web, App, HttpServer};

use super::intake::Daemon;

/// Serves on `listener` until the returned server is stopped.
pub fn serve(
    listener: std::net::TcpListener,
    daemon: Arc<Daemon>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::from(daemon);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/alerts", web::post().to(alerts::receive))
            .route("/healthz", web::get().to(probes::healthz))
            .route("/readyz", web::get().to(probes::readyz))
            .route("/readyz/replica", web::get().to(probes::replica))
            .route("/metrics", web::get().to(probes::metrics))
            .route("/v1/status", web::get().to(probes::status))
    })
    .workers(2)
    .shutdown_timeout(5)
    .disable_signals()
    .listen(listener)?
    .run())
}
