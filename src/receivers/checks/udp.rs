//! UDP port checks for `tcpcheck` targets with `protocol: udp`. UDP has no
//! handshake, so a port counts as up only when it answers: the check sends
//! `send` (an empty datagram by default) and waits for any datagram back
//! (matching `expect`, if set). A closed port usually answers with ICMP
//! port unreachable, which the kernel reports on the connected socket as
//! connection_refused; silence is connection_timeout at the deadline.

use regex::bytes::Regex;
use tokio::net::UdpSocket;

use super::{CheckError, connect_error, resolve};

pub async fn exchange(
    host: &str,
    port: u16,
    send: &[u8],
    expect: Option<&Regex>,
) -> Result<(), CheckError> {
    let addresses = resolve(host, port)
        .await
        .map_err(|e| CheckError::new("invalid_endpoint", e.message))?;
    let peer = addresses[0];
    let local = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| connect_error(&e))?;
    socket.connect(peer).await.map_err(|e| connect_error(&e))?;
    socket.send(send).await.map_err(|e| connect_error(&e))?;
    let mut answer = vec![0u8; 65536];
    let read = socket
        .recv(&mut answer)
        .await
        .map_err(|e| connect_error(&e))?;
    match expect {
        Some(expect) if !expect.is_match(&answer[..read]) => {
            Err(super::tcp::unexpected(expect, &answer[..read]))
        }
        _ => Ok(()),
    }
}
