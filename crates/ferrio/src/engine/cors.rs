//! Cross-origin policy (`cors`): which origins may talk to the server, and the headers that say so.

use std::fmt;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};

/// Which origins are allowed.
#[derive(Clone)]
pub enum CorsOrigin {
    /// Any origin, answered with `Access-Control-Allow-Origin: *`. Credentials are never allowed with it:
    /// a server that echoed any origin together with `Allow-Credentials: true` would let every site act
    /// as its users.
    Any,
    /// Exactly these origins (`https://example.com`).
    List(Vec<String>),
    /// Origins matching this regular expression (anchor it yourself).
    Regex(regex::Regex),
    /// Origins for which the function returns true.
    Fn(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl fmt::Debug for CorsOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorsOrigin::Any => f.write_str("Any"),
            CorsOrigin::List(l) => f.debug_tuple("List").field(l).finish(),
            CorsOrigin::Regex(r) => f.debug_tuple("Regex").field(&r.as_str()).finish(),
            CorsOrigin::Fn(_) => f.write_str("Fn(..)"),
        }
    }
}

/// The `cors` option.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Allowed origins.
    pub origin: CorsOrigin,
    /// Methods announced to preflight requests (`GET,HEAD,PUT,PATCH,POST,DELETE`).
    pub methods: Vec<String>,
    /// Headers announced to preflight requests; `None` echoes `Access-Control-Request-Headers`.
    pub allowed_headers: Option<Vec<String>>,
    /// `Access-Control-Expose-Headers`.
    pub exposed_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true` (only with an explicit origin policy).
    pub credentials: bool,
    /// `Access-Control-Max-Age`, in seconds, for preflight answers.
    pub max_age: Option<u64>,
}

impl Cors {
    /// Any origin, no credentials.
    pub fn any() -> Self {
        Self::new(CorsOrigin::Any)
    }

    /// Only the listed origins.
    pub fn origins<I: IntoIterator<Item = S>, S: Into<String>>(origins: I) -> Self {
        Self::new(CorsOrigin::List(
            origins.into_iter().map(Into::into).collect(),
        ))
    }

    /// A policy with the given origins and the defaults of the `cors` package for the rest.
    pub fn new(origin: CorsOrigin) -> Self {
        Cors {
            origin,
            methods: ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]
                .map(String::from)
                .to_vec(),
            allowed_headers: None,
            exposed_headers: vec![],
            credentials: false,
            max_age: None,
        }
    }

    /// Whether `origin` may use the server.
    pub fn allows(&self, origin: &str) -> bool {
        match &self.origin {
            CorsOrigin::Any => true,
            CorsOrigin::List(l) => l.iter().any(|o| o == origin),
            CorsOrigin::Regex(r) => r.is_match(origin),
            CorsOrigin::Fn(f) => f(origin),
        }
    }

    /// Adds the headers of an actual (non-preflight) response for an allowed `origin`.
    pub(crate) fn apply(&self, origin: &HeaderValue, out: &mut HeaderMap) {
        if matches!(self.origin, CorsOrigin::Any) {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        } else {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            out.append(header::VARY, HeaderValue::from_static("Origin"));
            if self.credentials {
                out.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
        if !self.exposed_headers.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.exposed_headers.join(","))
        {
            out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }

    /// Adds the headers of a preflight answer for an allowed `origin`.
    pub(crate) fn apply_preflight(
        &self,
        origin: &HeaderValue,
        request: &HeaderMap,
        out: &mut HeaderMap,
    ) {
        self.apply(origin, out);
        if let Ok(v) = HeaderValue::from_str(&self.methods.join(",")) {
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        match &self.allowed_headers {
            Some(h) => {
                if let Ok(v) = HeaderValue::from_str(&h.join(",")) {
                    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
                }
            }
            None => {
                if let Some(v) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
                    out.append(
                        header::VARY,
                        HeaderValue::from_static("Access-Control-Request-Headers"),
                    );
                }
            }
        }
        if let Some(age) = self.max_age {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_never_reflects_with_credentials() {
        let mut c = Cors::any();
        c.credentials = true;
        let mut out = HeaderMap::new();
        c.apply(&HeaderValue::from_static("https://evil.example"), &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(out.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }

    #[test]
    fn list_regex_and_fn() {
        let c = Cors::origins(["https://a.example"]);
        assert!(c.allows("https://a.example"));
        assert!(!c.allows("https://b.example"));
        let c = Cors::new(CorsOrigin::Regex(
            regex::Regex::new(r"^https://[a-z]+\.example$").unwrap(),
        ));
        assert!(c.allows("https://b.example"));
        assert!(!c.allows("https://b.example.evil"));
        let c = Cors::new(CorsOrigin::Fn(Arc::new(|o| o.ends_with(":8080"))));
        assert!(c.allows("http://x:8080"));
        assert!(!c.allows("http://x:8081"));
    }

    #[test]
    fn preflight_headers() {
        let mut c = Cors::origins(["https://a.example"]);
        c.credentials = true;
        c.max_age = Some(600);
        let mut req = HeaderMap::new();
        req.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-token"),
        );
        let mut out = HeaderMap::new();
        c.apply_preflight(
            &HeaderValue::from_static("https://a.example"),
            &req,
            &mut out,
        );
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://a.example"
        );
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_HEADERS], "x-token");
        assert_eq!(out[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET,HEAD,PUT,PATCH,POST,DELETE"
        );
    }
}
