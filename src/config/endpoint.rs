//! Listen addresses (`host:port`) and exporter URLs in config.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Deserializer};

/// An address to listen on, as the Collector reads one: an IP address,
/// a host name resolved when the listener binds (`otel-collector:4317`, a
/// compose service name), or an empty host (`:8888`), which means every
/// interface. `localhost` means 127.0.0.1. Binding every interface is
/// logged when it happens, so it stays a visible choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    host: ListenHost,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ListenHost {
    Ip(IpAddr),
    /// `:port`: every interface.
    Empty,
    Name(String),
}

impl ListenAddress {
    pub fn loopback(port: u16) -> Self {
        Self::ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
    }

    pub fn ip(address: SocketAddr) -> Self {
        ListenAddress {
            host: ListenHost::Ip(address.ip()),
            port: address.port(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(address) = text.parse::<SocketAddr>() {
            return Ok(Self::ip(address));
        }
        let expected = "expected host:port, like 127.0.0.1:4317, otel-collector:4317 or :4317 (every interface)";
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("invalid endpoint {text:?}: {expected}"));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port {port:?} in endpoint {text:?}: {expected}"))?;
        let host = match host {
            "" => ListenHost::Empty,
            "localhost" => ListenHost::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            name if is_host_name(name) => ListenHost::Name(name.to_ascii_lowercase()),
            _ => {
                return Err(format!(
                    "invalid host {host:?} in endpoint {text:?}: {expected}"
                ));
            }
        };
        Ok(ListenAddress { host, port })
    }

    /// The socket address to bind: a host name is resolved now (its first
    /// address), so a name that only resolves inside the deployment (a
    /// compose or Kubernetes service) is fine at `validate` time.
    pub fn resolve(&self) -> std::io::Result<SocketAddr> {
        let address = match &self.host {
            ListenHost::Ip(ip) => SocketAddr::new(*ip, self.port),
            ListenHost::Empty => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), self.port),
            ListenHost::Name(name) => {
                use std::net::ToSocketAddrs;
                (name.as_str(), self.port)
                    .to_socket_addrs()
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("cannot resolve host {name:?}: {e}"))
                    })?
                    .next()
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            format!("host {name:?} resolves to no address"),
                        )
                    })?
            }
        };
        if address.ip().is_unspecified() {
            tracing::warn!(
                endpoint = %self,
                "listening on every interface, as the endpoint asks; write 127.0.0.1 to stay local"
            );
        }
        Ok(address)
    }
}

/// Letters, digits, `-` and `.`: a DNS name as a listener may be given.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            ListenHost::Ip(ip) => SocketAddr::new(*ip, self.port).fmt(f),
            ListenHost::Empty => write!(f, ":{}", self.port),
            ListenHost::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

impl<'de> Deserialize<'de> for ListenAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ListenAddress::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An exporter's destination: an absolute http or https URL. A bare
/// `host:port` is taken as `http://host:port`, as the Collector's otlp
/// exporter accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(pub http::Uri);

impl EndpointUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = "expected a URL like http://127.0.0.1:4317";
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let uri: http::Uri = with_scheme
            .parse()
            .map_err(|e| format!("invalid endpoint {text:?} ({e}): {expected}"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            other => {
                return Err(format!(
                    "unsupported scheme {:?} in endpoint {text:?}: expected http or https",
                    other.unwrap_or("")
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("endpoint {text:?} has no host: {expected}"));
        }
        // `http::Uri` keeps a port it cannot read (`:32417x`, `:99999`) and
        // then reports none, so clients would quietly connect to 80 or 443.
        if let Some(port) = written_port(uri.authority().map(|a| a.as_str()).unwrap_or_default())
            && !port.parse::<u16>().is_ok_and(|p| p != 0)
        {
            return Err(format!(
                "invalid port {port:?} in endpoint {text:?}: expected a number from 1 to 65535"
            ));
        }
        Ok(EndpointUrl(uri))
    }

    /// `scheme://host:port`, for logs and errors: no credentials, path or
    /// query (where some services put a key). The port is the scheme's
    /// default when none is written.
    pub fn origin(&self) -> String {
        let scheme = self.0.scheme_str().unwrap_or("http");
        let host = self.0.host().unwrap_or_default();
        let port = self
            .0
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        format!("{scheme}://{host}:{port}")
    }

    pub fn as_str(&self) -> String {
        self.0.to_string()
    }

    /// The URL with `path` appended to its own path (no double slashes).
    pub fn join(&self, path: &str) -> String {
        let base = self.0.to_string();
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }
}

/// The port as written after the host of an authority (`user@host:port`,
/// `[::1]:port`), if any.
fn written_port(authority: &str) -> Option<&str> {
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let after_host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or("", |(_, after)| after),
        None => host_port.find(':').map_or("", |at| &host_port[at..]),
    };
    after_host.strip_prefix(':')
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for EndpointUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        EndpointUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            ListenAddress::parse("localhost:4317"),
            Ok(ListenAddress::loopback(4317))
        );
        assert!(ListenAddress::parse("[::1]:4317").is_ok());
        assert!(
            ListenAddress::parse("4317")
                .unwrap_err()
                .contains("expected host:port")
        );
        assert!(
            ListenAddress::parse("127.0.0.1:http")
                .unwrap_err()
                .contains("invalid port")
        );
        assert!(
            ListenAddress::parse("exa mple:1")
                .unwrap_err()
                .contains("invalid host")
        );
        let named = ListenAddress::parse("otel-collector:4317").unwrap();
        assert_eq!(named.to_string(), "otel-collector:4317");
        let every = ListenAddress::parse(":8888").unwrap();
        assert_eq!(every.to_string(), ":8888");
        assert!(every.resolve().unwrap().ip().is_unspecified());
        assert_eq!(
            ListenAddress::parse("localhost:0")
                .unwrap()
                .resolve()
                .unwrap()
                .ip(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert!(
            ListenAddress::parse("surely-not-a-host.invalid:1")
                .unwrap()
                .resolve()
                .is_err()
        );
    }

    #[test]
    fn endpoint_urls() {
        assert_eq!(
            EndpointUrl::parse("127.0.0.1:4317").unwrap().as_str(),
            "http://127.0.0.1:4317/"
        );
        assert_eq!(
            EndpointUrl::parse("http://127.0.0.1:4318/base/")
                .unwrap()
                .join("/v1/traces"),
            "http://127.0.0.1:4318/base/v1/traces"
        );
        assert!(
            EndpointUrl::parse("ftp://x:1")
                .unwrap_err()
                .contains("unsupported scheme")
        );
        assert!(EndpointUrl::parse("http://").is_err());
        for bad in [
            "http://127.0.0.1:32417x",
            "http://127.0.0.1:99999",
            "127.0.0.1:0",
            "http://[::1]:x/",
            "http://127.0.0.1:/v1",
        ] {
            let error = EndpointUrl::parse(bad).unwrap_err();
            assert!(
                error.contains("expected a number from 1 to 65535"),
                "{bad}: {error}"
            );
        }
        assert_eq!(
            EndpointUrl::parse("https://u:secret@[::1]:4317/x?key=k")
                .unwrap()
                .origin(),
            "https://[::1]:4317"
        );
        assert_eq!(
            EndpointUrl::parse("http://backend").unwrap().origin(),
            "http://backend:80"
        );
    }
}
