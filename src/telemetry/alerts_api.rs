//! The alerts API on the telemetry endpoint, over every `alert`
//! connector's live alerts (`alerting::live`):
//!
//! - `GET /api/v1/alerts`: pending and firing alerts in Prometheus's shape
//!   (`labels`, `annotations`, `state`, `activeAt`, `value`), with
//!   sidewatch's `fingerprint`, `severity`, `connector`, `acknowledged`
//!   and `silencedBy`;
//! - `POST|DELETE /api/v1/alerts/{fingerprint}/ack`: acknowledge (JSON
//!   `{by, comment}`) or take it back;
//! - `POST /api/v1/silences` (Alertmanager's matchers, `endsAt` or
//!   `duration`), `GET /api/v1/silences`, `DELETE /api/v1/silences/{id}`.
//!
//! Writes are allowed with the credentials of `service.telemetry.auth`
//! when it is set; without it only when the endpoint listens on loopback
//! alone (anyone who can reach it is on this host), and refused with 403
//! otherwise. A write answers once the book is on disk.

// The error side of these helpers is the answer itself, built at most
// once per request: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::Telemetry;
use crate::alerting::engine::State as AlertState;
use crate::alerting::live::LiveAlerts;
use crate::alerting::silences::{Acknowledgement, Silence, SilenceMatcher};
use crate::receivers::otlp::auth::Authenticator;

/// Who may write (acknowledge, silence).
pub enum WriteAccess {
    /// `service.telemetry.auth` is set: its credentials, on every write.
    Credentials(Authenticator),
    /// No auth set and the endpoint listens on loopback only.
    Loopback,
    /// No auth set and the endpoint is reachable from elsewhere.
    Refused,
}

impl WriteAccess {
    fn check(&self, headers: &HeaderMap) -> Result<(), Response> {
        match self {
            WriteAccess::Loopback => Ok(()),
            WriteAccess::Credentials(auth) if auth.admits(headers) => Ok(()),
            WriteAccess::Credentials(_) => Err(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this write needs the credentials of service.telemetry.auth",
            )),
            WriteAccess::Refused => Err(error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "writes are refused: the telemetry endpoint listens beyond loopback and service.telemetry.auth is not set",
            )),
        }
    }
}

pub fn routes(access: Arc<WriteAccess>) -> axum::Router<Arc<Telemetry>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/v1/alerts", get(list_alerts))
        .route(
            "/api/v1/alerts/{fingerprint}/ack",
            post(acknowledge).delete(unacknowledge),
        )
        .route("/api/v1/silences", get(list_silences).post(create_silence))
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(expire_silence),
        )
        .layer(Extension(access))
}

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"status": "error", "errorType": kind, "error": message.into()})),
    )
        .into_response()
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_data", message)
}

fn success(data: Json) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn time_text(seconds: f64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs_f64(seconds.max(0.0));
    humantime::format_rfc3339_millis(at).to_string()
}

fn parse_time(text: &str) -> Result<f64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .map_err(|_| format!("cannot parse {text:?} as an RFC 3339 time"))
}

/// `body` as `T`, or a 400 naming what is wrong and where.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

fn connectors(telemetry: &Telemetry) -> Result<Vec<(String, Arc<LiveAlerts>)>, Response> {
    let all = telemetry.alerts();
    if all.is_empty() {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no alert connector is configured",
        ));
    }
    Ok(all)
}

/// Writes each book on a blocking thread and waits for it, so an answer
/// means the change survives a restart.
async fn save(books: Vec<Arc<LiveAlerts>>) -> Result<(), Response> {
    let at = now();
    let written = tokio::task::spawn_blocking(move || {
        books
            .iter()
            .try_for_each(|live| live.save(at))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    written.map_err(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the change holds, but could not be saved and will not survive a restart: {e}"),
        )
    })
}

async fn list_alerts(State(telemetry): State<Arc<Telemetry>>) -> Response {
    let at = now();
    let mut alerts = Vec::new();
    for (connector, live) in telemetry.alerts() {
        let listed = live.alerts();
        let book = live.book();
        for alert in listed.iter() {
            let acknowledged = book
                .acknowledgement(&alert.fingerprint, alert.episode)
                .map(|a| json!({"by": a.by, "comment": a.comment, "at": time_text(a.at)}));
            alerts.push(json!({
                "labels": alert.labels,
                "annotations": alert.annotations,
                "state": match alert.state {
                    AlertState::Pending => "pending",
                    _ => "firing",
                },
                "activeAt": time_text(alert.active_at),
                "value": super::query_api::format_value(alert.value),
                "fingerprint": alert.fingerprint,
                "severity": alert.severity.as_str(),
                "connector": connector,
                "acknowledged": acknowledged,
                "silencedBy": book.silenced_by(&alert.labels, at),
            }));
        }
    }
    success(json!({ "alerts": alerts }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
    #[serde(default)]
    comment: String,
}

async fn acknowledge(
    State(telemetry): State<Arc<Telemetry>>,
    Extension(access): Extension<Arc<WriteAccess>>,
    Path(fingerprint): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = access.check(&headers) {
        return refused;
    }
    let body: AckBody = match decode(&body) {
        Ok(b) => b,
        Err(response) => return response,
    };
    if body.by.trim().is_empty() {
        return bad("by: say who acknowledges");
    }
    let all = match connectors(&telemetry) {
        Ok(all) => all,
        Err(response) => return response,
    };
    let found = all.into_iter().find_map(|(_, live)| {
        let alert = live
            .alerts()
            .iter()
            .find(|a| a.fingerprint == fingerprint)
            .cloned()?;
        Some((live, alert))
    });
    let Some((live, alert)) = found else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no pending or firing alert has fingerprint {fingerprint:?}"),
        );
    };
    let acknowledgement = Acknowledgement {
        episode: alert.episode,
        by: body.by,
        comment: body.comment,
        at: now(),
    };
    live.book().acknowledge(&fingerprint, acknowledgement);
    if let Err(response) = save(vec![live]).await {
        return response;
    }
    success(json!({ "fingerprint": fingerprint }))
}

async fn unacknowledge(
    State(telemetry): State<Arc<Telemetry>>,
    Extension(access): Extension<Arc<WriteAccess>>,
    Path(fingerprint): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = access.check(&headers) {
        return refused;
    }
    let all = match connectors(&telemetry) {
        Ok(all) => all,
        Err(response) => return response,
    };
    let changed: Vec<Arc<LiveAlerts>> = all
        .into_iter()
        .filter(|(_, live)| live.book().unacknowledge(&fingerprint))
        .map(|(_, live)| live)
        .collect();
    if changed.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no alert with fingerprint {fingerprint:?} is acknowledged"),
        );
    }
    if let Err(response) = save(changed).await {
        return response;
    }
    success(json!({ "fingerprint": fingerprint }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SilenceBody {
    matchers: Vec<SilenceMatcher>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    /// From now or `startsAt`, such as `2h`.
    #[serde(default)]
    duration: Option<String>,
    comment: String,
    created_by: String,
}

fn silence_from(body: SilenceBody, at: f64) -> Result<Silence, String> {
    if body.created_by.trim().is_empty() {
        return Err("createdBy: say who creates the silence".into());
    }
    if body.comment.trim().is_empty() {
        return Err("comment: say why".into());
    }
    let starts_at = match &body.starts_at {
        Some(text) => parse_time(text).map_err(|e| format!("startsAt: {e}"))?,
        None => at,
    }
    .max(at);
    let ends_at = match (&body.ends_at, &body.duration) {
        (Some(text), None) => parse_time(text).map_err(|e| format!("endsAt: {e}"))?,
        (None, Some(text)) => {
            let duration = crate::config::duration::parse_duration(text)
                .map_err(|e| format!("duration: {e}"))?;
            starts_at + duration.as_secs_f64()
        }
        _ => return Err("give exactly one of endsAt and duration".into()),
    };
    let id = {
        let bytes: [u8; 16] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    };
    Silence::new(
        id,
        body.matchers,
        starts_at,
        ends_at,
        body.comment,
        body.created_by,
    )
}

async fn create_silence(
    State(telemetry): State<Arc<Telemetry>>,
    Extension(access): Extension<Arc<WriteAccess>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = access.check(&headers) {
        return refused;
    }
    let body: SilenceBody = match decode(&body) {
        Ok(b) => b,
        Err(response) => return response,
    };
    let silence = match silence_from(body, now()) {
        Ok(s) => s,
        Err(e) => return bad(e),
    };
    let all = match connectors(&telemetry) {
        Ok(all) => all,
        Err(response) => return response,
    };
    let id = silence.id.clone();
    // Each connector keeps its own copy, in its own storage.
    for (_, live) in &all {
        live.book().add_silence(silence.clone());
    }
    if let Err(response) = save(all.into_iter().map(|(_, live)| live).collect()).await {
        return response;
    }
    success(json!({ "silenceID": id }))
}

async fn list_silences(State(telemetry): State<Arc<Telemetry>>) -> Response {
    let at = now();
    let mut seen = std::collections::BTreeSet::new();
    let mut silences = Vec::new();
    for (_, live) in telemetry.alerts() {
        for s in live.book().silences() {
            if !seen.insert(s.id.clone()) {
                continue;
            }
            silences.push(json!({
                "id": s.id,
                "matchers": s.matchers,
                "startsAt": time_text(s.starts_at),
                "endsAt": time_text(s.ends_at),
                "comment": s.comment,
                "createdBy": s.created_by,
                "status": { "state": s.state(at) },
            }));
        }
    }
    success(json!({ "silences": silences }))
}

async fn expire_silence(
    State(telemetry): State<Arc<Telemetry>>,
    Extension(access): Extension<Arc<WriteAccess>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = access.check(&headers) {
        return refused;
    }
    let all = match connectors(&telemetry) {
        Ok(all) => all,
        Err(response) => return response,
    };
    let at = now();
    let changed: Vec<Arc<LiveAlerts>> = all
        .into_iter()
        .filter(|(_, live)| live.book().expire_silence(&id, at))
        .map(|(_, live)| live)
        .collect();
    if changed.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no active or pending silence has id {id:?}"),
        );
    }
    if let Err(response) = save(changed).await {
        return response;
    }
    success(json!({ "silenceID": id }))
}
