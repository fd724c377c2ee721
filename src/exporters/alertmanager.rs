//! `alertmanager` exporter: sends alert events to Alertmanager's
//! `POST /api/v2/alerts`, and, as Prometheus does, re-sends every firing
//! alert each `resend_interval` with `endsAt` a few intervals ahead, so
//! Alertmanager neither forgets a firing alert nor keeps one whose sender
//! died. A resolved alert is sent with its end time, then forgotten.
//!
//! Alertmanager identifies an alert by its label set, and `severity` is a
//! label, so a severity change makes it a different alert there (as a
//! Prometheus rule with a templated severity label does): the alert under
//! the old labels is ended in the same request that starts the new one,
//! so Alertmanager never shows a stale severity. Sends and re-sends take
//! one lock for the whole request, so a re-send of the old labels cannot
//! land after the request that ended them.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Deserialize;

use super::alert_payload::{alertmanager_alert, events, refuse_malformed};
use super::settings::{ExporterSettings, QueueSettings, RetrySettings};
use super::{ExportError, Exporter};
use crate::alerting::event::{AlertEvent, Status};
use crate::clock::Clock;
use crate::config::endpoint::EndpointUrl;
use crate::otlp::time::unix_seconds;
use crate::signal::Batch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerExporterConfig {
    /// Alertmanager's base URL, like http://127.0.0.1:9093.
    pub endpoint: EndpointUrl,
    #[serde(default = "default_resend", with = "crate::config::duration")]
    pub resend_interval: Duration,
    #[serde(default)]
    pub generator_url: String,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// TLS settings for https:// endpoints (a private CA, a client
    /// certificate).
    #[serde(default)]
    pub tls: Option<crate::tls::client::ClientTlsConfig>,
}

fn default_resend() -> Duration {
    Duration::from_secs(60)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl AlertmanagerExporterConfig {
    pub fn settings(&self) -> ExporterSettings {
        ExporterSettings {
            timeout: self.timeout,
            sending_queue: self.sending_queue.clone(),
            retry_on_failure: self.retry_on_failure.clone(),
        }
    }
}

struct Shared {
    client: reqwest::Client,
    url: String,
    resend_interval: Duration,
    generator_url: String,
    /// `endsAt` is counted from this clock's now (the graph's clock).
    clock: Clock,
    /// Firing alerts by fingerprint (rule and series, not severity),
    /// re-sent until resolved. Held across each POST: see the header.
    firing: tokio::sync::Mutex<BTreeMap<String, AlertEvent>>,
}

impl Shared {
    fn valid_until(&self, now: f64) -> f64 {
        now + 4.0 * self.resend_interval.as_secs_f64()
    }

    async fn post(&self, alerts: Vec<serde_json::Value>) -> Result<(), ExportError> {
        if alerts.is_empty() {
            return Ok(());
        }
        super::http::post_json(&self.client, &self.url, &alerts, true).await
    }
}

pub struct AlertmanagerExporter {
    shared: Arc<Shared>,
    resender: tokio::task::JoinHandle<()>,
}

impl AlertmanagerExporter {
    /// The HTTP client: all that can fail, so `validate` builds it too.
    pub fn client(config: &AlertmanagerExporterConfig) -> Result<reqwest::Client, String> {
        super::http::client(config.timeout, None, config.tls.as_ref())
    }

    pub fn new(config: &AlertmanagerExporterConfig, clock: Clock) -> Result<Self, String> {
        let client = Self::client(config)?;
        let shared = Arc::new(Shared {
            client,
            url: config.endpoint.join("api/v2/alerts"),
            resend_interval: config.resend_interval,
            generator_url: config.generator_url.clone(),
            clock,
            firing: tokio::sync::Mutex::new(BTreeMap::new()),
        });
        let resender = tokio::spawn(resend(Arc::downgrade(&shared)));
        Ok(AlertmanagerExporter { shared, resender })
    }
}

/// Re-sends firing alerts until the exporter is gone.
async fn resend(shared: Weak<Shared>) {
    let Some(interval) = shared.upgrade().map(|s| s.resend_interval) else {
        return;
    };
    let mut timer = tokio::time::interval(interval);
    timer.tick().await;
    loop {
        timer.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let firing = shared.firing.lock().await;
        let now = unix_seconds(shared.clock.now());
        let alerts: Vec<_> = firing
            .values()
            .map(|e| alertmanager_alert(e, shared.valid_until(now), &shared.generator_url))
            .collect();
        let sent = shared.post(alerts).await;
        drop(firing);
        if let Err(e) = sent {
            tracing::warn!(error = %e, "re-sending firing alerts to Alertmanager failed; will try again");
        }
    }
}

#[async_trait::async_trait]
impl Exporter for AlertmanagerExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let (events, malformed) = events(batch);
        if events.is_empty() {
            return refuse_malformed(&malformed);
        }
        let mut firing = self.shared.firing.lock().await;
        let now = unix_seconds(self.shared.clock.now());
        let valid_until = self.shared.valid_until(now);
        let generator_url = &self.shared.generator_url;
        let mut alerts = Vec::new();
        // What Alertmanager holds after this request, if it succeeds.
        let mut after = firing.clone();
        for event in &events {
            if let Some(previous) = after.get(&event.fingerprint)
                && previous.labels != event.labels
            {
                // A firing alert "valid until now" is an ended one.
                alerts.push(alertmanager_alert(previous, now, generator_url));
            }
            alerts.push(alertmanager_alert(event, valid_until, generator_url));
            match event.status {
                Status::Firing => {
                    after.insert(event.fingerprint.clone(), event.clone());
                }
                Status::Resolved => {
                    after.remove(&event.fingerprint);
                }
            }
        }
        self.shared.post(alerts).await?;
        *firing = after;
        refuse_malformed(&malformed)
    }

    async fn shutdown(&self) {
        self.resender.abort();
    }
}

impl crate::components::compiled::CompiledExporter for AlertmanagerExporterConfig {
    fn settings(&self) -> crate::exporters::settings::ExporterSettings {
        self.settings()
    }

    fn build(
        &self,
        context: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::exporters::Exporter>, String> {
        Ok(std::sync::Arc::new(AlertmanagerExporter::new(
            self,
            context.clock.clone(),
        )?))
    }
}

/// The registry's compile step.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<AlertmanagerExporterConfig>(
        value,
        path,
        decoder,
        |c| c.tls.as_ref(),
        |c, path, decoder| {
            crate::exporters::compile::refused(
                AlertmanagerExporter::client(c).map(|_| ()),
                path,
                decoder,
            )
        },
    )
}
