//! `tcpcheck` (also `tcp_check`): opens a TCP connection to `host:port`
//! (or, with `protocol: udp`, exchanges a datagram, see `udp.rs`) and
//! reports, in the Collector's names, `tcpcheck.status` (1 connected, 0
//! not), `tcpcheck.duration` (ms) and `tcpcheck.error` (a count by
//! `error.code`: connection_refused, connection_timeout, invalid_endpoint,
//! network_unreachable, unknown_error, and unexpected_response when `send`
//! and `expect` are set and the answer does not match), each with
//! `tcpcheck.endpoint` and `network.transport`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::bytes::Regex;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{
    Check, CheckError, Observation, Point, TargetConfig, connect_error, milliseconds, resolve,
    split_host_port,
};
use crate::receivers::hostmetrics::{Number, string_attribute};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpTarget {
    /// `host:port`.
    pub endpoint: String,
    #[serde(default)]
    pub protocol: Protocol,
    /// Bytes to write once connected (for UDP, the datagram to send).
    pub send: Option<String>,
    /// A regular expression the answer must match; without `send`, the
    /// server's greeting (SMTP, SSH) is matched.
    pub expect: Option<String>,
}

impl TargetConfig for TcpTarget {
    fn compile(&self) -> Result<Arc<dyn Check>, Vec<(&'static str, String)>> {
        let (host, port) = split_host_port(&self.endpoint).map_err(|e| vec![("endpoint", e)])?;
        let expect = match &self.expect {
            Some(pattern) => Some(
                Regex::new(pattern)
                    .map_err(|e| vec![("expect", format!("invalid regular expression: {e}"))])?,
            ),
            None => None,
        };
        Ok(Arc::new(TcpCheck {
            endpoint: self.endpoint.clone(),
            host,
            port,
            protocol: self.protocol,
            send: self.send.clone().map(String::into_bytes),
            expect,
        }))
    }
}

#[derive(Debug)]
pub struct TcpCheck {
    endpoint: String,
    host: String,
    port: u16,
    protocol: Protocol,
    send: Option<Vec<u8>>,
    expect: Option<Regex>,
}

/// The most of an answer read to match `expect`.
const MAX_ANSWER: usize = 64 * 1024;

impl TcpCheck {
    fn attributes(&self) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
        vec![
            string_attribute("tcpcheck.endpoint", self.endpoint.clone()),
            string_attribute(
                "network.transport",
                match self.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                },
            ),
        ]
    }

    fn observation(&self, result: Result<(), CheckError>, duration: Duration) -> Observation {
        let mut points = vec![
            Point::gauge(
                "tcpcheck.status",
                "1",
                "1 if the TCP client successfully connected, otherwise 0.",
                Number::Int(result.is_ok() as i64),
                self.attributes(),
            ),
            Point::gauge(
                "tcpcheck.duration",
                "ms",
                "Measures the duration of TCP connection.",
                milliseconds(duration),
                self.attributes(),
            ),
        ];
        if let Err(error) = &result {
            let mut attributes = self.attributes();
            attributes.push(string_attribute("error.code", error.code));
            points.push(Point::counter(
                "tcpcheck.error",
                "{error}",
                "Records errors occurring during TCP check.",
                attributes,
            ));
        }
        Observation {
            duration,
            error: result.err(),
            points,
            resource: Vec::new(),
        }
    }

    async fn tcp(&self) -> Result<(), CheckError> {
        let addresses = resolve(&self.host, self.port)
            .await
            .map_err(|e| CheckError::new("invalid_endpoint", e.message))?;
        let mut stream = TcpStream::connect(&addresses[..])
            .await
            .map_err(|e| connect_error(&e))?;
        if let Some(send) = &self.send {
            stream
                .write_all(send)
                .await
                .map_err(|e| CheckError::new("unknown_error", format!("sending: {e}")))?;
        }
        if let Some(expect) = &self.expect {
            let mut answer = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let read = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| CheckError::new("unknown_error", format!("reading: {e}")))?;
                answer.extend_from_slice(&chunk[..read]);
                if expect.is_match(&answer) {
                    break;
                }
                if read == 0 || answer.len() >= MAX_ANSWER {
                    return Err(unexpected(expect, &answer));
                }
            }
        }
        Ok(())
    }
}

pub fn unexpected(expect: &Regex, answer: &[u8]) -> CheckError {
    let shown: String = String::from_utf8_lossy(answer).chars().take(100).collect();
    CheckError::new(
        "unexpected_response",
        format!("the answer {shown:?} does not match {:?}", expect.as_str()),
    )
}

#[async_trait::async_trait]
impl Check for TcpCheck {
    fn target(&self) -> &str {
        &self.endpoint
    }

    async fn attempt(&self, _timeout: Duration) -> Observation {
        let began = Instant::now();
        let result = match self.protocol {
            Protocol::Tcp => self.tcp().await,
            Protocol::Udp => {
                super::udp::exchange(
                    &self.host,
                    self.port,
                    self.send.as_deref().unwrap_or_default(),
                    self.expect.as_ref(),
                )
                .await
            }
        };
        self.observation(result, began.elapsed())
    }

    fn timed_out(&self, timeout: Duration) -> Observation {
        self.observation(
            Err(CheckError::new(
                "connection_timeout",
                format!("no answer within {}", humantime::format_duration(timeout)),
            )),
            timeout,
        )
    }
}
