//! The query API against a real Prometheus: the same samples (same
//! timestamps) go to sidewatch over OTLP and into Prometheus by
//! `promtool tsdb create-blocks-from openmetrics`; the same range queries
//! are asked of both over HTTP and compared point by point.
//!
//! Sample times sit 300 ms off the query's step grid, so no sample lands
//! on a range's edge, where Prometheus 2 (closed ranges, the Debian
//! package here) and 3 (left-open, what sidewatch follows) differ.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::external::binary;
use crate::prometheus::Prometheus;
use crate::store::{connect, query_range, store_setup};

const POINTS: i64 = 240;
const INTERVAL_MS: i64 = 10_000;
const BOUNDS: [f64; 2] = [0.1, 1.0];

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn number(attrs: Vec<KeyValue>, t: i64, v: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t as u64 * 1_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

/// The data set: counters (one with a reset), gauges, a histogram.
struct Data {
    /// (route, time, value)
    counters: Vec<(&'static str, i64, f64)>,
    /// (room, time, value)
    gauges: Vec<(&'static str, i64, f64)>,
    /// (time, per-bucket counts, sum)
    histogram: Vec<(i64, [u64; 3], f64)>,
}

fn data(t0: i64) -> Data {
    let mut counters = Vec::new();
    let mut gauges = Vec::new();
    let mut histogram = Vec::new();
    let (mut a, mut b) = (0.0, 0.0);
    let mut buckets = [0u64; 3];
    let mut sum = 0.0;
    for i in 0..POINTS {
        let t = t0 + i * INTERVAL_MS;
        a += ((i * 7) % 5 + 1) as f64;
        b = if i == 120 {
            3.0
        } else {
            b + ((i * 3) % 4) as f64
        };
        counters.push(("/a", t, a));
        counters.push(("/b", t, b));
        gauges.push(("x", t, 20.0 + (i as f64 / 10.0).sin() * 3.0));
        gauges.push(("y", t, 21.0 + (i as f64 / 7.0).cos() * 2.0));
        buckets[0] += (i % 3) as u64;
        buckets[1] += 2;
        buckets[2] += 1;
        sum += 0.05 * (i % 3) as f64 + 1.0 + 2.5;
        histogram.push((t, buckets, sum));
    }
    Data {
        counters,
        gauges,
        histogram,
    }
}

fn otlp(data: &Data) -> ExportMetricsServiceRequest {
    let metrics = vec![
        Metric {
            name: "requests".into(),
            data: Some(metric::Data::Sum(Sum {
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
                data_points: data
                    .counters
                    .iter()
                    .map(|(route, t, v)| number(vec![kv("route", route)], *t, *v))
                    .collect(),
            })),
            ..Default::default()
        },
        Metric {
            name: "temperature".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: data
                    .gauges
                    .iter()
                    .map(|(room, t, v)| number(vec![kv("room", room)], *t, *v))
                    .collect(),
            })),
            ..Default::default()
        },
        Metric {
            name: "latency_seconds".into(),
            data: Some(metric::Data::Histogram(Histogram {
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                data_points: data
                    .histogram
                    .iter()
                    .map(|(t, counts, sum)| HistogramDataPoint {
                        attributes: vec![kv("route", "/a")],
                        time_unix_nano: *t as u64 * 1_000_000,
                        count: counts.iter().sum(),
                        sum: Some(*sum),
                        bucket_counts: counts.to_vec(),
                        explicit_bounds: BOUNDS.to_vec(),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "app")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The same samples as OpenMetrics text with timestamps, one family per
/// series name (types left unknown: queries do not look at them).
fn openmetrics(data: &Data) -> String {
    let seconds = |t: i64| format!("{}.{:03}", t / 1000, t % 1000);
    let mut families: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (route, t, v) in &data.counters {
        families
            .entry("requests_total".into())
            .or_default()
            .push(format!(
                "requests_total{{job=\"app\",route=\"{route}\"}} {v} {}",
                seconds(*t)
            ));
    }
    for (room, t, v) in &data.gauges {
        families
            .entry("temperature".into())
            .or_default()
            .push(format!(
                "temperature{{job=\"app\",room=\"{room}\"}} {v:?} {}",
                seconds(*t)
            ));
    }
    for (t, counts, sum) in &data.histogram {
        let mut running = 0;
        for (i, c) in counts.iter().enumerate() {
            running += c;
            let le = BOUNDS
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or("+Inf".into());
            families
                .entry("latency_seconds_bucket".into())
                .or_default()
                .push(format!(
                    "latency_seconds_bucket{{job=\"app\",le=\"{le}\",route=\"/a\"}} {running} {}",
                    seconds(*t)
                ));
        }
        families
            .entry("latency_seconds_sum".into())
            .or_default()
            .push(format!(
                "latency_seconds_sum{{job=\"app\",route=\"/a\"}} {sum:?} {}",
                seconds(*t)
            ));
        families
            .entry("latency_seconds_count".into())
            .or_default()
            .push(format!(
                "latency_seconds_count{{job=\"app\",route=\"/a\"}} {} {}",
                counts.iter().sum::<u64>(),
                seconds(*t)
            ));
    }
    let mut text = String::new();
    for (name, mut lines) in families {
        // Per series, in time order: sort by labels, stable in time.
        lines.sort_by(|x, y| x.split(' ').next().cmp(&y.split(' ').next()));
        text.push_str(&format!("# TYPE {name} unknown\n"));
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text.push_str("# EOF\n");
    text
}

const QUERIES: &[&str] = &[
    "requests_total",
    "requests_total{route=\"/a\"}",
    "requests_total{route!=\"/a\"}",
    "requests_total{route=~\"/a|/b\"}",
    "requests_total{route!~\"/b\"}",
    "rate(requests_total[1m])",
    "rate(requests_total[5m])",
    "increase(requests_total[5m])",
    "irate(requests_total[1m])",
    "delta(temperature[5m])",
    "avg_over_time(temperature[5m])",
    "min_over_time(temperature[5m])",
    "max_over_time(temperature[5m])",
    "sum_over_time(temperature[5m])",
    "count_over_time(temperature[5m])",
    "last_over_time(temperature[5m])",
    "sum(rate(requests_total[5m]))",
    "sum by (route) (rate(requests_total[5m]))",
    "avg by (job) (temperature)",
    "min(temperature)",
    "max without (room) (temperature)",
    "count by (job) (requests_total)",
    "topk(1, temperature)",
    "bottomk(1, temperature)",
    "temperature * 2",
    "30 - temperature",
    "temperature > 21",
    "temperature > bool 21",
    "requests_total{route=\"/a\"} / ignoring(route) requests_total{route=\"/b\"}",
    "rate(requests_total[5m]) / on(job) group_left sum by (job) (rate(requests_total[5m]))",
    "temperature and temperature > 21",
    "temperature unless temperature > 21",
    "histogram_quantile(0.9, rate(latency_seconds_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[5m])))",
    "rate(latency_seconds_sum[5m]) / rate(latency_seconds_count[5m])",
    "predict_linear(temperature[10m], 600)",
    "deriv(temperature[10m])",
];

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_answers_match_prometheus_point_by_point() {
    let Some(prometheus_binary) = binary("prometheus", "prometheus") else {
        return;
    };
    let Some(promtool) = binary("promtool", "prometheus") else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // 300 ms past a whole minute, 45 minutes ago.
    let t0 = (now / 60_000) * 60_000 - 45 * 60_000 + 300;
    let data = data(t0);
    let prometheus = Prometheus::with_backfill(&prometheus_binary, &promtool, &openmetrics(&data));
    let setup = store_setup("fsync: never");
    let _sidewatch = crate::harness::Sidewatch::run(&setup.config);
    let mut client = connect(setup.otlp_port).await;
    client.export(otlp(&data)).await.expect("export accepted");
    let ours = format!("http://127.0.0.1:{}", setup.telemetry_port);
    let http = reqwest::Client::new();
    let (start, end, step) = (
        (t0 - 300) as f64 / 1000.0 + 600.0,
        (t0 - 300) as f64 / 1000.0 + 2340.0,
        30.0,
    );
    // Both ready: each answers the plain selector with every series.
    for _ in 0..150 {
        let a = query_range(&http, &ours, "requests_total", start, end, step).await;
        let b = query_range(&http, &prometheus.base, "requests_total", start, end, step).await;
        if a.is_ok_and(|a| a.len() == 2) && b.is_ok_and(|b| b.len() == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut disagree = Vec::new();
    for query in QUERIES {
        let theirs = query_range(&http, &prometheus.base, query, start, end, step).await;
        let mine = query_range(&http, &ours, query, start, end, step).await;
        let verdict = match (&theirs, &mine) {
            (Ok(theirs), Ok(mine)) => {
                let points: usize = theirs.iter().map(|s| s.1.len()).sum();
                let same = theirs.len() == mine.len()
                    && theirs.iter().zip(mine).all(|(t, m)| {
                        t.0 == m.0
                            && t.1.len() == m.1.len()
                            && t.1
                                .iter()
                                .zip(&m.1)
                                .all(|(a, b)| a.0 == b.0 && close(a.1, b.1))
                    });
                if points == 0 {
                    Err("Prometheus answered nothing".to_string())
                } else if same {
                    Ok(points)
                } else {
                    Err(format!(
                        "differ: prometheus {:?}\n  sidewatch {:?}",
                        theirs
                            .first()
                            .map(|s| (&s.0, s.1.iter().take(3).collect::<Vec<_>>())),
                        mine.first()
                            .map(|s| (&s.0, s.1.iter().take(3).collect::<Vec<_>>()))
                    ))
                }
            }
            (t, m) => Err(format!("prometheus {t:?}, sidewatch {m:?}")),
        };
        match verdict {
            Ok(points) => eprintln!("agree ({points} points): {query}"),
            Err(why) => {
                eprintln!("DISAGREE: {query}: {why}");
                disagree.push(*query);
            }
        }
    }
    eprintln!(
        "{} of {} queries agree",
        QUERIES.len() - disagree.len(),
        QUERIES.len()
    );
    assert!(disagree.is_empty(), "queries that disagree: {disagree:?}");
}
