//! What the HTTP exporters (`otlphttp`, `alertmanager`, `webhook`) share:
//! the reqwest client built from `timeout`, `headers` and `tls`, and how a
//! POST's failure is told (URL redacted, cause chain) and sorted into
//! retryable or permanent.

use std::time::Duration;

use super::ExportError;
use crate::config::secret::redacted_url;
use crate::tls::client::ClientTlsConfig;

/// `tls.insecure` means plaintext: with an https:// endpoint the two
/// contradict each other, so the exporter refuses to start rather than
/// guess which one was meant.
pub fn refuse_insecure_https(
    tls: Option<&ClientTlsConfig>,
    https: bool,
    origin: &str,
) -> Result<(), String> {
    if https && tls.is_some_and(|t| t.insecure) {
        return Err(format!(
            "endpoint {origin}: tls.insecure is true but the endpoint is https://; write http:// for plaintext, or drop `insecure`"
        ));
    }
    Ok(())
}

/// The client: all that can fail at start, so `validate` may build it too.
pub fn client(
    timeout: Duration,
    headers: Option<&reqwest::header::HeaderMap>,
    tls: Option<&ClientTlsConfig>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(headers) = headers {
        builder = builder.default_headers(headers.clone());
    }
    tls.cloned()
        .unwrap_or_default()
        .apply_to_reqwest(builder)?
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A request that got no answer: worth retrying.
pub fn send_error(url: &str, error: reqwest::Error) -> ExportError {
    ExportError::retryable(format!(
        "POST {}: {}",
        redacted_url(url),
        super::error_chain(&error.without_url())
    ))
}

/// Posts `body` as JSON; a 5xx or 429 answer is retryable, any other
/// failure status permanent. `with_body` adds the answer's text to the
/// message.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &impl serde::Serialize,
    with_body: bool,
) -> Result<(), ExportError> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| send_error(url, e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut message = format!("POST {} answered {status}", redacted_url(url));
    if with_body {
        message.push_str(": ");
        message.push_str(&response.text().await.unwrap_or_default());
    }
    if status.is_server_error() || status.as_u16() == 429 {
        Err(ExportError::retryable(message))
    } else {
        Err(ExportError::permanent(message))
    }
}
