//! Header maps in exporter configs (`headers: { x-api-key: ... }`),
//! compiled to an `http::HeaderMap` while the config is decoded, so a name
//! or value HTTP cannot carry (a newline in a value, a space in a name) is
//! a `validate` error with its path and line rather than a failure at start.
//! Values are often credentials: they are marked sensitive and never
//! printed.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

#[derive(Clone, Default)]
pub struct Headers(pub HeaderMap);

impl Headers {
    pub fn map(&self) -> &HeaderMap {
        &self.0
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// One value, checked on its own so an error points at its key.
struct Value(HeaderValue);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            de::Error::custom(
                "invalid header value: expected visible ASCII, spaces and tabs only (no newline or other control character)",
            )
        })?;
        value.set_sensitive(true);
        Ok(Value(value))
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut headers = HeaderMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    let Value(value) = map.next_value()?;
                    let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                        de::Error::custom(format!(
                            "invalid header name {name:?}: expected letters, digits and `-`, like x-api-key"
                        ))
                    })?;
                    headers.append(parsed, value);
                }
                Ok(Headers(headers))
            }
        }
        deserializer.deserialize_map(HeadersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_names_and_values_and_refuses_newlines() {
        let headers: Headers = yaml_serde::from_str("{ X-Api-Key: secret, tenant: a }").unwrap();
        assert_eq!(headers.map()["x-api-key"], "secret");
        assert!(headers.map()["x-api-key"].is_sensitive());
        assert!(!format!("{headers:?}").contains("secret"));
        let newline = yaml_serde::from_str::<Headers>("{ key: \"APIKEY\\nfoo\" }").unwrap_err();
        assert!(newline.to_string().contains("no newline"), "{newline}");
        let name = yaml_serde::from_str::<Headers>("{ \"a b\": x }").unwrap_err();
        assert!(name.to_string().contains("invalid header name"), "{name}");
    }
}
