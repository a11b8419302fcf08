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

/// The longest duration a spec may hold: a year. A longer one is refused by validation
/// (the object is Stalled), so no interval can overflow a clock.
pub const MAX: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// The CRD's pattern for durations: what the API server accepts, and all the local store
/// accepts.
pub const PATTERN: &str = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";

impl Duration {
    /// Parses a duration as the CRD's [`PATTERN`] accepts it (Go's `30s`, `5m`, `1h30m`,
    /// `1.5h`, `500ms`), so a local store and a cluster agree on what is valid. A value too
    /// large to count saturates; [`Duration::within_bounds`] says whether a spec may hold it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let value = parse_go(trimmed).ok_or_else(|| {
            if trimmed.is_empty() {
                "empty duration; use a Go duration such as 30s, 5m or 1h".to_string()
            } else {
                format!("invalid duration {trimmed:?}; use a Go duration such as 30s, 5m, 1h30m or 500ms (units ms, s, m, h)")
            }
        })?;
        Ok(Self { text: trimmed.to_string(), value })
    }

    pub fn from_std(value: std::time::Duration) -> Self {
        Self { text: humantime::format_duration(value).to_string().replace(' ', ""), value }
    }

    pub fn as_std(&self) -> std::time::Duration {
        self.value
    }

    /// `Err` with what to write instead when the duration is longer than [`MAX`].
    pub fn within_bounds(&self) -> Result<(), String> {
        if self.value <= MAX {
            return Ok(());
        }
        Err(format!("{} is longer than a year; use at most {}h", self.text, MAX.as_secs() / 3600))
    }
}

/// Go's duration syntax restricted to the CRD's units: one or more `<number>[.<fraction>]<unit>`.
fn parse_go(text: &str) -> Option<std::time::Duration> {
    const NANOS: [(&str, u128); 4] = [("ms", 1_000_000), ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000)];
    let mut rest = text;
    let mut total: u128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if whole_len == 0 {
            return None;
        }
        let (whole, after) = rest.split_at(whole_len);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(f) => {
                let len = f.bytes().take_while(u8::is_ascii_digit).count();
                if len == 0 {
                    return None;
                }
                f.split_at(len)
            }
            None => ("", after),
        };
        let (unit, nanos) = NANOS.iter().find(|(u, _)| after.starts_with(u))?;
        rest = &after[unit.len()..];
        let whole: u128 = whole.parse().unwrap_or(u128::MAX);
        let mut amount = whole.saturating_mul(*nanos);
        if !fraction.is_empty() {
            // Nine digits are enough for nanoseconds of an hour; more cannot change the value.
            let digits = &fraction[..fraction.len().min(18)];
            let scale = 10u128.pow(digits.len() as u32);
            amount = amount.saturating_add(digits.parse::<u128>().unwrap_or(0).saturating_mul(*nanos) / scale);
        }
        total = total.saturating_add(amount);
    }
    let secs = u64::try_from(total / 1_000_000_000).unwrap_or(u64::MAX);
    Some(std::time::Duration::new(secs, (total % 1_000_000_000) as u32))
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
            "pattern": PATTERN,
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

    #[test]
    fn only_what_the_crd_pattern_accepts_parses() {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        for text in ["30s", "5m", "1h30m", "1.5h", "500ms", "0s", "2h0m0s", "10m30s", "3000000000000000h"] {
            assert!(pattern.is_match(text), "{text}");
            assert!(Duration::parse(text).is_ok(), "{text}");
        }
        for text in ["5 minutes", "5min", "1d", "-1s", "1.s", ".5s", "1h 30m", "", "s", "10", "1us", "1e3s"] {
            assert!(!pattern.is_match(text), "{text}");
            assert!(Duration::parse(text).is_err(), "{text} must be refused, as the API server refuses it");
        }
        assert_eq!(Duration::parse("1.5h").unwrap().as_std(), std::time::Duration::from_secs(5400));
        assert_eq!(Duration::parse("1m30.25s").unwrap().as_std(), std::time::Duration::from_millis(90_250));
    }

    #[test]
    fn a_huge_duration_parses_saturated_and_is_out_of_bounds() {
        let huge = Duration::parse("3000000000000000h").unwrap();
        assert!(huge.as_std() > MAX);
        let err = huge.within_bounds().unwrap_err();
        assert!(err.contains("longer than a year") && err.contains("8784h"), "{err}");
        let absurd = Duration::parse(&format!("{}h", "9".repeat(60))).unwrap();
        assert_eq!(absurd.as_std().as_secs(), u64::MAX, "saturates, never overflows");
        assert!(Duration::parse("8784h").unwrap().within_bounds().is_ok());
    }
}
