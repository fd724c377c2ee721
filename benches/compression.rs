//! What compressing an exported batch costs: one OTLP batch of 8192 spans
//! (what the side-by-side benchmark's batch processor sends) shaped like
//! instrumentation output (random trace and span ids, a handful of routes
//! and services, varying durations), compressed with each deflate backend
//! and level and with zstd, and the same for decompressing a 512-span
//! client request (the receive side of gzip input).
//!
//!   cargo bench --bench compression
//!
//! Both deflate backends in one binary: `miniz_oxide` called directly (the
//! backend flate2 uses by default) and flate2 itself, which this crate
//! builds with its `zlib-rs` feature. Each figure is the median of 7
//! trials of at least 200 ms; a plain loop rather than criterion, so one
//! run prints the whole table (ratios within a run are what to compare on
//! this shared machine).

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use rand::{Rng, SeedableRng};

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// `spans` spans over 4 services, 16 routes each, with random ids.
fn request(spans: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let now = 1_764_000_000_000_000_000u64;
    let services = ["orders", "payments", "catalog", "frontend"];
    let per_service = spans / services.len();
    let resource_spans = services
        .iter()
        .map(|service| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", service),
                    kv("service.version", "2.14.1"),
                    kv("host.name", &format!("{service}-7f9c8d-x2k4p")),
                    kv("telemetry.sdk.language", "rust"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "axum-otel".into(),
                    version: "0.9.0".into(),
                    ..Default::default()
                }),
                spans: (0..per_service)
                    .map(|i| {
                        let route = format!("/api/{service}/{}/{{id}}", i % 16);
                        let start = now + rng.random_range(0..1_000_000_000u64);
                        Span {
                            trace_id: rng.random::<[u8; 16]>().to_vec(),
                            span_id: rng.random::<[u8; 8]>().to_vec(),
                            parent_span_id: rng.random::<[u8; 8]>().to_vec(),
                            name: format!("GET {route}"),
                            kind: span::SpanKind::Server as i32,
                            start_time_unix_nano: start,
                            end_time_unix_nano: start + rng.random_range(100_000..50_000_000u64),
                            attributes: vec![
                                kv("http.request.method", "GET"),
                                kv("http.route", &route),
                                kv(
                                    "http.response.status_code",
                                    if i % 50 == 0 { "500" } else { "200" },
                                ),
                                kv("url.scheme", "https"),
                                kv("server.address", &format!("{service}.internal")),
                                kv("client.address", &format!("10.0.{}.{}", i % 7, i % 250)),
                            ],
                            status: Some(Status::default()),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

/// Median time of one call of `f`, over 7 trials of at least 200 ms.
fn time(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut size = f();
    let mut trials = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let mut calls = 0u32;
        while started.elapsed() < Duration::from_millis(200) {
            size = black_box(f());
            calls += 1;
        }
        trials.push(started.elapsed() / calls);
    }
    trials.sort();
    (trials[3], size)
}

/// A labelled call to time; returns the output's size.
type Row<'a> = (String, Box<dyn FnMut() -> usize + 'a>);

fn gzip_flate2(data: &[u8], level: u32, out: &mut Vec<u8>) -> usize {
    out.clear();
    let mut encoder = flate2::write::GzEncoder::new(&mut *out, flate2::Compression::new(level));
    encoder.write_all(data).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec").len()
}

fn main() {
    let batch = request(8192);
    let spans = 8192.0;
    println!(
        "one batch: 8192 spans, {} bytes of protobuf ({:.0} bytes per span)\n",
        batch.len(),
        batch.len() as f64 / spans
    );
    println!(
        "{:<46}{:>12}{:>14}{:>12}{:>10}",
        "compress one batch", "time", "ns per span", "MB/s in", "ratio"
    );
    let mut out = Vec::with_capacity(batch.len());
    let mut rows: Vec<Row> = Vec::new();
    for level in [1u8, 6] {
        let data = batch.clone();
        rows.push((
            format!("miniz_oxide (flate2 default) {level}"),
            Box::new(move || miniz_oxide::deflate::compress_to_vec(&data, level).len()),
        ));
    }
    for level in [1u32, 6] {
        let data = batch.clone();
        let mut out = std::mem::take(&mut out);
        rows.push((
            format!("flate2 zlib-rs gzip {level}"),
            Box::new(move || gzip_flate2(&data, level, &mut out)),
        ));
    }
    // What the exporters call: level 1, the state kept per thread.
    let data = batch.clone();
    rows.push((
        "sidewatch compress::gzip (zlib-rs 1, reused)".into(),
        Box::new(move || {
            sidewatch::exporters::compress::gzip(&data)
                .expect("gzip")
                .len()
        }),
    ));
    let data = batch.clone();
    rows.push((
        "sidewatch compress::zstd (1, reused)".into(),
        Box::new(move || {
            sidewatch::exporters::compress::zstd(&data)
                .expect("zstd")
                .len()
        }),
    ));
    for level in [1i32, 3] {
        let data = batch.clone();
        let mut compressor = zstd::bulk::Compressor::new(level).expect("a zstd level");
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(batch.len()));
        rows.push((
            format!("zstd {level}"),
            Box::new(move || {
                compressor
                    .compress_to_buffer(&data, &mut out)
                    .expect("fits the bound");
                out.len()
            }),
        ));
    }
    for (name, f) in rows.iter_mut() {
        let (took, size) = time(f);
        println!(
            "{name:<46}{:>10.0}us{:>14.1}{:>12.0}{:>10.2}",
            took.as_secs_f64() * 1e6,
            took.as_secs_f64() * 1e9 / spans,
            batch.len() as f64 / took.as_secs_f64() / 1e6,
            batch.len() as f64 / size as f64
        );
    }

    // The receive side: a 512-span request as a client compressed it.
    let request = request(512);
    let mut gzipped = Vec::new();
    gzip_flate2(&request, 6, &mut gzipped);
    let zstded = zstd::bulk::compress(&request, 3).expect("zstd");
    println!(
        "\n{:<46}{:>12}{:>14}",
        "decompress one 512-span request", "time", "ns per span"
    );
    let mut plain = Vec::with_capacity(request.len());
    let decoders: Vec<Row> = vec![
        (
            "flate2 zlib-rs gunzip".into(),
            Box::new(|| {
                plain.clear();
                flate2::read::GzDecoder::new(&gzipped[..])
                    .read_to_end(&mut plain)
                    .expect("valid gzip")
            }),
        ),
        (
            "miniz_oxide inflate".into(),
            Box::new(|| {
                // The gzip header is 10 bytes and the trailer 8 here.
                miniz_oxide::inflate::decompress_to_vec(&gzipped[10..gzipped.len() - 8])
                    .expect("valid deflate")
                    .len()
            }),
        ),
        (
            "zstd".into(),
            Box::new(|| {
                zstd::bulk::decompress(&zstded, request.len())
                    .expect("valid zstd")
                    .len()
            }),
        ),
    ];
    for (name, mut f) in decoders {
        let (took, _) = time(&mut f);
        println!(
            "{name:<46}{:>10.1}us{:>14.1}",
            took.as_secs_f64() * 1e6,
            took.as_secs_f64() * 1e9 / 512.0
        );
    }
}
