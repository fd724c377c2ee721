//! `email` exporter: alert notifications over SMTP (lettre), with STARTTLS
//! by default, implicit TLS or none, and optional authentication. One
//! message per batch of alert events, plain text, subject in the shape
//! Alertmanager's email receiver uses: `[FIRING:2] HighCpu (critical)`.
//!
//! Field names follow Alertmanager's `email_configs` (`smarthost`,
//! `auth_username`, ...) so its users can carry a config over.

use std::fmt::Write as _;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::alert_payload::{annotations, events, labels, refuse_malformed, rfc3339, value_text};
use super::settings::{ExporterSettings, QueueSettings, RetrySettings};
use super::{ExportError, Exporter};
use crate::alerting::event::{AlertEvent, Status};
use crate::signal::Batch;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No TLS at all: only for a relay on a trusted network or loopback.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailExporterConfig {
    /// `host:port` of the SMTP server.
    pub smarthost: String,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub tls: TlsMode,
    /// Extra PEM root certificates to trust (a private CA), besides the
    /// system's.
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub auth_username: Option<String>,
    #[serde(default)]
    pub auth_password: Option<crate::config::secret::Secret>,
    /// Name sent in EHLO; the host name by default.
    #[serde(default)]
    pub hello: Option<String>,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl EmailExporterConfig {
    pub fn settings(&self) -> ExporterSettings {
        ExporterSettings {
            timeout: self.timeout,
            sending_queue: self.sending_queue.clone(),
            retry_on_failure: self.retry_on_failure.clone(),
        }
    }

    /// Problems found without connecting, as (field, message).
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        if split_host_port(&self.smarthost).is_none() {
            errors.push((
                "smarthost",
                format!(
                    "expected host:port, like smtp.example.com:587, got {:?}",
                    self.smarthost
                ),
            ));
        }
        if let Err(e) = self.from.parse::<Mailbox>() {
            errors.push(("from", format!("{:?} is not an address: {e}", self.from)));
        }
        if self.to.is_empty() {
            errors.push(("to", "name at least one recipient".to_string()));
        }
        for to in &self.to {
            if let Err(e) = to.parse::<Mailbox>() {
                errors.push(("to", format!("{to:?} is not an address: {e}")));
            }
        }
        if self.auth_username.is_some() != self.auth_password.is_some() {
            errors.push((
                "auth_username",
                "set both auth_username and auth_password, or neither".to_string(),
            ));
        }
        if let Some(path) = &self.ca_file
            && let Err(e) = root_certificate(path)
        {
            errors.push(("ca_file", e));
        }
        if self.tls == TlsMode::None && self.auth_username.is_some() {
            errors.push((
                "tls",
                "refusing to send a password without TLS: use starttls or implicit".to_string(),
            ));
        }
        errors
    }
}

/// The private CA in `ca_file`; `validate` reads it too.
fn root_certificate(path: &str) -> Result<Certificate, String> {
    let pem = crate::config::files::read_small_file(std::path::Path::new(path))?;
    crate::tls::read_certificates(std::path::Path::new(path))?;
    Certificate::from_pem(&pem).map_err(|e| format!("{path}: not a PEM certificate: {e}"))
}

fn split_host_port(smarthost: &str) -> Option<(String, u16)> {
    let (host, port) = smarthost.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host.to_string(), port.parse().ok()?))
}

pub struct EmailExporter {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl EmailExporter {
    pub fn new(config: &EmailExporterConfig) -> Result<Self, String> {
        let (host, port) = split_host_port(&config.smarthost)
            .ok_or_else(|| format!("smarthost {:?}: expected host:port", config.smarthost))?;
        let tls = match config.tls {
            TlsMode::None => Tls::None,
            mode => {
                let mut parameters = TlsParameters::builder(host.clone());
                if let Some(path) = &config.ca_file {
                    parameters = parameters.add_root_certificate(root_certificate(path)?);
                }
                let parameters = parameters
                    .build_rustls()
                    .map_err(|e| format!("TLS settings for {host}: {e}"))?;
                if mode == TlsMode::Implicit {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (&config.auth_username, &config.auth_password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        if let Some(hello) = &config.hello {
            builder = builder.hello_name(lettre::transport::smtp::extension::ClientId::Domain(
                hello.clone(),
            ));
        }
        let parse = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| format!("{a:?} is not an address: {e}"))
        };
        Ok(EmailExporter {
            transport: builder.build(),
            from: parse(&config.from)?,
            to: config
                .to
                .iter()
                .map(|a| parse(a))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// `[FIRING:2] HighCpu (critical)`, or `[RESOLVED] ...` when all resolved.
pub fn subject(events: &[AlertEvent]) -> String {
    let firing: Vec<_> = events
        .iter()
        .filter(|e| e.status == Status::Firing)
        .collect();
    let shown = firing.first().copied().or(events.first());
    let mut rules: Vec<&str> = events.iter().map(|e| e.rule.as_str()).collect();
    rules.dedup();
    let status = if firing.is_empty() {
        "[RESOLVED]".to_string()
    } else {
        format!("[FIRING:{}]", firing.len())
    };
    match shown {
        Some(e) if rules.len() == 1 => format!("{status} {} ({})", e.rule, e.severity.as_str()),
        Some(_) => format!("{status} {}", rules.join(", ")),
        None => status,
    }
}

/// One block per alert: status, rule, severity, value, times, labels and
/// annotations, in plain text that reads well in any mail client.
pub fn body(events: &[AlertEvent]) -> String {
    let mut out = String::new();
    for e in events {
        let _ = write!(
            out,
            "{} {} ({}), value {}",
            e.status.as_str().to_uppercase(),
            e.rule,
            e.severity.as_str(),
            value_text(e.value)
        );
        match e.firing_value {
            Some(fired) => {
                let _ = writeln!(out, " (firing value {})", value_text(fired));
            }
            None => out.push('\n'),
        }
        let _ = writeln!(out, "  since {}", rfc3339(e.starts_at));
        if let Some(end) = e.ends_at {
            let _ = writeln!(out, "  ended {}", rfc3339(end));
        }
        // The values are on the first line already.
        for (k, v) in annotations(e)
            .into_iter()
            .filter(|(k, _)| k != "value" && k != "firing_value")
        {
            let _ = writeln!(out, "  {k}: {v}");
        }
        let _ = writeln!(out, "  labels:");
        for (k, v) in labels(e) {
            let _ = writeln!(out, "    {k} = {v}");
        }
        out.push('\n');
    }
    out
}

#[async_trait::async_trait]
impl Exporter for EmailExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let (events, malformed) = events(batch);
        if events.is_empty() {
            return refuse_malformed(&malformed);
        }
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject(&events))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(body(&events))
            .map_err(|e| ExportError::permanent(format!("cannot build the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => refuse_malformed(&malformed),
            // A 5xx answer (bad recipient, authentication refused) will not
            // change by retrying; connection and 4xx failures may.
            Err(e) if e.is_permanent() => Err(ExportError::permanent(format!("SMTP: {e}"))),
            Err(e) => Err(ExportError::retryable(format!("SMTP: {e}"))),
        }
    }
}

impl crate::components::compiled::CompiledExporter for EmailExporterConfig {
    fn settings(&self) -> crate::exporters::settings::ExporterSettings {
        self.settings()
    }

    fn build(
        &self,
        context: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::exporters::Exporter>, String> {
        let _ = context;
        Ok(std::sync::Arc::new(EmailExporter::new(self)?))
    }
}

/// The registry's compile step.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<EmailExporterConfig>(
        value,
        path,
        decoder,
        crate::exporters::compile::no_tls,
        |c, path, decoder| crate::components::compiled::report(c.validate(), path, decoder),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smarthost_and_addresses_are_checked_before_connecting() {
        let config: EmailExporterConfig = yaml_serde::from_str(
            "{ smarthost: 'smtp.example.com', from: 'not an address', to: [], tls: none, auth_username: u, auth_password: p }",
        )
        .unwrap();
        let fields: Vec<_> = config.validate().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["smarthost", "from", "to", "tls"]);
        assert_eq!(
            split_host_port("[::1]:2525"),
            Some(("::1".to_string(), 2525))
        );
    }
}
