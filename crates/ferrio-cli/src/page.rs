//! The demo page of `ferrio serve`, and the service in front of the server that makes sure the browser
//! bundle is there (fetched if need be) before the page or a bundle file is answered.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

use crate::bundle::{self, ClientBundle, Source, Status};

const TEMPLATE: &str = include_str!("demo.html");

/// The server's path with a trailing slash, as the bundle is served under it.
fn prefix(path: &str) -> String {
    if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The demo page for a server on `path`: the chat when the bundle is served, else what to do.
pub fn render(bundle: &ClientBundle, path: &str) -> String {
    let (before, rest) = TEMPLATE
        .split_once("<!--client-->")
        .expect("demo.html has a client section");
    let (client, after) = rest
        .split_once("<!--/client-->")
        .expect("demo.html closes its client section");
    match bundle.status() {
        Status::Ready => {
            let src = format!("{}{}", prefix(path), bundle.script());
            // JSON is a JavaScript string literal; `<` escaped so it cannot close the script.
            let path_js = serde_json::Value::from(path)
                .to_string()
                .replace('<', "\\u003c");
            let client = client
                .replace("{{BUNDLE}}", &escape_html(&src))
                .replace("{{PATH}}", &path_js);
            format!(
                "{}{client}{after}",
                before.replace("{{STATUS}}", "connecting")
            )
        }
        Status::Missing(why) => format!(
            "{}{}{after}",
            before.replace("{{STATUS}}", "not connected"),
            instructions(bundle, &why)
        ),
    }
}

/// What to do when the browser client is missing, in plain words.
fn instructions(bundle: &ClientBundle, why: &str) -> String {
    let version = escape_html(bundle.version());
    let mut ways = vec![
        format!(
            "install it in the folder you start the server from: <code>npm install \
             socket.io-client@{version}</code> (ferrio serves <code>./node_modules/socket.io-client/dist</code>);"
        ),
        "or give its folder: <code>ferrio serve --client-dist PATH/node_modules/socket.io-client/dist</code> \
         (or the <code>FERRIO_CLIENT_DIST</code> environment variable);"
            .to_owned(),
    ];
    match bundle.source() {
        Source::Off => {
            ways = vec!["start the server with <code>--serve-client true</code>;".to_owned()];
        }
        Source::Fetch { .. } => ways.push(
            "or, once the registry is reachable (<code>FERRIO_NPM_REGISTRY</code> or \
             <code>npm_config_registry</code> name another one), restart the server: it downloads the \
             pinned release into its cache."
                .to_owned(),
        ),
        _ => {}
    }
    let items: String = ways.iter().map(|w| format!("<li>{w}</li>\n")).collect();
    format!(
        "<div id=\"missing\" class=\"missing\">\n<p><strong>The browser client (socket.io-client) is \
         not available</strong>, so this page cannot connect: {}</p>\n<p>To fix it:</p>\n<ul>\n{items}</ul>\n\
         <p>then restart <code>ferrio serve</code> and reload this page.</p>\n</div>\n",
        escape_html(why)
    )
}

/// Answers `/` with the demo page, anything else with 404.
pub async fn page(
    req: Request<ferrio::RequestBody>,
    bundle: Arc<ClientBundle>,
    path: Arc<str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/" {
        let mut res = Response::new(Full::new(Bytes::from_static(b"Not Found")));
        *res.status_mut() = StatusCode::NOT_FOUND;
        return Ok(res);
    }
    let mut res = Response::new(Full::new(Bytes::from(render(&bundle, &path))));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(res)
}

/// In front of the whole server: a request for the page or a bundle file first waits for the bundle
/// (the first one fetches it when it comes from the registry), so the browser never gets a 404 for a
/// bundle that was about to arrive.
#[derive(Clone)]
pub struct BundleGate<S> {
    inner: S,
    bundle: Arc<ClientBundle>,
    prefix: Arc<str>,
}

impl<S> BundleGate<S> {
    /// Wraps `inner`, a server on `path`.
    pub fn new(inner: S, bundle: Arc<ClientBundle>, path: &str) -> Self {
        BundleGate {
            inner,
            bundle,
            prefix: prefix(path).into(),
        }
    }
}

impl<S, B> tower::Service<Request<B>> for BundleGate<S>
where
    S: tower::Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Socket.IO traffic goes straight through: only the page and the bundle files wait, and only
        // until the fetch is over.
        if !self.bundle.fetch_pending() || !bundle::wanted_by(req.uri().path(), &self.prefix) {
            return Either::Left(self.inner.call(req));
        }
        // The instance made ready by `poll_ready` answers; a clone takes its place for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let bundle = self.bundle.clone();
        Either::Right(Box::pin(async move {
            bundle.ensure().await;
            inner.call(req).await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn page_with_and_without_the_bundle() {
        let tmp = tempfile::tempdir().unwrap();
        let dist = tmp.path().join("dist");
        std::fs::create_dir_all(&dist).unwrap();
        let given = bundle::resolve(Some(&dist), true, Path::new("/"), |_| None).unwrap();

        let missing = render(&given, "/socket.io/");
        assert!(missing.contains("id=\"missing\""));
        assert!(missing.contains("npm install socket.io-client@4.8.4"));
        assert!(missing.contains("--client-dist"));
        assert!(!missing.contains("<script"), "no script that would 404");
        assert!(!missing.contains("{{"), "placeholders filled");

        std::fs::write(dist.join(bundle::MAIN_FILE), "x").unwrap();
        let ready = render(&given, "/rt/<x>");
        assert!(ready.contains("<script src=\"/rt/&lt;x&gt;/socket.io.min.js\"></script>"));
        assert!(ready.contains("path: \"/rt/\\u003cx>\""));
        assert!(!ready.contains("id=\"missing\""));
        assert!(!ready.contains("{{"), "placeholders filled");

        let msgpack = bundle::resolve(Some(&dist), true, Path::new("/"), |_| None)
            .unwrap()
            .for_parser(crate::config::ParserKind::Msgpack);
        let ready = render(&msgpack, "/socket.io/");
        assert!(ready.contains("<script src=\"/socket.io/socket.io.msgpack.min.js\"></script>"));

        let off = bundle::resolve(None, false, Path::new("/"), |_| None).unwrap();
        assert!(render(&off, "/socket.io/").contains("--serve-client true"));
    }
}
