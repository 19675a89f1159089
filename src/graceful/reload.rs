//! A certificate mounted from a Secret (`--admission-cert-dir`, e.g.
//! cert-manager's) is re-read when its files change, without a restart:
//! each TLS handshake looks at the files (their inode, mtime and size, two
//! `stat`s; a Secret volume swaps a symlink, which changes all three) and,
//! when they changed, loads them before answering. A pair that does not load
//! (a key not yet written, a key that does not match) keeps the last good
//! certificate, said once in the log, and is tried again at the next change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use super::tls::{load, Serving};

/// What the files looked like when last read.
type Stamp = Vec<Option<(u64, SystemTime, u64)>>;

fn stamp(dir: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    ["tls.crt", "tls.key"]
        .iter()
        .map(|f| {
            let m = std::fs::metadata(dir.join(f)).ok()?;
            Some((m.ino(), m.modified().ok()?, m.len()))
        })
        .collect()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The chain and key of `serving`, checked to belong together.
pub fn certified(serving: &Serving) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(serving.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the admission certificate: {e}"))?;
    if chain.is_empty() {
        return Err("the admission certificate: no certificate in tls.crt".into());
    }
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(|e| format!("the admission key: {e}"))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| format!("the admission certificate and key: {e}"))
}

/// The resolver of a mounted certificate.
pub struct Mounted {
    dir: PathBuf,
    current: Mutex<(Stamp, Arc<CertifiedKey>)>,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("dir", &self.dir).finish()
    }
}

impl Mounted {
    /// Reads the directory now: a start with files that do not load fails.
    pub fn open(dir: &Path) -> Result<(Arc<Self>, Serving), String> {
        let before = stamp(dir);
        let serving = load(dir)?;
        let key = certified(&serving)?;
        let mounted = Arc::new(Self {
            dir: dir.to_path_buf(),
            current: Mutex::new((before, key)),
        });
        Ok((mounted, serving))
    }

    /// The certificate to present now, re-read first if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let now = stamp(&self.dir);
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if now != current.0 {
            current.0 = now;
            match load(&self.dir).and_then(|s| certified(&s)) {
                Ok(key) => {
                    info!(dir = %self.dir.display(), "admission certificate changed on disk: re-read");
                    current.1 = key;
                }
                Err(e) => warn!(
                    dir = %self.dir.display(), error = e.as_str(),
                    "admission certificate changed on disk but does not load; serving the last good one"
                ),
            }
        }
        current.1.clone()
    }
}

impl ResolvesServerCert for Mounted {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls server config presenting what `resolver` says at each handshake.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<rustls::ServerConfig, String> {
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(resolver))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, s: &Serving) {
        // As a Secret volume does: new files, then swapped in.
        for (name, text) in [("tls.crt", &s.chain_pem), ("tls.key", &s.key_pem)] {
            let tmp = dir.join(format!(".{name}.new"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(name)).unwrap();
        }
    }

    #[test]
    fn changed_files_are_read_at_the_next_look_and_a_broken_pair_keeps_the_last_good() {
        let dir = std::env::temp_dir().join(format!("nd-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (
            super::super::tls::generate(&["a.test".into()]).unwrap(),
            super::super::tls::generate(&["b.test".into()]).unwrap(),
        );
        write(&dir, &a);
        let (mounted, _) = Mounted::open(&dir).unwrap();
        let leaf = |k: Arc<CertifiedKey>| k.cert[0].clone();
        let der = |s: &Serving| CertificateDer::from_pem_slice(s.chain_pem.as_bytes()).unwrap();
        assert_eq!(leaf(mounted.current()), der(&a));
        write(&dir, &b);
        assert_eq!(leaf(mounted.current()), der(&b), "re-read");
        // b's certificate with a's key: refused, b kept.
        std::fs::write(dir.join("tls.key"), &a.key_pem).unwrap();
        assert_eq!(leaf(mounted.current()), der(&b), "the last good pair");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
