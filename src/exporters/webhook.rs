//! `webhook` exporter: posts alert events as JSON, in Alertmanager's
//! webhook payload shape (what tools built for Alertmanager consume), or
//! as a Slack incoming-webhook message with `format: slack`.

use std::time::Duration;

use serde::Deserialize;

use super::alert_payload::{events, refuse_malformed, slack_payload, webhook_payload};
use super::settings::{ExporterSettings, QueueSettings, RetrySettings};
use super::{ExportError, Exporter};
use crate::config::endpoint::EndpointUrl;
use crate::signal::Batch;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Alertmanager,
    Slack,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookExporterConfig {
    pub url: EndpointUrl,
    #[serde(default)]
    pub format: WebhookFormat,
    #[serde(default)]
    pub headers: crate::config::headers::Headers,
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

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl WebhookExporterConfig {
    pub fn settings(&self) -> ExporterSettings {
        ExporterSettings {
            timeout: self.timeout,
            sending_queue: self.sending_queue.clone(),
            retry_on_failure: self.retry_on_failure.clone(),
        }
    }
}

pub struct WebhookExporter {
    client: reqwest::Client,
    url: String,
    format: WebhookFormat,
    receiver: String,
}

impl WebhookExporter {
    pub fn new(config: &WebhookExporterConfig, receiver: &str) -> Result<Self, String> {
        let url = config.url.as_str();
        // Headers were compiled when the config was decoded.
        let client = super::http::client(
            config.timeout,
            Some(config.headers.map()),
            config.tls.as_ref(),
        )?;
        Ok(WebhookExporter {
            client,
            url,
            format: config.format,
            receiver: receiver.to_string(),
        })
    }
}

#[async_trait::async_trait]
impl Exporter for WebhookExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let (events, malformed) = events(batch);
        if events.is_empty() {
            return refuse_malformed(&malformed);
        }
        let payload = match self.format {
            WebhookFormat::Alertmanager => webhook_payload(&events, &self.receiver),
            WebhookFormat::Slack => slack_payload(&events),
        };
        super::http::post_json(&self.client, &self.url, &payload, false).await?;
        refuse_malformed(&malformed)
    }
}

impl crate::components::compiled::CompiledExporter for WebhookExporterConfig {
    fn settings(&self) -> crate::exporters::settings::ExporterSettings {
        self.settings()
    }

    fn build(
        &self,
        context: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::exporters::Exporter>, String> {
        Ok(std::sync::Arc::new(WebhookExporter::new(
            self,
            context.name,
        )?))
    }
}

/// The registry's compile step.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<WebhookExporterConfig>(
        value,
        path,
        decoder,
        |c| c.tls.as_ref(),
        |c, path, decoder| {
            crate::exporters::compile::refused(
                WebhookExporter::new(c, "validate").map(|_| ()),
                path,
                decoder,
            )
        },
    )
}
