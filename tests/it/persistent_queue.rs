//! The persistent queue with real processes: data acknowledged while the
//! backend is down survives a graceful stop (the log stays on disk), a
//! `kill -9`, and a restart, and is delivered once the backend is back;
//! the log is emptied as deliveries are acknowledged; a long outage fills
//! the disk, not memory.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::backend::{Backend, wait_until};
use crate::harness::{free_port, trace_request};

const REQUESTS: usize = 20;
const SPANS: usize = 50;

fn spawn(config: &Path) -> crate::harness::Sidewatch {
    crate::harness::Sidewatch::run(config)
}

fn log_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, total);
            } else if path.extension().is_some_and(|e| e == "wal") {
                *total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    let mut total = 0;
    walk(dir, &mut total);
    total
}

/// A config in a temporary directory: OTLP/gRPC in on `port`, the `otlp`
/// exporter to `backend_port` with a persistent queue in `storage`
/// (`queue`: more `sending_queue` settings), retrying until delivered.
/// `short_timeouts`: export and shutdown give up after a second.
struct Setup {
    dir: tempfile::TempDir,
    storage: std::path::PathBuf,
    config: std::path::PathBuf,
    port: u16,
    backend_port: u16,
}

fn setup(queue: &str, short_timeouts: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("queue");
    let (port, backend_port) = (free_port(), free_port());
    let config = dir.path().join("sidewatch.yaml");
    let (export_timeout, shutdown_timeout) = if short_timeouts {
        ("timeout: 1s", "shutdown_timeout: 1s")
    } else {
        ("", "")
    };
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{port} }} }} }}
exporters:
  otlp:
    endpoint: http://127.0.0.1:{backend_port}
    {export_timeout}
    sending_queue: {{ storage: {storage}, {queue} }}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 300ms, max_elapsed_time: 0s }}
service:
  {shutdown_timeout}
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"#,
            storage = storage.display()
        ),
    )
    .unwrap();
    Setup {
        dir,
        storage,
        config,
        port,
        backend_port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_data_survives_stop_kill_and_restart() {
    let Setup {
        dir: _dir,
        storage,
        config,
        port,
        backend_port,
    } = setup("queue_size: 100, num_consumers: 2", true);

    // 1. The backend is down; every request is acknowledged (it is on disk).
    let mut sidewatch = spawn(&config);
    let mut client = crate::harness::connect_traces(port).await;
    for i in 0..REQUESTS {
        client
            .export(trace_request(&format!("r{i}"), SPANS))
            .await
            .unwrap_or_else(|e| panic!("request {i} refused: {e:?}"));
    }
    // 2. A graceful stop with the backend still down keeps the log.
    let pid = sidewatch.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let stopped = tokio::task::spawn_blocking(move || sidewatch.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!stopped.success(), "undelivered data is a non-zero exit");
    let kept = log_bytes(&storage);
    assert!(kept > 0, "the queue's log stays on disk");

    // 3. Restart, still no backend, then kill -9 mid-retry.
    let mut sidewatch = spawn(&config);
    crate::harness::connect_traces(port).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sidewatch.kill().unwrap();
    sidewatch.wait().unwrap();
    assert!(
        log_bytes(&storage) >= kept,
        "nothing deleted without delivery"
    );

    // 4. The backend comes back; a third start delivers everything.
    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;
    let mut sidewatch = spawn(&config);
    let recorded = backend.recorded.clone();
    let names = || recorded.span_names();
    let all = wait_until(Duration::from_secs(20), || {
        names().len() == REQUESTS * SPANS
    })
    .await;
    let delivered = names().len();
    let received = recorded.span_count();
    eprintln!(
        "persistent queue: {} spans acknowledged, {delivered} distinct delivered, {} duplicates",
        REQUESTS * SPANS,
        received - delivered
    );
    assert!(
        all,
        "{delivered} of {} acknowledged spans delivered",
        REQUESTS * SPANS
    );
    // Delivered batches leave the log.
    assert!(
        wait_until(Duration::from_secs(5), || log_bytes(&storage) == 0).await,
        "{} bytes still logged after delivery",
        log_bytes(&storage)
    );
    sidewatch.kill().unwrap();
    sidewatch.wait().unwrap();
    backend.stop().await;
}

/// `kill -9` at random moments under load, 20 cycles, backend down
/// throughout; then the backend comes back: every span whose request was
/// acknowledged in any cycle is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_under_load_loses_nothing_acknowledged() {
    use rand::{Rng, SeedableRng};
    let Setup {
        dir: _dir,
        config,
        port,
        backend_port,
        ..
    } = setup("queue_size: 5000, fsync: never", false);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0usize;
    for cycle in 0..20 {
        let mut sidewatch = spawn(&config);
        let mut client = crate::harness::connect_traces(port).await;
        let kill_at =
            tokio::time::Instant::now() + Duration::from_millis(rng.random_range(50..400));
        let mut i = 0;
        while tokio::time::Instant::now() < kill_at {
            let prefix = format!("c{cycle}-r{i}");
            match client.export(trace_request(&prefix, 10)).await {
                Ok(_) => {
                    acknowledged.extend((0..10).map(|s| format!("{prefix}-{s}")));
                }
                Err(_) => refused += 1,
            }
            i += 1;
        }
        // Killed with requests possibly in flight: those were never
        // acknowledged, so they may or may not arrive.
        sidewatch.kill().unwrap();
        sidewatch.wait().unwrap();
    }
    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;
    let mut sidewatch = spawn(&config);
    let recorded = backend.recorded.clone();
    let names = || recorded.span_names();
    let complete = wait_until(Duration::from_secs(30), || {
        names().is_superset(&acknowledged)
    })
    .await;
    let missing = acknowledged.difference(&names()).count();
    eprintln!(
        "kill -9 x20: {} spans acknowledged, {missing} missing, {} received in all, {refused} requests refused",
        acknowledged.len(),
        recorded.span_count()
    );
    assert!(!acknowledged.is_empty());
    assert!(complete, "{missing} acknowledged spans lost");
    sidewatch.kill().unwrap();
    sidewatch.wait().unwrap();
    backend.stop().await;
}

/// Backend down while 64 MiB of spans arrive: the queue holds where they
/// are in its log, not the data, so memory grows by a fraction of it;
/// when the backend returns, every span is read back and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_fills_the_disk_not_memory() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    const REQUESTS: usize = 128;
    const SPANS: usize = 512;
    let Setup {
        dir: _dir,
        storage,
        config,
        port,
        backend_port,
    } = setup("queue_size: 100000, fsync: never", false);
    let sidewatch = spawn(&config);
    let mut client = crate::harness::connect_traces(port).await;
    let before = crate::harness::resident_kib(sidewatch.id()).unwrap();
    let padding = "x".repeat(1024);
    for i in 0..REQUESTS {
        let mut request = trace_request(&format!("o{i}"), SPANS);
        for span in request.resource_spans[0].scope_spans[0].spans.iter_mut() {
            span.attributes.push(KeyValue {
                key: "padding".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(padding.clone())),
                }),
                ..Default::default()
            });
        }
        client
            .export(request)
            .await
            .unwrap_or_else(|e| panic!("request {i} refused: {e:?}"));
    }
    let logged = log_bytes(&storage);
    let peak = crate::harness::peak_resident_kib(sidewatch.id()).unwrap();
    eprintln!(
        "long outage: {} MiB logged, RSS {} MiB before, peak {} MiB",
        logged >> 20,
        before >> 10,
        peak >> 10
    );
    assert!(logged >= 64 << 20, "{logged} bytes logged");
    // Held in memory, the queue alone would add 64 MiB.
    assert!(
        (peak - before) < 24 << 10,
        "memory grew by {} MiB for 64 MiB queued",
        (peak - before) >> 10
    );

    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;
    let recorded = backend.recorded.clone();
    let delivered = wait_until(Duration::from_secs(60), || {
        recorded.span_names().len() == REQUESTS * SPANS
    })
    .await;
    assert!(
        delivered,
        "{} of {} spans delivered after the outage",
        recorded.span_names().len(),
        REQUESTS * SPANS
    );
    drop(sidewatch);
    backend.stop().await;
}

/// The disk fills up (a file size limit on the process makes every write
/// past 2 MiB fail, as a full disk does): requests are refused with the
/// retryable UNAVAILABLE and nothing unstored is acknowledged; once there
/// is room again, requests are taken again, and every acknowledged span
/// is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_retryably_and_loses_nothing_acknowledged() {
    use std::os::unix::process::CommandExt;
    const LIMIT: u64 = 2 << 20;
    let Setup {
        dir: _dir,
        storage,
        config,
        port,
        backend_port,
    } = setup("queue_size: 100000", false);
    let mut command = Command::new(env!("CARGO_BIN_EXE_sidewatch"));
    command
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // A write past the limit then fails with EFBIG instead of
            // killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let sidewatch = crate::harness::Sidewatch(command.spawn().unwrap());
    let mut client = crate::harness::connect_traces(port).await;

    let mut acknowledged = BTreeSet::new();
    let mut refusal = None;
    for i in 0..2000 {
        let prefix = format!("f{i}");
        match client.export(trace_request(&prefix, 100)).await {
            Ok(_) => acknowledged.extend((0..100).map(|s| format!("{prefix}-{s}"))),
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk never filled up");
    assert_eq!(refusal.code(), tonic::Code::Unavailable, "{refusal:?}");
    assert!(log_bytes(&storage) <= LIMIT, "the log is within the limit");
    let stored = acknowledged.len();

    // Room again: the same process takes data again.
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall on our own child's pid.
    let lifted = unsafe {
        libc::prlimit(
            sidewatch.id() as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &unlimited,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(lifted, 0, "{}", std::io::Error::last_os_error());
    for i in 0..10 {
        let prefix = format!("after{i}");
        client
            .export(trace_request(&prefix, 100))
            .await
            .unwrap_or_else(|e| panic!("refused with room on disk: {e:?}"));
        acknowledged.extend((0..100).map(|s| format!("{prefix}-{s}")));
    }

    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;
    let recorded = backend.recorded.clone();
    let complete = wait_until(Duration::from_secs(30), || {
        recorded.span_names().is_superset(&acknowledged)
    })
    .await;
    let missing = acknowledged.difference(&recorded.span_names()).count();
    eprintln!(
        "full disk: {stored} spans stored before the disk filled, refused with {:?}, {} acknowledged in all, {missing} missing",
        refusal.code(),
        acknowledged.len()
    );
    assert!(complete, "{missing} acknowledged spans lost");
    drop(sidewatch);
    backend.stop().await;
}
