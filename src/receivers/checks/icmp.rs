//! `icmpcheck`: pings a host `count` times (ICMP echo, surge-ping) and
//! reports `icmpcheck.status` (1 if any reply came back), round trips
//! `icmpcheck.rtt.min` / `.avg` / `.max` (ms), `icmpcheck.packet_loss`
//! (0..1) and `icmpcheck.duration` (ms), with `icmpcheck.host` and
//! `network.peer.address`.
//!
//! Sockets: an unprivileged ICMP datagram socket when
//! `net.ipv4.ping_group_range` admits the process's group, otherwise a raw
//! socket, which needs root or CAP_NET_RAW. With neither, every run fails
//! with `permission_denied` and says so.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use surge_ping::{Client, Config, ICMP, PingIdentifier, PingSequence};
use tokio::sync::OnceCell;

use super::{Check, CheckError, Observation, Point, TargetConfig, milliseconds, resolve};
use crate::receivers::hostmetrics::{Number, string_attribute};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpTarget {
    /// A name or an IP address.
    pub host: String,
    /// Echo requests per run.
    #[serde(default = "default_count")]
    pub count: u16,
    /// Payload bytes of each echo request.
    #[serde(default = "default_size")]
    pub payload_size: usize,
}

fn default_count() -> u16 {
    3
}
fn default_size() -> usize {
    56
}

impl TargetConfig for IcmpTarget {
    fn compile(&self) -> Result<Arc<dyn Check>, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        if self.host.trim().is_empty() {
            errors.push(("host", "expected a host name or IP address".to_string()));
        }
        if self.count == 0 {
            errors.push(("count", "expected at least 1 echo request".to_string()));
        }
        if self.payload_size > 65_000 {
            errors.push(("payload_size", "expected at most 65000 bytes".to_string()));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Arc::new(IcmpCheck {
            host: self.host.clone(),
            count: self.count,
            payload: vec![0x5a; self.payload_size],
            clients: Clients::default(),
            identifier: rand::random(),
        }))
    }
}

/// One socket per address family, opened at the first ping (it needs the
/// runtime) and shared by every run of the check.
#[derive(Default)]
struct Clients {
    v4: OnceCell<Result<Client, String>>,
    v6: OnceCell<Result<Client, String>>,
}

impl Clients {
    async fn get(&self, ip: IpAddr) -> Result<&Client, CheckError> {
        let (cell, kind) = match ip {
            IpAddr::V4(_) => (&self.v4, ICMP::V4),
            IpAddr::V6(_) => (&self.v6, ICMP::V6),
        };
        cell.get_or_init(|| async move {
            Client::new(&Config::builder().kind(kind).build()).map_err(|e| {
                format!("cannot open an ICMP socket (needs net.ipv4.ping_group_range or CAP_NET_RAW): {e}")
            })
        })
        .await
        .as_ref()
        .map_err(|message| CheckError::new("permission_denied", message.clone()))
    }
}

pub struct IcmpCheck {
    host: String,
    count: u16,
    payload: Vec<u8>,
    clients: Clients,
    identifier: u16,
}

impl std::fmt::Debug for IcmpCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcmpCheck")
            .field("host", &self.host)
            .field("count", &self.count)
            .finish()
    }
}

struct Pings {
    address: Option<IpAddr>,
    round_trips: Vec<Duration>,
    sent: u16,
}

impl IcmpCheck {
    async fn ping(&self, timeout: Duration, pings: &mut Pings) -> Result<(), CheckError> {
        let ip = resolve(&self.host, 0)
            .await
            .map_err(|e| CheckError::new("invalid_endpoint", e.message))?[0]
            .ip();
        pings.address = Some(ip);
        let client = self.clients.get(ip).await?;
        let mut pinger = client.pinger(ip, PingIdentifier(self.identifier)).await;
        // Each echo gets its share of the deadline.
        pinger.timeout(timeout / u32::from(self.count));
        let mut last_error = None;
        for sequence in 0..self.count {
            pings.sent += 1;
            match pinger.ping(PingSequence(sequence), &self.payload).await {
                Ok((_, round_trip)) => pings.round_trips.push(round_trip),
                Err(surge_ping::SurgeError::Timeout { .. }) => {}
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if pings.round_trips.is_empty() {
            return Err(match last_error {
                Some(message) => CheckError::new("unreachable", message),
                None => CheckError::new(
                    "timeout",
                    format!("no echo reply from {ip} to {} requests", self.count),
                ),
            });
        }
        Ok(())
    }

    fn observation(
        &self,
        pings: Pings,
        result: Result<(), CheckError>,
        duration: Duration,
    ) -> Observation {
        let mut attributes = vec![string_attribute("icmpcheck.host", self.host.clone())];
        if let Some(address) = pings.address {
            attributes.push(string_attribute(
                "network.peer.address",
                address.to_string(),
            ));
        }
        let mut points = vec![
            Point::gauge(
                "icmpcheck.status",
                "1",
                "1 if any echo reply came back, otherwise 0.",
                Number::Int(result.is_ok() as i64),
                attributes.clone(),
            ),
            Point::gauge(
                "icmpcheck.duration",
                "ms",
                "Duration of the run's echo requests.",
                milliseconds(duration),
                attributes.clone(),
            ),
        ];
        if pings.sent > 0 {
            let lost = 1.0 - pings.round_trips.len() as f64 / f64::from(pings.sent);
            points.push(Point::gauge(
                "icmpcheck.packet_loss",
                "1",
                "Share of echo requests without a reply.",
                Number::Double(lost),
                attributes.clone(),
            ));
        }
        if !pings.round_trips.is_empty() {
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let min = pings.round_trips.iter().min().copied().unwrap_or_default();
            let max = pings.round_trips.iter().max().copied().unwrap_or_default();
            let total: Duration = pings.round_trips.iter().sum();
            let avg = total / pings.round_trips.len() as u32;
            for (name, description, value) in [
                ("icmpcheck.rtt.min", "Shortest round trip of the run.", min),
                ("icmpcheck.rtt.avg", "Mean round trip of the run.", avg),
                ("icmpcheck.rtt.max", "Longest round trip of the run.", max),
            ] {
                points.push(Point::gauge(
                    name,
                    "ms",
                    description,
                    Number::Double(ms(value)),
                    attributes.clone(),
                ));
            }
        }
        if let Err(error) = &result {
            let mut attributes = attributes;
            attributes.push(string_attribute("error.code", error.code));
            points.push(Point::counter(
                "icmpcheck.error",
                "{error}",
                "Errors of the ICMP check, by code.",
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
}

#[async_trait::async_trait]
impl Check for IcmpCheck {
    fn target(&self) -> &str {
        &self.host
    }

    async fn attempt(&self, timeout: Duration) -> Observation {
        let began = Instant::now();
        let mut pings = Pings {
            address: None,
            round_trips: Vec::new(),
            sent: 0,
        };
        // Leave the scheduler's deadline a margin so the run reports its
        // own counts rather than being cancelled.
        let result = self.ping(timeout.mul_f64(0.9), &mut pings).await;
        self.observation(pings, result, began.elapsed())
    }

    fn timed_out(&self, timeout: Duration) -> Observation {
        let pings = Pings {
            address: None,
            round_trips: Vec::new(),
            sent: 0,
        };
        self.observation(
            pings,
            Err(CheckError::new(
                "timeout",
                format!("no result within {}", humantime::format_duration(timeout)),
            )),
            timeout,
        )
    }
}
