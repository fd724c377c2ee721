//! Compression bombs: 16 requests at once, each 1 GiB of zeros once
//! decompressed (gzip members or zstd frames, concatenated), against the
//! sidewatch binary. Each is refused with 413 after at most the size limit
//! was decompressed, and the process's peak RSS stays far below what even
//! one bomb would take, bounded by 16 x the 4 MiB limit plus its baseline.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::harness::free_port;

const GIB: usize = 1024 * 1024 * 1024;
const MIB: usize = 1024 * 1024;

/// 1 GiB of zeros as 1024 concatenated 1 MiB members/frames: about 1 MiB
/// of gzip, 40 KiB of zstd.
fn bombs() -> (Vec<u8>, Vec<u8>) {
    let zeros = vec![0u8; MIB];
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&zeros).unwrap();
    let member = gzip.finish().unwrap();
    let frame = zstd::encode_all(&zeros[..], 19).unwrap();
    (member.repeat(GIB / MIB), frame.repeat(GIB / MIB))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_gibibyte_bombs_at_once_are_refused_in_bounded_memory() {
    let (gzip, zstd) = bombs();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{port} }} }} }}
exporters:
  debug: {{}}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"#
        ),
    )
    .unwrap();
    let mut child = crate::harness::Sidewatch::run(&config);
    let pid = child.id();
    let url = format!("http://127.0.0.1:{port}/v1/traces");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(&url).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "sidewatch listens");
    let baseline_kib = crate::harness::resident_kib(pid).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = crate::harness::resident_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let requests: Vec<_> = (0..16)
        .map(|i| {
            let (encoding, body) = if i % 2 == 0 {
                ("gzip", gzip.clone())
            } else {
                ("zstd", zstd.clone())
            };
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let response = http
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .header("content-encoding", encoding)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (encoding, response.status().as_u16())
            })
        })
        .collect();
    for request in requests {
        let (encoding, status) = request.await.unwrap();
        assert_eq!(status, 413, "a {encoding} bomb");
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak_mib = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    let baseline_mib = baseline_kib as f64 / 1024.0;
    eprintln!("16 bombs of 1 GiB: baseline RSS {baseline_mib:.1} MiB, peak {peak_mib:.1} MiB");
    // Each request may hold its compressed body (1 MiB) and up to the 4 MiB
    // limit decompressed: 16 x 5 MiB over the baseline at worst.
    assert!(
        peak_mib <= baseline_mib + 16.0 * 5.0 + 8.0,
        "peak RSS {peak_mib:.1} MiB"
    );
    // And it still serves.
    let ok = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
}
