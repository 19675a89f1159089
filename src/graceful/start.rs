//! Starting graceful eviction in `serve`: the certificate, the HTTPS
//! listener, the reconciler of marked pods, and the leader's `caBundle`.

use std::path::PathBuf;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{reload, tls, Graceful};
use crate::config::SharedConfig;
use crate::error::{Error, Result};
use crate::k8s::fence::Fence;
use crate::k8s::lease::Role;

pub struct Settings {
    pub address: String,
    pub cert_dir: Option<PathBuf>,
    pub dns_names: Vec<String>,
    pub webhook_configuration: Option<String>,
}

/// Binds and starts the webhook; the returned handle stops it.
pub fn start(
    settings: Settings,
    client: Client,
    config: SharedConfig,
    role: watch::Receiver<Role>,
    fence: Fence,
    lease: String,
    instance: &str,
) -> Result<actix_web::dev::ServerHandle> {
    // A mounted certificate is re-read when its files change (`reload`).
    let (serving, tls_config) = match &settings.cert_dir {
        Some(dir) => {
            let (mounted, serving) = reload::Mounted::open(dir).map_err(Error::Usage)?;
            (serving, reload::server_config(mounted))
        }
        None => {
            let serving = tls::generate(&settings.dns_names).map_err(Error::Usage)?;
            let config = tls::server_config(&serving);
            (serving, config)
        }
    };
    let tls_config = tls_config.map_err(Error::Usage)?;
    let listener = std::net::TcpListener::bind(&settings.address)
        .map_err(|e| Error::Usage(format!("--admission-address {}: {e}", settings.address)))?;
    let graceful = Graceful::new(client.clone(), config, role.clone(), fence, lease, instance);
    graceful.spawn_reconciler(Duration::from_secs(5));
    graceful.spawn_caches();
    let server = crate::ingress::admission::serve(listener, graceful, tls_config)
        .map_err(|e| Error::Internal(format!("admission webhook server: {e}")))?;
    let handle = server.handle();
    actix::spawn(server);
    info!(
        address = settings.address.as_str(),
        certificate = if settings.cert_dir.is_some() {
            "mounted"
        } else {
            "generated"
        },
        "admission webhook (graceful eviction) listening"
    );
    if let (Some(name), Some(ca)) = (settings.webhook_configuration, serving.ca_pem) {
        tokio::spawn(keep_ca_bundle(client, name, ca, settings.cert_dir, role));
    }
    Ok(handle)
}

/// While leader, every 10 s: the webhook configuration trusts this CA (a
/// mounted `ca.crt` read again each time: it rotates with the certificate).
async fn keep_ca_bundle(
    client: Client,
    name: String,
    mut ca: String,
    cert_dir: Option<PathBuf>,
    mut role: watch::Receiver<Role>,
) {
    loop {
        if let Some(now) = cert_dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("ca.crt")).ok())
        {
            ca = now;
        }
        if *role.borrow() == Role::Leader {
            match tls::patch_ca_bundle(&client, &name, &ca).await {
                Ok(0) => {}
                Ok(n) => info!(
                    webhook_configuration = name.as_str(),
                    webhooks = n,
                    "caBundle set to this leader's CA"
                ),
                Err(e) => warn!(
                    error = e.as_str(),
                    "could not set the webhook's caBundle; retrying"
                ),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = role.changed() => {}
        }
    }
}
