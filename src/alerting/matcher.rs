//! Label matchers in Prometheus's syntax: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"` (regexes match the whole value).

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone)]
pub enum MatchOp {
    Equal(String),
    NotEqual(String),
    Regex(regex::Regex),
    NotRegex(regex::Regex),
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
}

impl Matcher {
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let expected = "expected a matcher like `host.name=\"web-1\"`, `cpu.mode!=\"idle\"` or `device=~\"sd.*\"`";
        let position = text
            .find(['=', '!'])
            .ok_or_else(|| format!("invalid matcher {text:?}: {expected}"))?;
        let label = text[..position].trim();
        let rest = &text[position..];
        let (op, value) = ["=~", "!~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
            .ok_or_else(|| format!("invalid matcher {text:?}: {expected}"))?;
        if label.is_empty() {
            return Err(format!("invalid matcher {text:?}: the label name is empty"));
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("invalid matcher {text:?}: the value must be in double quotes"))?
            .to_string();
        let regex = |v: &str| {
            regex::Regex::new(&format!("^(?:{v})$")).map_err(|e| {
                format!(
                    "invalid regular expression in matcher {text:?}: {}",
                    crate::config::one_line(&e)
                )
            })
        };
        let op = match op {
            "=" => MatchOp::Equal(value),
            "!=" => MatchOp::NotEqual(value),
            "=~" => MatchOp::Regex(regex(&value)?),
            _ => MatchOp::NotRegex(regex(&value)?),
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
        })
    }

    /// A matcher from its parts, as Alertmanager's API gives them
    /// (`isRegex`, `isEqual`); regexes match the whole value.
    pub fn from_parts(
        label: &str,
        value: &str,
        is_regex: bool,
        is_equal: bool,
    ) -> Result<Matcher, String> {
        if label.is_empty() {
            return Err("a matcher's name is empty".to_string());
        }
        let regex = || {
            regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                format!(
                    "invalid regular expression {value:?} in the matcher on {label:?}: {}",
                    crate::config::one_line(&e)
                )
            })
        };
        let op = match (is_regex, is_equal) {
            (false, true) => MatchOp::Equal(value.to_string()),
            (false, false) => MatchOp::NotEqual(value.to_string()),
            (true, true) => MatchOp::Regex(regex()?),
            (true, false) => MatchOp::NotRegex(regex()?),
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
        })
    }

    /// A missing label matches as the empty string, as in Prometheus.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.label).map(String::as_str).unwrap_or("");
        match &self.op {
            MatchOp::Equal(v) => value == v,
            MatchOp::NotEqual(v) => value != v,
            MatchOp::Regex(r) => r.is_match(value),
            MatchOp::NotRegex(r) => !r.is_match(value),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            MatchOp::Equal(v) => write!(f, "{}={v:?}", self.label),
            MatchOp::NotEqual(v) => write!(f, "{}!={v:?}", self.label),
            MatchOp::Regex(r) => write!(f, "{}=~{:?}", self.label, r.as_str()),
            MatchOp::NotRegex(r) => write!(f, "{}!~{:?}", self.label, r.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_matches_the_four_operators() {
        let l = labels(&[("cpu.mode", "idle"), ("device", "sda1")]);
        assert!(Matcher::parse(r#"cpu.mode="idle""#).unwrap().matches(&l));
        assert!(!Matcher::parse(r#"cpu.mode!="idle""#).unwrap().matches(&l));
        assert!(Matcher::parse(r#"device=~"sd.*""#).unwrap().matches(&l));
        assert!(
            !Matcher::parse(r#"device=~"sd""#).unwrap().matches(&l),
            "whole value"
        );
        assert!(Matcher::parse(r#"device!~"nvme.*""#).unwrap().matches(&l));
        assert!(Matcher::parse(r#"missing="""#).unwrap().matches(&l));
    }

    #[test]
    fn reports_bad_matchers() {
        assert!(
            Matcher::parse("cpu.mode")
                .unwrap_err()
                .contains("expected a matcher")
        );
        assert!(
            Matcher::parse("x=idle")
                .unwrap_err()
                .contains("double quotes")
        );
        assert!(
            Matcher::parse(r#"x=~"(""#)
                .unwrap_err()
                .contains("invalid regular expression")
        );
    }
}
