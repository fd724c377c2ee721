//! Prometheus's HTTP query API on the telemetry endpoint, over the first
//! `store` exporter: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`, by
//! GET or form POST (Grafana's default), answering in Prometheus's JSON
//! shape so Grafana and `promtool query` work against it. Read-only: the
//! endpoint binds loopback by default, like the rest of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::Telemetry;
use crate::store::Store;
use crate::store::engine::{Engine, Labels};
use crate::store::promql::{self, Value};

type Params = Vec<(String, String)>;

pub fn routes() -> axum::Router<Arc<Telemetry>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
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

fn param<'p>(params: &'p Params, name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Unix seconds (with fraction) or RFC 3339, as Prometheus accepts.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("cannot parse {text:?} to a valid timestamp"))
}

/// Seconds (with fraction) or a duration such as `15s`.
fn parse_step(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
        && seconds > 0.0
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    crate::config::duration::parse_duration(text)
        .map(|d| d.as_millis() as i64)
        .ok()
        .filter(|ms| *ms > 0)
        .ok_or_else(|| format!("cannot parse {text:?} to a valid duration"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

fn point(t: i64, v: f64) -> Json {
    json!([t as f64 / 1000.0, format_value(v)])
}

fn metric(labels: &Labels) -> Json {
    Json::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    )
}

/// Runs `read` on the store's engine off the async threads.
async fn with_store<R: Send + 'static>(
    telemetry: &Telemetry,
    read: impl FnOnce(&Engine) -> R + Send + 'static,
) -> Result<R, Response> {
    let store: Arc<Store> = telemetry.store().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no store exporter is configured: add one to a metrics pipeline",
        )
    })?;
    tokio::task::spawn_blocking(move || store.read(read))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

async fn query(State(telemetry): State<Arc<Telemetry>>, Form(params): Form<Params>) -> Response {
    let Some(text) = param(&params, "query").map(str::to_string) else {
        return bad("parameter query is missing");
    };
    let t = match param(&params, "time")
        .map(parse_time)
        .unwrap_or(Ok(now_ms()))
    {
        Ok(t) => t,
        Err(e) => return bad(format!("invalid parameter time: {e}")),
    };
    let answer = with_store(&telemetry, move |engine| {
        promql::instant_query(engine, &text, t)
    })
    .await;
    match answer {
        Err(response) => response,
        Ok(Err(e)) => bad(e),
        Ok(Ok(value)) => success(match value {
            Value::Scalar(v) => json!({"resultType": "scalar", "result": point(t, v)}),
            Value::String(s) => json!({"resultType": "string", "result": [t as f64 / 1000.0, s]}),
            Value::Vector(samples) => json!({"resultType": "vector", "result": samples
                .iter()
                .map(|s| json!({"metric": metric(&s.labels), "value": point(t, s.value)}))
                .collect::<Vec<_>>()}),
            Value::Matrix(series) => json!({"resultType": "matrix", "result": series
                .iter()
                .map(|s| json!({"metric": metric(&s.labels), "values": s.points.iter().map(|p| point(p.time, p.last)).collect::<Vec<_>>()}))
                .collect::<Vec<_>>()}),
        }),
    }
}

async fn query_range(
    State(telemetry): State<Arc<Telemetry>>,
    Form(params): Form<Params>,
) -> Response {
    let Some(text) = param(&params, "query").map(str::to_string) else {
        return bad("parameter query is missing");
    };
    let parsed = (|| {
        let start = parse_time(param(&params, "start").ok_or("parameter start is missing")?)
            .map_err(|e| format!("invalid parameter start: {e}"))?;
        let end = parse_time(param(&params, "end").ok_or("parameter end is missing")?)
            .map_err(|e| format!("invalid parameter end: {e}"))?;
        let step = parse_step(param(&params, "step").ok_or("parameter step is missing")?)
            .map_err(|e| format!("invalid parameter step: {e}"))?;
        if end < start {
            return Err("end timestamp must not be before start time".to_string());
        }
        Ok((start, end, step))
    })();
    let (start, end, step) = match parsed {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let answer = with_store(&telemetry, move |engine| {
        promql::range_query(engine, &text, start, end, step)
    })
    .await;
    match answer {
        Err(response) => response,
        Ok(Err(e)) => bad(e),
        Ok(Ok(series)) => success(json!({"resultType": "matrix", "result": series
            .iter()
            .map(|(labels, points)| json!({"metric": metric(labels), "values": points.iter().map(|(t, v)| point(*t, *v)).collect::<Vec<_>>()}))
            .collect::<Vec<_>>()})),
    }
}

/// Label sets of the series the `match[]` selectors pick (all series
/// without one).
fn matching(engine: &Engine, selectors: &[String]) -> Result<Vec<Labels>, String> {
    let mut out = BTreeMap::new();
    let ids: Vec<u32> = if selectors.is_empty() {
        engine.select_ids(&[])
    } else {
        let mut ids = Vec::new();
        for text in selectors {
            let promql_parser::parser::Expr::VectorSelector(selector) = promql::parse(text)? else {
                return Err(format!("match[] must be a series selector: {text}"));
            };
            let mut matchers = selector.matchers.matchers.clone();
            if let Some(name) = &selector.name {
                matchers.push(promql_parser::label::Matcher {
                    op: promql_parser::label::MatchOp::Equal,
                    name: "__name__".into(),
                    value: name.clone(),
                });
            }
            ids.extend(promql::select(engine, &matchers));
        }
        ids
    };
    for id in ids {
        if let Some(labels) = engine.labels_of(id) {
            out.insert(labels.as_ref().clone(), ());
        }
    }
    Ok(out.into_keys().collect())
}

fn selectors(params: &Params) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| v.clone())
        .collect()
}

async fn series(State(telemetry): State<Arc<Telemetry>>, Form(params): Form<Params>) -> Response {
    let selectors = selectors(&params);
    if selectors.is_empty() {
        return bad("no match[] parameter provided");
    }
    match with_store(&telemetry, move |engine| matching(engine, &selectors)).await {
        Err(response) => response,
        Ok(Err(e)) => bad(e),
        Ok(Ok(sets)) => success(Json::Array(sets.iter().map(metric).collect())),
    }
}

async fn labels(State(telemetry): State<Arc<Telemetry>>, Form(params): Form<Params>) -> Response {
    let selectors = selectors(&params);
    let answer = with_store(&telemetry, move |engine| {
        if selectors.is_empty() {
            return Ok(engine.label_names());
        }
        let sets = matching(engine, &selectors)?;
        let names: std::collections::BTreeSet<String> =
            sets.into_iter().flatten().map(|(k, _)| k).collect();
        Ok::<_, String>(names.into_iter().collect())
    })
    .await;
    match answer {
        Err(response) => response,
        Ok(Err(e)) => bad(e),
        Ok(Ok(names)) => success(json!(names)),
    }
}

async fn label_values(
    State(telemetry): State<Arc<Telemetry>>,
    Path(name): Path<String>,
) -> Response {
    match with_store(&telemetry, move |engine| engine.label_values(&name)).await {
        Err(response) => response,
        Ok(values) => success(json!(values)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_and_steps_as_prometheus_does() {
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_step("15s"), Ok(15_000));
        assert_eq!(parse_step("0.5"), Ok(500));
        assert!(parse_step("0").is_err());
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(0.1), "0.1");
    }
}
