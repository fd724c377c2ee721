//! `network` scraper: bytes, packets, errors and drops per interface (from
//! /proc/net/dev), and connection tracking: sockets by protocol and TCP
//! state (from /proc/net/{tcp,tcp6,udp,udp6}).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::builder::{MetricsBuilder, Number, string_attribute};
use super::filter::NameFilter;
use super::procfs;
use super::{Scraper, read};

/// `Default` is the one place the defaults live: the YAML form takes
/// missing fields from it (`#[serde(default)]` on the struct), and so do
/// `scrapers: [network]` and the default pipeline, which build it without
/// any YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub interfaces: NameFilter,
    /// Count sockets by protocol and state (connection tracking).
    pub connections: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            interfaces: NameFilter::default(),
            connections: true,
        }
    }
}

pub struct NetworkScraper {
    pub config: NetworkConfig,
}

impl Scraper for NetworkScraper {
    fn scrape(&mut self, out: &mut MetricsBuilder) -> Result<(), String> {
        let devices = procfs::network_devices(&read("/proc/net/dev")?);
        let (mut io, mut packets, mut errors, mut dropped) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (name, c) in devices
            .iter()
            .filter(|(n, _)| self.config.interfaces.keeps(n))
        {
            let with = |direction: &str| {
                vec![
                    string_attribute("network.interface.name", name.clone()),
                    string_attribute("network.io.direction", direction),
                ]
            };
            io.push((Number::from(c.receive_bytes), with("receive")));
            io.push((Number::from(c.transmit_bytes), with("transmit")));
            packets.push((Number::from(c.receive_packets), with("receive")));
            packets.push((Number::from(c.transmit_packets), with("transmit")));
            errors.push((Number::from(c.receive_errors), with("receive")));
            errors.push((Number::from(c.transmit_errors), with("transmit")));
            dropped.push((Number::from(c.receive_dropped), with("receive")));
            dropped.push((Number::from(c.transmit_dropped), with("transmit")));
        }
        out.sum(
            "system.network.io",
            "By",
            "Bytes received and transmitted.",
            true,
            io,
        );
        out.sum(
            "system.network.packets",
            "{packet}",
            "Packets received and transmitted.",
            true,
            packets,
        );
        out.sum(
            "system.network.errors",
            "{error}",
            "Receive and transmit errors.",
            true,
            errors,
        );
        out.sum(
            "system.network.dropped",
            "{packet}",
            "Packets dropped.",
            true,
            dropped,
        );

        if self.config.connections {
            let mut counts: BTreeMap<(&str, &str), u64> = BTreeMap::new();
            for state in ["ESTABLISHED", "LISTEN", "TIME_WAIT", "CLOSE_WAIT"] {
                counts.insert(("tcp", state), 0);
            }
            for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
                for code in read(file)
                    .map(|t| procfs::socket_states(&t))
                    .unwrap_or_default()
                {
                    *counts
                        .entry(("tcp", procfs::tcp_state_name(code)))
                        .or_default() += 1;
                }
            }
            let udp: usize = ["/proc/net/udp", "/proc/net/udp6"]
                .iter()
                .map(|f| {
                    read(f)
                        .map(|t| procfs::socket_states(&t).len())
                        .unwrap_or(0)
                })
                .sum();
            counts.insert(("udp", ""), udp as u64);
            let points = counts
                .into_iter()
                .map(|((protocol, state), count)| {
                    let mut attributes = vec![string_attribute("network.transport", protocol)];
                    if !state.is_empty() {
                        attributes.push(string_attribute("network.connection.state", state));
                    }
                    (Number::from(count), attributes)
                })
                .collect();
            out.sum(
                "system.network.connections",
                "{connection}",
                "Sockets by protocol and TCP state.",
                false,
                points,
            );
        }
        Ok(())
    }
}
