//! Component ids as the Collector writes them: `type` or `type/name`.

use std::fmt;

/// `type` or `type/name`, as in the OpenTelemetry Collector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    pub type_name: String,
    pub name: Option<String>,
}

impl ComponentId {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (type_name, name) = match text.split_once('/') {
            Some((t, n)) => (t, Some(n)),
            None => (text, None),
        };
        let valid_type = !type_name.is_empty()
            && type_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_type {
            return Err(format!(
                "invalid component id {text:?}: expected `type` or `type/name`, the type in lowercase letters, digits and `_`"
            ));
        }
        if name.is_some_and(str::is_empty) {
            return Err(format!(
                "invalid component id {text:?}: the name after `/` is empty"
            ));
        }
        Ok(ComponentId {
            type_name: type_name.to_string(),
            name: name.map(str::to_string),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.type_name, name),
            None => f.write_str(&self.type_name),
        }
    }
}
