//! `httpcheck` (also `http_check`): sends one request per run and reports,
//! in the Collector's names, `httpcheck.status` (1 for the response's
//! status class, 0 for the four others, with `http.url`,
//! `http.status_code`, `http.method`, `http.status_class`),
//! `httpcheck.duration` (ms), `httpcheck.error` (a count by
//! `error.message`) and, over TLS, `httpcheck.tls.cert_remaining` (s); plus
//! `httpcheck.phase.duration` (s, by `http.phase`: dns, connect, tls,
//! first_byte, body), which the Collector lacks.
//!
//! The client is hyper's HTTP/1.1 connection over our own resolve,
//! connect and TLS steps, one connection per request, so each phase is
//! timed on its own (reqwest does not expose phase timings). Redirects
//! are followed (up to `max_redirects`) unless `follow_redirects: false`;
//! the phases then add up over the hops.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use regex::Regex;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::certificate::{CertificateDetails, TlsClient, rejection};
use super::{
    Check, CheckError, Observation, Point, TargetConfig, connect_error, milliseconds, resolve,
};
use crate::receivers::hostmetrics::{Number, int_attribute, string_attribute};
use crate::tls::client::ClientTlsConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    /// `http://` or `https://` URL.
    pub endpoint: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A request body.
    pub body: Option<String>,
    /// Status codes that count as up; empty: any 2xx (and 3xx when
    /// redirects are not followed).
    #[serde(default)]
    pub expected_status: Vec<u16>,
    /// A regular expression the response body must match.
    pub body_regex: Option<String>,
    /// A JSON Pointer (RFC 6901, `/status/0/name`) that must exist in the
    /// JSON body, equal to `json_equals` if that is set.
    pub json_pointer: Option<String>,
    pub json_equals: Option<serde_json::Value>,
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// The most body bytes read; a longer body fails the check.
    #[serde(default = "default_max_body")]
    pub max_body_size: usize,
    #[serde(default)]
    pub tls: ClientTlsConfig,
}

fn default_method() -> String {
    "GET".into()
}
fn default_true() -> bool {
    true
}
fn default_max_redirects() -> u32 {
    10
}
fn default_max_body() -> usize {
    1024 * 1024
}

impl TargetConfig for HttpTarget {
    fn compile(&self) -> Result<Arc<dyn Check>, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let uri = match self.endpoint.parse::<Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() =>
            {
                Some(uri)
            }
            Ok(_) => {
                errors.push((
                    "endpoint",
                    format!(
                        "{:?}: expected an http:// or https:// URL with a host",
                        self.endpoint
                    ),
                ));
                None
            }
            Err(e) => {
                errors.push(("endpoint", format!("{:?} is not a URL: {e}", self.endpoint)));
                None
            }
        };
        let method = Method::from_bytes(self.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                errors.push(("method", format!("{:?} is not an HTTP method", self.method)))
            })
            .ok();
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.insert(name, value);
                }
                _ => errors.push((
                    "headers",
                    format!("{name:?}: {value:?} is not a valid header"),
                )),
            }
        }
        for code in &self.expected_status {
            if !(100..=599).contains(code) {
                errors.push((
                    "expected_status",
                    format!("{code} is not an HTTP status code (100..599)"),
                ));
            }
        }
        let body_regex = self.body_regex.as_ref().and_then(|p| {
            Regex::new(p)
                .map_err(|e| {
                    errors.push(("body_regex", format!("invalid regular expression: {e}")))
                })
                .ok()
        });
        if let Some(pointer) = &self.json_pointer
            && !(pointer.is_empty() || pointer.starts_with('/'))
        {
            errors.push((
                "json_pointer",
                format!("{pointer:?}: expected a JSON Pointer like /status or /items/0/name"),
            ));
        }
        if self.json_equals.is_some() && self.json_pointer.is_none() {
            errors.push((
                "json_equals",
                "set json_pointer too: it names the value to compare".to_string(),
            ));
        }
        let tls = match TlsClient::new(&self.tls) {
            Ok(tls) => Some(tls),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        let (Some(uri), Some(method), Some(tls), true) = (uri, method, tls, errors.is_empty())
        else {
            return Err(errors);
        };
        let (tls_config, _) = tls.config(true);
        Ok(Arc::new(HttpCheck {
            endpoint: self.endpoint.clone(),
            uri,
            method,
            headers,
            body: Bytes::from(self.body.clone().unwrap_or_default()),
            expected_status: self.expected_status.clone(),
            body_regex,
            json_pointer: self.json_pointer.clone(),
            json_equals: self.json_equals.clone(),
            follow_redirects: self.follow_redirects,
            max_redirects: self.max_redirects,
            max_body_size: self.max_body_size,
            tls,
            tls_config,
        }))
    }
}

pub struct HttpCheck {
    endpoint: String,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    expected_status: Vec<u16>,
    body_regex: Option<Regex>,
    json_pointer: Option<String>,
    json_equals: Option<serde_json::Value>,
    follow_redirects: bool,
    max_redirects: u32,
    max_body_size: usize,
    tls: TlsClient,
    tls_config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for HttpCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCheck")
            .field("endpoint", &self.endpoint)
            .field("method", &self.method)
            .finish()
    }
}

/// Time spent in each phase, summed over redirect hops.
#[derive(Debug, Default, Clone, Copy)]
pub struct Phases {
    pub dns: Duration,
    pub connect: Duration,
    pub tls: Duration,
    pub first_byte: Duration,
    pub body: Duration,
}

struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    certificate: Option<CertificateDetails>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Aborts the connection's driver task when the exchange ends or is
/// cancelled at the deadline, so hanging servers leave no tasks behind.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

impl HttpCheck {
    /// One request on a fresh connection.
    async fn exchange(
        &self,
        uri: &Uri,
        method: &Method,
        phases: &mut Phases,
    ) -> Result<Response, CheckError> {
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let started = Instant::now();
        let addresses = resolve(host, port).await?;
        phases.dns += started.elapsed();
        let started = Instant::now();
        let tcp = TcpStream::connect(&addresses[..])
            .await
            .map_err(|e| connect_error(&e))?;
        let _ = tcp.set_nodelay(true);
        phases.connect += started.elapsed();
        let mut certificate = None;
        let stream: Box<dyn Io> = if https {
            let started = Instant::now();
            let name = self.tls.server_name(host)?;
            let tls = tokio_rustls::TlsConnector::from(self.tls_config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    match e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    {
                        Some(rustls_error @ rustls::Error::InvalidCertificate(_)) => {
                            rejection(rustls_error)
                        }
                        _ => CheckError::new("tls_error", format!("TLS handshake: {e}")),
                    }
                })?;
            phases.tls += started.elapsed();
            certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| CertificateDetails::parse(leaf.as_ref()).ok());
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let started = Instant::now();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CheckError::new("http_error", format!("HTTP handshake: {e}")))?;
        let _driver = AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let mut request = Request::builder()
            .method(method.clone())
            .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .body(Full::new(if method == self.method {
                self.body.clone()
            } else {
                Bytes::new()
            }))
            .map_err(|e| CheckError::new("invalid_endpoint", e.to_string()))?;
        *request.headers_mut() = self.headers.clone();
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        if let Ok(value) = HeaderValue::from_str(authority) {
            request
                .headers_mut()
                .entry(http::header::HOST)
                .or_insert(value);
        }
        request
            .headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(HeaderValue::from_static(concat!(
                "sidewatch-httpcheck/",
                env!("CARGO_PKG_VERSION")
            )));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| CheckError::new("http_error", format!("request: {e}")))?;
        phases.first_byte += started.elapsed();
        let started = Instant::now();
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_body_size)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    CheckError::new(
                        "body_too_large",
                        format!(
                            "the body is longer than max_body_size {} bytes",
                            self.max_body_size
                        ),
                    )
                } else {
                    CheckError::new("http_error", format!("reading the body: {e}"))
                }
            })?
            .to_bytes();
        phases.body += started.elapsed();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            certificate,
        })
    }

    /// Follows redirects from the configured request to the final response.
    async fn fetch(&self, phases: &mut Phases) -> Result<Response, CheckError> {
        let mut uri = self.uri.clone();
        let mut method = self.method.clone();
        let mut hops = 0;
        loop {
            let response = self.exchange(&uri, &method, phases).await?;
            if !(self.follow_redirects && response.status.is_redirection()) {
                return Ok(response);
            }
            let Some(location) = response
                .headers
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
            else {
                return Ok(response);
            };
            if hops >= self.max_redirects {
                return Err(CheckError::new(
                    "too_many_redirects",
                    format!("more than {} redirects", self.max_redirects),
                ));
            }
            hops += 1;
            uri = redirect_target(&uri, location).ok_or_else(|| {
                CheckError::new(
                    "http_error",
                    format!("redirect to an unusable location {location:?}"),
                )
            })?;
            // 303, and 301/302 after a POST, continue as GET (what browsers do).
            if response.status == StatusCode::SEE_OTHER
                || (method == Method::POST && matches!(response.status.as_u16(), 301 | 302))
            {
                method = Method::GET;
            }
        }
    }

    fn validate(&self, response: &Response) -> Result<(), CheckError> {
        let code = response.status.as_u16();
        let status_ok = if self.expected_status.is_empty() {
            response.status.is_success()
                || (!self.follow_redirects && response.status.is_redirection())
        } else {
            self.expected_status.contains(&code)
        };
        if !status_ok {
            let expected = if self.expected_status.is_empty() {
                "2xx".to_string()
            } else {
                format!("{:?}", self.expected_status)
            };
            return Err(CheckError::new(
                "unexpected_status",
                format!("status {code}, expected {expected}"),
            ));
        }
        if let Some(regex) = &self.body_regex
            && !regex.is_match(&String::from_utf8_lossy(&response.body))
        {
            return Err(CheckError::new(
                "body_mismatch",
                format!("the body does not match {:?}", regex.as_str()),
            ));
        }
        if let Some(pointer) = &self.json_pointer {
            let json: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| {
                CheckError::new("json_mismatch", format!("the body is not JSON: {e}"))
            })?;
            let found = json.pointer(pointer).ok_or_else(|| {
                CheckError::new("json_mismatch", format!("no value at {pointer}"))
            })?;
            if let Some(expected) = &self.json_equals
                && found != expected
            {
                return Err(CheckError::new(
                    "json_mismatch",
                    format!("{pointer} is {found}, expected {expected}"),
                ));
            }
        }
        Ok(())
    }

    fn observation(
        &self,
        result: Result<Response, CheckError>,
        phases: Option<Phases>,
        duration: Duration,
    ) -> Observation {
        let url = || string_attribute("http.url", self.endpoint.clone());
        let mut points = vec![Point::gauge(
            "httpcheck.duration",
            "ms",
            "Measures the duration of the HTTP check.",
            milliseconds(duration),
            vec![url()],
        )];
        if let Some(phases) = phases {
            for (phase, time) in [
                ("dns", phases.dns),
                ("connect", phases.connect),
                ("tls", phases.tls),
                ("first_byte", phases.first_byte),
                ("body", phases.body),
            ] {
                if phase == "tls" && self.uri.scheme_str() != Some("https") {
                    continue;
                }
                points.push(Point::gauge(
                    "httpcheck.phase.duration",
                    "s",
                    "Time of one phase of the HTTP check (dns, connect, tls, first_byte, body).",
                    Number::Double(time.as_secs_f64()),
                    vec![url(), string_attribute("http.phase", phase)],
                ));
            }
        }
        let error = match result {
            Err(error) => Some(error),
            Ok(response) => {
                let code = response.status.as_u16();
                let class = status_class(code);
                for each in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
                    points.push(Point::gauge(
                        "httpcheck.status",
                        "1",
                        "1 if the check resulted in status_code matching the status_class, otherwise 0.",
                        Number::Int((each == class) as i64),
                        vec![
                            url(),
                            int_attribute("http.status_code", i64::from(code)),
                            string_attribute("http.method", self.method.as_str()),
                            string_attribute("http.status_class", each),
                        ],
                    ));
                }
                if let Some(certificate) = &response.certificate {
                    let mut attributes = vec![url()];
                    attributes.extend(certificate.attributes("http.tls"));
                    points.push(Point::gauge(
                        "httpcheck.tls.cert_remaining",
                        "s",
                        "Time in seconds until the server's certificate expires.",
                        Number::Int(certificate.seconds_left(SystemTime::now())),
                        attributes,
                    ));
                }
                self.validate(&response).err()
            }
        };
        if let Some(error) = &error {
            points.push(Point::counter(
                "httpcheck.error",
                "{error}",
                "Records errors occurring during HTTP check.",
                vec![
                    url(),
                    string_attribute("error.message", error.message.clone()),
                ],
            ));
        }
        Observation {
            duration,
            error,
            points,
            resource: Vec::new(),
        }
    }
}

/// `location` resolved against `base` (absolute, or absolute-path).
fn redirect_target(base: &Uri, location: &str) -> Option<Uri> {
    let parsed: Uri = location.parse().ok()?;
    if parsed.scheme().is_some() {
        return Some(parsed);
    }
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let current = base.path();
        let directory = &current[..current.rfind('/').map(|i| i + 1).unwrap_or(0)];
        format!(
            "{}{location}",
            if directory.is_empty() { "/" } else { directory }
        )
    };
    Uri::builder()
        .scheme(base.scheme()?.clone())
        .authority(base.authority()?.clone())
        .path_and_query(path)
        .build()
        .ok()
}

#[async_trait::async_trait]
impl Check for HttpCheck {
    fn target(&self) -> &str {
        &self.endpoint
    }

    async fn attempt(&self, _timeout: Duration) -> Observation {
        let began = Instant::now();
        let mut phases = Phases::default();
        let result = self.fetch(&mut phases).await;
        self.observation(result, Some(phases), began.elapsed())
    }

    fn timed_out(&self, timeout: Duration) -> Observation {
        self.observation(
            Err(CheckError::new(
                "timeout",
                format!(
                    "no complete response within {}",
                    humantime::format_duration(timeout)
                ),
            )),
            None,
            timeout,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_current_url() {
        let base: Uri = "http://127.0.0.1:8080/a/b?x=1".parse().unwrap();
        assert_eq!(
            redirect_target(&base, "/c").unwrap().to_string(),
            "http://127.0.0.1:8080/c"
        );
        assert_eq!(
            redirect_target(&base, "c").unwrap().to_string(),
            "http://127.0.0.1:8080/a/c"
        );
        assert_eq!(
            redirect_target(&base, "https://example.com/d")
                .unwrap()
                .to_string(),
            "https://example.com/d"
        );
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(302), "3xx");
        assert_eq!(status_class(503), "5xx");
    }
}
