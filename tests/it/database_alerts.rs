//! The alert rules of pipelines/databases.yaml, end to end: the real
//! binary runs the shipped file (shortened by its ${env:...} settings)
//! against a real PostgreSQL and Redis the test starts and a MySQL port
//! nothing listens on, delivering to the real Alertmanager. The absent
//! MySQL fires MysqlDown and the two live servers fire nothing; each
//! server the test stops fires its own rule, which resolves once the
//! server is back.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::alerting::{start_alertmanager, wait_for};
use crate::harness::{Sidewatch, free_port};
use crate::postgresql::{PASSWORD, Postgres};
use crate::redis::RedisServer;

/// The alertnames Alertmanager shows as not ended.
async fn active(alertmanager: &str) -> BTreeSet<String> {
    let alerts: Vec<serde_json::Value> = reqwest::get(format!("{alertmanager}/api/v2/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alerts
        .iter()
        .filter(|a| {
            a["endsAt"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .is_none_or(|end| end > SystemTime::now())
        })
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_database_rules_fire_into_alertmanager_and_resolve() {
    let (Some(pg), Some(mut redis), Some(alertmanager)) = (
        Postgres::start(),
        RedisServer::start(),
        start_alertmanager().await,
    ) else {
        return;
    };
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/databases.yaml");
    let _sidewatch = Sidewatch(
        Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["run", "--config"])
            .arg(&config)
            .envs([
                ("PG_ENDPOINT", format!("127.0.0.1:{}", pg.port)),
                ("PG_USER", "postgres".to_string()),
                ("PG_PASSWORD", PASSWORD.to_string()),
                ("MYSQL_ENDPOINT", format!("127.0.0.1:{}", free_port())),
                ("REDIS_ENDPOINT", format!("127.0.0.1:{}", redis.port)),
                ("REDIS_PASSWORD", crate::redis::PASSWORD.to_string()),
                ("DB_INTERVAL", "500ms".to_string()),
                ("DB_EVALUATION_INTERVAL", "250ms".to_string()),
                ("DB_DOWN_FOR", "2s".to_string()),
                ("ALERTMANAGER_URL", alertmanager.url.clone()),
                ("PROMETHEUS_ENDPOINT", "127.0.0.1:0".to_string()),
                (
                    "SIDEWATCH_TELEMETRY_ADDRESS",
                    format!("127.0.0.1:{}", free_port()),
                ),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sidewatch starts"),
    );
    let shows = async |expected: &[&str], what: &str| {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        let reached = wait_for(Duration::from_secs(30), async || {
            (active(&alertmanager.url).await == expected).then_some(())
        })
        .await;
        assert!(
            reached.is_some(),
            "{what}: Alertmanager shows {:?}, expected {expected:?}",
            active(&alertmanager.url).await
        );
    };
    shows(&["MysqlDown"], "only the absent MySQL is down").await;
    // Live servers stay quiet well past their `for`.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        active(&alertmanager.url).await,
        BTreeSet::from(["MysqlDown".to_string()])
    );

    pg.stop();
    shows(&["MysqlDown", "PostgresqlDown"], "PostgreSQL stopped").await;
    pg.resume();
    shows(&["MysqlDown"], "PostgreSQL back").await;

    redis.stop();
    shows(&["MysqlDown", "RedisDown"], "Redis stopped").await;
    redis.resume();
    shows(&["MysqlDown"], "Redis back").await;
}
