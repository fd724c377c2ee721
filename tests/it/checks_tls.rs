//! tlscheck and httpcheck over TLS against real HTTPS servers on
//! 127.0.0.1 with certificates made by openssl: one valid for 10 days, one
//! expired, one from a foreign CA, and a server that wants a client
//! certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;

use crate::certs::{self, openssl, path};
use crate::checks_support::{checks_json, entry, latest, points, start_checks};

/// `<name>.pem`/`.key`: a server certificate for 127.0.0.1 signed by
/// `ca`, valid for `days` (negative: expired that many days ago).
pub fn server_certificate(dir: &Path, ca: &str, name: &str, days: i32) {
    let (pem, key, csr, ext) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let (ca_pem, ca_key, days) = (format!("{ca}.pem"), format!("{ca}.key"), days.to_string());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            &days,
            "-extfile",
            &ext,
        ],
    );
}

/// notAfter of a certificate, seconds since the epoch, as openssl reads it.
fn not_after(file: &str) -> i64 {
    let out = std::process::Command::new("openssl")
        .args([
            "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", file,
        ])
        .output()
        .expect("openssl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let date = text
        .trim()
        .strip_prefix("notAfter=")
        .expect("notAfter line");
    humantime::parse_rfc3339_weak(date)
        .unwrap_or_else(|e| panic!("{date}: {e}"))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An HTTPS server of the httpcheck routes with `name`'s certificate;
/// with `client_ca`, it wants a client certificate signed by that CA.
pub async fn serve_tls(dir: &Path, name: &str, client_ca: Option<&str>) -> SocketAddr {
    sidewatch::tls::install_provider();
    let chain = sidewatch::tls::read_certificates(&dir.join(format!("{name}.pem"))).unwrap();
    let key = sidewatch::tls::read_key(&dir.join(format!("{name}.key"))).unwrap();
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let roots = sidewatch::tls::root_store(&dir.join(format!("{ca}.pem"))).unwrap();
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap(),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = TowerToHyperService::new(crate::checks_http::app());
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    address
}

struct Servers {
    dir: tempfile::TempDir,
    valid: SocketAddr,
    expired: SocketAddr,
    foreign: SocketAddr,
    mutual: SocketAddr,
}

async fn servers() -> Servers {
    let dir = tempfile::tempdir().unwrap();
    certs::ca(dir.path(), "ca");
    certs::ca(dir.path(), "foreign-ca");
    server_certificate(dir.path(), "ca", "valid", 10);
    server_certificate(dir.path(), "ca", "expired", -1);
    server_certificate(dir.path(), "foreign-ca", "foreign", 10);
    certs::leaf(dir.path(), "ca", "client", false);
    Servers {
        valid: serve_tls(dir.path(), "valid", None).await,
        expired: serve_tls(dir.path(), "expired", None).await,
        foreign: serve_tls(dir.path(), "foreign", None).await,
        mutual: serve_tls(dir.path(), "valid", Some("ca")).await,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlscheck_reports_time_left_of_valid_expired_and_foreign_certificates() {
    let servers = servers().await;
    let ca = path(servers.dir.path(), "ca.pem");
    let run = start_checks(
        &format!(
            r#"
  tlscheck:
    collection_interval: 1s
    timeout: 900ms
    targets:
      - {{ endpoint: "{}", tls: {{ ca_file: {ca} }} }}
      - {{ endpoint: "{}", tls: {{ ca_file: {ca} }} }}
      - {{ endpoint: "{}", tls: {{ ca_file: {ca} }} }}
"#,
            servers.valid, servers.expired, servers.foreign
        ),
        &["tlscheck"],
    )
    .await;
    let recorded = run.backend.recorded.clone();
    for (address, name) in [
        (servers.valid, "valid"),
        (servers.expired, "expired"),
        (servers.foreign, "foreign"),
    ] {
        let target = address.to_string();
        latest(&recorded, "sidewatch.check.up", "check.target", &target).await;
        let found = points(&recorded, "tlscheck.time_left")
            .into_iter()
            .rfind(|f| {
                f.resource.iter().any(|a| {
                    a.key == "tlscheck.target" && format!("{:?}", a.value).contains(&target)
                })
            })
            .unwrap_or_else(|| panic!("no tlscheck.time_left for {name}"));
        let checked_at = (found.point.time_unix_nano / 1_000_000_000) as i64;
        let expected = not_after(&path(servers.dir.path(), &format!("{name}.pem"))) - checked_at;
        assert!(
            (found.value() - expected as f64).abs() <= 1.0,
            "{name}: time_left {} vs notAfter - now {expected}",
            found.value()
        );
        assert_eq!(found.text("tlscheck.x509.cn").as_deref(), Some(name));
        let issuer = found.text("tlscheck.x509.issuer").unwrap();
        let ca_name = if name == "foreign" {
            "CN=foreign-ca"
        } else {
            "CN=ca"
        };
        assert_eq!(issuer, ca_name);
        let san = found
            .point
            .attributes
            .iter()
            .find(|a| a.key == "tlscheck.x509.san")
            .map(|a| format!("{:?}", a.value))
            .unwrap();
        assert!(
            san.contains("127.0.0.1") && san.contains("localhost"),
            "{san}"
        );
    }
    let valid = points(&recorded, "tlscheck.time_left")
        .into_iter()
        .find(|f| f.text("tlscheck.x509.cn").as_deref() == Some("valid"))
        .unwrap();
    assert!(valid.value() > 9.0 * 86400.0 && valid.value() <= 10.0 * 86400.0);
    let expired = points(&recorded, "tlscheck.time_left")
        .into_iter()
        .find(|f| f.text("tlscheck.x509.cn").as_deref() == Some("expired"))
        .unwrap();
    assert!(
        expired.value() < 0.0,
        "negative once expired: {}",
        expired.value()
    );

    let json = checks_json(run.telemetry()).await;
    assert_eq!(
        entry(&json, &servers.valid.to_string())["status"],
        "up",
        "{json}"
    );
    let expired = entry(&json, &servers.expired.to_string());
    assert_eq!(expired["status"], "down");
    assert_eq!(expired["error"]["code"], "certificate_expired", "{json}");
    let foreign = entry(&json, &servers.foreign.to_string());
    assert_eq!(foreign["error"]["code"], "certificate_untrusted", "{json}");
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httpcheck_over_tls_verifies_certificates_and_sends_a_client_certificate() {
    let servers = servers().await;
    let dir = servers.dir.path();
    let (ca, client_pem, client_key) = (
        path(dir, "ca.pem"),
        path(dir, "client.pem"),
        path(dir, "client.key"),
    );
    let url = |address: SocketAddr, tail: &str| format!("https://{address}/ok{tail}");
    let run = start_checks(
        &format!(
            r#"
  httpcheck:
    collection_interval: 1s
    timeout: 900ms
    targets:
      - {{ endpoint: "{}", tls: {{ ca_file: {ca} }} }}
      - {{ endpoint: "{}", tls: {{ ca_file: {ca} }} }}
      - {{ endpoint: "{}", tls: {{ ca_file: {ca} }} }}
      - {{ endpoint: "{}", tls: {{ ca_file: {ca}, cert_file: {client_pem}, key_file: {client_key} }} }}
      - {{ endpoint: "{}", tls: {{ ca_file: {ca} }} }}
      - {{ endpoint: "{}" }}
"#,
            url(servers.valid, ""),
            url(servers.expired, ""),
            url(servers.foreign, ""),
            url(servers.mutual, ""),
            url(servers.mutual, "?no-client-certificate"),
            url(servers.valid, "?system-roots"),
        ),
        &["httpcheck"],
    )
    .await;
    let recorded = run.backend.recorded.clone();
    let up = async |target: String| {
        latest(&recorded, "sidewatch.check.up", "check.target", &target)
            .await
            .value()
    };
    assert_eq!(up(url(servers.valid, "")).await, 1.0);
    assert_eq!(up(url(servers.expired, "")).await, 0.0);
    assert_eq!(up(url(servers.foreign, "")).await, 0.0);
    assert_eq!(up(url(servers.mutual, "")).await, 1.0);
    assert_eq!(up(url(servers.mutual, "?no-client-certificate")).await, 0.0);
    assert_eq!(up(url(servers.valid, "?system-roots")).await, 0.0);

    let remaining = latest(
        &recorded,
        "httpcheck.tls.cert_remaining",
        "http.url",
        &url(servers.valid, ""),
    )
    .await;
    assert!(remaining.value() > 9.0 * 86400.0 && remaining.value() <= 10.0 * 86400.0);
    assert!(
        latest(&recorded, "httpcheck.phase.duration", "http.phase", "tls")
            .await
            .value()
            > 0.0
    );

    let json = checks_json(run.telemetry()).await;
    let code = |target: String| entry(&json, &target)["error"]["code"].clone();
    assert_eq!(
        code(url(servers.expired, "")),
        "certificate_expired",
        "{json}"
    );
    assert_eq!(
        code(url(servers.foreign, "")),
        "certificate_untrusted",
        "{json}"
    );
    assert_eq!(
        code(url(servers.valid, "?system-roots")),
        "certificate_untrusted",
        "{json}"
    );
    // Under TLS 1.3 the server refuses a missing client certificate after
    // the client's side of the handshake: a TLS or an HTTP-level error.
    let refused = code(url(servers.mutual, "?no-client-certificate"));
    assert!(refused == "tls_error" || refused == "http_error", "{json}");
    // httpcheck.error carries the message, in the Collector's shape.
    let message = points(&recorded, "httpcheck.error")
        .into_iter()
        .find(|f| f.text("http.url").as_deref() == Some(url(servers.expired, "").as_str()))
        .and_then(|f| f.text("error.message"))
        .unwrap();
    assert!(message.to_lowercase().contains("expired"), "{message}");
    run.stop().await;
}
