//! Replication figures of the `postgresql` receiver against a real
//! primary and a streaming standby (PostgreSQL 15, `pg_basebackup -R`):
//! the primary reports its standby's delay in bytes, the standby its
//! replay lag in seconds. A standby that has replayed everything it
//! received lags 0 s however long the primary has been idle (the age of
//! the last replayed transaction alone would make every idle standby look
//! late, and `PostgresqlReplicationLag` fire); a standby whose replay is
//! paused while the primary writes lags, and catches up when resumed.

use std::time::Duration;

use crate::checks_support::{ChecksRun, latest_value, points, start_checks, until_value};
use crate::postgresql::{PASSWORD, Postgres};

async fn scrape(pg: &Postgres) -> ChecksRun {
    start_checks(
        &format!(
            r#"
  postgresql:
    endpoint: 127.0.0.1:{}
    username: postgres
    password: {PASSWORD}
    collection_interval: 300ms
    initial_delay: 0s
"#,
            pg.port
        ),
        &["postgresql"],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_reports_its_standbys_delay_and_an_idle_caught_up_standby_lags_zero() {
    let Some(primary) = Postgres::start() else {
        return;
    };
    let standby = Postgres::standby_of(&primary);
    let writer = primary.connect("postgres").await;
    writer
        .batch_execute("CREATE TABLE ticks (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
        .await
        .unwrap();
    let reader = standby.connect("postgres").await;
    // Streaming and caught up: the table exists on the standby.
    let mut caught_up = false;
    for _ in 0..100 {
        if reader.query("SELECT 1 FROM ticks", &[]).await.is_ok() {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the standby never saw the primary's table");

    let on_primary = scrape(&primary).await;
    let on_standby = scrape(&standby).await;
    let standby_client = [("replication_client", "127.0.0.1/32")];
    let delay = until_value(
        &on_primary.backend.recorded,
        "postgresql.replication.data_delay",
        &standby_client,
        |_| true,
    )
    .await;
    assert_eq!(
        delay,
        Some(0.0),
        "a caught-up standby is 0 bytes behind; replication points {:?}",
        points(
            &on_primary.backend.recorded,
            "postgresql.replication.data_delay"
        )
        .iter()
        .map(|f| (f.text("replication_client"), f.value()))
        .collect::<Vec<_>>()
    );

    // Idle and caught up for longer than a lag rule's threshold scale.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_lag = until_value(
        &on_standby.backend.recorded,
        "postgresql.replication.lag",
        &[],
        |_| true,
    )
    .await;
    assert_eq!(
        idle_lag,
        Some(0.0),
        "an idle, caught-up standby is not late"
    );

    // Replay paused while the primary writes: the standby falls behind.
    reader
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    for _ in 0..20 {
        writer
            .batch_execute("INSERT INTO ticks DEFAULT VALUES")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = until_value(
        &on_standby.backend.recorded,
        "postgresql.replication.lag",
        &[],
        |v| v >= 1.0,
    )
    .await;
    assert!(late.is_some_and(|v| v >= 1.0), "paused replay lag {late:?}");
    let behind = until_value(
        &on_primary.backend.recorded,
        "postgresql.replication.data_delay",
        &standby_client,
        |v| v > 0.0,
    )
    .await;
    assert!(behind.is_some_and(|v| v > 0.0), "bytes behind {behind:?}");
    assert!(
        latest_value(
            &on_primary.backend.recorded,
            "postgresql.wal.lag",
            &[("operation", "replay")]
        )
        .is_some(),
        "the primary reports wal lag per operation"
    );

    reader
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    assert_eq!(
        until_value(
            &on_standby.backend.recorded,
            "postgresql.replication.lag",
            &[],
            |v| v == 0.0
        )
        .await,
        Some(0.0),
        "caught up again after replay resumed"
    );
    on_primary.stop().await;
    on_standby.stop().await;
}
