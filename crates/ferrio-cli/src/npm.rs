//! Fetching the browser bundle (`socket.io-client`'s `dist/` folder) from an npm registry: the version
//! document, then the tarball, checked against a pinned SHA-512 integrity before anything is extracted.

use std::io::Read as _;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The `socket.io-client` release fetched when none is installed: the version `interop/package-lock.json`
/// pins (a unit test keeps the two equal), so the demo runs the client the interop tests run.
pub const PINNED_VERSION: &str = "4.8.4";
/// The integrity the npm registry publishes for [`PINNED_VERSION`] (from the same lockfile).
pub const PINNED_INTEGRITY: &str = "sha512-7wjKAvVXYOJsbmUgkWbnhPD4bFpkqrUR0++XOjpGFmqDqsqV1CI93VTraeExLxpjxEqrWgFoSRZu1ihjLWfkAA==";

/// The registry npm itself uses by default.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";

/// A package version and the SRI integrity (`sha512-<base64>`) its tarball must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Version, e.g. `4.8.4`.
    pub version: String,
    /// `sha512-` followed by the base64 SHA-512 of the tarball.
    pub integrity: String,
}

impl Pin {
    /// [`PINNED_VERSION`] and [`PINNED_INTEGRITY`].
    pub fn pinned() -> Pin {
        Pin {
            version: PINNED_VERSION.into(),
            integrity: PINNED_INTEGRITY.into(),
        }
    }

    /// Refuses what could not be a version (it becomes a directory name) or a SHA-512 integrity.
    pub fn validate(&self) -> Result<(), String> {
        let v = &self.version;
        if v.is_empty()
            || v.starts_with('.')
            || !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        {
            return Err(format!("invalid socket.io-client version {v:?}"));
        }
        let i = &self.integrity;
        let b64 = i
            .strip_prefix("sha512-")
            .ok_or_else(|| format!("integrity {i:?} is not sha512-<base64>"))?;
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(d) if d.len() == 64 => Ok(()),
            _ => Err(format!("integrity {i:?} is not sha512-<base64>")),
        }
    }
}

/// Why the bundle could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A URL that is not `http(s)://host[:port]/…`.
    #[error("invalid URL {0:?}")]
    Url(String),
    /// Connecting, TLS or HTTP failed.
    #[error("{0}: {1}")]
    Network(String, String),
    /// The registry answered with an error status.
    #[error("{0}: HTTP {1}")]
    Status(String, StatusCode),
    /// The version document lacks `dist.tarball` / `dist.integrity`.
    #[error("{0}: no dist.tarball and dist.integrity in the version document")]
    Metadata(String),
    /// The registry publishes another integrity than the pinned one.
    #[error("the registry publishes integrity {published} for this version, ferrio pins {pinned}")]
    PublishedIntegrity {
        /// What the registry says.
        published: String,
        /// What ferrio expects.
        pinned: String,
    },
    /// The tarball's SHA-512 is not the pinned one: refused, nothing extracted.
    #[error("integrity mismatch for {url}: expected {expected}, got {actual}")]
    Integrity {
        /// Where the tarball came from.
        url: String,
        /// The pinned integrity.
        expected: String,
        /// The tarball's.
        actual: String,
    },
    /// The tarball is not a gzipped tar holding `dist/socket.io.min.js`.
    #[error("invalid tarball: {0}")]
    Tarball(String),
    /// The whole fetch took too long.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The SRI form of the SHA-512 of `bytes`.
pub fn sha512_integrity(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA512, bytes);
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// The URL of a version's document: `<registry>/socket.io-client/<version>`.
pub fn version_url(registry: &str, version: &str) -> String {
    format!(
        "{}/socket.io-client/{version}",
        registry.trim_end_matches('/')
    )
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_METADATA: usize = 1 << 20;
// The 4.x tarballs are ~330 kB; the limits only stop a runaway answer.
const MAX_TARBALL: usize = 32 << 20;
const MAX_UNPACKED: u64 = 64 << 20;

/// A fetched and verified tarball: its URL and the files of its `dist/` folder.
#[derive(Debug)]
pub struct Fetched {
    /// Where the tarball came from.
    pub tarball: String,
    /// `(file name, content)` of every regular file directly under `dist/`.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Fetches `pin` from `registry`: the version document (its published integrity must list the pinned
/// one), then the tarball (its SHA-512 must be the pinned one), then reads its `dist/` folder.
pub async fn fetch(registry: &str, pin: &Pin) -> Result<Fetched, FetchError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_inner(registry, pin))
        .await
        .map_err(|_| FetchError::Timeout(FETCH_TIMEOUT))?
}

async fn fetch_inner(registry: &str, pin: &Pin) -> Result<Fetched, FetchError> {
    let meta_url = version_url(registry, &pin.version);
    let meta = get(&meta_url, "application/json", MAX_METADATA).await?;
    let doc: serde_json::Value =
        serde_json::from_slice(&meta).map_err(|_| FetchError::Metadata(meta_url.clone()))?;
    let (Some(tarball), Some(published)) = (
        doc["dist"]["tarball"].as_str(),
        doc["dist"]["integrity"].as_str(),
    ) else {
        return Err(FetchError::Metadata(meta_url));
    };
    // SRI allows several hashes separated by spaces; the pinned one must be among them.
    if !published.split_whitespace().any(|h| h == pin.integrity) {
        return Err(FetchError::PublishedIntegrity {
            published: published.to_owned(),
            pinned: pin.integrity.clone(),
        });
    }
    let body = get(tarball, "application/octet-stream", MAX_TARBALL).await?;
    let actual = sha512_integrity(&body);
    if actual != pin.integrity {
        return Err(FetchError::Integrity {
            url: tarball.to_owned(),
            expected: pin.integrity.clone(),
            actual,
        });
    }
    Ok(Fetched {
        tarball: tarball.to_owned(),
        files: dist_files(&body)?,
    })
}

/// The regular files directly under `<top>/dist/` of a gzipped npm tarball. Anything else (other
/// folders, links, absolute or `..` paths) is skipped, so nothing outside the cache can be written.
pub fn dist_files(tgz: &[u8]) -> Result<Vec<(String, Vec<u8>)>, FetchError> {
    let bad = |e: std::io::Error| FetchError::Tarball(e.to_string());
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut files = Vec::new();
    let mut unpacked = 0u64;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let parts: Option<Vec<&str>> = path
            .components()
            .map(|c| match c {
                std::path::Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        let name = match parts.as_deref() {
            Some([_, "dist", name]) => (*name).to_owned(),
            _ => continue,
        };
        let size = entry.header().size().map_err(bad)?;
        unpacked += size;
        if unpacked > MAX_UNPACKED {
            return Err(FetchError::Tarball(format!(
                "more than {MAX_UNPACKED} bytes under dist/"
            )));
        }
        let mut content = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut content).map_err(bad)?;
        files.push((name, content));
    }
    for needed in ["socket.io.min.js", "socket.io.js"] {
        if !files.iter().any(|(n, _)| n == needed) {
            return Err(FetchError::Tarball(format!("no dist/{needed}")));
        }
    }
    Ok(files)
}

/// GET `url`, following up to five redirects; the body of a 200, at most `limit` bytes.
async fn get(url: &str, accept: &'static str, limit: usize) -> Result<Bytes, FetchError> {
    let mut url = url.to_owned();
    for _ in 0..=5 {
        let uri: Uri = url.parse().map_err(|_| FetchError::Url(url.clone()))?;
        let net = |e: &dyn std::fmt::Display| FetchError::Network(url.clone(), e.to_string());
        let res = request(&uri, accept).await.map_err(|e| net(&e))?;
        let status = res.status();
        if status.is_redirection() {
            let location = res
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| FetchError::Status(url.clone(), status))?;
            url =
                redirect_target(&uri, location).ok_or_else(|| FetchError::Url(location.into()))?;
            continue;
        }
        if status != StatusCode::OK {
            return Err(FetchError::Status(url, status));
        }
        return Ok(Limited::new(res.into_body(), limit)
            .collect()
            .await
            .map_err(|e| net(&e))?
            .to_bytes());
    }
    Err(FetchError::Network(url, "too many redirects".into()))
}

/// Where a `Location` header points, from the URL that answered it.
fn redirect_target(from: &Uri, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        Some(location.to_owned())
    } else if location.starts_with('/') {
        Some(format!(
            "{}://{}{location}",
            from.scheme_str()?,
            from.authority()?
        ))
    } else {
        None
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn request(
    uri: &Uri,
    accept: &'static str,
) -> Result<http::Response<hyper::body::Incoming>, BoxError> {
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("not an http(s) URL".into()),
    };
    let authority = uri.authority().ok_or("no host")?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let req = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, authority.as_str())
        .header(header::ACCEPT, accept)
        .header(
            header::USER_AGENT,
            concat!("ferrio/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())?;
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| "connect timed out")??;
    if !tls {
        return send(tcp, req).await;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let roots = root_certificates(|k| std::env::var_os(k));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await?;
    send(stream, req).await
}

/// The Mozilla roots, plus the certificates of the files a machine behind a TLS-intercepting proxy
/// names (`SSL_CERT_FILE`, Node's `NODE_EXTRA_CA_CERTS`, npm's `npm_config_cafile`) and of the system
/// bundle. Trusting more roots risks little here: what is installed is checked against the pinned
/// integrity whoever served it.
fn root_certificates(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> rustls::RootCertStore {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let named = ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "npm_config_cafile"]
        .into_iter()
        .filter_map(|k| env(k).map(std::path::PathBuf::from));
    let system = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file());
    for file in named.chain(system) {
        if let Ok(certs) = CertificateDer::pem_file_iter(&file) {
            roots.add_parsable_certificates(certs.filter_map(Result::ok));
        }
    }
    roots
}

async fn send<S>(
    io: S,
    req: Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, BoxError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // The connection ends on its own once the response body has been read.
    tokio::spawn(conn);
    Ok(sender.send_request(req).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, content) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // `append_data` refuses `..`; a hostile tarball would not, so write the name raw.
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            builder.append(&h, *content).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn pinned_version_is_the_lockfile_one() {
        let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../interop/package-lock.json");
        let lock: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(lock).unwrap()).unwrap();
        let entry = &lock["packages"]["node_modules/socket.io-client"];
        assert_eq!(entry["version"], PINNED_VERSION);
        assert_eq!(entry["integrity"], PINNED_INTEGRITY);
        Pin::pinned().validate().unwrap();
    }

    #[test]
    fn pins_are_validated() {
        let pin = |v: &str, i: &str| Pin {
            version: v.to_owned(),
            integrity: i.to_owned(),
        };
        let good = sha512_integrity(b"x");
        assert!(pin("1.2.3-rc.1", &good).validate().is_ok());
        for v in ["", "../x", "1/2", ".."] {
            assert!(pin(v, &good).validate().is_err(), "{v}");
        }
        for i in ["", "sha1-AAAA", "sha512-AAAA", "sha512-!!"] {
            assert!(pin("1.0.0", i).validate().is_err(), "{i}");
        }
    }

    #[test]
    fn integrity_is_sri_sha512() {
        // `printf abc | openssl dgst -sha512 -binary | base64`
        assert_eq!(
            sha512_integrity(b"abc"),
            "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="
        );
    }

    #[test]
    fn only_dist_files_are_read() {
        let t = tgz(&[
            ("package/package.json", b"{}"),
            ("package/dist/socket.io.js", b"full"),
            ("package/dist/socket.io.min.js", b"min"),
            ("package/dist/sub/x.js", b"nested"),
            ("package/../dist/evil.js", b"escape"),
            ("/abs/dist/evil.js", b"absolute"),
            ("package/build/dist/x.js", b"deeper"),
        ]);
        let mut files = dist_files(&t).unwrap();
        files.sort();
        assert_eq!(
            files,
            vec![
                ("socket.io.js".to_owned(), b"full".to_vec()),
                ("socket.io.min.js".to_owned(), b"min".to_vec()),
            ]
        );
        let t = tgz(&[("package/dist/other.js", b"x")]);
        assert!(matches!(dist_files(&t), Err(FetchError::Tarball(_))));
        assert!(matches!(
            dist_files(b"not a tarball"),
            Err(FetchError::Tarball(_))
        ));
    }

    #[test]
    fn redirects_resolve() {
        let from: Uri = "https://r.example:8443/a/b".parse().unwrap();
        assert_eq!(
            redirect_target(&from, "/c").as_deref(),
            Some("https://r.example:8443/c")
        );
        assert_eq!(
            redirect_target(&from, "http://o/x").as_deref(),
            Some("http://o/x")
        );
        assert_eq!(redirect_target(&from, "rel"), None);
        assert_eq!(
            version_url("http://h:1/npm/", "4.8.4"),
            "http://h:1/npm/socket.io-client/4.8.4"
        );
    }
}
