//! Client authentication on the OTLP receiver: a bearer token (inline or
//! from a file that is re-read when it changes) or HTTP basic credentials,
//! checked on every request before anything is decoded.
//!
//! The presented credentials are compared in constant time and never
//! logged or echoed: the answer is a bare UNAUTHENTICATED / 401. Parsing
//! follows RFC 7235, the same on HTTP/1, HTTP/2 and gRPC: the scheme is
//! case-insensitive, whitespace around the value is not part of it (HTTP/1
//! parsers strip it, HTTP/2 delivers it as sent), and a request with more
//! than one `Authorization` header is refused, whichever of them is right.
//! Credentials over plaintext are refused at config time unless every
//! protocol serves TLS or `allow_plaintext: true` says the network is
//! trusted.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use serde::Deserialize;

/// Tokens and passwords are `Secret`s: they stay out of debug output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub bearer_token: Option<crate::config::secret::Secret>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub basic: Option<BasicAuth>,
    /// Accept credentials over plain HTTP/gRPC (a trusted network only).
    #[serde(default)]
    pub allow_plaintext: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: crate::config::secret::Secret,
}

impl AuthConfig {
    /// `plaintext`: some protocol of the receiver serves without TLS.
    pub fn validate(&self, plaintext: bool) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        let methods = usize::from(self.bearer_token.is_some())
            + usize::from(self.bearer_token_file.is_some())
            + usize::from(self.basic.is_some());
        if methods != 1 {
            errors.push((
                "auth",
                "set exactly one of bearer_token, bearer_token_file, basic".to_string(),
            ));
        }
        if self
            .bearer_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            errors.push(("bearer_token", "the token is empty".to_string()));
        }
        if let Some(path) = &self.bearer_token_file
            && let Err(e) = read_token(path)
        {
            errors.push(("bearer_token_file", e));
        }
        if plaintext && !self.allow_plaintext {
            errors.push((
                "allow_plaintext",
                "credentials would travel unencrypted: give every protocol a `tls` section, \
                 or set allow_plaintext: true on a trusted network such as loopback"
                    .to_string(),
            ));
        }
        errors
    }
}

fn read_token(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = crate::config::files::read_small_file(path)?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{} holds no token", path.display()));
    }
    Ok(token.as_bytes().to_vec())
}

/// How often a token file is checked for changes, at most.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

struct TokenFile {
    path: PathBuf,
    checked: Instant,
    modified: Option<SystemTime>,
    /// The token, without the scheme.
    expected: Vec<u8>,
}

enum Expected {
    /// The credentials after the scheme (a token, or base64 of user:password).
    Fixed(Vec<u8>),
    File(Mutex<TokenFile>),
}

pub struct Authenticator {
    /// `Bearer` or `Basic`, compared without regard to case.
    scheme: &'static str,
    expected: Expected,
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        let (scheme, expected) = if let Some(token) = &config.bearer_token {
            (
                "Bearer",
                Expected::Fixed(token.expose().trim().as_bytes().to_vec()),
            )
        } else if let Some(path) = &config.bearer_token_file {
            (
                "Bearer",
                Expected::File(Mutex::new(TokenFile {
                    path: path.clone(),
                    checked: Instant::now(),
                    modified: modified(path),
                    expected: read_token(path)?,
                })),
            )
        } else if let Some(basic) = &config.basic {
            let pair = format!("{}:{}", basic.username, basic.password.expose());
            (
                "Basic",
                Expected::Fixed(
                    base64::engine::general_purpose::STANDARD
                        .encode(pair)
                        .into_bytes(),
                ),
            )
        } else {
            return Err("no authentication method set".to_string());
        };
        Ok(Authenticator { scheme, expected })
    }

    /// Whether the request's `Authorization` headers admit it: exactly one,
    /// with the configured scheme and credentials.
    pub fn admits(&self, headers: &http::HeaderMap) -> bool {
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        match (values.next(), values.next()) {
            (Some(only), None) => self.admits_value(only.as_bytes()),
            _ => false,
        }
    }

    /// One `Authorization` value: `scheme 1*SP credentials`, with optional
    /// whitespace around it.
    fn admits_value(&self, value: &[u8]) -> bool {
        let value = value.trim_ascii();
        let Some(space) = value.iter().position(|&b| b == b' ') else {
            return false;
        };
        let (scheme, rest) = value.split_at(space);
        if !scheme.eq_ignore_ascii_case(self.scheme.as_bytes()) {
            return false;
        }
        let presented = rest.trim_ascii_start();
        match &self.expected {
            Expected::Fixed(expected) => constant_time_eq(presented, expected),
            Expected::File(file) => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                if file.checked.elapsed() >= RELOAD_CHECK {
                    file.checked = Instant::now();
                    let now = modified(&file.path);
                    if now != file.modified {
                        // A file being rewritten may be empty for a moment:
                        // keep the old token until a valid one is readable.
                        match read_token(&file.path) {
                            Ok(token) => {
                                file.expected = token;
                                file.modified = now;
                                tracing::info!(path = %file.path.display(), "bearer token reloaded");
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "bearer token file unreadable; keeping the previous token")
                            }
                        }
                    }
                }
                constant_time_eq(presented, &file.expected)
            }
        }
    }
}

/// Equality whose time depends only on the lengths, not on where the
/// first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> AuthConfig {
        yaml_serde::from_str(yaml).unwrap()
    }

    impl Authenticator {
        /// A request with these `Authorization` values, in order.
        fn admits_all(&self, values: &[&[u8]]) -> bool {
            let mut headers = http::HeaderMap::new();
            for value in values {
                headers.append(
                    http::header::AUTHORIZATION,
                    http::HeaderValue::from_bytes(value).unwrap(),
                );
            }
            self.admits(&headers)
        }

        fn admits_one(&self, value: Option<&[u8]>) -> bool {
            self.admits_all(value.as_slice())
        }
    }

    #[test]
    fn bearer_and_basic_credentials() {
        let bearer =
            Authenticator::new(&config("{ bearer_token: abc, allow_plaintext: true }")).unwrap();
        assert!(bearer.admits_one(Some(b"Bearer abc")));
        assert!(!bearer.admits_one(Some(b"Bearer abd")));
        assert!(!bearer.admits_one(Some(b"Bearer ab")));
        assert!(!bearer.admits_one(None));
        // RFC 7235: the scheme is case-insensitive; whitespace around the
        // value is not part of it.
        assert!(bearer.admits_one(Some(b"bearer abc")));
        assert!(bearer.admits_one(Some(b"BEARER abc")));
        assert!(bearer.admits_one(Some(b"Bearer abc ")));
        assert!(bearer.admits_one(Some(b"Bearer  abc")));
        assert!(!bearer.admits_one(Some(b"Bearerabc")));
        assert!(!bearer.admits_one(Some(b"abc")));
        assert!(!bearer.admits_one(Some(b"Bearer ABC")), "the token is not");
        // More than one header: refused whichever is right.
        assert!(!bearer.admits_all(&[b"Bearer abc", b"Bearer wrong"]));
        assert!(!bearer.admits_all(&[b"Bearer wrong", b"Bearer abc"]));
        assert!(!bearer.admits_all(&[b"Bearer abc", b"Bearer abc"]));
        let basic = Authenticator::new(&config(
            "{ basic: { username: u, password: p }, allow_plaintext: true }",
        ))
        .unwrap();
        // base64("u:p") = "dTpw"
        assert!(basic.admits_one(Some(b"Basic dTpw")));
        assert!(!basic.admits_one(Some(b"Bearer dTpw")));
    }

    #[test]
    fn a_token_file_is_reloaded_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let auth = Authenticator::new(&config(&format!(
            "{{ bearer_token_file: {}, allow_plaintext: true }}",
            path.display()
        )))
        .unwrap();
        assert!(auth.admits_one(Some(b"Bearer first")));
        std::fs::write(&path, "second\n").unwrap();
        // Make the change visible even on coarse mtime clocks.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        if let Expected::File(file) = &auth.expected {
            file.lock().unwrap().checked -= RELOAD_CHECK;
        }
        assert!(auth.admits_one(Some(b"Bearer second")));
        assert!(!auth.admits_one(Some(b"Bearer first")));
    }

    #[test]
    fn plaintext_and_ambiguous_settings_are_config_errors() {
        let fields: Vec<_> = config("{ bearer_token: abc, basic: { username: u, password: p } }")
            .validate(true)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["auth", "allow_plaintext"]);
        let shown = format!(
            "{:?}",
            config("{ bearer_token: hunter2, allow_plaintext: true }")
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
