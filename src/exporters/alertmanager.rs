//! `alertmanager` exporter: sends alert events to Alertmanager's
//! `POST /api/v2/alerts`, and, as Prometheus does, re-sends every firing
//! alert each `resend_interval` with `endsAt` a few intervals ahead, so
//! Alertmanager neither forgets a firing alert nor keeps one whose sender
//! died. A resolved alert is sent with its end time, then forgotten.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::alert_payload::{alertmanager_alert, events};
use super::settings::{ExporterSettings, QueueSettings, RetrySettings};
use super::{ExportError, Exporter};
use crate::alerting::event::{AlertEvent, Status};
use crate::config::endpoint::EndpointUrl;
use crate::connectors::alert::unix_seconds;
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
    /// Firing alerts by fingerprint, re-sent until resolved.
    firing: Mutex<BTreeMap<String, AlertEvent>>,
}

impl Shared {
    fn valid_until(&self, now: f64) -> f64 {
        now + 4.0 * self.resend_interval.as_secs_f64()
    }

    async fn post(&self, alerts: Vec<serde_json::Value>) -> Result<(), ExportError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let response = self
            .client
            .post(&self.url)
            .json(&alerts)
            .send()
            .await
            .map_err(|e| {
                ExportError::retryable(format!(
                    "POST {}: {}",
                    crate::config::secret::redacted_url(&self.url),
                    e.without_url()
                ))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let message = format!(
            "POST {} answered {status}: {body}",
            crate::config::secret::redacted_url(&self.url)
        );
        if status.is_server_error() || status.as_u16() == 429 {
            Err(ExportError::retryable(message))
        } else {
            Err(ExportError::permanent(message))
        }
    }
}

pub struct AlertmanagerExporter {
    shared: Arc<Shared>,
    resender: tokio::task::JoinHandle<()>,
}

impl AlertmanagerExporter {
    pub fn new(config: &AlertmanagerExporterConfig) -> Result<Self, String> {
        let builder = reqwest::Client::builder().timeout(config.timeout);
        let client = config
            .tls
            .clone()
            .unwrap_or_default()
            .apply_to_reqwest(builder)?
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let shared = Arc::new(Shared {
            client,
            url: config.endpoint.join("api/v2/alerts"),
            resend_interval: config.resend_interval,
            generator_url: config.generator_url.clone(),
            firing: Mutex::new(BTreeMap::new()),
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
        let now = unix_seconds(SystemTime::now());
        let alerts: Vec<_> = shared
            .firing
            .lock()
            .expect("firing alerts lock")
            .values()
            .map(|e| alertmanager_alert(e, shared.valid_until(now), &shared.generator_url))
            .collect();
        if let Err(e) = shared.post(alerts).await {
            tracing::warn!(error = %e, "re-sending firing alerts to Alertmanager failed; will try again");
        }
    }
}

#[async_trait::async_trait]
impl Exporter for AlertmanagerExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let events = events(batch);
        let now = unix_seconds(SystemTime::now());
        let alerts: Vec<_> = events
            .iter()
            .map(|e| {
                alertmanager_alert(e, self.shared.valid_until(now), &self.shared.generator_url)
            })
            .collect();
        self.shared.post(alerts).await?;
        let mut firing = self.shared.firing.lock().expect("firing alerts lock");
        for event in events {
            match event.status {
                Status::Firing => {
                    firing.insert(event.fingerprint.clone(), event);
                }
                Status::Resolved => {
                    firing.remove(&event.fingerprint);
                }
            }
        }
        Ok(())
    }

    async fn shutdown(&self) {
        self.resender.abort();
    }
}
