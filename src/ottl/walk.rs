//! Visiting every item of a request at one context level, with its
//! parents lent alongside as a [`Record`]. The visitor says whether to
//! keep the item, so the filter processor drops in the same pass the
//! transform processor edits in. The first error stops the visits (the
//! remaining items are kept) and is returned.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::context::Context;
use super::record::{MetricShape, Point, Record};

impl<'a> Record<'a> {
    /// A record of a resource and scope only; the caller fills in the item.
    pub fn new(
        resource: &'a mut Option<Resource>,
        scope: &'a mut Option<InstrumentationScope>,
    ) -> Self {
        Record {
            resource,
            scope,
            span: None,
            event: None,
            metric: None,
            metric_shape: MetricShape::default(),
            point: None,
            log: None,
        }
    }
}

/// Wraps a fallible visitor into an infallible one that remembers the
/// first error and keeps everything after it.
struct Visits<F, E> {
    visit: F,
    failed: Option<E>,
}

impl<F, E> Visits<F, E>
where
    F: FnMut(&mut Record<'_>) -> Result<bool, E>,
{
    fn step(&mut self, record: &mut Record<'_>) -> bool {
        if self.failed.is_some() {
            return true;
        }
        match (self.visit)(record) {
            Ok(keep) => keep,
            Err(e) => {
                self.failed = Some(e);
                true
            }
        }
    }

    fn finish(self) -> Result<(), E> {
        self.failed.map_or(Ok(()), Err)
    }
}

pub fn traces<E>(
    request: &mut ExportTraceServiceRequest,
    context: Context,
    visit: impl FnMut(&mut Record<'_>) -> Result<bool, E>,
) -> Result<(), E> {
    let mut visits = Visits {
        visit,
        failed: None,
    };
    match context {
        Context::Resource => request.resource_spans.retain_mut(|rs| {
            let mut no_scope = None;
            visits.step(&mut Record::new(&mut rs.resource, &mut no_scope))
        }),
        _ => {
            for rs in &mut request.resource_spans {
                let resource = &mut rs.resource;
                rs.scope_spans.retain_mut(|ss| {
                    let scope = &mut ss.scope;
                    match context {
                        Context::Scope => return visits.step(&mut Record::new(resource, scope)),
                        Context::Span => ss.spans.retain_mut(|span| {
                            let mut record = Record::new(resource, scope);
                            record.span = Some(span);
                            visits.step(&mut record)
                        }),
                        Context::SpanEvent => {
                            for span in &mut ss.spans {
                                // Lent apart so the event and its span can
                                // both be borrowed.
                                let mut events = std::mem::take(&mut span.events);
                                events.retain_mut(|event| {
                                    let mut record = Record::new(resource, scope);
                                    record.span = Some(span);
                                    record.event = Some(event);
                                    visits.step(&mut record)
                                });
                                span.events = events;
                            }
                        }
                        _ => {}
                    }
                    true
                });
            }
        }
    }
    visits.finish()
}

pub fn metrics<E>(
    request: &mut ExportMetricsServiceRequest,
    context: Context,
    visit: impl FnMut(&mut Record<'_>) -> Result<bool, E>,
) -> Result<(), E> {
    let mut visits = Visits {
        visit,
        failed: None,
    };
    match context {
        Context::Resource => request.resource_metrics.retain_mut(|rm| {
            let mut no_scope = None;
            visits.step(&mut Record::new(&mut rm.resource, &mut no_scope))
        }),
        _ => {
            for rm in &mut request.resource_metrics {
                let resource = &mut rm.resource;
                rm.scope_metrics.retain_mut(|sm| {
                    let scope = &mut sm.scope;
                    match context {
                        Context::Scope => return visits.step(&mut Record::new(resource, scope)),
                        Context::Metric => sm.metrics.retain_mut(|metric| {
                            let mut record = Record::new(resource, scope);
                            record.metric_shape = MetricShape::of(metric.data.as_ref());
                            record.metric = Some(metric);
                            visits.step(&mut record)
                        }),
                        Context::DataPoint => {
                            for metric in &mut sm.metrics {
                                let shape = MetricShape::of(metric.data.as_ref());
                                // Lent apart so a point and its metric can
                                // both be borrowed.
                                let mut data = metric.data.take();
                                macro_rules! points {
                                    ($points:expr, $variant:ident) => {
                                        $points.retain_mut(|point| {
                                            let mut record = Record::new(resource, scope);
                                            record.metric_shape = shape;
                                            record.metric = Some(metric);
                                            record.point = Some(Point::$variant(point));
                                            visits.step(&mut record)
                                        })
                                    };
                                }
                                match &mut data {
                                    Some(Data::Gauge(g)) => points!(g.data_points, Number),
                                    Some(Data::Sum(s)) => points!(s.data_points, Number),
                                    Some(Data::Histogram(h)) => points!(h.data_points, Histogram),
                                    Some(Data::ExponentialHistogram(h)) => {
                                        points!(h.data_points, ExponentialHistogram)
                                    }
                                    Some(Data::Summary(s)) => points!(s.data_points, Summary),
                                    None => {}
                                }
                                metric.data = data;
                            }
                        }
                        _ => {}
                    }
                    true
                });
            }
        }
    }
    visits.finish()
}

pub fn logs<E>(
    request: &mut ExportLogsServiceRequest,
    context: Context,
    visit: impl FnMut(&mut Record<'_>) -> Result<bool, E>,
) -> Result<(), E> {
    let mut visits = Visits {
        visit,
        failed: None,
    };
    match context {
        Context::Resource => request.resource_logs.retain_mut(|rl| {
            let mut no_scope = None;
            visits.step(&mut Record::new(&mut rl.resource, &mut no_scope))
        }),
        _ => {
            for rl in &mut request.resource_logs {
                let resource = &mut rl.resource;
                rl.scope_logs.retain_mut(|sl| {
                    let scope = &mut sl.scope;
                    match context {
                        Context::Scope => return visits.step(&mut Record::new(resource, scope)),
                        Context::Log => sl.log_records.retain_mut(|log| {
                            let mut record = Record::new(resource, scope);
                            record.log = Some(log);
                            visits.step(&mut record)
                        }),
                        _ => {}
                    }
                    true
                });
            }
        }
    }
    visits.finish()
}

/// Removes scopes without items and resources without scopes, and
/// metrics without data points, as the Collector's filter does.
pub fn prune_traces(request: &mut ExportTraceServiceRequest) {
    for rs in &mut request.resource_spans {
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    request
        .resource_spans
        .retain(|rs| !rs.scope_spans.is_empty());
}

pub fn prune_metrics(request: &mut ExportMetricsServiceRequest) {
    for rm in &mut request.resource_metrics {
        for sm in &mut rm.scope_metrics {
            sm.metrics
                .retain(|m| crate::signal::metric_point_count(m) > 0);
        }
        rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
    }
    request
        .resource_metrics
        .retain(|rm| !rm.scope_metrics.is_empty());
}

pub fn prune_logs(request: &mut ExportLogsServiceRequest) {
    for rl in &mut request.resource_logs {
        rl.scope_logs.retain(|sl| !sl.log_records.is_empty());
    }
    request.resource_logs.retain(|rl| !rl.scope_logs.is_empty());
}
