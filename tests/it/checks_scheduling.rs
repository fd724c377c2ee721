//! The checks scheduler: a hundred hanging targets do not delay a healthy
//! one beyond its own timeout, and runs keep to their schedule (the
//! interval is measured from the schedule, not from the end of a run).

use std::time::Duration;

use axum::routing::get;

use crate::backend::wait_until;
use crate::checks_http::{app, serve};
use crate::checks_support::{points, start_checks};

/// `/hang/{n}` never answers.
fn hanging_app() -> axum::Router {
    app().route(
        "/hang/{n}",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "never"
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_hanging_targets_do_not_delay_a_healthy_one() {
    let server = serve(hanging_app()).await;
    let healthy = format!("http://{server}/ok");
    let mut targets = format!("      - endpoint: {healthy}\n");
    for n in 0..100 {
        targets.push_str(&format!("      - endpoint: http://{server}/hang/{n}\n"));
    }
    let run = start_checks(
        &format!(
            "  httpcheck:\n    collection_interval: 2s\n    timeout: 1s\n    targets:\n{targets}"
        ),
        &["httpcheck"],
    )
    .await;
    let recorded = run.backend.recorded.clone();
    let runs_of = |target: &str| {
        points(&recorded, "sidewatch.check.duration")
            .into_iter()
            .filter(|f| f.text("check.target").as_deref() == Some(target))
            .collect::<Vec<_>>()
    };
    // Two rounds: every hanging target timed out twice meanwhile.
    let hung = format!("http://{server}/hang/99");
    assert!(
        wait_until(Duration::from_secs(15), || runs_of(&hung).len() >= 2
            && runs_of(&healthy).len() >= 2)
        .await,
        "runs: healthy {}, hanging {}",
        runs_of(&healthy).len(),
        runs_of(&hung).len()
    );
    for found in runs_of(&hung) {
        let took = found.value();
        assert!(
            (1.0..2.0).contains(&took),
            "a hanging target's run ends at its deadline, took {took} s"
        );
    }
    let healthy_runs = runs_of(&healthy);
    for found in &healthy_runs {
        assert!(
            found.value() < 1.0,
            "the healthy run took {} s, past its own timeout",
            found.value()
        );
    }
    // Its runs are on its own schedule, not queued behind the hanging ones.
    let times: Vec<u64> = healthy_runs
        .iter()
        .map(|f| f.point.time_unix_nano)
        .collect();
    let gap = Duration::from_nanos(times[1] - times[0]);
    assert!(
        gap >= Duration::from_millis(1500) && gap <= Duration::from_millis(2500),
        "healthy runs {gap:?} apart, interval 2s"
    );
    let json = crate::checks_support::checks_json(run.telemetry()).await;
    assert_eq!(json["down"], 100, "{}", json["up"]);
    assert_eq!(
        crate::checks_support::entry(&json, &hung)["error"]["code"],
        "timeout"
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_keep_to_the_schedule_without_drift() {
    let server = serve(app()).await;
    // Each run takes 300 ms of a 500 ms interval: measured from the end of
    // a run, runs would start 800 ms apart.
    let slow = format!("http://{server}/slow");
    let run = start_checks(
        &format!("  httpcheck:\n    collection_interval: 500ms\n    timeout: 450ms\n    targets: [{{ endpoint: {slow} }}]\n"),
        &["httpcheck"],
    )
    .await;
    let recorded = run.backend.recorded.clone();
    let times = || {
        points(&recorded, "sidewatch.check.up")
            .into_iter()
            .map(|f| f.point.time_unix_nano)
            .collect::<Vec<_>>()
    };
    assert!(wait_until(Duration::from_secs(15), || times().len() >= 9).await);
    let times = times();
    let span = Duration::from_nanos(times[8] - times[0]);
    // Eight intervals of 500 ms: 4 s on the schedule, 6.4 s if it drifted.
    assert!(
        span >= Duration::from_millis(3800) && span <= Duration::from_millis(4400),
        "8 runs spanned {span:?}"
    );
    run.stop().await;
}
