//! `dnscheck` (also `dns_check`): asks one DNS server for one record type
//! of one name over UDP (hickory-proto builds and reads the messages) and
//! checks the response code and, if `expected` is set, that every expected
//! value is among the answers. Reports `dnscheck.status` (1/0) and
//! `dnscheck.duration` (ms) with `dns.domain`, `dns.record.type`,
//! `dns.server` and `dns.rcode` (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...),
//! and `dnscheck.answers` (the number of answers of the asked type).
//!
//! Without `server`, the first `nameserver` of /etc/resolv.conf is asked.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use serde::Deserialize;
use tokio::net::UdpSocket;

use super::{Check, CheckError, Observation, Point, TargetConfig, connect_error, milliseconds};
use crate::receivers::hostmetrics::{Number, string_attribute};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsTarget {
    pub domain: String,
    #[serde(default = "default_record_type")]
    pub record_type: String,
    /// `ip` or `ip:port` (53 by default).
    pub server: Option<String>,
    /// Values that must all be among the answers: addresses for A/AAAA,
    /// names for CNAME/NS/PTR (trailing dot optional), text for TXT.
    #[serde(default)]
    pub expected: Vec<String>,
    /// The response code that counts as up.
    #[serde(default = "default_rcode")]
    pub expected_rcode: String,
}

fn default_record_type() -> String {
    "A".into()
}
fn default_rcode() -> String {
    "NOERROR".into()
}

/// Mnemonics of the response codes a check can expect.
const RCODES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

fn rcode_name(code: u16) -> String {
    RCODES
        .get(code as usize)
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("RCODE{code}"))
}

/// The first nameserver of /etc/resolv.conf.
fn system_server() -> Result<SocketAddr, String> {
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| format!("no server given and /etc/resolv.conf unreadable: {e}"))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .ok_or_else(|| "no server given and no nameserver in /etc/resolv.conf".to_string())
}

fn parse_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{text:?}: expected an IP address, optionally with :port"))
}

/// Names compare without case and without the root's trailing dot.
fn normalise(value: &str, record_type: RecordType) -> String {
    match record_type {
        RecordType::TXT => value.to_string(),
        _ => value.trim_end_matches('.').to_ascii_lowercase(),
    }
}

impl TargetConfig for DnsTarget {
    fn compile(&self) -> Result<Arc<dyn Check>, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let name = Name::from_str(&self.domain)
            .map(|mut n| {
                n.set_fqdn(true);
                n
            })
            .map_err(|e| errors.push(("domain", format!("invalid domain name: {e}"))))
            .ok();
        let record_type = RecordType::from_str(&self.record_type.to_ascii_uppercase())
            .map_err(|_| {
                errors.push((
                    "record_type",
                    format!(
                        "unknown record type {:?}: expected A, AAAA, CNAME, TXT, MX, NS, PTR, SOA, SRV, CAA, ...",
                        self.record_type
                    ),
                ))
            })
            .ok();
        let server = match &self.server {
            Some(text) => parse_server(text),
            None => system_server(),
        }
        .map_err(|e| errors.push(("server", e)))
        .ok();
        let expected_rcode = self.expected_rcode.to_ascii_uppercase();
        if !RCODES.contains(&expected_rcode.as_str()) {
            errors.push((
                "expected_rcode",
                format!(
                    "unknown response code {:?}: expected one of {}",
                    self.expected_rcode,
                    RCODES.join(", ")
                ),
            ));
        }
        let (Some(name), Some(record_type), Some(server), true) =
            (name, record_type, server, errors.is_empty())
        else {
            return Err(errors);
        };
        Ok(Arc::new(DnsCheck {
            target: format!("{} {} @{}", self.domain, record_type, server),
            domain: self.domain.clone(),
            name,
            record_type,
            server,
            expected: self
                .expected
                .iter()
                .map(|v| normalise(v, record_type))
                .collect(),
            expected_rcode,
        }))
    }
}

#[derive(Debug)]
pub struct DnsCheck {
    target: String,
    domain: String,
    name: Name,
    record_type: RecordType,
    server: SocketAddr,
    expected: Vec<String>,
    expected_rcode: String,
}

/// What the server answered.
struct Answer {
    rcode: String,
    values: Vec<String>,
}

fn value_text(data: &RData) -> String {
    match data {
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect(),
        other => other.to_string(),
    }
}

impl DnsCheck {
    async fn query(&self) -> Result<Answer, CheckError> {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(self.name.clone(), self.record_type));
        let bytes = message
            .to_vec()
            .map_err(|e| CheckError::new("unknown_error", format!("encoding the query: {e}")))?;
        let local = if self.server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| connect_error(&e))?;
        socket
            .connect(self.server)
            .await
            .map_err(|e| connect_error(&e))?;
        socket.send(&bytes).await.map_err(|e| connect_error(&e))?;
        let mut buffer = vec![0u8; 65535];
        loop {
            let read = socket
                .recv(&mut buffer)
                .await
                .map_err(|e| connect_error(&e))?;
            // Anything else on the socket (late answers, spoofs) is skipped.
            let Ok(reply) = Message::from_vec(&buffer[..read]) else {
                continue;
            };
            if reply.metadata.id != message.metadata.id {
                continue;
            }
            let values = reply
                .answers
                .iter()
                .filter(|r| r.record_type() == self.record_type)
                .map(|r| normalise(&value_text(&r.data), self.record_type))
                .collect();
            return Ok(Answer {
                rcode: rcode_name(u16::from(reply.metadata.response_code)),
                values,
            });
        }
    }

    fn attributes(&self, rcode: &str) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
        vec![
            string_attribute("dns.domain", self.domain.clone()),
            string_attribute("dns.record.type", self.record_type.to_string()),
            string_attribute("dns.server", self.server.to_string()),
            string_attribute("dns.rcode", rcode),
        ]
    }

    fn observation(&self, answer: Result<Answer, CheckError>, duration: Duration) -> Observation {
        let (rcode, answers, error) = match answer {
            Err(error) => (String::new(), 0, Some(error)),
            Ok(answer) => {
                let error = if answer.rcode != self.expected_rcode {
                    Some(CheckError::new(
                        "unexpected_rcode",
                        format!(
                            "answered {}, expected {}",
                            answer.rcode, self.expected_rcode
                        ),
                    ))
                } else if let Some(missing) =
                    self.expected.iter().find(|v| !answer.values.contains(v))
                {
                    Some(CheckError::new(
                        "unexpected_answer",
                        format!("{missing:?} is not among the answers {:?}", answer.values),
                    ))
                } else if answer.rcode == "NOERROR" && answer.values.is_empty() {
                    Some(CheckError::new(
                        "no_answer",
                        format!("no {} record", self.record_type),
                    ))
                } else {
                    None
                };
                (answer.rcode, answer.values.len(), error)
            }
        };
        let attributes = self.attributes(&rcode);
        let mut points = vec![
            Point::gauge(
                "dnscheck.status",
                "1",
                "1 if the server answered as expected, otherwise 0.",
                Number::Int(error.is_none() as i64),
                attributes.clone(),
            ),
            Point::gauge(
                "dnscheck.duration",
                "ms",
                "Time from sending the query to the answer.",
                milliseconds(duration),
                attributes.clone(),
            ),
            Point::gauge(
                "dnscheck.answers",
                "{record}",
                "Answers of the asked record type.",
                Number::Int(answers as i64),
                attributes.clone(),
            ),
        ];
        if let Some(error) = &error {
            let mut attributes = attributes;
            attributes.push(string_attribute("error.code", error.code));
            points.push(Point::counter(
                "dnscheck.error",
                "{error}",
                "Errors of the DNS check, by code.",
                attributes,
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

#[async_trait::async_trait]
impl Check for DnsCheck {
    fn target(&self) -> &str {
        &self.target
    }

    async fn attempt(&self, _timeout: Duration) -> Observation {
        let began = Instant::now();
        let answer = self.query().await;
        self.observation(answer, began.elapsed())
    }

    fn timed_out(&self, timeout: Duration) -> Observation {
        self.observation(
            Err(CheckError::new(
                "timeout",
                format!(
                    "no answer from {} within {}",
                    self.server,
                    humantime::format_duration(timeout)
                ),
            )),
            timeout,
        )
    }
}
