//! The scrape loop: one task per target, on a fixed schedule that never
//! drifts (a late scrape skips ticks rather than shifting the next ones),
//! each scrape bounded by `scrape_timeout` and `body_size_limit`, so a slow
//! or huge target delays nobody else and holds nothing for long.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};

use super::convert::{Target, convert, scrape_gauge};
use super::relabel::apply_all;
use super::text::{Family, parse};
use super::{Job, PrometheusReceiverConfig, SeriesTracker};
use crate::pipeline::Consumer;
use crate::receivers::{Receiver, ReceiverContext, StartedReceiver};
use crate::signal::Batch;
use crate::telemetry::ReceiverStats;

/// Text format first: it is what every exporter speaks; OpenMetrics is
/// parsed when a target answers with it.
const ACCEPT_HEADER: &str =
    "text/plain;version=0.0.4;q=1,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1";

pub struct PrometheusReceiver {
    config: PrometheusReceiverConfig,
}

impl PrometheusReceiver {
    pub fn new(config: PrometheusReceiverConfig) -> Self {
        PrometheusReceiver { config }
    }
}

fn client(job: &Job) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(job.timeout)
        .connect_timeout(job.timeout)
        .redirect(reqwest::redirect::Policy::limited(5));
    if let Some(tls) = &job.tls {
        builder = tls.apply_to_reqwest(builder)?;
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

#[async_trait::async_trait]
impl Receiver for PrometheusReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let mut tasks = Vec::new();
        let Some(consumer) = context.consumers.metrics.clone() else {
            return Ok(StartedReceiver {
                addresses: Vec::new(),
                tasks,
            });
        };
        let stats =
            context
                .telemetry
                .receiver(&context.id, "scrape", crate::signal::Signal::Metrics);
        for job in self.config.jobs {
            let client = client(&job).map_err(std::io::Error::other)?;
            let job = Arc::new(job);
            for target in job.targets.clone() {
                let scraper = Scraper {
                    job: job.clone(),
                    target,
                    client: client.clone(),
                    consumer: consumer.clone(),
                    stats: stats.clone(),
                    tracker: SeriesTracker::default(),
                };
                tasks.push(tokio::spawn(scraper.run(context.shutdown.clone())));
            }
        }
        Ok(StartedReceiver {
            addresses: Vec::new(),
            tasks,
        })
    }
}

struct Scraper {
    job: Arc<Job>,
    target: Target,
    client: reqwest::Client,
    consumer: Consumer,
    stats: Arc<ReceiverStats>,
    tracker: SeriesTracker,
}

/// What one scrape read, or why it failed.
struct Outcome {
    families: Result<Vec<Family>, String>,
    scraped: usize,
    kept: usize,
}

impl Scraper {
    /// Targets of one job start spread over the interval, as Prometheus
    /// spreads them, by a hash of the URL (the same offset every run).
    fn offset(&self) -> Duration {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.target.url.hash(&mut hasher);
        let spread = self.job.interval.as_millis().clamp(1, 10_000) as u64;
        Duration::from_millis(hasher.finish() % spread)
    }

    async fn run(mut self, shutdown: tokio_util::sync::CancellationToken) {
        let first = tokio::time::Instant::now() + self.offset();
        let mut timer = tokio::time::interval_at(first, self.job.interval);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = timer.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let request = tokio::select! {
                request = self.scrape_once() => request,
                _ = shutdown.cancelled() => return,
            };
            crate::receivers::deliver(
                &self.consumer,
                &self.stats,
                Batch::Metrics(request.into()),
                "prometheus scrape",
            )
            .await;
        }
    }

    async fn scrape_once(&mut self) -> ExportMetricsServiceRequest {
        let started = Instant::now();
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        // The whole scrape, body included, within the timeout.
        let outcome = match tokio::time::timeout(self.job.timeout, self.fetch()).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome {
                families: Err(format!(
                    "timed out after {}",
                    humantime::format_duration(self.job.timeout)
                )),
                scraped: 0,
                kept: 0,
            },
        };
        let duration = started.elapsed().as_secs_f64();
        let up = outcome.families.is_ok();
        if let Err(error) = &outcome.families {
            tracing::warn!(job = %self.job.name, target = %self.target.url, %error, "prometheus scrape failed");
        }
        let extra = vec![
            scrape_gauge("up", if up { 1.0 } else { 0.0 }, now_ns),
            scrape_gauge("scrape_duration_seconds", duration, now_ns),
            scrape_gauge("scrape_samples_scraped", outcome.scraped as f64, now_ns),
            scrape_gauge(
                "scrape_samples_post_metric_relabeling",
                outcome.kept as f64,
                now_ns,
            ),
        ];
        let families = outcome.families.ok();
        let (resource, dropped) = convert(
            families.as_deref(),
            &self.target,
            now_ns,
            &mut self.tracker,
            extra,
        );
        if dropped.histogram_buckets + dropped.summary_quantiles > 0 {
            tracing::debug!(target = %self.target.url, ?dropped, "prometheus scrape: inconsistent points dropped");
        }
        ExportMetricsServiceRequest {
            resource_metrics: vec![resource],
        }
    }

    async fn fetch(&self) -> Outcome {
        let failed = |message: String| Outcome {
            families: Err(message),
            scraped: 0,
            kept: 0,
        };
        let mut request = self
            .client
            .get(&self.target.url)
            .header(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER))
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", self.job.timeout.as_secs_f64()),
            );
        if let Some(auth) = &self.job.basic_auth {
            request = request.basic_auth(&auth.username, Some(auth.password.expose()));
        }
        if let Some(auth) = &self.job.authorization {
            request = request.header(
                reqwest::header::AUTHORIZATION,
                format!("{} {}", auth.kind, auth.credentials.expose()),
            );
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return failed(format!("request failed: {e}")),
        };
        if !response.status().is_success() {
            return failed(format!("server returned HTTP status {}", response.status()));
        }
        let openmetrics = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/openmetrics-text"));
        let limit = self.job.body_size_limit;
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if limit > 0 && (body.len() + chunk.len()) as u64 > limit {
                        return failed(format!("body larger than body_size_limit ({limit} bytes)"));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return failed(format!("reading the body failed: {e}")),
            }
        }
        let text = match std::str::from_utf8(&body) {
            Ok(text) => text,
            Err(e) => return failed(format!("body is not UTF-8: {e}")),
        };
        let mut families = match parse(text, openmetrics) {
            Ok(f) => f,
            Err(e) => return failed(format!("cannot parse the exposition: {e}")),
        };
        let scraped: usize = families.iter().map(|f| f.samples.len()).sum();
        if !self.job.metric_relabel.is_empty() {
            for family in &mut families {
                family.samples.retain_mut(|sample| {
                    let mut labels = std::mem::take(&mut sample.labels);
                    labels.push(("__name__".into(), std::mem::take(&mut sample.name)));
                    let keep = apply_all(&self.job.metric_relabel, &mut labels);
                    if let Some(at) = labels.iter().position(|(k, _)| k == "__name__") {
                        sample.name = labels.remove(at).1;
                    }
                    sample.labels = labels;
                    keep && !sample.name.is_empty()
                });
            }
        }
        let kept: usize = families.iter().map(|f| f.samples.len()).sum();
        if self.job.sample_limit > 0 && kept > self.job.sample_limit {
            return Outcome {
                families: Err(format!(
                    "{kept} samples exceed sample_limit {}",
                    self.job.sample_limit
                )),
                scraped,
                kept,
            };
        }
        Outcome {
            families: Ok(families),
            scraped,
            kept,
        }
    }
}
