//! The `postgresql` receiver over TLS to a real PostgreSQL serving a
//! certificate for 127.0.0.1: with the CA that signed it in `ca_file`
//! the scrape succeeds; with a CA that did not, the connection is refused
//! by the receiver (not silently downgraded to plaintext) and counted.

use crate::checks_support::{ChecksRun, points, start_checks, until_value};
use crate::postgresql::{PASSWORD, Postgres};

async fn scrape(pg: &Postgres, ca: &str) -> ChecksRun {
    let ca = crate::certs::path(pg.tls_dir(), ca);
    start_checks(
        &format!(
            r#"
  postgresql:
    endpoint: 127.0.0.1:{}
    username: postgres
    password: {PASSWORD}
    collection_interval: 1s
    timeout: 900ms
    initial_delay: 0s
    tls: {{ ca_file: {ca} }}
"#,
            pg.port
        ),
        &["postgresql"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_over_verified_tls_and_refuses_a_certificate_its_ca_did_not_sign() {
    let Some(pg) = Postgres::start_tls() else {
        return;
    };
    let trusted = scrape(&pg, "ca.pem").await;
    let up = until_value(&trusted.backend.recorded, "postgresql.up", &[], |v| {
        v == 1.0
    })
    .await;
    assert_eq!(
        up,
        Some(1.0),
        "verified TLS scrape; errors {:?}",
        points(&trusted.backend.recorded, "postgresql.scrape.errors")
            .iter()
            .map(|f| (f.text("error.type"), f.value()))
            .collect::<Vec<_>>()
    );
    let ssl_in_use = pg
        .connect("postgres")
        .await
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
             WHERE s.ssl AND a.application_name = 'sidewatch'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(ssl_in_use >= 1, "the receiver's session is encrypted");
    trusted.stop().await;

    let foreign = scrape(&pg, "foreign-ca.pem").await;
    let errors = until_value(
        &foreign.backend.recorded,
        "postgresql.scrape.errors",
        &[("error.type", "connection")],
        |v| v >= 2.0,
    )
    .await;
    assert!(errors.is_some_and(|v| v >= 2.0), "errors {errors:?}");
    assert_eq!(
        until_value(&foreign.backend.recorded, "postgresql.up", &[], |_| true).await,
        Some(0.0),
        "an unverifiable server is down"
    );
    assert!(
        points(&foreign.backend.recorded, "postgresql.db_size").is_empty(),
        "nothing was read from the unverified server"
    );
    foreign.stop().await;
}
