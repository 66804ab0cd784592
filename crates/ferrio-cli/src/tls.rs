//! `ferrio serve --tls-cert FILE --tls-key FILE`: HTTPS and WSS through rustls, the certificate read
//! again from the same files on SIGHUP. Connections already open keep the session they negotiated; only
//! handshakes after the reload see the new certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// A file is not what it should be (no certificate, no key, not PEM).
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
    /// The key does not belong to the certificate, or rustls refused the pair.
    #[error("{0} and {1}: {2}")]
    Pair(PathBuf, PathBuf, rustls::Error),
}

/// The certificate chain and key files, and the pair currently served.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads the pair once; fails when either file is missing or invalid, or the key does not match.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertStore>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read_pair(cert, key, &provider)?;
        Ok(Arc::new(CertStore {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(current),
        }))
    }

    /// Reads the files again. On error the previous pair stays in use: a half-written file during a
    /// renewal must not take the server offline.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.cert, &self.key, &self.provider)?;
        *self.current.write() = pair;
        Ok(())
    }

    /// A rustls server configuration that asks this store for the certificate at every handshake.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        // Both transports are HTTP/1.1 (websocket upgrades do not exist in HTTP/2 without RFC 8441).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

fn read_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_pem = std::fs::read(cert).map_err(|e| TlsError::Read(cert.to_owned(), e))?;
    let key_pem = std::fs::read(key).map_err(|e| TlsError::Read(key.to_owned(), e))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid(cert.to_owned(), format!("invalid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::Invalid(
            cert.to_owned(),
            "no PEM certificate".into(),
        ));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        TlsError::Invalid(
            key.to_owned(),
            format!("no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    CertifiedKey::from_der(chain, private_key, provider)
        .map(Arc::new)
        .map_err(|e| TlsError::Pair(cert.to_owned(), key.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_mismatched_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        assert!(matches!(
            CertStore::load(&cert, &key),
            Err(TlsError::Read(..))
        ));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        assert!(matches!(
            CertStore::load(&cert, &key),
            Err(TlsError::Invalid(..))
        ));
    }
}
