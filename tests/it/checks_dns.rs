//! dnscheck against a real resolver on loopback: dnsmasq, started with its
//! own config on its own port, answering A, AAAA, CNAME, TXT and NXDOMAIN.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::checks_support::{checks_json, entry, latest, start_checks};
use crate::harness::free_port;

pub(crate) struct Dnsmasq {
    child: std::process::Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// The directory its config lives in, for files a zone reads.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// SIGHUP: dnsmasq reads its `addn-hosts` files again.
    pub fn reload(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "dnsmasq takes SIGHUP");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dnsmasq on 127.0.0.1 with a zone of its own; `None` (loudly) when it
/// is not installed, a failure under CI=true.
async fn start_dnsmasq() -> Option<Dnsmasq> {
    start_dnsmasq_with(
        "local=/sidewatch.test/\n\
         host-record=www.sidewatch.test,192.0.2.10,2001:db8::10\n\
         cname=alias.sidewatch.test,www.sidewatch.test\n\
         txt-record=sidewatch.test,\"v=spf1 -all\"\n",
        |_| {},
    )
    .await
}

/// dnsmasq with `zone` (config lines; `{dir}` is replaced by its own
/// directory), after `prepare` wrote what the zone reads into it.
pub(crate) async fn start_dnsmasq_with(
    zone: &str,
    prepare: impl FnOnce(&std::path::Path),
) -> Option<Dnsmasq> {
    let binary = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(binary) = binary else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("dnsmasq is missing and CI=true: .ci/run must install dnsmasq-base");
        }
        eprintln!(
            "\n*** SKIPPING: dnsmasq not installed (apt-get install dnsmasq-base); this test needs a real DNS server ***\n"
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("dnsmasq.conf");
    prepare(dir.path());
    let zone = zone.replace("{dir}", &dir.path().display().to_string());
    std::fs::write(
        &config,
        format!(
            "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n{zone}"
        ),
    )
    .unwrap();
    let child = Command::new(binary)
        .arg("--keep-in-foreground")
        .arg(format!("--conf-file={}", config.display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg("--user=root")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq starts");
    let dnsmasq = Dnsmasq { child, port, dir };
    // dnsmasq serves TCP on the same port: ready once it accepts.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(dnsmasq);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dnsmasq did not start on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnscheck_checks_record_types_answers_and_response_codes() {
    let Some(dnsmasq) = start_dnsmasq().await else {
        return;
    };
    let server = format!("127.0.0.1:{}", dnsmasq.port);
    let run = start_checks(
        &format!(
            r#"
  dnscheck:
    collection_interval: 1s
    timeout: 500ms
    targets:
      - {{ domain: www.sidewatch.test, record_type: A, server: "{server}", expected: [192.0.2.10] }}
      - {{ domain: www.sidewatch.test, record_type: AAAA, server: "{server}", expected: ["2001:db8::10"] }}
      - {{ domain: alias.sidewatch.test, record_type: CNAME, server: "{server}", expected: [www.sidewatch.test] }}
      - {{ domain: sidewatch.test, record_type: TXT, server: "{server}", expected: ["v=spf1 -all"] }}
      - {{ domain: missing.sidewatch.test, record_type: A, server: "{server}" }}
      - {{ domain: gone.sidewatch.test, record_type: A, server: "{server}", expected_rcode: NXDOMAIN }}
      - {{ domain: alias.sidewatch.test, record_type: a, server: "{server}", expected: [192.0.2.99] }}
      - {{ domain: www.sidewatch.test, record_type: MX, server: "127.0.0.1:{}" }}
"#,
            free_port()
        ),
        &["dnscheck"],
    )
    .await;
    let recorded = run.backend.recorded.clone();
    let status = async |domain: &str, record_type: &str| {
        let mut found = None;
        for _ in 0..100 {
            found = crate::checks_support::points(&recorded, "dnscheck.status")
                .into_iter()
                .rfind(|f| {
                    f.text("dns.domain").as_deref() == Some(domain)
                        && f.text("dns.record.type").as_deref() == Some(record_type)
                });
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let found =
            found.unwrap_or_else(|| panic!("no dnscheck.status for {domain} {record_type}"));
        (
            found.value(),
            found.text("dns.rcode").unwrap(),
            found.text("dns.server").unwrap(),
        )
    };
    assert_eq!(
        status("www.sidewatch.test", "A").await,
        (1.0, "NOERROR".into(), server.clone())
    );
    assert_eq!(status("www.sidewatch.test", "AAAA").await.0, 1.0);
    assert_eq!(status("alias.sidewatch.test", "CNAME").await.0, 1.0);
    assert_eq!(status("sidewatch.test", "TXT").await.0, 1.0);
    assert_eq!(
        status("missing.sidewatch.test", "A").await,
        (0.0, "NXDOMAIN".into(), server.clone())
    );
    assert_eq!(
        status("gone.sidewatch.test", "A").await,
        (1.0, "NXDOMAIN".into(), server.clone())
    );
    let duration = latest(
        &recorded,
        "dnscheck.duration",
        "dns.domain",
        "alias.sidewatch.test",
    )
    .await;
    assert!(duration.value() < 500.0);

    let json = checks_json(run.telemetry()).await;
    let code = |target: &str| entry(&json, target)["error"]["code"].clone();
    assert_eq!(
        code(&format!("missing.sidewatch.test A @{server}")),
        "unexpected_rcode",
        "{json}"
    );
    assert_eq!(
        code(&format!("www.sidewatch.test A @{server}")),
        serde_json::Value::Null
    );
    let wrong = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["error"]["code"] == "unexpected_answer")
        .unwrap_or_else(|| panic!("the wrong-answer check: {json}"));
    assert!(
        wrong["error"]["message"]
            .as_str()
            .unwrap()
            .contains("192.0.2.99")
    );
    // Nobody answers on the other port: refused (ICMP port unreachable).
    let nobody = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["target"]
                .as_str()
                .unwrap()
                .starts_with("www.sidewatch.test MX")
        })
        .unwrap();
    assert_eq!(nobody["status"], "down");
    assert_eq!(nobody["error"]["code"], "connection_refused", "{json}");
    run.stop().await;
}
