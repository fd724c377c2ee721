//! Include / exclude lists of regular expressions for scrapers.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameFilter {
    /// When non-empty, only names matching one of these are kept.
    #[serde(default, with = "regex_list")]
    pub include: Vec<regex::Regex>,
    #[serde(default, with = "regex_list")]
    pub exclude: Vec<regex::Regex>,
}

impl NameFilter {
    pub fn keeps(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// Whole-name regular expressions: `sd.*` matches `sda`, not `usda`.
pub mod regex_list {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<regex::Regex>, D::Error> {
        let patterns = Vec::<String>::deserialize(deserializer)?;
        patterns
            .iter()
            .map(|p| {
                regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid regular expression {p:?}: {}",
                        crate::config::one_line(&e)
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_then_exclude_whole_names() {
        let filter: NameFilter =
            yaml_serde::from_str("include: ['sd.*', nvme0n1]\nexclude: [sdb]").unwrap();
        assert!(filter.keeps("sda"));
        assert!(!filter.keeps("sdb"));
        assert!(!filter.keeps("usda"));
        assert!(filter.keeps("nvme0n1"));
        assert!(NameFilter::default().keeps("anything"));
        let bad = yaml_serde::from_str::<NameFilter>("include: ['(']")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("invalid regular expression"), "{bad}");
    }
}
