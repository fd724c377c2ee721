//! What the `kafka` exporter and receiver share: brokers, topics,
//! encodings and `auth` mean the same on both sides, so both read them
//! from here rather than one borrowing the other's config.

use serde::Deserialize;

use crate::signal::Signal;

/// How a message's value holds an OTLP export request.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    OtlpProto,
    OtlpJson,
}

/// `traces:`, `metrics:` or `logs:`: the topic (and encoding) of one signal.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalTopic {
    pub topic: Option<String>,
    pub encoding: Option<Encoding>,
}

/// The Collector's default topic names.
pub fn default_topic(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "otlp_spans",
        Signal::Metrics => "otlp_metrics",
        Signal::Logs => "otlp_logs",
    }
}

/// `auth`: accepted so a Collector config reads, refused when set, since
/// this build has neither SASL nor TLS towards Kafka (librdkafka's `ssl`
/// and `sasl` need OpenSSL and Cyrus SASL).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub sasl: Option<yaml_serde::Value>,
    pub tls: Option<yaml_serde::Value>,
    pub plain_text: Option<yaml_serde::Value>,
    pub kerberos: Option<yaml_serde::Value>,
}

impl Auth {
    /// The first kind of authentication set, which this build refuses.
    pub fn refused(&self) -> Option<&'static str> {
        [
            ("sasl", self.sasl.is_some()),
            ("tls", self.tls.is_some()),
            ("plain_text", self.plain_text.is_some()),
            ("kerberos", self.kerberos.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(name, _)| name)
    }
}

pub const AUTH_REFUSED: &str = "authentication to Kafka is not built in yet (no SASL or TLS to brokers in this build): remove `auth` and reach the brokers over plaintext on a trusted network";

pub fn default_brokers() -> Vec<String> {
    vec!["localhost:9092".to_string()]
}

/// A broker address is `host:port`, without a scheme.
pub fn check_brokers(brokers: &[String]) -> Option<String> {
    if brokers.is_empty() {
        return Some("is empty: expected at least one broker such as `127.0.0.1:9092`".into());
    }
    for broker in brokers {
        let port = broker.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
        if broker.contains("://") || !matches!(port, Some(Ok(_))) {
            return Some(format!(
                "`{broker}` is not a broker address: expected `host:port` such as `127.0.0.1:9092`, without a scheme"
            ));
        }
    }
    None
}
