//! Where the ring's endpoints come from: a static list, or a DNS name
//! whose A and AAAA records are looked up again every `interval`.
//!
//! Without `server` the system's resolver answers (getaddrinfo, so
//! /etc/hosts counts, as the Collector's Go resolver reads it); with one,
//! sidewatch asks that server itself over UDP (hickory-proto builds and
//! reads the messages, as `dnscheck` does).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

use super::config::DnsResolver;

pub fn parse_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{text:?}: expected an IP address, optionally with :port"))
}

/// The `host:port` endpoints `dns` names now, sorted; an error when the
/// lookup failed or timed out (the caller keeps the ring it had).
pub async fn resolve(dns: &DnsResolver) -> Result<Vec<String>, String> {
    let lookup = async {
        match &dns.server {
            None => tokio::net::lookup_host((dns.hostname.as_str(), dns.port))
                .await
                .map(|found| found.map(|a| a.ip()).collect::<Vec<_>>())
                .map_err(|e| format!("resolving {}: {e}", dns.hostname)),
            Some(server) => {
                let server = parse_server(server)?;
                let mut ips = query(server, &dns.hostname, RecordType::A).await?;
                ips.extend(query(server, &dns.hostname, RecordType::AAAA).await?);
                Ok(ips)
            }
        }
    };
    let ips = tokio::time::timeout(dns.timeout, lookup)
        .await
        .map_err(|_| {
            format!(
                "resolving {}: no answer within {:?}",
                dns.hostname, dns.timeout
            )
        })??;
    let mut endpoints: Vec<String> = ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, dns.port).to_string())
        .collect();
    endpoints.sort();
    endpoints.dedup();
    Ok(endpoints)
}

/// The addresses of one record type from `server`; NXDOMAIN and an empty
/// answer are no addresses, other response codes are errors.
async fn query(
    server: SocketAddr,
    hostname: &str,
    record_type: RecordType,
) -> Result<Vec<IpAddr>, String> {
    let mut name = Name::from_str(hostname).map_err(|e| format!("{hostname:?}: {e}"))?;
    name.set_fqdn(true);
    let mut message = Message::query();
    message.metadata.id = rand::random();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, record_type));
    let bytes = message
        .to_vec()
        .map_err(|e| format!("encoding the query: {e}"))?;
    let local = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("DNS socket: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("DNS server {server}: {e}"))?;
    socket
        .send(&bytes)
        .await
        .map_err(|e| format!("DNS server {server}: {e}"))?;
    let mut buffer = vec![0u8; 65535];
    loop {
        let read = socket
            .recv(&mut buffer)
            .await
            .map_err(|e| format!("DNS server {server}: {e}"))?;
        // Late answers to an earlier query, or garbage: not ours.
        let Ok(reply) = Message::from_vec(&buffer[..read]) else {
            continue;
        };
        if reply.metadata.id != message.metadata.id {
            continue;
        }
        let code = u16::from(reply.metadata.response_code);
        // 3 is NXDOMAIN: the name has no backends right now.
        if code != 0 && code != 3 {
            return Err(format!(
                "DNS server {server} answered response code {code} for {hostname}"
            ));
        }
        return Ok(reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })
            .collect());
    }
}

/// How long to wait before the first lookup is retried after a failure:
/// short, since until it succeeds nothing can be sent.
pub const FIRST_LOOKUP_RETRY: Duration = Duration::from_millis(500);
