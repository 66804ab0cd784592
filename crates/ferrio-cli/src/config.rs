//! `ferrio serve` configuration: defaults, then a TOML file (its top level, then the chosen profile),
//! then `FERRIO_*` environment variables, then flags — each later source overriding the earlier.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

/// Every server option, all optional so that sources can be layered.
#[derive(Debug, Clone, Default, Deserialize, Args, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeOptions {
    /// Address to listen on.
    #[arg(long, env = "FERRIO_HOST")]
    pub host: Option<String>,
    /// Port to listen on (0: any free port).
    #[arg(long, env = "FERRIO_PORT")]
    pub port: Option<u16>,
    /// Socket.IO path.
    #[arg(long, env = "FERRIO_PATH")]
    pub path: Option<String>,
    /// Milliseconds between pings.
    #[arg(long, env = "FERRIO_PING_INTERVAL")]
    pub ping_interval: Option<u64>,
    /// Milliseconds to wait for a pong.
    #[arg(long, env = "FERRIO_PING_TIMEOUT")]
    pub ping_timeout: Option<u64>,
    /// Milliseconds to complete an upgrade.
    #[arg(long, env = "FERRIO_UPGRADE_TIMEOUT")]
    pub upgrade_timeout: Option<u64>,
    /// Milliseconds to join a namespace after connecting.
    #[arg(long, env = "FERRIO_CONNECT_TIMEOUT")]
    pub connect_timeout: Option<u64>,
    /// Largest message or POST body, in bytes.
    #[arg(long, env = "FERRIO_MAX_HTTP_BUFFER_SIZE")]
    pub max_http_buffer_size: Option<usize>,
    /// Allowed transports, comma-separated (polling,websocket).
    #[arg(long, env = "FERRIO_TRANSPORTS", value_delimiter = ',')]
    pub transports: Option<Vec<String>>,
    /// Allow polling clients to upgrade to websocket.
    #[arg(long, env = "FERRIO_ALLOW_UPGRADES")]
    pub allow_upgrades: Option<bool>,
    /// Also accept socket.io-client 2.x (Engine.IO v3, Socket.IO protocol v4) and JSONP polling
    /// (`--allow-eio3` alone means true).
    #[arg(long = "allow-eio3", env = "FERRIO_ALLOW_EIO3", num_args = 0..=1, default_missing_value = "true")]
    pub allow_eio3: Option<bool>,
    /// Allowed CORS origins, comma-separated; `*` for any (without credentials).
    #[arg(long, env = "FERRIO_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Option<Vec<String>>,
    /// Send `Access-Control-Allow-Credentials` (explicit origins only).
    #[arg(long, env = "FERRIO_CORS_CREDENTIALS")]
    pub cors_credentials: Option<bool>,
    /// Name of the sid cookie (none: no cookie).
    #[arg(long, env = "FERRIO_COOKIE")]
    pub cookie: Option<String>,
    /// Compress polling responses.
    #[arg(long, env = "FERRIO_HTTP_COMPRESSION")]
    pub http_compression: Option<bool>,
    /// permessage-deflate on websocket connections, threshold 1024 bytes (`--per-message-deflate` alone
    /// means true; off by default, as in engine.io).
    #[arg(long = "per-message-deflate", env = "FERRIO_PER_MESSAGE_DEFLATE", num_args = 0..=1, default_missing_value = "true")]
    pub per_message_deflate: Option<bool>,
    /// Serve the browser bundle under the path.
    #[arg(long, env = "FERRIO_SERVE_CLIENT")]
    pub serve_client: Option<bool>,
    /// Folder of the socket.io-client bundle (default: `./node_modules/socket.io-client/dist`, else the
    /// pinned release, fetched from the npm registry into the user's cache on first use).
    #[arg(long, env = "FERRIO_CLIENT_DIST")]
    pub client_dist: Option<PathBuf>,
    /// Remove dynamic child namespaces when empty.
    #[arg(long, env = "FERRIO_CLEANUP_EMPTY_CHILD_NAMESPACES")]
    pub cleanup_empty_child_namespaces: Option<bool>,
    /// Queued packets per client before it is a slow consumer.
    #[arg(long, env = "FERRIO_MAX_BUFFERED_PACKETS")]
    pub max_buffered_packets: Option<usize>,
    /// Queued bytes per client before it is a slow consumer (volatile packets dropped, then a close).
    #[arg(long, env = "FERRIO_MAX_BUFFERED_BYTES")]
    pub max_buffered_bytes: Option<usize>,
    /// Connection state recovery: a client whose connection dropped gets its socket back with the
    /// broadcasts it missed (`--connection-state-recovery` alone means true).
    #[arg(long, env = "FERRIO_CONNECTION_STATE_RECOVERY", num_args = 0..=1, default_missing_value = "true")]
    pub connection_state_recovery: Option<bool>,
    /// Milliseconds a dropped session is kept for recovery (120000).
    #[arg(long, env = "FERRIO_MAX_DISCONNECTION_DURATION")]
    pub max_disconnection_duration: Option<u64>,
    /// Log filter (`info`, `ferrio=debug`, …).
    #[arg(long, env = "FERRIO_LOG")]
    pub log: Option<String>,
    /// Adapter for running several nodes as one server: `redis://HOST:PORT[/DB]` (the classic
    /// `@socket.io/redis-adapter`, pub/sub), `redis-sharded://HOST:PORT[,HOST:PORT…]` (the sharded
    /// adapter on a Redis Cluster, sharded pub/sub, Redis 7; seed nodes) or `redis-streams://HOST:PORT`
    /// (`@socket.io/redis-streams-adapter`: recovery across nodes); `local` or none: one node.
    #[arg(long, env = "FERRIO_ADAPTER")]
    pub adapter: Option<String>,
    /// Key prefix of the adapter's Redis channels (`socket.io`), as the Node adapter's `key` option.
    #[arg(long, env = "FERRIO_ADAPTER_KEY")]
    pub adapter_key: Option<String>,
    /// Packet parser: `json` (socket.io-parser, the default) or `msgpack` (socket.io-msgpack-parser;
    /// the demo page then loads `socket.io.msgpack.min.js`).
    #[arg(long, env = "FERRIO_PARSER", value_enum)]
    pub parser: Option<ParserKind>,
    // Production serving: TLS, limits, drain, health and logs.
    /// PEM certificate chain (leaf first) to serve HTTPS and WSS with; read again on SIGHUP.
    #[arg(long, env = "FERRIO_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert` (PKCS#8, PKCS#1 or SEC1); read again on SIGHUP.
    #[arg(long, env = "FERRIO_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Most clients connected at once; further handshakes are answered 503 (none: no limit).
    #[arg(long, env = "FERRIO_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Milliseconds a client has to send a request's headers (and to finish a TLS handshake).
    #[arg(long, env = "FERRIO_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,
    /// Milliseconds the drain on SIGTERM or Ctrl-C waits for clients to leave before closing the rest.
    #[arg(long, env = "FERRIO_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<u64>,
    /// Log format: `text` (default) or `json` (one JSON object per line).
    #[arg(long, env = "FERRIO_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Serving threads (default: the CPUs this process may use), each with a runtime and a listener of
    /// its own on the shared port; a connection stays on the thread that accepted it.
    #[arg(long, env = "FERRIO_THREADS")]
    pub threads: Option<usize>,
    // Operating: the Socket.IO admin UI.
    /// `USER:PASSWORD`: instrument the server for the Socket.IO admin UI (namespace `/admin`) and serve
    /// its web app at `/admin/`.
    #[arg(long, env = "FERRIO_ADMIN")]
    pub admin: Option<String>,
    /// Folder of the admin web app (default: `./node_modules/@socket.io/admin-ui/ui/dist`).
    #[arg(long, env = "FERRIO_ADMIN_UI_DIST")]
    pub admin_ui_dist: Option<PathBuf>,
    /// Expose the server's metrics at `/metrics`, in the Prometheus text format.
    #[arg(long, env = "FERRIO_METRICS", num_args = 0..=1, default_missing_value = "true")]
    pub metrics: Option<bool>,
}

/// The packet parser `--parser` names; clients must use the same one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ParserKind {
    /// `socket.io-parser`: JSON text plus binary attachments.
    #[default]
    Json,
    /// `socket.io-msgpack-parser`: one MessagePack binary message per packet.
    Msgpack,
}

impl ParserKind {
    /// The parser itself.
    pub fn parser(self) -> std::sync::Arc<dyn ferrio_proto::socket::Parser> {
        use ferrio_proto::socket::{JsonParser, MsgpackParser};
        match self {
            ParserKind::Json => std::sync::Arc::new(JsonParser::default()),
            ParserKind::Msgpack => std::sync::Arc::new(MsgpackParser::new()),
        }
    }
}

/// How `ferrio serve` writes its logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The adapter `--adapter` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterSpec {
    /// One node, in memory (the default).
    Local,
    /// The classic Redis adapter (`@socket.io/redis-adapter`, `PUBLISH`/`PSUBSCRIBE`).
    Redis {
        /// `redis://…` URL handed to the Redis client.
        url: String,
        /// Channel prefix.
        key: String,
    },
    /// The sharded Redis adapter on a Redis Cluster (`createShardedAdapter`, `SPUBLISH`/`SSUBSCRIBE`).
    RedisSharded {
        /// `redis://…` URLs of the seed nodes (the `redis-sharded` scheme rewritten).
        urls: Vec<String>,
        /// Channel prefix.
        key: String,
    },
    /// The Redis Streams adapter (`@socket.io/redis-streams-adapter`): one stream, and sessions kept in
    /// Redis so that connection state recovery works across nodes.
    RedisStreams {
        /// `redis://…` URL (the `redis-streams` scheme rewritten).
        url: String,
        /// Stream name (`--adapter-key`, "socket.io" by default as in the official adapter).
        key: String,
    },
}

impl AdapterSpec {
    /// Parses the `adapter` option (`None`, `""` and `local` mean the local adapter).
    pub fn parse(adapter: Option<&str>, key: Option<&str>) -> Result<AdapterSpec, ConfigError> {
        let key = key.unwrap_or("socket.io").to_owned();
        let Some(raw) = adapter
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "local")
        else {
            return Ok(AdapterSpec::Local);
        };
        let bad = |why: &str| ConfigError::Adapter(raw.to_owned(), why.to_owned());
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| {
            bad("expected redis://, redis-sharded:// or redis-streams://HOST:PORT")
        })?;
        if rest.split('/').next().unwrap_or_default().is_empty() {
            return Err(bad("no host"));
        }
        if key.is_empty() {
            return Err(bad("the adapter key must not be empty"));
        }
        match scheme {
            "redis" => Ok(AdapterSpec::Redis {
                url: raw.to_owned(),
                key,
            }),
            "redis-sharded" => {
                let urls = rest
                    .split(',')
                    .map(|node| {
                        let node = node.trim();
                        if node.split('/').next().unwrap_or_default().is_empty() {
                            Err(bad("no host"))
                        } else {
                            Ok(format!("redis://{node}"))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(AdapterSpec::RedisSharded { urls, key })
            }
            "redis-streams" => Ok(AdapterSpec::RedisStreams {
                url: format!("redis://{rest}"),
                key,
            }),
            _ => Err(bad(
                "unknown scheme (redis://, redis-sharded://, redis-streams://)",
            )),
        }
    }
}

/// A configuration file: options at the top level, overridden by `[profile.<name>]` tables. Parsed in two
/// steps because serde cannot refuse unknown keys of a flattened struct, and a misspelt option must not
/// pass silently.
#[derive(Debug, Default)]
struct FileConfig {
    base: ServeOptions,
    profile: std::collections::BTreeMap<String, ServeOptions>,
}

impl FileConfig {
    fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
        let mut table: toml::Table = toml::from_str(text)?;
        let profile = match table.remove("profile") {
            Some(p) => p.try_into()?,
            None => Default::default(),
        };
        Ok(FileConfig {
            base: toml::Value::Table(table).try_into()?,
            profile,
        })
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file is not valid TOML for these options.
    #[error("invalid configuration {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    /// The profile is not in the file.
    #[error("no profile {0:?} in {1}")]
    NoProfile(String, PathBuf),
    /// The `adapter` option is not a known adapter URL.
    #[error("invalid adapter {0:?}: {1}")]
    Adapter(String, String),
    /// Only one of `tls_cert` and `tls_key` is set.
    #[error("tls_cert and tls_key go together")]
    Tls,
    /// `threads` is 0.
    #[error("threads must be at least 1")]
    Threads,
}

macro_rules! layer {
    ($dst:ident, $src:ident, $($f:ident),*) => {
        $( if $src.$f.is_some() { $dst.$f = $src.$f.clone(); } )*
    };
}

impl ServeOptions {
    /// `other` wins where it has a value.
    pub fn overlay(&mut self, other: &ServeOptions) {
        layer!(
            self,
            other,
            host,
            port,
            path,
            ping_interval,
            ping_timeout,
            upgrade_timeout,
            connect_timeout,
            max_http_buffer_size,
            transports,
            allow_upgrades,
            allow_eio3,
            cors_origin,
            cors_credentials,
            cookie,
            http_compression,
            per_message_deflate,
            serve_client,
            client_dist,
            cleanup_empty_child_namespaces,
            max_buffered_packets,
            max_buffered_bytes,
            connection_state_recovery,
            max_disconnection_duration,
            log,
            adapter,
            adapter_key,
            parser,
            // Production serving.
            tls_cert,
            tls_key,
            max_connections,
            header_read_timeout,
            drain_timeout,
            log_format,
            threads,
            // Operating: the Socket.IO admin UI.
            admin,
            admin_ui_dist,
            metrics
        );
    }

    /// Layers: file top level, then the file's profile, then `self` (environment and flags).
    pub fn resolve(
        &self,
        file: Option<&PathBuf>,
        profile: Option<&str>,
    ) -> Result<ServeOptions, ConfigError> {
        let mut out = ServeOptions::default();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.clone(), e))?;
            let parsed =
                FileConfig::parse(&text).map_err(|e| ConfigError::Parse(path.clone(), e))?;
            out.overlay(&parsed.base);
            if let Some(name) = profile {
                let p = parsed
                    .profile
                    .get(name)
                    .ok_or_else(|| ConfigError::NoProfile(name.into(), path.clone()))?;
                out.overlay(p);
            }
        }
        out.overlay(self);
        out.adapter_spec()?;
        // The file and the environment can name one without the other, which clap cannot see.
        if out.tls_cert.is_some() != out.tls_key.is_some() {
            return Err(ConfigError::Tls);
        }
        if out.threads == Some(0) {
            return Err(ConfigError::Threads);
        }
        Ok(out)
    }

    /// The adapter these values ask for (`io_config` leaves `IoConfig::adapter` local: connecting to
    /// Redis is `serve::run`'s job, as it must wait for it).
    pub fn adapter_spec(&self) -> Result<AdapterSpec, ConfigError> {
        AdapterSpec::parse(self.adapter.as_deref(), self.adapter_key.as_deref())
    }

    /// The server options these values describe (official defaults for the rest).
    pub fn io_config(&self) -> ferrio::IoConfig {
        use ferrio::engine::{Cookie, Cors, HttpCompression, PerMessageDeflate};
        use ferrio_proto::engine::TransportKind;
        let mut c = ferrio::IoConfig::default();
        let e = &mut c.engine;
        if let Some(p) = &self.path {
            e.path = p.clone();
        }
        let ms = Duration::from_millis;
        if let Some(v) = self.ping_interval {
            e.ping_interval = ms(v);
        }
        if let Some(v) = self.ping_timeout {
            e.ping_timeout = ms(v);
        }
        if let Some(v) = self.upgrade_timeout {
            e.upgrade_timeout = ms(v);
        }
        if let Some(v) = self.max_http_buffer_size {
            e.max_http_buffer_size = v;
        }
        if let Some(t) = &self.transports {
            e.transports = t
                .iter()
                .filter_map(|s| TransportKind::parse(s.trim()))
                .collect();
        }
        if let Some(v) = self.allow_upgrades {
            e.allow_upgrades = v;
        }
        if let Some(v) = self.allow_eio3 {
            e.allow_eio3 = v;
        }
        if let Some(origins) = &self.cors_origin {
            let mut cors = if origins.iter().any(|o| o == "*") {
                Cors::any()
            } else {
                Cors::origins(origins.clone())
            };
            cors.credentials = self.cors_credentials.unwrap_or(false);
            e.cors = Some(cors);
        }
        if let Some(name) = &self.cookie {
            e.cookie = Some(Cookie {
                name: name.clone(),
                ..Cookie::default()
            });
        }
        if let Some(false) = self.http_compression {
            e.http_compression = None;
        } else if self.http_compression == Some(true) {
            e.http_compression = Some(HttpCompression::default());
        }
        if let Some(on) = self.per_message_deflate {
            e.per_message_deflate = on.then(PerMessageDeflate::default);
        }
        if let Some(v) = self.max_buffered_packets {
            e.max_buffered_packets = v;
        }
        if let Some(v) = self.max_buffered_bytes {
            e.max_buffered_bytes = v;
        }
        if let Some(v) = self.connect_timeout {
            c.connect_timeout = ms(v);
        }
        if let Some(v) = self.serve_client {
            c.serve_client = v;
        }
        if let Some(d) = &self.client_dist {
            c.client_dist = d.clone();
        }
        if let Some(v) = self.cleanup_empty_child_namespaces {
            c.cleanup_empty_child_namespaces = v;
        }
        if self.connection_state_recovery == Some(true) {
            let mut r = ferrio::ConnectionStateRecovery::default();
            if let Some(v) = self.max_disconnection_duration {
                r = r.max_disconnection_duration(ms(v));
            }
            c.connection_state_recovery = Some(r);
        }
        c.parser = self.parser.unwrap_or_default().parser();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrio::engine::PerMessageDeflate;

    #[test]
    fn parser_from_the_file_and_flags() {
        let dir = std::env::temp_dir().join(format!("ferrio-parser-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ferrio.toml");
        std::fs::write(&file, "parser = \"msgpack\"\n").unwrap();
        let r = ServeOptions::default().resolve(Some(&file), None).unwrap();
        assert_eq!(r.parser, Some(ParserKind::Msgpack));
        let packet = ferrio_proto::socket::Packet::Disconnect { nsp: "/".into() };
        assert!(matches!(
            r.io_config().parser.encode(&packet).head,
            ferrio_proto::engine::Frame::Binary(_)
        ));
        assert!(matches!(
            ServeOptions::default()
                .io_config()
                .parser
                .encode(&packet)
                .head,
            ferrio_proto::engine::Frame::Text(_)
        ));
        std::fs::write(&file, "parser = \"xml\"\n").unwrap();
        assert!(matches!(
            ServeOptions::default().resolve(Some(&file), None),
            Err(ConfigError::Parse(..))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn layers_file_profile_then_flags() {
        let dir = std::env::temp_dir().join(format!("ferrio-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ferrio.toml");
        std::fs::write(
            &file,
            r#"
port = 4000
ping_interval = 1000
max_buffered_bytes = 2000000
cors_origin = ["https://a.example"]

[profile.production]
ping_interval = 20000
log = "warn"
"#,
        )
        .unwrap();
        let flags = ServeOptions {
            port: Some(5000),
            ..Default::default()
        };
        let r = flags.resolve(Some(&file), Some("production")).unwrap();
        assert_eq!(r.port, Some(5000), "flags win");
        assert_eq!(r.ping_interval, Some(20000), "profile beats the top level");
        assert_eq!(r.log.as_deref(), Some("warn"));
        assert_eq!(r.cors_origin, Some(vec!["https://a.example".to_string()]));
        let r = ServeOptions::default().resolve(Some(&file), None).unwrap();
        assert_eq!(r.ping_interval, Some(1000));
        assert!(matches!(
            ServeOptions::default().resolve(Some(&file), Some("nope")),
            Err(ConfigError::NoProfile(..))
        ));
        std::fs::write(&file, "pingInterval = 3").unwrap();
        assert!(matches!(
            ServeOptions::default().resolve(Some(&file), None),
            Err(ConfigError::Parse(..))
        ));

        let c = r.io_config();
        assert_eq!(c.engine.ping_interval, Duration::from_millis(1000));
        assert!(c.engine.cors.is_some());
        assert_eq!(c.engine.max_buffered_bytes, 2_000_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn adapter_urls() {
        assert_eq!(AdapterSpec::parse(None, None).unwrap(), AdapterSpec::Local);
        assert_eq!(
            AdapterSpec::parse(Some("local"), None).unwrap(),
            AdapterSpec::Local
        );
        assert_eq!(
            AdapterSpec::parse(Some("redis://127.0.0.1:6379"), None).unwrap(),
            AdapterSpec::Redis {
                url: "redis://127.0.0.1:6379".into(),
                key: "socket.io".into()
            }
        );
        assert_eq!(
            AdapterSpec::parse(Some("redis-sharded://h:7000/0"), Some("app")).unwrap(),
            AdapterSpec::RedisSharded {
                urls: vec!["redis://h:7000/0".into()],
                key: "app".into()
            }
        );
        assert_eq!(
            AdapterSpec::parse(Some("redis-streams://h:6380"), None).unwrap(),
            AdapterSpec::RedisStreams {
                url: "redis://h:6380".into(),
                key: "socket.io".into()
            }
        );
        assert_eq!(
            AdapterSpec::parse(Some("redis-sharded://a:7000,b:7001"), None).unwrap(),
            AdapterSpec::RedisSharded {
                urls: vec!["redis://a:7000".into(), "redis://b:7001".into()],
                key: "socket.io".into()
            }
        );
        for bad in [
            "redis",
            "http://h:1",
            "redis://",
            "redis:///0",
            "redis-sharded://a:1,",
        ] {
            assert!(
                matches!(
                    AdapterSpec::parse(Some(bad), None),
                    Err(ConfigError::Adapter(..))
                ),
                "{bad}"
            );
        }
        assert!(AdapterSpec::parse(Some("redis://h:1"), Some("")).is_err());

        // From a file, overridden by flags; a bad URL fails resolve.
        let dir = std::env::temp_dir().join(format!("ferrio-cfg-adapter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ferrio.toml");
        std::fs::write(
            &file,
            "adapter = \"redis://10.0.0.1:6379\"\nadapter_key = \"app\"\n",
        )
        .unwrap();
        let r = ServeOptions::default().resolve(Some(&file), None).unwrap();
        assert_eq!(
            r.adapter_spec().unwrap(),
            AdapterSpec::Redis {
                url: "redis://10.0.0.1:6379".into(),
                key: "app".into()
            }
        );
        let flags = ServeOptions {
            adapter: Some("local".into()),
            ..Default::default()
        };
        let r = flags.resolve(Some(&file), None).unwrap();
        assert_eq!(r.adapter_spec().unwrap(), AdapterSpec::Local);
        let flags = ServeOptions {
            adapter: Some("memcached://x".into()),
            ..Default::default()
        };
        assert!(matches!(
            flags.resolve(Some(&file), None),
            Err(ConfigError::Adapter(..))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn defaults_are_official() {
        let c = ServeOptions::default().io_config();
        assert_eq!(c.engine.path, "/socket.io/");
        assert_eq!(c.engine.ping_interval, Duration::from_millis(25_000));
        assert_eq!(c.connect_timeout, Duration::from_millis(45_000));
        assert!(c.serve_client);
        assert_eq!(c.connection_state_recovery, None);
        assert!(!c.engine.allow_eio3);
    }

    /// The engine options of `serve ARGS`.
    fn engine_of(args: &[&str]) -> ferrio::engine::EngineConfig {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            options: ServeOptions,
        }
        <Cli as clap::Parser>::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap()
            .options
            .io_config()
            .engine
    }

    #[test]
    fn allow_eio3_flag_and_file() {
        let parse = |args: &[&str]| engine_of(args).allow_eio3;
        assert!(parse(&["--allow-eio3"]));
        assert!(parse(&["--allow-eio3", "true"]));
        assert!(!parse(&["--allow-eio3", "false"]));
        assert!(!parse(&[]));
        let file: FileConfig = FileConfig::parse("allow_eio3 = true\n").unwrap();
        assert!(file.base.io_config().engine.allow_eio3);
    }

    #[test]
    fn per_message_deflate_flag_and_file() {
        let parse = |args: &[&str]| engine_of(args).per_message_deflate;
        assert_eq!(
            parse(&["--per-message-deflate"]),
            Some(PerMessageDeflate::default())
        );
        assert_eq!(parse(&["--per-message-deflate", "false"]), None);
        assert_eq!(parse(&[]), None);
        let file: FileConfig = FileConfig::parse("per_message_deflate = true\n").unwrap();
        assert!(file.base.io_config().engine.per_message_deflate.is_some());
    }

    #[test]
    fn connection_state_recovery_flags() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            options: ServeOptions,
        }
        let parse = |args: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(
                std::iter::once("serve").chain(args.iter().copied()),
            )
            .unwrap()
            .options
            .io_config()
            .connection_state_recovery
        };
        let on = parse(&["--connection-state-recovery"]).expect("on");
        assert_eq!(on.max_disconnection_duration, Duration::from_secs(120));
        assert!(on.skip_middlewares);
        let short = parse(&[
            "--connection-state-recovery",
            "--max-disconnection-duration",
            "5000",
        ])
        .expect("on");
        assert_eq!(
            short.max_disconnection_duration,
            Duration::from_millis(5000)
        );
        assert_eq!(parse(&["--connection-state-recovery", "false"]), None);
        assert_eq!(parse(&["--max-disconnection-duration", "5000"]), None);
    }
}
