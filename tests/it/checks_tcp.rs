//! tcpcheck against real sockets on 127.0.0.1: an open port, a closed one
//! (connection_refused), one that accepts but never answers
//! (connection_timeout), a banner matched by `expect`; and UDP: an echo
//! server, a closed port and a silent one.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};

use crate::checks_support::{checks_json, entry, latest, points, start_checks};
use crate::harness::free_port;

/// Accepts connections and holds them open without a word.
async fn silent_tcp() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    address
}

/// Greets every connection with a banner.
async fn banner_tcp() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"HELLO sidewatch\r\n").await;
        }
    });
    address
}

/// Answers `ping` with `pong`.
async fn echo_udp() -> std::net::SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((read, peer)) = socket.recv_from(&mut buffer).await {
            let answer: &[u8] = if &buffer[..read] == b"ping" {
                b"pong"
            } else {
                b"what?"
            };
            let _ = socket.send_to(answer, peer).await;
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcpcheck_tells_open_closed_and_hanging_ports_apart() {
    let open = silent_tcp().await;
    let hanging = silent_tcp().await;
    let banner = banner_tcp().await;
    let wrong_banner = banner_tcp().await;
    let closed: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let echo = echo_udp().await;
    let wrong_echo = echo_udp().await;
    let silent_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let silent = silent_socket.local_addr().unwrap();
    // Bound and closed at once: the port is free and nobody listens.
    let closed_udp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = start_checks(
        &format!(
            r#"
  tcp_check:
    collection_interval: 1s
    timeout: 500ms
    targets:
      - {{ endpoint: "{open}" }}
      - {{ endpoint: "{closed}" }}
      - {{ endpoint: "{banner}", expect: "^HELLO" }}
      - {{ endpoint: "{wrong_banner}", expect: "^EHLO" }}
      - {{ endpoint: "{hanging}", send: "hello?", expect: "." }}
      - {{ endpoint: "{echo}", protocol: udp, send: ping, expect: pong }}
      - {{ endpoint: "{wrong_echo}", protocol: udp, send: hello, expect: pong }}
      - {{ endpoint: "{closed_udp}", protocol: udp, send: ping }}
      - {{ endpoint: "{silent}", protocol: udp, send: ping }}
"#
        ),
        &["tcp_check"],
    )
    .await;
    let recorded = run.backend.recorded.clone();
    let status = async |target: std::net::SocketAddr| {
        latest(
            &recorded,
            "tcpcheck.status",
            "tcpcheck.endpoint",
            &target.to_string(),
        )
        .await
        .value()
    };
    assert_eq!(status(open).await, 1.0);
    assert_eq!(status(closed).await, 0.0);
    assert_eq!(status(banner).await, 1.0);
    assert_eq!(status(wrong_banner).await, 0.0);
    assert_eq!(status(hanging).await, 0.0);
    assert_eq!(status(echo).await, 1.0);
    assert_eq!(status(wrong_echo).await, 0.0);
    assert_eq!(status(closed_udp).await, 0.0);
    assert_eq!(status(silent).await, 0.0);

    let code = |target: std::net::SocketAddr| {
        points(&recorded, "tcpcheck.error")
            .into_iter()
            .filter(|f| f.text("tcpcheck.endpoint") == Some(target.to_string()))
            .filter_map(|f| f.text("error.code"))
            .next()
            .unwrap_or_else(|| panic!("no tcpcheck.error for {target}"))
    };
    assert_eq!(code(closed), "connection_refused");
    assert_eq!(code(wrong_banner), "unexpected_response");
    assert_eq!(code(hanging), "connection_timeout");
    assert_eq!(code(wrong_echo), "unexpected_response");
    assert_eq!(code(closed_udp), "connection_refused");
    assert_eq!(code(silent), "connection_timeout");
    assert!(
        points(&recorded, "tcpcheck.error")
            .iter()
            .all(|f| f.text("tcpcheck.endpoint") != Some(open.to_string())),
        "no error for the open port"
    );
    let transport = latest(
        &recorded,
        "tcpcheck.status",
        "tcpcheck.endpoint",
        &echo.to_string(),
    )
    .await;
    assert_eq!(transport.text("network.transport").as_deref(), Some("udp"));

    // The hanging port's run ends at its deadline, not later.
    let duration = latest(
        &recorded,
        "tcpcheck.duration",
        "tcpcheck.endpoint",
        &hanging.to_string(),
    )
    .await;
    assert_eq!(duration.value(), 500.0);
    let json = checks_json(run.telemetry()).await;
    assert_eq!(
        entry(&json, &hanging.to_string())["error"]["code"],
        "connection_timeout"
    );
    drop(silent_socket);
    tokio::time::sleep(Duration::from_millis(1)).await;
    run.stop().await;
}
