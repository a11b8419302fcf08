use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Go-style duration string (`30s`, `5m`, `1h30m`) as Flux and tofu-controller write them,
/// kept as written so a round trip through the store never rewrites a user's spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duration {
    text: String,
    value: std::time::Duration,
}

impl Duration {
    /// Parses a duration; the error names the accepted forms so a user can fix the field.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("empty duration; use a Go duration such as 30s, 5m or 1h".into());
        }
        let value = humantime::parse_duration(trimmed)
            .map_err(|e| format!("invalid duration {trimmed:?} ({e}); use a Go duration such as 30s, 5m or 1h"))?;
        Ok(Self { text: trimmed.to_string(), value })
    }

    pub fn from_std(value: std::time::Duration) -> Self {
        Self { text: humantime::format_duration(value).to_string().replace(' ', ""), value }
    }

    pub fn as_std(&self) -> std::time::Duration {
        self.value
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$",
            "description": "A Go duration string, e.g. 30s, 5m, 1h30m."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_keep_their_text() {
        let d = Duration::parse("1h30m").unwrap();
        assert_eq!(d.as_std(), std::time::Duration::from_secs(5400));
        assert_eq!(d.to_string(), "1h30m");
        assert_eq!(Duration::parse("500ms").unwrap().as_std(), std::time::Duration::from_millis(500));
    }

    #[test]
    fn a_bad_duration_says_what_to_write() {
        let err = Duration::parse("soon").unwrap_err();
        assert!(err.contains("use a Go duration"), "{err}");
    }
}
