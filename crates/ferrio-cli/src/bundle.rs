//! Where `ferrio serve` finds the browser bundle (`socket.io-client`'s `dist/` folder), so that the demo
//! page works from any directory: `--client-dist` (or `FERRIO_CLIENT_DIST`, or the configuration file),
//! then `./node_modules/socket.io-client/dist`, then the user's cache, where the pinned release is
//! fetched from the npm registry the first time the page or the bundle is asked for. Fetching on demand
//! keeps a server that only talks to programs (tests, benchmarks) off the network.

use std::path::{Path, PathBuf};

use tokio::sync::OnceCell;

use crate::config::{ParserKind, ServeOptions};
use crate::npm::{self, Pin};

/// The file the demo page loads; a folder without it has no usable bundle.
pub const MAIN_FILE: &str = "socket.io.min.js";

/// The file the demo page loads when the parser is msgpack: the same client built with
/// `socket.io-msgpack-parser`, in the same `dist/` folder.
pub const MSGPACK_FILE: &str = "socket.io.msgpack.min.js";

/// Where the bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `serve_client` is off: the server does not serve the bundle.
    Off,
    /// A folder given by the user (`--client-dist`, `FERRIO_CLIENT_DIST`, the file), used as is.
    Given(PathBuf),
    /// `./node_modules/socket.io-client/dist`.
    NodeModules(PathBuf),
    /// The cache folder, filled by an earlier fetch.
    Cached(PathBuf),
    /// The cache folder, to fill from the registry on first use.
    Fetch {
        /// Final folder of the files (`…/ferrio/socket.io-client-<version>/dist`).
        dir: PathBuf,
        /// Registry base URL.
        registry: String,
        /// Version and integrity to fetch.
        pin: Pin,
    },
    /// No local bundle and no cache directory to fetch into.
    NoCache,
}

/// The bundle of one `ferrio serve`: its source, and the outcome of the fetch once tried.
#[derive(Debug)]
pub struct ClientBundle {
    source: Source,
    version: String,
    fetched: OnceCell<Result<(), String>>,
    /// The file of the bundle the page loads ([`MAIN_FILE`], or [`MSGPACK_FILE`] for that parser).
    script: &'static str,
}

/// Whether the page can load the bundle, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The bundle is served.
    Ready,
    /// It is not; the reason, in one sentence.
    Missing(String),
}

/// The bundle of `ferrio serve` with `opts`, from this process's environment and working directory;
/// logs where it comes from.
pub fn for_serve(opts: &ServeOptions) -> Result<ClientBundle, String> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let b = resolve(
        opts.client_dist.as_deref(),
        opts.serve_client.unwrap_or(true),
        &cwd,
        |k| std::env::var(k).ok(),
    )?
    .for_parser(opts.parser.unwrap_or_default());
    match b.source() {
        Source::Off => {}
        Source::Given(d) | Source::NodeModules(d) | Source::Cached(d) => {
            if d.join(MAIN_FILE).is_file() {
                tracing::info!(dir = %d.display(), "socket.io-client bundle");
            } else {
                tracing::warn!(dir = %d.display(), "no socket.io-client bundle here: the demo page says what to do");
            }
        }
        Source::Fetch { registry, .. } => tracing::info!(
            %registry,
            "socket.io-client {} not installed: fetched into the cache when the page is first asked for",
            b.version()
        ),
        Source::NoCache => tracing::warn!(
            "socket.io-client not installed and no cache directory: the demo page says what to do"
        ),
    }
    Ok(b)
}

/// Where the bundle comes from, in the order of the module doc; reads the environment through `env` (a
/// function, so that tests need not touch the process's) and the disk, never the network.
pub fn resolve(
    given: Option<&Path>,
    serve_client: bool,
    cwd: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ClientBundle, String> {
    let pin = pin_from_env(&env)?;
    let version = pin.version.clone();
    let source = if !serve_client {
        Source::Off
    } else if let Some(dir) = given {
        Source::Given(dir.to_owned())
    } else if let Some(dir) =
        Some(cwd.join("node_modules/socket.io-client/dist")).filter(|d| d.join(MAIN_FILE).is_file())
    {
        Source::NodeModules(dir)
    } else if let Some(root) = cache_root(&env) {
        let dir = package_dir(&root, &pin.version).join("dist");
        if dir.join(MAIN_FILE).is_file() {
            Source::Cached(dir)
        } else {
            Source::Fetch {
                dir,
                registry: registry(&env),
                pin,
            }
        }
    } else {
        Source::NoCache
    };
    Ok(ClientBundle {
        source,
        version,
        fetched: OnceCell::new(),
        script: MAIN_FILE,
    })
}

/// The pinned release, or the one `FERRIO_CLIENT_VERSION` and `FERRIO_CLIENT_INTEGRITY` name together
/// (another release needs its own integrity: a version alone would be fetched unchecked).
fn pin_from_env(env: &impl Fn(&str) -> Option<String>) -> Result<Pin, String> {
    let pin = match (
        env("FERRIO_CLIENT_VERSION").filter(|v| !v.is_empty()),
        env("FERRIO_CLIENT_INTEGRITY").filter(|v| !v.is_empty()),
    ) {
        (None, None) => return Ok(Pin::pinned()),
        (Some(version), Some(integrity)) => Pin { version, integrity },
        _ => {
            return Err(
                "FERRIO_CLIENT_VERSION and FERRIO_CLIENT_INTEGRITY go together (the integrity is the \
                 registry's sha512 for that version)"
                    .into(),
            );
        }
    };
    pin.validate()?;
    Ok(pin)
}

/// `FERRIO_NPM_REGISTRY`, else npm's own `npm_config_registry`, else the public registry.
fn registry(env: &impl Fn(&str) -> Option<String>) -> String {
    [
        "FERRIO_NPM_REGISTRY",
        "npm_config_registry",
        "NPM_CONFIG_REGISTRY",
    ]
    .into_iter()
    .find_map(|k| env(k).filter(|v| !v.trim().is_empty()))
    .unwrap_or_else(|| npm::DEFAULT_REGISTRY.to_owned())
}

/// The user's cache directory: `$XDG_CACHE_HOME`, else the platform's (`~/.cache`, `~/Library/Caches`,
/// `%LOCALAPPDATA%`).
fn cache_root(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let absolute = |v: String| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(dir) = env("XDG_CACHE_HOME").and_then(absolute) {
        return Some(dir);
    }
    if cfg!(windows) {
        return env("LOCALAPPDATA").and_then(absolute);
    }
    let home = env("HOME").and_then(absolute)?;
    Some(if cfg!(target_os = "macos") {
        home.join("Library/Caches")
    } else {
        home.join(".cache")
    })
}

/// `<cache>/ferrio/socket.io-client-<version>`.
fn package_dir(cache_root: &Path, version: &str) -> PathBuf {
    cache_root
        .join("ferrio")
        .join(format!("socket.io-client-{version}"))
}

impl ClientBundle {
    /// The same bundle, its page loading the build of the client for `parser`.
    pub fn for_parser(mut self, parser: ParserKind) -> Self {
        self.script = match parser {
            ParserKind::Json => MAIN_FILE,
            ParserKind::Msgpack => MSGPACK_FILE,
        };
        self
    }

    /// The file of the bundle the demo page loads.
    pub fn script(&self) -> &'static str {
        self.script
    }

    /// Where it comes from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The folder the server reads the bundle from (for a fetch, where it will be), if any.
    pub fn dir(&self) -> Option<&Path> {
        match &self.source {
            Source::Given(d) | Source::NodeModules(d) | Source::Cached(d) => Some(d),
            Source::Fetch { dir, .. } => Some(dir),
            Source::Off | Source::NoCache => None,
        }
    }

    /// The socket.io-client version the instructions name.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Fetches the bundle if it comes from the registry and was not tried yet; concurrent callers wait
    /// for the same fetch. A failed fetch is not retried: the page says what to do instead.
    pub async fn ensure(&self) {
        let Source::Fetch { dir, registry, pin } = &self.source else {
            return;
        };
        self.fetched
            .get_or_init(|| async {
                match fetch_into(dir, registry, pin).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        tracing::warn!(
                            "could not fetch socket.io-client {} from {registry}: {e}; the demo page \
                             says how to install it",
                            pin.version
                        );
                        Err(e)
                    }
                }
            })
            .await;
    }

    /// Whether the bundle comes from the registry and the fetch has not been tried yet.
    pub fn fetch_pending(&self) -> bool {
        matches!(self.source, Source::Fetch { .. }) && !self.fetched.initialized()
    }

    /// Whether the page can load the bundle now.
    pub fn status(&self) -> Status {
        match &self.source {
            Source::Off => Status::Missing(
                "this server does not serve the browser client (serve_client is off).".into(),
            ),
            Source::NoCache => Status::Missing(
                "it is not installed here, and there is no cache directory (HOME, XDG_CACHE_HOME) to \
                 download it into."
                    .into(),
            ),
            Source::Given(dir) | Source::NodeModules(dir) | Source::Cached(dir) => {
                if dir.join(MAIN_FILE).is_file() {
                    Status::Ready
                } else {
                    Status::Missing(format!("there is no {MAIN_FILE} in {}.", dir.display()))
                }
            }
            Source::Fetch { dir, registry, .. } => {
                if dir.join(MAIN_FILE).is_file() {
                    return Status::Ready;
                }
                match self.fetched.get() {
                    Some(Err(e)) => {
                        Status::Missing(format!("downloading it from {registry} failed: {e}."))
                    }
                    _ => Status::Missing(format!("it has not been downloaded from {registry}.")),
                }
            }
        }
    }
}

/// Whether a request for `path` needs the bundle: the demo page, or a bundle file under `prefix` (the
/// server's path, with its trailing slash).
pub fn wanted_by(path: &str, prefix: &str) -> bool {
    path == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|f| f.starts_with("socket.io.") && !f.contains('/'))
}

/// Fetches, verifies and installs the `dist/` files into `dir`, atomically: they are written into a
/// temporary folder beside the final one, which is then renamed, so that another process sees the
/// whole folder or nothing.
async fn fetch_into(dir: &Path, registry: &str, pin: &Pin) -> Result<(), String> {
    let fetched = npm::fetch(registry, pin).await.map_err(|e| e.to_string())?;
    let package = dir.parent().ok_or("no cache folder")?.to_owned();
    let files = fetched.files;
    tokio::task::spawn_blocking(move || install(&package, &files))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot write the cache: {e}"))?;
    tracing::info!(
        "fetched socket.io-client {} from {} (sha512 verified) into {}",
        pin.version,
        fetched.tarball,
        dir.display()
    );
    Ok(())
}

/// Writes `files` into `<package>/dist` through a temporary sibling of `package` and one rename.
fn install(package: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    let complete = |p: &Path| p.join("dist").join(MAIN_FILE).is_file();
    if complete(package) {
        // Another process got there first.
        return Ok(());
    }
    let parent = package.parent().ok_or(std::io::ErrorKind::NotFound)?;
    std::fs::create_dir_all(parent)?;
    let name = package
        .file_name()
        .ok_or(std::io::ErrorKind::NotFound)?
        .to_string_lossy();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    remove_stale_temporaries(parent, &name);
    let tmp = parent.join(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let written = (|| {
        std::fs::create_dir_all(tmp.join("dist"))?;
        for (file, content) in files {
            std::fs::write(tmp.join("dist").join(file), content)?;
        }
        // A folder left incomplete by hand would block the rename; an installed one never is.
        if package.exists() && !complete(package) {
            std::fs::remove_dir_all(package)?;
        }
        std::fs::rename(&tmp, package)
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if complete(package) {
            return Ok(());
        }
    }
    written
}

/// Removes the temporary folders of installs that died half-way (an hour old: no live install takes
/// that long), so that they do not pile up in the cache.
fn remove_stale_temporaries(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if file_name.starts_with(&prefix) && file_name.ends_with(".tmp") && stale {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn sources_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let cwd = tmp.path().join("cwd");
        let cache = tmp.path().join("cache");
        std::fs::create_dir_all(&cwd).unwrap();
        let env = env_of(&[("XDG_CACHE_HOME", cache.to_str().unwrap())]);

        // Nothing local: the registry, into the cache.
        let b = resolve(None, true, &cwd, &env).unwrap();
        let dist = cache.join("ferrio/socket.io-client-4.8.4/dist");
        assert!(
            matches!(b.source(), Source::Fetch { dir, registry, .. } if *dir == dist && registry == npm::DEFAULT_REGISTRY)
        );
        assert_eq!(b.dir(), Some(dist.as_path()));
        assert!(matches!(b.status(), Status::Missing(_)));

        // Cached.
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(dist.join(MAIN_FILE), "x").unwrap();
        let b = resolve(None, true, &cwd, &env).unwrap();
        assert_eq!(b.source(), &Source::Cached(dist.clone()));
        assert_eq!(b.status(), Status::Ready);

        // ./node_modules beats the cache.
        let nm = cwd.join("node_modules/socket.io-client/dist");
        std::fs::create_dir_all(&nm).unwrap();
        std::fs::write(nm.join(MAIN_FILE), "x").unwrap();
        let b = resolve(None, true, &cwd, &env).unwrap();
        assert_eq!(b.source(), &Source::NodeModules(nm));

        // A given folder beats everything, even without the bundle.
        let given = tmp.path().join("given");
        let b = resolve(Some(&given), true, &cwd, &env).unwrap();
        assert_eq!(b.source(), &Source::Given(given));
        assert!(matches!(b.status(), Status::Missing(m) if m.contains(MAIN_FILE)));

        // serve_client off: nothing.
        let b = resolve(None, false, &cwd, &env).unwrap();
        assert_eq!(b.source(), &Source::Off);
        assert_eq!(b.dir(), None);
    }

    #[test]
    fn registry_pin_and_cache_from_the_environment() {
        let cwd = Path::new("/nonexistent");
        let env = env_of(&[
            ("HOME", "/home/u"),
            ("npm_config_registry", "http://npm.local/"),
        ]);
        let b = resolve(None, true, cwd, &env).unwrap();
        let Source::Fetch { dir, registry, pin } = b.source() else {
            panic!("{:?}", b.source())
        };
        if cfg!(all(unix, not(target_os = "macos"))) {
            assert_eq!(
                dir,
                Path::new("/home/u/.cache/ferrio/socket.io-client-4.8.4/dist")
            );
        }
        assert_eq!(registry, "http://npm.local/");
        assert_eq!(pin, &Pin::pinned());

        let env = env_of(&[
            ("HOME", "/home/u"),
            ("XDG_CACHE_HOME", "relative/is/ignored"),
            ("npm_config_registry", "http://npm.local/"),
            ("FERRIO_NPM_REGISTRY", "http://ours.local/"),
            ("FERRIO_CLIENT_VERSION", "9.9.9"),
            ("FERRIO_CLIENT_INTEGRITY", &npm::sha512_integrity(b"t")),
        ]);
        let b = resolve(None, true, cwd, &env).unwrap();
        let Source::Fetch { dir, registry, pin } = b.source() else {
            panic!("{:?}", b.source())
        };
        assert!(dir.ends_with("ferrio/socket.io-client-9.9.9/dist"));
        assert!(dir.starts_with("/home/u"));
        assert_eq!(registry, "http://ours.local/");
        assert_eq!(pin.version, "9.9.9");
        assert_eq!(b.version(), "9.9.9");

        // A version without its integrity, or a bad one, is refused.
        assert!(
            resolve(
                None,
                true,
                cwd,
                env_of(&[("FERRIO_CLIENT_VERSION", "9.9.9")])
            )
            .is_err()
        );
        let bad = env_of(&[
            ("FERRIO_CLIENT_VERSION", "../9"),
            ("FERRIO_CLIENT_INTEGRITY", &npm::sha512_integrity(b"t")),
        ]);
        assert!(resolve(None, true, cwd, bad).is_err());

        // No home at all: nowhere to fetch into.
        let b = resolve(None, true, cwd, env_of(&[])).unwrap();
        if !cfg!(windows) {
            assert_eq!(b.source(), &Source::NoCache);
            assert!(matches!(b.status(), Status::Missing(_)));
        }
    }

    #[test]
    fn install_is_one_rename() {
        let tmp = tempfile::tempdir().unwrap();
        let package = tmp.path().join("ferrio/socket.io-client-1.0.0");
        let files = vec![(MAIN_FILE.to_owned(), b"min".to_vec())];
        install(&package, &files).unwrap();
        assert_eq!(
            std::fs::read(package.join("dist").join(MAIN_FILE)).unwrap(),
            b"min"
        );
        // Only the final folder remains: no temporary sibling.
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("ferrio"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("socket.io-client-1.0.0")]
        );
        // A temporary folder of a dead install goes with the next install; a fresh one (a live
        // install of another process) stays.
        let old = tmp.path().join("ferrio/.socket.io-client-1.0.0.1.2.tmp");
        let live = tmp.path().join("ferrio/.socket.io-client-1.0.0.3.4.tmp");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        let hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        std::fs::File::open(&old)
            .unwrap()
            .set_modified(hours_ago)
            .unwrap();
        std::fs::remove_dir_all(&package).unwrap();
        install(&package, &files).unwrap();
        assert!(!old.exists());
        assert!(live.exists());
        std::fs::remove_dir_all(&live).unwrap();
        // A second install (another process) keeps the first one's files.
        install(&package, &[(MAIN_FILE.to_owned(), b"other".to_vec())]).unwrap();
        assert_eq!(
            std::fs::read(package.join("dist").join(MAIN_FILE)).unwrap(),
            b"min"
        );
    }

    #[test]
    fn requests_that_need_the_bundle() {
        assert!(wanted_by("/", "/socket.io/"));
        assert!(wanted_by("/socket.io/socket.io.min.js", "/socket.io/"));
        assert!(wanted_by("/socket.io/socket.io.js.map", "/socket.io/"));
        assert!(!wanted_by("/socket.io/", "/socket.io/"));
        assert!(!wanted_by("/favicon.ico", "/socket.io/"));
        assert!(!wanted_by("/other/socket.io.js", "/socket.io/"));
    }
}
