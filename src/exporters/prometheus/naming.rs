//! Metric and label names the way the OpenTelemetry "Prometheus and
//! OpenMetrics Compatibility" specification maps them: invalid characters
//! become `_`, the unit is spelled out as a suffix (`By` -> `bytes`,
//! `By/s` -> `bytes_per_second`, `1` on a gauge -> `ratio`, `{packet}`
//! annotations dropped), and monotonic counters end in `_total`.

fn sanitize(name: &str, allow_colon: bool) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_underscore = false;
    for c in name.chars() {
        let valid = c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':');
        let c = if valid { c } else { '_' };
        // Collapse runs of `_` that replacement creates, as the spec asks.
        if c == '_' && last_underscore {
            continue;
        }
        last_underscore = c == '_';
        out.push(c);
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A label name: `[a-zA-Z_][a-zA-Z0-9_]*`; a leading digit gets `key_`.
pub fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// The unit as a name suffix, or `None` (no unit, or only an annotation).
pub fn unit_suffix(unit: &str, is_gauge: bool) -> Option<String> {
    // `{packets}` and the like are annotations, not units.
    let mut cleaned = String::new();
    let mut depth = 0;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ if depth == 0 => cleaned.push(c),
            _ => {}
        }
    }
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        return None;
    }
    if cleaned == "1" {
        return is_gauge.then(|| "ratio".to_string());
    }
    let (main, per) = match cleaned.split_once('/') {
        Some((main, per)) => (main, Some(per)),
        None => (cleaned, None),
    };
    let main = unit_word(main)
        .map(str::to_string)
        .unwrap_or_else(|| sanitize(main, false));
    let mut suffix = main;
    if let Some(per) = per.filter(|p| !p.is_empty()) {
        let per = per_unit_word(per)
            .map(str::to_string)
            .unwrap_or_else(|| sanitize(per, false));
        suffix = if suffix.is_empty() {
            format!("per_{per}")
        } else {
            format!("{suffix}_per_{per}")
        };
    }
    let suffix = suffix.trim_matches('_').to_string();
    (!suffix.is_empty()).then_some(suffix)
}

/// The family name: sanitized, with the unit suffix unless the name
/// already ends with it, and `_total` for monotonic counters.
pub fn metric_name(name: &str, unit: &str, is_gauge: bool, is_counter: bool) -> String {
    let mut out = sanitize(name, true);
    if let Some(suffix) = unit_suffix(unit, is_gauge) {
        let ends = out.ends_with(&format!("_{suffix}")) || out == suffix;
        if !ends {
            out.push('_');
            out.push_str(&suffix);
        }
    }
    if is_counter {
        if let Some(stripped) = out.strip_suffix("_total") {
            out = stripped.to_string();
        }
        out.push_str("_total");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_compatibility_spec() {
        assert_eq!(
            metric_name("system.memory.usage", "By", false, false),
            "system_memory_usage_bytes"
        );
        assert_eq!(
            metric_name("system.cpu.time", "s", false, true),
            "system_cpu_time_seconds_total"
        );
        assert_eq!(
            metric_name("system.cpu.utilization", "1", true, false),
            "system_cpu_utilization_ratio"
        );
        assert_eq!(
            metric_name("system.network.packets", "{packet}", false, true),
            "system_network_packets_total"
        );
        assert_eq!(
            metric_name("http.server.request.duration", "ms", false, false),
            "http_server_request_duration_milliseconds"
        );
        assert_eq!(
            metric_name("throughput", "By/s", true, false),
            "throughput_bytes_per_second"
        );
        assert_eq!(
            metric_name("requests_total", "", false, true),
            "requests_total"
        );
        assert_eq!(
            metric_name("latency_seconds", "s", false, false),
            "latency_seconds"
        );
        assert_eq!(metric_name("2xx..count", "", false, false), "_2xx_count");
        assert_eq!(label_name("http.route"), "http_route");
        assert_eq!(label_name("0day"), "key_0day");
    }
}
