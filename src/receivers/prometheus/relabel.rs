//! Prometheus relabelling (`relabel_configs` on targets,
//! `metric_relabel_configs` on samples) with Prometheus's semantics: the
//! regex is anchored at both ends, `replacement` expands `$1`/`${name}`,
//! a label set to "" is removed.

use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
    KeepEqual,
    DropEqual,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelabel {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default = "default_regex")]
    pub regex: String,
    pub target_label: Option<String>,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
}

fn default_separator() -> String {
    ";".into()
}

fn default_regex() -> String {
    "(.*)".into()
}

fn default_replacement() -> String {
    "$1".into()
}

/// A relabel step with its regex compiled (at validate time).
#[derive(Debug, Clone)]
pub struct Relabel {
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    target_label: String,
    replacement: String,
    action: Action,
}

pub type Labels = Vec<(String, String)>;

impl RawRelabel {
    /// The compiled step, or the field at fault and why.
    pub fn compile(&self) -> Result<Relabel, (&'static str, String)> {
        let regex = Regex::new(&format!("^(?:{})$", self.regex))
            .map_err(|e| ("regex", format!("not a valid regular expression: {e}")))?;
        let target_label = self.target_label.clone().unwrap_or_default();
        let needs_target = matches!(
            self.action,
            Action::Replace
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && target_label.is_empty() {
            return Err((
                "target_label",
                format!("action {:?} needs a target_label", self.action).to_lowercase(),
            ));
        }
        let needs_sources = matches!(
            self.action,
            Action::Keep | Action::Drop | Action::KeepEqual | Action::DropEqual
        );
        if needs_sources && self.source_labels.is_empty() {
            return Err((
                "source_labels",
                "keep and drop need source_labels".to_string(),
            ));
        }
        Ok(Relabel {
            source_labels: self.source_labels.clone(),
            separator: self.separator.clone(),
            regex,
            target_label,
            replacement: self.replacement.clone(),
            action: self.action,
        })
    }
}

fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn set(labels: &mut Labels, name: &str, value: String) {
    labels.retain(|(k, _)| k != name);
    if !value.is_empty() {
        labels.push((name.to_string(), value));
    }
}

impl Relabel {
    /// Applies the step; `false` means the target or sample is dropped.
    pub fn apply(&self, labels: &mut Labels) -> bool {
        let joined = self
            .source_labels
            .iter()
            .map(|l| get(labels, l))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match self.action {
            Action::Keep => return self.regex.is_match(&joined),
            Action::Drop => return !self.regex.is_match(&joined),
            Action::KeepEqual => return joined == get(labels, &self.target_label),
            Action::DropEqual => return joined != get(labels, &self.target_label),
            Action::Replace => {
                if let Some(captures) = self.regex.captures(&joined) {
                    let mut target = String::new();
                    captures.expand(&self.target_label, &mut target);
                    let mut value = String::new();
                    captures.expand(&self.replacement, &mut value);
                    if !target.is_empty() {
                        set(labels, &target, value);
                    }
                }
            }
            Action::Lowercase => set(labels, &self.target_label, joined.to_lowercase()),
            Action::Uppercase => set(labels, &self.target_label, joined.to_uppercase()),
            Action::LabelMap => {
                let mapped: Labels = labels
                    .iter()
                    .filter(|(k, _)| self.regex.is_match(k))
                    .map(|(k, v)| {
                        (
                            self.regex
                                .replace(k, self.replacement.as_str())
                                .into_owned(),
                            v.clone(),
                        )
                    })
                    .collect();
                for (k, v) in mapped {
                    set(labels, &k, v);
                }
            }
            Action::LabelDrop => labels.retain(|(k, _)| !self.regex.is_match(k)),
            Action::LabelKeep => labels.retain(|(k, _)| self.regex.is_match(k)),
        }
        true
    }
}

/// Runs every step in order; `false` as soon as one drops the labels.
pub fn apply_all(steps: &[Relabel], labels: &mut Labels) -> bool {
    steps.iter().all(|step| step.apply(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(yaml: &str) -> Relabel {
        let raw: RawRelabel = yaml_serde::from_str(yaml).unwrap();
        raw.compile().unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replace_keep_drop_and_label_actions() {
        let mut l = labels(&[("__address__", "127.0.0.1:9100"), ("env", "prod")]);
        let host = step(
            "{ source_labels: [__address__], regex: '(.*):\\d+', target_label: host, replacement: '${1}' }",
        );
        assert!(host.apply(&mut l));
        assert_eq!(get(&l, "host"), "127.0.0.1");
        // Anchored: a partial match is no match.
        assert!(!step("{ source_labels: [env], regex: 'pro', action: keep }").apply(&mut l));
        assert!(step("{ source_labels: [env], regex: 'prod', action: keep }").apply(&mut l));
        assert!(
            !step("{ source_labels: [env, host], regex: 'prod;127.*', action: drop }")
                .apply(&mut l)
        );
        assert!(step("{ regex: 'env', action: labeldrop }").apply(&mut l));
        assert_eq!(get(&l, "env"), "");
        assert!(
            step("{ regex: '__(address)__', replacement: 'x_$1', action: labelmap }").apply(&mut l)
        );
        assert_eq!(get(&l, "x_address"), "127.0.0.1:9100");
        // Setting a label to "" removes it.
        assert!(step("{ source_labels: [missing], target_label: host }").apply(&mut l));
        assert_eq!(get(&l, "host"), "");
    }

    #[test]
    fn bad_steps_name_their_field() {
        let raw: RawRelabel = yaml_serde::from_str("{ regex: '(' }").unwrap();
        assert_eq!(raw.compile().unwrap_err().0, "regex");
        let raw: RawRelabel = yaml_serde::from_str("{ source_labels: [a] }").unwrap();
        assert_eq!(raw.compile().unwrap_err().0, "target_label");
        let raw: RawRelabel = yaml_serde::from_str("{ action: keep }").unwrap();
        assert_eq!(raw.compile().unwrap_err().0, "source_labels");
    }
}
