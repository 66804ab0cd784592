//! Operating `ferrio serve`: `--admin user:password` instruments the server for the official Socket.IO
//! admin UI, whose web app (the `ui/dist` folder of the `@socket.io/admin-ui` npm package, not shipped
//! with ferrio) is served under `/admin/`; `--metrics` serves `/metrics` for Prometheus.

use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::bundle::ClientBundle;
use crate::config::ServeOptions;

/// The release `interop/package-lock.json` pins, named in the page shown when the app is missing.
pub const ADMIN_UI_PACKAGE: &str = "@socket.io/admin-ui@0.5.1";

/// The web app's folder in a `node_modules`.
const DIST_IN_NODE_MODULES: &str = "node_modules/@socket.io/admin-ui/ui/dist";

/// Where the admin web app is served from, if anywhere.
#[derive(Debug)]
pub struct AdminUi {
    dist: Option<PathBuf>,
}

/// Instruments `io` when `--admin` is given: `Ok(None)` without it.
pub fn setup(io: &ferrio::Io, opts: &ServeOptions) -> Result<Option<Arc<AdminUi>>, String> {
    let Some(spec) = &opts.admin else {
        return Ok(None);
    };
    let (user, password) = spec
        .split_once(':')
        .filter(|(u, p)| !u.is_empty() && !p.is_empty())
        .ok_or_else(|| "--admin takes USER:PASSWORD".to_owned())?;
    // The hash lives in memory only; its cost is what each login attempt pays.
    let hash = bcrypt::hash(password, 10).map_err(|e| format!("--admin: {e}"))?;
    let options = ferrio_admin::AdminOptions::new(ferrio_admin::Auth::Basic {
        username: user.to_owned(),
        password: hash,
    });
    ferrio_admin::instrument(io, options).map_err(|e| format!("--admin: {e}"))?;
    let dist = match &opts.admin_ui_dist {
        Some(d) => Some(d.clone()),
        None => Some(PathBuf::from(DIST_IN_NODE_MODULES)),
    }
    .filter(|d| d.join("index.html").is_file());
    match &dist {
        Some(d) => tracing::info!(dist = %d.display(), "admin UI at /admin/"),
        None => tracing::warn!(
            "admin UI instrumented, but its web app is missing: npm install {ADMIN_UI_PACKAGE}"
        ),
    }
    Ok(Some(Arc::new(AdminUi { dist })))
}

fn response(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    res
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        _ => "application/octet-stream",
    }
}

impl AdminUi {
    /// Answers a request under `/admin`.
    async fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        if path == "/admin" {
            // The app's files are relative to the folder: it must be loaded as `/admin/`.
            let mut res = response(StatusCode::MOVED_PERMANENTLY, "text/plain", "");
            res.headers_mut().insert(
                header::LOCATION,
                header::HeaderValue::from_static("/admin/"),
            );
            return res;
        }
        let Some(dist) = &self.dist else {
            let page = format!(
                "<!DOCTYPE html><title>Socket.IO admin UI</title><p>This server is instrumented for the \
                 Socket.IO admin UI, but its web app is not installed. Run <code>npm install \
                 {ADMIN_UI_PACKAGE}</code> in the directory <code>ferrio serve</code> starts from, or \
                 pass <code>--admin-ui-dist</code> its <code>ui/dist</code> folder. Any hosted copy of \
                 the app can also connect to this server.</p>"
            );
            return response(StatusCode::NOT_FOUND, "text/html; charset=utf-8", page);
        };
        let rel = path.trim_start_matches("/admin/");
        let rel = if rel.is_empty() { "index.html" } else { rel };
        let rel = Path::new(rel);
        // Only plain names below the folder: no `..`, no absolute path.
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return response(StatusCode::NOT_FOUND, "text/plain", "Not Found");
        }
        let file = dist.join(rel);
        match tokio::fs::read(&file).await {
            Ok(body) => response(StatusCode::OK, content_type(&file), body),
            Err(_) => response(StatusCode::NOT_FOUND, "text/plain", "Not Found"),
        }
    }
}

/// With `--metrics`: the process-wide recorder every `metrics` call of the server goes to.
pub fn metrics(opts: &ServeOptions) -> Result<Option<PrometheusHandle>, String> {
    if opts.metrics != Some(true) {
        return Ok(None);
    }
    PrometheusBuilder::new()
        .install_recorder()
        .map(Some)
        .map_err(|e| format!("--metrics: {e}"))
}

/// Figures of the process read when `/metrics` is scraped: tasks alive on the serving threads' tokio
/// runtimes (a task leak shows as a figure that only grows while the clients come and go), and the
/// connections moved between them.
fn runtime_gauges() -> String {
    let tasks = crate::serve::alive_tasks();
    let moved = crate::ops::MOVED.load(std::sync::atomic::Ordering::Relaxed);
    format!(
        "# HELP ferrio_runtime_alive_tasks Tasks alive on the tokio runtimes.\n\
         # TYPE ferrio_runtime_alive_tasks gauge\n\
         ferrio_runtime_alive_tasks {tasks}\n\
         # HELP ferrio_connections_moved_total Connections that followed a long-polling session to its serving thread.\n\
         # TYPE ferrio_connections_moved_total counter\n\
         ferrio_connections_moved_total {moved}\n"
    )
}

/// `/metrics` with `--metrics`, the admin app under `/admin` when instrumented, else the demo page.
pub async fn admin_or_page(
    req: Request<ferrio::RequestBody>,
    (admin, metrics): (Option<Arc<AdminUi>>, Option<PrometheusHandle>),
    bundle: Arc<ClientBundle>,
    path: Arc<str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(m) = &metrics
        && req.uri().path() == "/metrics"
    {
        return Ok(response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            m.render() + &runtime_gauges(),
        ));
    }
    if let Some(ui) = &admin {
        let p = req.uri().path();
        if p == "/admin" || p.starts_with("/admin/") {
            return Ok(ui.answer(p).await);
        }
    }
    crate::page::page(req, bundle, path).await
}
