//! `ferrio serve` with no bundle installed, against a fake npm registry (a small HTTP server of the test
//! serving a tarball the test builds): the bundle is fetched once into the cache and served, a tarball
//! with the wrong integrity is refused, an unreachable registry leaves the demo page with instructions,
//! and a filled cache needs no network.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

const VERSION: &str = "9.9.9-test";
const MIN_JS: &[u8] = b"/* test bundle */ window.io = function () {};";

fn integrity(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA512, bytes);
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// A gzipped npm tarball: `package/package.json`, `package/dist/*`, and a file outside `dist/`.
fn tarball() -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, content) in [
        (
            "package/package.json",
            &b"{\"name\":\"socket.io-client\"}"[..],
        ),
        (
            "package/dist/socket.io.js",
            b"/* full */ window.io = function () {};",
        ),
        ("package/dist/socket.io.min.js", MIN_JS),
        ("package/build/esm/index.js", b"export {};"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, path, content).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A fake registry on port 0: the version document of `VERSION` (publishing `published`) and `tgz`.
/// Records the path of every request.
struct Registry {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Registry {
    fn start(tgz: Vec<u8>, published: String) -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, base) = (requests.clone(), url.clone());
        // Lives as long as the test process (each test runs in its own).
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                seen.lock().unwrap().push(path.clone());
                let tgz_path = format!("/socket.io-client/-/socket.io-client-{VERSION}.tgz");
                let (status, body) = if path == format!("/socket.io-client/{VERSION}") {
                    let doc = serde_json::json!({
                        "name": "socket.io-client",
                        "version": VERSION,
                        "dist": { "integrity": published, "tarball": format!("{base}{tgz_path}") },
                    });
                    ("200 OK", doc.to_string().into_bytes())
                } else if path == tgz_path {
                    ("200 OK", tgz.clone())
                } else {
                    ("404 Not Found", b"{}".to_vec())
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
        });
        Registry { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// The environment of a user whose home is `home`, pinned to `VERSION` with `pin`, using `registry`.
fn user_env<'a>(
    home: &'a str,
    cache: &'a str,
    registry: &'a str,
    pin: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("HOME", home),
        ("XDG_CACHE_HOME", cache),
        ("FERRIO_NPM_REGISTRY", registry),
        ("FERRIO_CLIENT_VERSION", VERSION),
        ("FERRIO_CLIENT_INTEGRITY", pin),
    ]
}

/// Entries of `<cache>/ferrio` (none when it does not exist).
fn cache_entries(cache: &Path) -> Vec<String> {
    match std::fs::read_dir(cache.join("ferrio")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

#[test]
fn fetches_once_into_the_cache_and_serves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, cache) = (tmp.path().join("home"), tmp.path().join("cache"));
    std::fs::create_dir_all(&home).unwrap();
    let tgz = tarball();
    let pin = integrity(&tgz);
    let registry = Registry::start(tgz, pin.clone());
    let env = user_env(
        home.to_str().unwrap(),
        cache.to_str().unwrap(),
        &registry.url,
        &pin,
    );

    let (server, url, stderr) = common::serve(&[], &env, tmp.path());
    assert!(
        registry.requests().is_empty(),
        "nothing fetched before it is needed"
    );
    // The bundle itself, before the page, twice at once: both wait for the one fetch.
    let both = std::thread::scope(|s| {
        let a = s.spawn(|| common::get(&url, "/socket.io/socket.io.min.js"));
        let b = s.spawn(|| common::get(&url, "/socket.io/socket.io.min.js"));
        [a.join().unwrap(), b.join().unwrap()]
    });
    assert_eq!(both, [(200, MIN_JS.to_vec()), (200, MIN_JS.to_vec())]);
    let (status, page) = common::get(&url, "/");
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<script src=\"/socket.io/socket.io.min.js\"></script>"));
    assert!(!page.contains("id=\"missing\""));
    assert_eq!(
        registry.requests(),
        vec![
            format!("/socket.io-client/{VERSION}"),
            format!("/socket.io-client/-/socket.io-client-{VERSION}.tgz"),
        ],
        "one version document, one tarball"
    );
    let logs = server.stop(stderr);
    assert_eq!(
        logs.matches(&format!("fetched socket.io-client {VERSION}"))
            .count(),
        1,
        "one log line says so: {logs}"
    );

    // Only dist/, installed under its final name, with no temporary folder left.
    let package = cache.join(format!("ferrio/socket.io-client-{VERSION}"));
    assert_eq!(
        cache_entries(&cache),
        vec![format!("socket.io-client-{VERSION}")]
    );
    let mut installed: Vec<_> = std::fs::read_dir(package.join("dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    installed.sort();
    assert_eq!(installed, ["socket.io.js", "socket.io.min.js"]);
    assert!(!package.join("build").exists() && !package.join("package.json").exists());

    // A second server on the same cache asks the registry nothing.
    let (server, url, stderr) = common::serve(&[], &env, tmp.path());
    assert_eq!(
        common::get(&url, "/socket.io/socket.io.min.js"),
        (200, MIN_JS.to_vec())
    );
    drop(server.stop(stderr));
    assert_eq!(registry.requests().len(), 2);
}

#[test]
fn two_servers_fill_one_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let tgz = tarball();
    let pin = integrity(&tgz);
    let registry = Registry::start(tgz, pin.clone());
    let env = user_env(
        tmp.path().to_str().unwrap(),
        cache.to_str().unwrap(),
        &registry.url,
        &pin,
    );
    let (a, url_a, err_a) = common::serve(&[], &env, tmp.path());
    let (b, url_b, err_b) = common::serve(&[], &env, tmp.path());
    let both = std::thread::scope(|s| {
        let a = s.spawn(|| common::get(&url_a, "/socket.io/socket.io.min.js"));
        let b = s.spawn(|| common::get(&url_b, "/socket.io/socket.io.min.js"));
        [a.join().unwrap(), b.join().unwrap()]
    });
    drop((a.stop(err_a), b.stop(err_b)));
    assert_eq!(both, [(200, MIN_JS.to_vec()), (200, MIN_JS.to_vec())]);
    assert_eq!(
        cache_entries(&cache),
        vec![format!("socket.io-client-{VERSION}")]
    );
}

#[test]
fn a_tarball_with_the_wrong_integrity_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, cache) = (tmp.path().join("home"), tmp.path().join("cache"));
    std::fs::create_dir_all(&home).unwrap();
    // The registry publishes the pinned integrity, but serves other bytes (a tampered mirror).
    let pin = integrity(b"the real tarball");
    let registry = Registry::start(tarball(), pin.clone());
    let env = user_env(
        home.to_str().unwrap(),
        cache.to_str().unwrap(),
        &registry.url,
        &pin,
    );
    let (server, url, stderr) = common::serve(&[], &env, tmp.path());
    assert_eq!(common::get(&url, "/socket.io/socket.io.min.js").0, 404);
    let page = String::from_utf8(common::get(&url, "/").1).unwrap();
    assert!(page.contains("id=\"missing\""), "{page}");
    assert!(page.contains("integrity mismatch"), "{page}");
    assert!(!page.contains("<script"));
    let logs = server.stop(stderr);
    assert!(logs.contains("integrity mismatch"), "{logs}");
    assert!(
        registry.requests().iter().any(|p| p.ends_with(".tgz")),
        "refused after downloading, on the hash"
    );
    assert!(
        cache_entries(&cache).is_empty(),
        "nothing cached: {:?}",
        cache_entries(&cache)
    );

    // A registry publishing another integrity than the pinned one: refused before the download.
    let registry = Registry::start(tarball(), integrity(b"something else"));
    let env = user_env(
        home.to_str().unwrap(),
        cache.to_str().unwrap(),
        &registry.url,
        &pin,
    );
    let (server, url, stderr) = common::serve(&[], &env, tmp.path());
    assert_eq!(common::get(&url, "/socket.io/socket.io.min.js").0, 404);
    let logs = server.stop(stderr);
    assert!(logs.contains("publishes integrity"), "{logs}");
    assert_eq!(
        registry.requests(),
        vec![format!("/socket.io-client/{VERSION}")]
    );
    assert!(cache_entries(&cache).is_empty());
}

#[test]
fn an_unreachable_registry_leaves_instructions_on_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let home = tmp.path().to_str().unwrap();
    // The default pin, through npm's own variable.
    let env = [("HOME", home), ("npm_config_registry", closed.as_str())];
    let (server, url, stderr) = common::serve(&[], &env, tmp.path());
    let (status, page) = common::get(&url, "/");
    assert_eq!(status, 200, "the server runs without its bundle");
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("id=\"missing\""), "{page}");
    assert!(
        page.contains("npm install socket.io-client@4.8.4"),
        "{page}"
    );
    assert!(page.contains("--client-dist"), "{page}");
    assert!(
        page.contains(&closed),
        "the page names the registry tried: {page}"
    );
    assert!(!page.contains("<script"), "no script that would 404");
    assert_eq!(common::get(&url, "/socket.io/socket.io.min.js").0, 404);
    // Still serving Socket.IO.
    assert_eq!(
        common::get(&url, "/socket.io/?EIO=4&transport=polling").0,
        200
    );
    let logs = server.stop(stderr);
    assert!(
        logs.contains("could not fetch socket.io-client 4.8.4"),
        "{logs}"
    );
    assert!(cache_entries(&tmp.path().join(".cache")).is_empty());
}

#[test]
fn a_filled_cache_needs_no_network() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dist = cache.join(format!("ferrio/socket.io-client-{VERSION}/dist"));
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("socket.io.min.js"), b"cached").unwrap();
    let registry = Registry::start(tarball(), integrity(b"unused"));
    let pin = integrity(b"unused");
    let env = user_env(
        tmp.path().to_str().unwrap(),
        cache.to_str().unwrap(),
        &registry.url,
        &pin,
    );
    let (server, url, stderr) = common::serve(&[], &env, tmp.path());
    assert_eq!(
        common::get(&url, "/socket.io/socket.io.min.js"),
        (200, b"cached".to_vec())
    );
    let page = String::from_utf8(common::get(&url, "/").1).unwrap();
    assert!(page.contains("socket.io.min.js\"></script>"), "{page}");
    drop(server.stop(stderr));
    assert!(registry.requests().is_empty(), "{:?}", registry.requests());
}

#[test]
fn node_modules_of_the_working_directory_come_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("node_modules/socket.io-client/dist");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("socket.io.min.js"), b"local").unwrap();
    let registry = Registry::start(tarball(), integrity(b"unused"));
    let env = [
        ("HOME", tmp.path().to_str().unwrap()),
        ("FERRIO_NPM_REGISTRY", registry.url.as_str()),
    ];
    let (server, url, stderr) = common::serve(&[], &env, tmp.path());
    assert_eq!(
        common::get(&url, "/socket.io/socket.io.min.js"),
        (200, b"local".to_vec())
    );
    drop(server.stop(stderr));
    assert!(registry.requests().is_empty());
}
