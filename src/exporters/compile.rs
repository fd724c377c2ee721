//! The compile step every exporter shares: the queue cannot be switched
//! off, `sending_queue.batch` must be valid, client certificates must
//! load, and whatever the exporter's constructor would refuse is refused
//! here, without connecting, binding or creating anything. `validate` and
//! `run` then agree: a builder fails only on the world changing in
//! between (a file deleted, a port taken).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use yaml_serde::Value;

use crate::components::compiled::CompiledExporter;
use crate::config::{Decoder, YamlPath};
use crate::tls::client::ClientTlsConfig;

/// Decodes `T` and runs the shared checks, then `starts`, which reports
/// its own errors and says whether the exporter would start.
pub fn checked<T: CompiledExporter + DeserializeOwned>(
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
    tls: fn(&T) -> Option<&ClientTlsConfig>,
    starts: impl FnOnce(&T, &YamlPath, &mut Decoder) -> bool,
) -> Option<Arc<dyn CompiledExporter>> {
    let queue_enabled = value.get("sending_queue").and_then(|q| q.get("enabled"));
    if queue_enabled.and_then(Value::as_bool) == Some(false) {
        decoder.error(
            path.key("sending_queue").key("enabled"),
            "sidewatch cannot send without its queue (the queue is how backpressure reaches the receivers): remove `enabled: false`, and set `queue_size` to bound it",
        );
        return None;
    }
    let config: T = decoder.decode(value, path)?;
    if let Some(batch) = &config.settings().sending_queue.batch {
        let errors = batch.validate();
        let valid = errors.is_empty();
        for (field, message) in errors {
            decoder.error(path.key("sending_queue").key("batch").key(field), message);
        }
        if !valid {
            return None;
        }
    }
    if let Some(Err((field, message))) = tls(&config).map(|t| t.check()) {
        decoder.error(path.key("tls").key(field), message);
        return None;
    }
    starts(&config, path, decoder).then(|| Arc::new(config) as Arc<dyn CompiledExporter>)
}

/// For [`checked`]: an exporter without client TLS.
pub fn no_tls<T>(_: &T) -> Option<&ClientTlsConfig> {
    None
}

/// For [`checked`]: reports a constructor's refusal at the exporter.
pub fn refused(result: Result<(), String>, path: &YamlPath, decoder: &mut Decoder) -> bool {
    match result {
        Ok(()) => true,
        Err(message) => {
            decoder.error(path.clone(), message);
            false
        }
    }
}
