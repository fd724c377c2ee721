//! CORS on the OTLP/HTTP receiver, in the Collector's shape and with its
//! answers (its confighttp uses github.com/rs/cors):
//!
//! ```yaml
//! cors:
//!   allowed_origins: [https://*.example.com, http://localhost:3000]  # `*` alone: any origin
//!   allowed_headers: [X-Tenant]   # beyond Accept, Content-Type, X-Requested-With; `*`: any
//!   max_age: 7200                 # seconds a browser may cache a preflight
//! ```
//!
//! A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! is answered 204 here, before routing: with `Access-Control-Allow-Origin`
//! (the origin itself, or `*` when any is allowed), `-Allow-Methods`,
//! `-Allow-Headers` and `-Max-Age` when the origin, method and headers are
//! allowed, and without them otherwise, so the browser refuses. Other
//! requests from an allowed origin get `Access-Control-Allow-Origin` on
//! their answer. No `allowed_origins`: CORS is off, as in the Collector.
//!
//! Written by hand rather than with tower-http's CorsLayer: that layer
//! has no origin wildcards of the Collector's form and answers preflights
//! with 200, and this is about a hundred lines.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Seconds; 0 or unset sends no Access-Control-Max-Age.
    #[serde(default)]
    pub max_age: u64,
}

/// Headers rs/cors always allows.
const ALWAYS_ALLOWED: [&str; 4] = ["accept", "content-type", "x-requested-with", "origin"];
/// The methods the Collector's receiver allows across origins (rs/cors's
/// default set).
const METHODS: [&str; 3] = ["GET", "POST", "HEAD"];

impl CorsConfig {
    /// Whether an origin is allowed: exact (case-insensitive), or a
    /// pattern with one `*` standing for any run of characters.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.allowed_origins.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.split_once('*') {
                None => pattern == origin,
                Some((prefix, suffix)) => {
                    origin.len() >= prefix.len() + suffix.len()
                        && origin.starts_with(prefix)
                        && origin.ends_with(suffix)
                }
            }
        })
    }

    fn any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }

    fn allows_header(&self, name: &str) -> bool {
        let name = name.trim().to_ascii_lowercase();
        ALWAYS_ALLOWED.contains(&name.as_str())
            || self
                .allowed_headers
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(&name))
    }

    fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin() {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// The answer to a preflight, or `None` when `method` and `headers`
    /// are not one (the request goes on to the routes).
    pub fn preflight(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<super::serve::Response> {
        if !self.enabled() || method != Method::OPTIONS {
            return None;
        }
        let origin = headers.get(header::ORIGIN)?;
        let requested = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
        let mut response = super::serve::Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        out.insert(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        let origin_ok = origin.to_str().is_ok_and(|o| self.allows_origin(o));
        let method_ok = requested
            .to_str()
            .is_ok_and(|m| METHODS.contains(&m.to_ascii_uppercase().as_str()));
        let requested_headers = headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let headers_ok = requested_headers
            .split(',')
            .filter(|h| !h.trim().is_empty())
            .all(|h| self.allows_header(h));
        if origin_ok && method_ok && headers_ok {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                self.allow_origin_value(origin),
            );
            if let Ok(method) =
                HeaderValue::from_str(&requested.to_str().unwrap_or_default().to_ascii_uppercase())
            {
                out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method);
            }
            if !requested_headers.is_empty()
                && let Ok(value) = HeaderValue::from_str(requested_headers)
            {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
            }
            if self.max_age > 0 {
                out.insert(header::ACCESS_CONTROL_MAX_AGE, self.max_age.into());
            }
        }
        Some(response)
    }

    /// Adds the origin headers to the answer of an actual request.
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut super::serve::Response) {
        if !self.enabled() {
            return;
        }
        let out = response.headers_mut();
        out.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin
            && origin.to_str().is_ok_and(|o| self.allows_origin(o))
        {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                self.allow_origin_value(origin),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], headers: &[&str]) -> CorsConfig {
        CorsConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            max_age: 7200,
        }
    }

    fn preflight(c: &CorsConfig, origin: &str, method: &str, headers: &str) -> HeaderMap {
        let mut request = HeaderMap::new();
        request.insert(header::ORIGIN, origin.parse().unwrap());
        request.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            method.parse().unwrap(),
        );
        if !headers.is_empty() {
            request.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                headers.parse().unwrap(),
            );
        }
        let response = c.preflight(&Method::OPTIONS, &request).unwrap();
        assert_eq!(response.status(), 204);
        response.headers().clone()
    }

    #[test]
    fn origin_patterns_match_one_wildcard_run() {
        let c = cors(&["https://*.example.com", "http://localhost:3000"], &[]);
        assert!(c.allows_origin("https://app.example.com"));
        assert!(c.allows_origin("HTTPS://A.B.EXAMPLE.COM"));
        assert!(!c.allows_origin("https://example.com"));
        assert!(!c.allows_origin("http://app.example.com"));
        assert!(c.allows_origin("http://localhost:3000"));
        assert!(!c.allows_origin("http://localhost:3001"));
    }

    #[test]
    fn preflights_answer_with_allow_headers_only_when_everything_is_allowed() {
        let c = cors(&["https://*.example.com"], &["X-Tenant"]);
        let ok = preflight(
            &c,
            "https://app.example.com",
            "POST",
            "content-type, x-tenant",
        );
        assert_eq!(
            ok[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(ok[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(
            ok[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "content-type, x-tenant"
        );
        assert_eq!(ok[header::ACCESS_CONTROL_MAX_AGE], "7200");
        for (origin, method, headers) in [
            ("https://evil.test", "POST", ""),
            ("https://app.example.com", "DELETE", ""),
            ("https://app.example.com", "POST", "x-secret"),
        ] {
            let refused = preflight(&c, origin, method, headers);
            assert!(
                !refused.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
                "{origin} {method} {headers}"
            );
        }
        let any = preflight(
            &cors(&["*"], &["*"]),
            "https://x.test",
            "POST",
            "x-anything",
        );
        assert_eq!(any[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[test]
    fn without_origins_cors_is_off() {
        let c = cors(&[], &["X-Tenant"]);
        let mut request = HeaderMap::new();
        request.insert(header::ORIGIN, "https://a.test".parse().unwrap());
        request.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            "POST".parse().unwrap(),
        );
        assert!(c.preflight(&Method::OPTIONS, &request).is_none());
    }
}
