//! Scraped families to OTLP metrics, per the OpenTelemetry-Prometheus
//! compatibility specification: counters become monotonic cumulative sums,
//! gauges and untyped samples gauges, histograms explicit-bucket histograms
//! (buckets de-cumulated, `+Inf` implied by the count), summaries
//! summaries; `job` and `instance` become `service.name` and
//! `service.instance.id` on the resource and `target_info` adds its labels
//! there. A series that disappears from a target, or every series of a
//! target that stops answering, gets one point flagged
//! `NO_RECORDED_VALUE`, as Prometheus marks it stale.

use std::collections::HashMap;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::relabel::Labels;
use super::text::{Family, Kind, Sample};
use crate::receivers::hostmetrics::string_attribute;

/// The target a scrape came from, after relabelling.
#[derive(Debug, Clone)]
pub struct Target {
    pub job: String,
    pub instance: String,
    pub scheme: String,
    pub url: String,
    /// Target labels other than `job`, `instance` and `__*`: they are
    /// added to every point.
    pub labels: Labels,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Gauge,
    Sum { monotonic: bool },
    Histogram,
    Summary,
}

struct Series {
    name: String,
    shape: Shape,
    attributes: Vec<KeyValue>,
    start_ns: u64,
    /// The last cumulative value (a counter's value, a histogram's or
    /// summary's count): a decrease is a reset.
    last: f64,
    seen: u64,
}

/// What a target's series looked like at its last scrape: start times of
/// cumulative series without `_created`, and what to mark stale.
#[derive(Default)]
pub struct SeriesTracker {
    series: HashMap<String, Series>,
    generation: u64,
}

/// Points a scrape could not use, by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub histogram_buckets: u64,
    pub summary_quantiles: u64,
}

impl SeriesTracker {
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

fn series_key(name: &str, attributes: &[KeyValue]) -> String {
    let mut parts: Vec<String> = attributes
        .iter()
        .map(|kv| format!("{}\u{1}{:?}", kv.key, kv.value))
        .collect();
    parts.sort();
    format!("{name}\u{2}{}", parts.join("\u{3}"))
}

struct Converter<'a> {
    target: &'a Target,
    now_ns: u64,
    tracker: &'a mut SeriesTracker,
    dropped: Dropped,
}

impl Converter<'_> {
    fn time(&self, sample: &Sample) -> u64 {
        match sample.timestamp_ms {
            Some(ms) if self.target.honor_timestamps && ms > 0 => {
                (ms as u64).saturating_mul(1_000_000)
            }
            _ => self.now_ns,
        }
    }

    /// A sample's labels (less `skip`) and the target's, as attributes;
    /// on a clash the target wins and the scraped label becomes
    /// `exported_<name>` unless `honor_labels`, as in Prometheus.
    fn attributes(&self, labels: &[(String, String)], skip: &str) -> Vec<KeyValue> {
        let mut out = Vec::with_capacity(labels.len() + self.target.labels.len());
        let honor = self.target.honor_labels;
        for (k, v) in labels {
            if k == skip {
                continue;
            }
            let clashes =
                k == "job" || k == "instance" || self.target.labels.iter().any(|(t, _)| t == k);
            let key = if clashes && !honor {
                format!("exported_{k}")
            } else {
                k.clone()
            };
            out.push(string_attribute(&key, v.clone()));
        }
        for (k, v) in &self.target.labels {
            if honor && labels.iter().any(|(s, _)| s == k) {
                continue;
            }
            out.push(string_attribute(k, v.clone()));
        }
        out
    }

    /// The start time of a cumulative series: `_created` when given,
    /// otherwise when this receiver first saw it or saw it reset.
    fn start(
        &mut self,
        name: &str,
        shape: Shape,
        attributes: &[KeyValue],
        value: f64,
        time_ns: u64,
        created_ns: Option<u64>,
    ) -> u64 {
        let generation = self.tracker.generation;
        let series = self
            .tracker
            .series
            .entry(series_key(name, attributes))
            .or_insert_with(|| Series {
                name: name.to_string(),
                shape,
                attributes: attributes.to_vec(),
                start_ns: time_ns,
                last: value,
                seen: generation,
            });
        if value < series.last {
            series.start_ns = time_ns.saturating_sub(1_000_000);
        }
        series.last = value;
        series.seen = generation;
        series.shape = shape;
        created_ns.unwrap_or(series.start_ns)
    }

    fn number(&mut self, family: &Family, shape: Shape, out: &mut Vec<Metric>) {
        let mut created: HashMap<String, u64> = HashMap::new();
        for sample in &family.samples {
            if family.suffix(sample) == "_created" {
                created.insert(
                    series_key("", &self.attributes(&sample.labels, "")),
                    seconds_to_ns(sample.value),
                );
            }
        }
        let mut by_name: Vec<(String, Vec<NumberDataPoint>)> = Vec::new();
        for sample in &family.samples {
            if family.suffix(sample) == "_created" {
                continue;
            }
            let attributes = self.attributes(&sample.labels, "");
            let time_unix_nano = self.time(sample);
            let start_time_unix_nano = match shape {
                Shape::Gauge => 0,
                _ => {
                    let given = created.get(&series_key("", &attributes)).copied();
                    self.start(
                        &sample.name,
                        shape,
                        &attributes,
                        sample.value,
                        time_unix_nano,
                        given,
                    )
                }
            };
            if shape == Shape::Gauge {
                self.start(
                    &sample.name,
                    shape,
                    &attributes,
                    sample.value,
                    time_unix_nano,
                    None,
                );
            }
            let point = NumberDataPoint {
                attributes,
                start_time_unix_nano,
                time_unix_nano,
                value: Some(number_data_point::Value::AsDouble(sample.value)),
                ..Default::default()
            };
            match by_name.iter_mut().find(|(n, _)| *n == sample.name) {
                Some((_, points)) => points.push(point),
                None => by_name.push((sample.name.clone(), vec![point])),
            }
        }
        for (name, data_points) in by_name {
            out.push(metric(family, name, number_data(shape, data_points)));
        }
    }

    fn histogram(&mut self, family: &Family, out: &mut Vec<Metric>) {
        struct Group {
            labels: Vec<(String, String)>,
            buckets: Vec<(f64, f64)>,
            sum: Option<f64>,
            count: Option<f64>,
            created: Option<f64>,
            time_ns: u64,
        }
        let mut groups: Vec<Group> = Vec::new();
        for sample in &family.samples {
            let suffix = family.suffix(sample);
            let labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .filter(|(k, _)| !(suffix == "_bucket" && k == "le"))
                .cloned()
                .collect();
            let index = match groups.iter().position(|g| g.labels == labels) {
                Some(i) => i,
                None => {
                    groups.push(Group {
                        labels,
                        buckets: Vec::new(),
                        sum: None,
                        count: None,
                        created: None,
                        time_ns: self.time(sample),
                    });
                    groups.len() - 1
                }
            };
            let group = &mut groups[index];
            match suffix {
                "_bucket" => match sample.label("le").and_then(parse_le) {
                    Some(le) => group.buckets.push((le, sample.value)),
                    None => self.dropped.histogram_buckets += 1,
                },
                "_sum" => group.sum = Some(sample.value),
                "_count" => group.count = Some(sample.value),
                "_created" => group.created = Some(sample.value),
                _ => self.dropped.histogram_buckets += 1,
            }
        }
        let mut points = Vec::new();
        for mut group in groups {
            group
                .buckets
                .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            let count = group
                .count
                .or_else(|| group.buckets.last().map(|b| b.1))
                .unwrap_or(0.0);
            let mut bounds = Vec::new();
            let mut counts = Vec::new();
            let mut previous = 0.0;
            let mut valid = count.is_finite() && count >= 0.0;
            for (le, cumulative) in &group.buckets {
                if !(cumulative.is_finite() && *cumulative >= previous) {
                    valid = false;
                    break;
                }
                if le.is_infinite() && *le > 0.0 {
                    continue;
                }
                bounds.push(*le);
                counts.push((*cumulative - previous) as u64);
                previous = *cumulative;
            }
            if !valid || count < previous {
                self.dropped.histogram_buckets += group.buckets.len().max(1) as u64;
                continue;
            }
            counts.push((count - previous) as u64);
            let attributes = self.attributes(&group.labels, "");
            let start = self.start(
                &family.name,
                Shape::Histogram,
                &attributes,
                count,
                group.time_ns,
                group.created.map(seconds_to_ns),
            );
            points.push(HistogramDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: group.time_ns,
                count: count as u64,
                sum: group.sum.filter(|s| s.is_finite()),
                bucket_counts: counts,
                explicit_bounds: bounds,
                ..Default::default()
            });
        }
        if !points.is_empty() {
            out.push(metric(
                family,
                family.name.clone(),
                Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ));
        }
    }

    fn summary(&mut self, family: &Family, out: &mut Vec<Metric>) {
        struct Group {
            labels: Vec<(String, String)>,
            quantiles: Vec<ValueAtQuantile>,
            sum: f64,
            count: f64,
            created: Option<f64>,
            time_ns: u64,
        }
        let mut groups: Vec<Group> = Vec::new();
        for sample in &family.samples {
            let suffix = family.suffix(sample);
            let labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .filter(|(k, _)| !(suffix.is_empty() && k == "quantile"))
                .cloned()
                .collect();
            let index = match groups.iter().position(|g| g.labels == labels) {
                Some(i) => i,
                None => {
                    groups.push(Group {
                        labels,
                        quantiles: Vec::new(),
                        sum: 0.0,
                        count: 0.0,
                        created: None,
                        time_ns: self.time(sample),
                    });
                    groups.len() - 1
                }
            };
            let group = &mut groups[index];
            match suffix {
                "" => match sample.label("quantile").and_then(|q| q.parse::<f64>().ok()) {
                    Some(q) if (0.0..=1.0).contains(&q) => group.quantiles.push(ValueAtQuantile {
                        quantile: q,
                        value: sample.value,
                    }),
                    _ => self.dropped.summary_quantiles += 1,
                },
                "_sum" => group.sum = sample.value,
                "_count" => group.count = sample.value,
                "_created" => group.created = Some(sample.value),
                _ => self.dropped.summary_quantiles += 1,
            }
        }
        let mut points = Vec::new();
        for group in groups {
            let attributes = self.attributes(&group.labels, "");
            let count = if group.count.is_finite() && group.count >= 0.0 {
                group.count
            } else {
                0.0
            };
            let start = self.start(
                &family.name,
                Shape::Summary,
                &attributes,
                count,
                group.time_ns,
                group.created.map(seconds_to_ns),
            );
            points.push(SummaryDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: group.time_ns,
                count: count as u64,
                sum: group.sum,
                quantile_values: group.quantiles,
                ..Default::default()
            });
        }
        if !points.is_empty() {
            out.push(metric(
                family,
                family.name.clone(),
                Data::Summary(Summary {
                    data_points: points,
                }),
            ));
        }
    }

    /// One point flagged `NO_RECORDED_VALUE` for every series not seen in
    /// this scrape; they are then forgotten.
    fn stale(&mut self, out: &mut Vec<Metric>) {
        let generation = self.tracker.generation;
        let now = self.now_ns;
        let flags = DataPointFlags::NoRecordedValueMask as u32;
        let mut gone: Vec<Series> = Vec::new();
        self.tracker.series.retain(|_, s| {
            if s.seen == generation {
                return true;
            }
            gone.push(Series {
                name: std::mem::take(&mut s.name),
                shape: s.shape,
                attributes: std::mem::take(&mut s.attributes),
                start_ns: s.start_ns,
                last: s.last,
                seen: s.seen,
            });
            false
        });
        gone.sort_by(|a, b| a.name.cmp(&b.name));
        for series in gone {
            let start = if series.shape == Shape::Gauge {
                0
            } else {
                series.start_ns
            };
            let data = match series.shape {
                Shape::Histogram => Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        attributes: series.attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        flags,
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
                Shape::Summary => Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        attributes: series.attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        flags,
                        ..Default::default()
                    }],
                }),
                shape => number_data(
                    shape,
                    vec![NumberDataPoint {
                        attributes: series.attributes,
                        start_time_unix_nano: start,
                        time_unix_nano: now,
                        flags,
                        ..Default::default()
                    }],
                ),
            };
            out.push(Metric {
                name: series.name,
                data: Some(data),
                ..Default::default()
            });
        }
    }
}

fn number_data(shape: Shape, data_points: Vec<NumberDataPoint>) -> Data {
    match shape {
        Shape::Sum { monotonic } => Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: monotonic,
        }),
        _ => Data::Gauge(Gauge { data_points }),
    }
}

fn metric(family: &Family, name: String, data: Data) -> Metric {
    Metric {
        name,
        description: family.help.clone(),
        unit: family.unit.clone(),
        data: Some(data),
        ..Default::default()
    }
}

fn parse_le(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        _ => text.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

fn seconds_to_ns(seconds: f64) -> u64 {
    if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1e9).min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// The scrape's own gauges (`up`, `scrape_duration_seconds`, ...), which
/// Prometheus adds to every target.
pub fn scrape_gauge(name: &str, value: f64, now_ns: u64) -> Metric {
    Metric {
        name: name.to_string(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: now_ns,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

/// One exposition's families as OTLP metrics, with the attributes
/// `target_info` adds to the resource; `families` is `None` when the scrape
/// failed, which marks every series of the target stale.
pub fn metrics(
    families: Option<&[Family]>,
    target: &Target,
    now_ns: u64,
    tracker: &mut SeriesTracker,
) -> (Vec<Metric>, Vec<KeyValue>, Dropped) {
    tracker.generation += 1;
    let mut converter = Converter {
        target,
        now_ns,
        tracker,
        dropped: Dropped::default(),
    };
    let mut metrics = Vec::new();
    let mut resource_extra = Vec::new();
    for family in families.unwrap_or(&[]) {
        if family.name == "target_info" || (family.kind == Kind::Info && family.name == "target") {
            for sample in &family.samples {
                for (k, v) in &sample.labels {
                    if k != "job" && k != "instance" {
                        resource_extra.push(string_attribute(k, v.clone()));
                    }
                }
            }
            continue;
        }
        match family.kind {
            Kind::Counter => converter.number(family, Shape::Sum { monotonic: true }, &mut metrics),
            Kind::Gauge | Kind::Unknown | Kind::GaugeHistogram => {
                converter.number(family, Shape::Gauge, &mut metrics)
            }
            Kind::Info | Kind::StateSet => {
                converter.number(family, Shape::Sum { monotonic: false }, &mut metrics)
            }
            Kind::Histogram => converter.histogram(family, &mut metrics),
            Kind::Summary => converter.summary(family, &mut metrics),
        }
    }
    converter.stale(&mut metrics);
    (metrics, resource_extra, converter.dropped)
}

/// A scrape as a resource of metrics: the target's identity on the
/// resource, `extra` (the scrape's own gauges) after its metrics.
pub fn convert(
    families: Option<&[Family]>,
    target: &Target,
    now_ns: u64,
    tracker: &mut SeriesTracker,
    mut extra: Vec<Metric>,
) -> (ResourceMetrics, Dropped) {
    let (mut metrics, resource_extra, dropped) = self::metrics(families, target, now_ns, tracker);
    metrics.append(&mut extra);
    let (host, port) = split_host_port(&target.instance);
    let mut attributes = vec![
        string_attribute("service.name", target.job.clone()),
        string_attribute("service.instance.id", target.instance.clone()),
        string_attribute("server.address", host),
        string_attribute("url.scheme", target.scheme.clone()),
    ];
    if let Some(port) = port {
        attributes.push(crate::receivers::hostmetrics::int_attribute(
            "server.port",
            port,
        ));
    }
    attributes.extend(resource_extra);
    (resource("prometheus", attributes, metrics), dropped)
}

/// Metrics under one resource and the scope `sidewatch/receiver/<receiver>`.
pub fn resource(
    receiver: &str,
    attributes: Vec<KeyValue>,
    metrics: Vec<Metric>,
) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: format!("sidewatch/receiver/{receiver}"),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            metrics,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn split_host_port(instance: &str) -> (String, Option<i64>) {
    match instance.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.ends_with(':') => (
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port.parse().ok(),
        ),
        _ => (instance.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::text::parse;
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    fn target() -> Target {
        Target {
            job: "node".into(),
            instance: "127.0.0.1:9100".into(),
            scheme: "http".into(),
            url: "http://127.0.0.1:9100/metrics".into(),
            labels: vec![("env".into(), "prod".into())],
            honor_labels: false,
            honor_timestamps: true,
        }
    }

    fn attr<'a>(kv: &'a [KeyValue], key: &str) -> Option<&'a str> {
        kv.iter()
            .find(|a| a.key == key)
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            })
    }

    const BODY: &str = "# TYPE requests_total counter\n\
requests_total{code=\"200\",env=\"dev\"} 10\n\
# TYPE temp gauge\n\
temp 21.5\n\
# TYPE latency histogram\n\
latency_bucket{le=\"0.1\"} 2\n\
latency_bucket{le=\"1\"} 5\n\
latency_bucket{le=\"+Inf\"} 6\n\
latency_sum 3.5\n\
latency_count 6\n\
# TYPE rpc summary\n\
rpc{quantile=\"0.5\"} 0.2\n\
rpc{quantile=\"0.99\"} 0.9\n\
rpc_sum 4\n\
rpc_count 8\n\
target_info{version=\"1.2\"} 1\n";

    #[test]
    fn every_kind_converts_with_the_specified_shape() {
        let families = parse(BODY, false).unwrap();
        let mut tracker = SeriesTracker::default();
        let (resource, dropped) = convert(Some(&families), &target(), 5_000, &mut tracker, vec![]);
        assert_eq!(dropped, Dropped::default());
        let attrs = &resource.resource.as_ref().unwrap().attributes;
        assert_eq!(attr(attrs, "service.name"), Some("node"));
        assert_eq!(attr(attrs, "server.address"), Some("127.0.0.1"));
        assert_eq!(attr(attrs, "version"), Some("1.2"));
        let metrics = &resource.scope_metrics[0].metrics;
        let names: Vec<_> = metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["requests_total", "temp", "latency", "rpc"]);
        let Some(Data::Sum(sum)) = &metrics[0].data else {
            panic!()
        };
        assert!(sum.is_monotonic);
        let point = &sum.data_points[0];
        // The target's env wins; the scraped one is kept as exported_env.
        assert_eq!(attr(&point.attributes, "env"), Some("prod"));
        assert_eq!(attr(&point.attributes, "exported_env"), Some("dev"));
        let Some(Data::Histogram(h)) = &metrics[2].data else {
            panic!()
        };
        assert_eq!(h.data_points[0].bucket_counts, [2, 3, 1]);
        assert_eq!(h.data_points[0].explicit_bounds, [0.1, 1.0]);
        assert_eq!(h.data_points[0].sum, Some(3.5));
        let Some(Data::Summary(s)) = &metrics[3].data else {
            panic!()
        };
        assert_eq!(s.data_points[0].quantile_values.len(), 2);
        assert_eq!(s.data_points[0].count, 8);
    }

    #[test]
    fn start_times_hold_across_scrapes_and_move_on_reset() {
        let mut tracker = SeriesTracker::default();
        let start_of = |body: &str, now: u64, tracker: &mut SeriesTracker| {
            let families = parse(body, false).unwrap();
            let (r, _) = convert(Some(&families), &target(), now, tracker, vec![]);
            let Some(Data::Sum(sum)) = &r.scope_metrics[0].metrics[0].data else {
                panic!()
            };
            sum.data_points[0].start_time_unix_nano
        };
        let body = |v: u32| format!("# TYPE c counter\nc {v}\n");
        assert_eq!(
            start_of(&body(5), 1_000_000_000, &mut tracker),
            1_000_000_000
        );
        assert_eq!(
            start_of(&body(9), 2_000_000_000, &mut tracker),
            1_000_000_000
        );
        assert_eq!(
            start_of(&body(2), 3_000_000_000, &mut tracker),
            2_999_000_000
        );
        // _created wins when the exposition gives it.
        let om = "# TYPE c counter\nc_total 3\nc_created 100.5\n# EOF\n";
        let families = parse(om, true).unwrap();
        let (r, _) = convert(
            Some(&families),
            &target(),
            4_000_000_000,
            &mut tracker,
            vec![],
        );
        let Some(Data::Sum(sum)) = &r.scope_metrics[0].metrics[0].data else {
            panic!()
        };
        assert_eq!(sum.data_points[0].start_time_unix_nano, 100_500_000_000);
    }

    #[test]
    fn vanished_series_and_failed_scrapes_are_marked_stale() {
        let mut tracker = SeriesTracker::default();
        let families = parse(BODY, false).unwrap();
        convert(Some(&families), &target(), 1, &mut tracker, vec![]);
        assert_eq!(tracker.len(), 4);
        let fewer = parse("# TYPE temp gauge\ntemp 20\n", false).unwrap();
        let (r, _) = convert(Some(&fewer), &target(), 2, &mut tracker, vec![]);
        let stale: Vec<_> = r.scope_metrics[0]
            .metrics
            .iter()
            .filter(|m| m.name != "temp")
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(stale, ["latency", "requests_total", "rpc"]);
        assert_eq!(tracker.len(), 1);
        let (r, _) = convert(None, &target(), 3, &mut tracker, vec![]);
        let Some(Data::Gauge(g)) = &r.scope_metrics[0].metrics[0].data else {
            panic!()
        };
        assert_eq!(
            g.data_points[0].flags,
            DataPointFlags::NoRecordedValueMask as u32
        );
        assert!(tracker.is_empty());
    }

    #[test]
    fn inconsistent_histograms_are_dropped_and_counted() {
        let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"2\"} 3\nh_bucket{le=\"+Inf\"} 6\nh_count 6\nh_sum 1\n";
        let families = parse(body, false).unwrap();
        let (r, dropped) = convert(
            Some(&families),
            &target(),
            1,
            &mut SeriesTracker::default(),
            vec![],
        );
        assert!(r.scope_metrics[0].metrics.is_empty());
        assert_eq!(dropped.histogram_buckets, 3);
    }
}
