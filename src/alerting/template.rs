//! Label and annotation templates: `{{ $labels.mountpoint }}`, `{{ $value }}`,
//! `{{ $threshold }}`, `{{ $severity }}`, as in Prometheus rules (label
//! names may hold dots here, since OpenTelemetry attributes do).

use std::collections::BTreeMap;

pub struct TemplateData<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub value: f64,
    pub threshold: f64,
    pub severity: &'a str,
}

/// Expands every `{{ ... }}`; an unknown expression is left as written so
/// the mistake is visible in the notification.
pub fn render(template: &str, data: &TemplateData) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expression = rest[start + 2..start + end].trim();
        let replacement = match expression {
            "$value" => Some(format_number(data.value)),
            "$threshold" => Some(format_number(data.threshold)),
            "$severity" => Some(data.severity.to_string()),
            _ => expression
                .strip_prefix("$labels.")
                .map(|name| data.labels.get(name.trim()).cloned().unwrap_or_default()),
        };
        match replacement {
            Some(text) => out.push_str(&text),
            None => out.push_str(&rest[start..start + end + 2]),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// Numbers as people read them: integers without `.0`, others to 4 significant decimals.
pub fn format_number(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else if value.is_finite() {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_values_and_leaves_unknowns() {
        let labels: BTreeMap<String, String> = [(
            "system.filesystem.mountpoint".to_string(),
            "/data".to_string(),
        )]
        .into_iter()
        .collect();
        let data = TemplateData {
            labels: &labels,
            value: 0.93456,
            threshold: 0.9,
            severity: "critical",
        };
        assert_eq!(
            render(
                "{{ $labels.system.filesystem.mountpoint }} at {{ $value }} > {{$threshold}} ({{ $severity }}) {{ .Bad }}",
                &data
            ),
            "/data at 0.9346 > 0.9 (critical) {{ .Bad }}"
        );
        assert_eq!(render("no close {{ $value", &data), "no close {{ $value");
        assert_eq!(format_number(3.0), "3");
    }
}
