//! `serve_client`: the official browser bundle under the server's path (`/socket.io/socket.io.js`, …),
//! read from the `socket.io-client` package's `dist/` folder, with ETag / 304 and gzip.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use parking_lot::Mutex;

/// The files served, as the official server names them.
const FILES: [&str; 6] = [
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.msgpack.min.js",
    "socket.io.msgpack.min.js.map",
];

struct Cached {
    body: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
}

/// Serves the client bundle from a folder; files are read once and kept with their gzip form.
#[derive(Clone)]
pub struct ClientFiles {
    dir: PathBuf,
    prefix: String,
    cache: Arc<Mutex<HashMap<&'static str, Arc<Cached>>>>,
}

impl std::fmt::Debug for ClientFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientFiles")
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ClientFiles {
    /// Files of `dir`, served under `path` (the server's path, e.g. `/socket.io/`).
    pub fn new(dir: impl Into<PathBuf>, path: &str) -> Self {
        let prefix = if path.ends_with('/') {
            path.to_owned()
        } else {
            format!("{path}/")
        };
        ClientFiles {
            dir: dir.into(),
            prefix,
            cache: Arc::default(),
        }
    }

    /// The folder the files come from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `path` names one of the bundle files.
    pub fn matches(&self, path: &str) -> Option<&'static str> {
        let name = path.strip_prefix(&self.prefix)?;
        FILES.iter().find(|f| **f == name).copied()
    }

    fn load(&self, name: &'static str) -> Option<Arc<Cached>> {
        if let Some(c) = self.cache.lock().get(name) {
            return Some(c.clone());
        }
        let body = Bytes::from(std::fs::read(self.dir.join(name)).ok()?);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&body).ok()?;
        let gzip = Bytes::from(enc.finish().ok()?);
        // A content hash as ETag: stable across restarts, changes with the file.
        let digest = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        let etag = HeaderValue::from_str(&format!("\"{digest:016x}-{}\"", body.len())).ok()?;
        let cached = Arc::new(Cached { body, gzip, etag });
        self.cache.lock().insert(name, cached.clone());
        Some(cached)
    }

    /// Answers a request for one of the files (404 when the folder lacks it).
    pub fn respond(&self, name: &'static str, headers: &http::HeaderMap) -> Response<Bytes> {
        let Some(file) = self.load(name) else {
            let mut res = Response::new(Bytes::from_static(b"Not Found"));
            *res.status_mut() = StatusCode::NOT_FOUND;
            return res;
        };
        let not_modified = headers.get(header::IF_NONE_MATCH).is_some_and(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii() == file.etag.as_bytes())
        });
        let mut res = if not_modified {
            let mut r = Response::new(Bytes::new());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let gzip = headers
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
            let mut r = Response::new(if gzip {
                file.gzip.clone()
            } else {
                file.body.clone()
            });
            if gzip {
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            let ty = if name.ends_with(".map") {
                "application/json"
            } else {
                "application/javascript; charset=utf-8"
            };
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
            r
        };
        let h = res.headers_mut();
        h.insert(header::ETAG, file.etag.clone());
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=0"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_with_etag_and_gzip() {
        let dir = std::env::temp_dir().join(format!("ferrio-client-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("socket.io.js"), "console.log('hi');".repeat(100)).unwrap();
        let files = ClientFiles::new(&dir, "/socket.io/");
        assert_eq!(
            files.matches("/socket.io/socket.io.js"),
            Some("socket.io.js")
        );
        assert_eq!(files.matches("/socket.io/../etc/passwd"), None);
        assert_eq!(files.matches("/socket.io/"), None);

        let res = files.respond("socket.io.js", &http::HeaderMap::new());
        assert_eq!(res.status(), 200);
        assert_eq!(res.body().len(), 1800);
        let etag = res.headers()[header::ETAG].clone();

        let mut h = http::HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate"),
        );
        let res = files.respond("socket.io.js", &h);
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(res.body().len() < 1800);

        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(files.respond("socket.io.js", &h).status(), 304);
        assert_eq!(files.respond("socket.io.min.js", &h).status(), 404);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
