//! A serving certificate mounted from a Secret (`--admission-cert-dir`, e.g.
//! cert-manager's) is re-read when its files change, without a restart: the
//! next TLS handshake after new files are swapped in presents the new
//! certificate; a pair that does not load keeps the last good one.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use node_drain::graceful::tls::{generate, Serving};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use support::daemon::{free_port, Daemon};
use support::*;

/// Takes any certificate: the test only looks at which one is presented.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The leaf certificate the server on `port` presents in a new handshake.
fn presented(port: u16) -> CertificateDer<'static> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AnyCertificate))
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake");
    }
    conn.peer_certificates().unwrap()[0].clone().into_owned()
}

fn leaf(s: &Serving) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(s.chain_pem.as_bytes()).unwrap()
}

/// As a Secret volume updates: the new files written aside, then swapped in.
fn mount(dir: &Path, s: &Serving) {
    for (name, text) in [("tls.crt", &s.chain_pem), ("tls.key", &s.key_pem)] {
        let tmp = dir.join(format!("..{name}.tmp"));
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mounted_certificate_is_re_read_when_its_files_change() {
    let env = TestEnv::load();
    let dir = std::env::temp_dir().join(unique("graceful-cert"));
    std::fs::create_dir_all(&dir).unwrap();
    let names = ["127.0.0.1".to_string()];
    let (first, second) = (generate(&names).unwrap(), generate(&names).unwrap());
    mount(&dir, &first);
    let port = free_port();
    let mut daemon = Daemon::start_args(
        &env,
        &unique("graceful-cert"),
        &unique("graceful-cert-lease"),
        "",
        "rules: []\ngraceful: {}\n",
        &[],
        &[
            "--admission-address",
            &format!("127.0.0.1:{port}"),
            "--admission-cert-dir",
            dir.to_str().unwrap(),
        ],
    );
    daemon.wait_ready().await;
    let pid = daemon.child.id();
    assert!(presented(port) == leaf(&first), "the mounted certificate");
    mount(&dir, &second);
    assert!(
        presented(port) == leaf(&second),
        "the next handshake presents the new certificate\n{}",
        daemon.log()
    );
    // The first key with the second certificate: refused, the second kept.
    std::fs::write(dir.join("tls.key"), &first.key_pem).unwrap();
    assert!(presented(port) == leaf(&second), "the last good pair");
    assert!(daemon.log().contains("does not load"), "{}", daemon.log());
    assert_eq!(daemon.child.id(), pid);
    assert!(daemon.child.try_wait().unwrap().is_none(), "no restart");
    daemon.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}
