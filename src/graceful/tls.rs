//! The admission webhook's serving certificate: generated at start (a CA of
//! this process and a leaf for `--admission-dns-names`; the leader writes the
//! CA into the MutatingWebhookConfiguration's `caBundle`), or read from a
//! mounted Secret (`--admission-cert-dir`: `tls.crt`, `tls.key`, and `ca.crt`
//! if the bundle is to be written too; with cert-manager's CA injector it is not).

use std::path::Path;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// PEM texts: the chain served (leaf first), its key, and the CA to trust.
pub struct Serving {
    pub chain_pem: String,
    pub key_pem: String,
    pub ca_pem: Option<String>,
}

/// A CA and a leaf for `names` (DNS names or IP addresses), valid a year.
pub fn generate(names: &[String]) -> Result<Serving, String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let fail = |e: rcgen::Error| format!("generating the admission webhook's certificate: {e}");
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "node-drain admission CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(fail)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(fail)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "node-drain admission webhook");
    let leaf_key = KeyPair::generate().map_err(fail)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(fail)?;
    Ok(Serving {
        chain_pem: leaf_cert.pem(),
        key_pem: leaf_key.serialize_pem(),
        ca_pem: Some(ca_cert.pem()),
    })
}

/// `tls.crt`, `tls.key` and (optional) `ca.crt` of a mounted Secret.
pub fn load(dir: &Path) -> Result<Serving, String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| format!("--admission-cert-dir {}: {e}", dir.join(name).display()))
    };
    Ok(Serving {
        chain_pem: read("tls.crt")?,
        key_pem: read("tls.key")?,
        ca_pem: read("ca.crt").ok(),
    })
}

/// A rustls server config (ring, as kube's client) serving `serving`.
pub fn server_config(serving: &Serving) -> Result<rustls::ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(serving.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the admission certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(|e| format!("the admission key: {e}"))?;
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("the admission certificate and key: {e}"))
}

/// Writes `ca_pem` into every webhook of the MutatingWebhookConfiguration
/// `name` whose `caBundle` differs. Returns how many it changed. One JSON
/// patch, tested on the resourceVersion read.
pub async fn patch_ca_bundle(client: &Client, name: &str, ca_pem: &str) -> Result<usize, String> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let config = api
        .get(name)
        .await
        .map_err(|e| format!("MutatingWebhookConfiguration {name}: {e}"))?;
    let bundle = k8s_openapi::ByteString(ca_pem.as_bytes().to_vec());
    let mut ops = vec![serde_json::json!({
        "op": "test", "path": "/metadata/resourceVersion",
        "value": config.metadata.resource_version,
    })];
    for (i, webhook) in config.webhooks.iter().flatten().enumerate() {
        if webhook.client_config.ca_bundle.as_ref() != Some(&bundle) {
            ops.push(serde_json::json!({
                "op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"),
                "value": bundle,
            }));
        }
    }
    let changed = ops.len() - 1;
    if changed == 0 {
        return Ok(0);
    }
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(ops)).map_err(|e| e.to_string())?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(|e| format!("MutatingWebhookConfiguration {name}: caBundle: {e}"))?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn a_generated_certificate_is_served_and_chains_to_its_ca() {
        let serving = generate(&[
            "127.0.0.1".into(),
            "node-drain-admission.node-drain.svc".into(),
        ])
        .unwrap();
        assert!(serving
            .ca_pem
            .as_deref()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        server_config(&serving).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(serving.ca_pem.unwrap().as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_slice(serving.chain_pem.as_bytes()).unwrap();
        for name in ["127.0.0.1", "node-drain-admission.node-drain.svc"] {
            verifier
                .verify_server_cert(
                    &leaf,
                    &[],
                    &rustls::pki_types::ServerName::try_from(name).unwrap(),
                    &[],
                    rustls::pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
