//! TLS with rustls (ring provider): certificate verification on by default against the webpki roots.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::EngineError;

/// TLS settings for `https://` and `wss://` URLs.
#[derive(Clone)]
pub struct TlsOptions {
    /// Trust the Mozilla root certificates bundled by `webpki-roots` (default `true`).
    pub webpki_roots: bool,
    /// Extra trusted root certificates, each PEM (one or more certificates) or DER.
    pub root_certificates: Vec<Vec<u8>>,
    /// A client certificate for servers that ask for one.
    pub client_certificate: Option<ClientCertificate>,
    /// Accept any server certificate, even expired, self-signed or for another host. Only for tests.
    pub danger_accept_invalid_certs: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            webpki_roots: true,
            root_certificates: Vec::new(),
            client_certificate: None,
            danger_accept_invalid_certs: false,
        }
    }
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("webpki_roots", &self.webpki_roots)
            .field("root_certificates", &self.root_certificates.len())
            .field("client_certificate", &self.client_certificate.is_some())
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .finish()
    }
}

/// A client certificate chain and its private key.
#[derive(Clone)]
pub struct ClientCertificate {
    /// The certificate chain, leaf first: PEM (one or more certificates) or DER (the leaf alone).
    pub cert_chain: Vec<u8>,
    /// The private key: PEM (PKCS#8, PKCS#1 or SEC1) or PKCS#8 DER.
    pub private_key: Vec<u8>,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate").finish_non_exhaustive()
    }
}

/// Any byte stream a request can run over: TCP or TLS over TCP.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(crate) type BoxIo = Box<dyn Io>;

fn is_pem(bytes: &[u8]) -> bool {
    bytes
        .windows(b"-----BEGIN".len())
        .any(|w| w == b"-----BEGIN")
}

fn certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, EngineError> {
    if is_pem(bytes) {
        let certs = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::Tls(format!("invalid PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(EngineError::Tls("no certificate in PEM".into()));
        }
        Ok(certs)
    } else {
        Ok(vec![CertificateDer::from(bytes.to_vec())])
    }
}

fn private_key(bytes: &[u8]) -> Result<PrivateKeyDer<'static>, EngineError> {
    if is_pem(bytes) {
        PrivateKeyDer::from_pem_slice(bytes)
            .map_err(|e| EngineError::Tls(format!("invalid PEM private key: {e}")))
    } else {
        PrivateKeyDer::try_from(bytes.to_vec())
            .map_err(|e| EngineError::Tls(format!("invalid DER private key: {e}")))
    }
}

/// Builds the rustls configuration of `opts` (HTTP/1.1 only, as both transports need).
pub(crate) fn client_config(opts: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, EngineError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| EngineError::Tls(e.to_string()))?;
    let builder = if opts.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        if opts.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for pem_or_der in &opts.root_certificates {
            for cert in certificates(pem_or_der)? {
                roots
                    .add(cert)
                    .map_err(|e| EngineError::Tls(format!("invalid root certificate: {e}")))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &opts.client_certificate {
        Some(c) => builder
            .with_client_auth_cert(certificates(&c.cert_chain)?, private_key(&c.private_key)?)
            .map_err(|e| EngineError::Tls(format!("invalid client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connects to `host:port`, then runs the TLS handshake when `tls` is given.
pub(crate) async fn open_stream(
    host: &str,
    port: u16,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<BoxIo, EngineError> {
    let tcp = TcpStream::connect((host, port)).await?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else {
        return Ok(Box::new(tcp));
    };
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| EngineError::InvalidUrl(format!("{host}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(io_error)?;
    Ok(Box::new(stream))
}

/// An I/O error, or a TLS error when rustls is behind it.
pub(crate) fn io_error(e: std::io::Error) -> EngineError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(tls) => EngineError::Tls(tls.to_string()),
        None => EngineError::Io(e),
    }
}

/// Accepts any certificate, still checking that the server owns the key it presents.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
