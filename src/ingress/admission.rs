//! The admission webhook's HTTPS server (`serve --admission-address`), apart
//! from the plain HTTP one: the API server calls it for `CREATE
//! pods/eviction` (`deploy/`'s MutatingWebhookConfiguration). It reads the
//! AdmissionReview and answers what `graceful` decides; a body that is not
//! one is a 400 the API server treats as a webhook failure (Ignore: the
//! eviction goes on).

use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};

use crate::graceful::admission::AdmissionReview;
use crate::graceful::Graceful;

/// The path the MutatingWebhookConfiguration names.
pub const PATH: &str = "/v1/admission/eviction";

pub fn serve(
    listener: std::net::TcpListener,
    graceful: Arc<Graceful>,
    tls: rustls::ServerConfig,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::from(graceful);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(3 * 1024 * 1024))
            .route(PATH, web::post().to(review))
    })
    .workers(2)
    .shutdown_timeout(2)
    .disable_signals()
    .listen_rustls_0_23(listener, tls)?
    .run())
}

async fn review(graceful: web::Data<Graceful>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<AdmissionReview>(&body) {
        Ok(review) => HttpResponse::Ok().json(graceful.into_inner().admit(review).await),
        Err(e) => HttpResponse::BadRequest().body(format!("not an AdmissionReview: {e}")),
    }
}
