//! A chart repository's `index.yaml`: read it, and pick the chart version a HelmChart's
//! range asks for. Pure functions over the index's text.

use serde::Deserialize;

use super::HelmError;
use crate::source::semver::{Range, parse_version};

/// The parts of an index driftless reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    #[serde(default, rename = "apiVersion")]
    pub api_version: Option<String>,
    #[serde(default)]
    pub entries: std::collections::BTreeMap<String, Vec<ChartVersion>>,
}

/// One version of a chart in the index.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ChartVersion {
    #[serde(default)]
    pub name: String,
    /// Helm writes it as a string; an index written by other tools may hold a number.
    #[serde(deserialize_with = "text")]
    pub version: String,
    #[serde(default)]
    pub urls: Vec<String>,
    /// sha256 hex of the chart archive, when the index says it.
    #[serde(default)]
    pub digest: Option<String>,
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = serde_yaml::Value::deserialize(d)?;
    match value {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("a version must be text, not {other:?}"))),
    }
}

impl Index {
    /// Reads an index.
    ///
    /// # Errors
    /// [`HelmError::InvalidIndex`] naming `url` when it is not YAML of an index.
    pub fn parse(text: &[u8], url: &str) -> Result<Self, HelmError> {
        let index: Index =
            serde_yaml::from_slice(text).map_err(|e| HelmError::InvalidIndex { url: url.to_string(), detail: e.to_string() })?;
        match index.api_version.as_deref() {
            Some("v1") => Ok(index),
            None => Err(HelmError::InvalidIndex { url: url.to_string(), detail: "it has no apiVersion (is it an index.yaml?)".into() }),
            Some(other) => Err(HelmError::InvalidIndex { url: url.to_string(), detail: format!("apiVersion {other:?} is not v1") }),
        }
    }

    /// The highest version of `chart` that `range` matches (`*` takes the highest stable
    /// version, as Helm and Flux do).
    ///
    /// # Errors
    /// [`HelmError::ChartNotFound`] when the index has no such chart, or no version of it
    /// matches (the message lists the newest versions it has).
    pub fn pick(&self, chart: &str, range: &Range, range_text: &str) -> Result<&ChartVersion, HelmError> {
        let versions = self.entries.get(chart).filter(|v| !v.is_empty()).ok_or_else(|| HelmError::ChartNotFound {
            chart: chart.to_string(),
            detail: "the repository's index has no chart of that name".into(),
        })?;
        let picked = range.highest(versions.iter().map(|v| v.version.as_str()));
        picked.and_then(|version| versions.iter().find(|v| v.version == version)).ok_or_else(|| {
            let mut known: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
            known.sort_by_key(|v| std::cmp::Reverse(parse_version(v)));
            known.truncate(5);
            HelmError::ChartNotFound {
                chart: chart.to_string(),
                detail: format!("no version matches {range_text:?} (newest: {}); fix spec.version", known.join(", ")),
            }
        })
    }
}

/// The URL of a chart archive from an index entry: absolute as written, or relative to the
/// repository URL (Helm resolves it against the index's directory).
pub fn chart_url(repository: &str, entry: &str) -> String {
    if entry.contains("://") {
        return entry.to_string();
    }
    format!("{}/{}", repository.trim_end_matches('/'), entry.trim_start_matches("./").trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "apiVersion: v1\nentries:\n  app:\n  - name: app\n    version: 1.2.0\n    urls: [app-1.2.0.tgz]\n  - name: app\n    version: 2.0.0-rc.1\n    urls: [app-2.0.0-rc.1.tgz]\n  - name: app\n    version: 1.10.0\n    urls: ['https://cdn.example/app-1.10.0.tgz']\n    digest: abc\n  other:\n  - name: other\n    version: 3\n    urls: [o.tgz]\ngenerated: now\n";

    fn pick(range: &str) -> Result<String, String> {
        let index = Index::parse(INDEX.as_bytes(), "http://r").unwrap();
        let parsed = Range::parse(range).unwrap();
        index.pick("app", &parsed, range).map(|v| v.version.clone()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_highest_version_in_the_range_wins_and_star_skips_prereleases() {
        assert_eq!(pick("*").unwrap(), "1.10.0");
        assert_eq!(pick("<1.5").unwrap(), "1.2.0");
        assert_eq!(pick(">=2.0.0-0").unwrap(), "2.0.0-rc.1");
        let err = pick(">=3").unwrap_err();
        assert!(err.contains("\"app\"") && err.contains(">=3") && err.contains("1.10.0, 1.2.0") && err.contains("spec.version"), "{err}");
    }

    #[test]
    fn an_unknown_chart_and_a_file_that_is_no_index_are_named() {
        let index = Index::parse(INDEX.as_bytes(), "http://r").unwrap();
        let err = index.pick("nope", &Range::parse("*").unwrap(), "*").unwrap_err().to_string();
        assert!(err.contains("\"nope\"") && err.contains("no chart of that name"), "{err}");
        let err = Index::parse(b"<html>", "http://r/x").unwrap_err().to_string();
        assert!(err.contains("http://r/x"), "{err}");
        assert!(Index::parse(b"entries: {}\n", "http://r").unwrap_err().to_string().contains("no apiVersion"));
        assert_eq!(Index::parse(INDEX.as_bytes(), "u").unwrap().entries["other"][0].version, "3");
    }

    #[test]
    fn chart_urls_resolve_against_the_repository() {
        assert_eq!(chart_url("http://h/charts/", "app-1.tgz"), "http://h/charts/app-1.tgz");
        assert_eq!(chart_url("http://h/charts", "./app-1.tgz"), "http://h/charts/app-1.tgz");
        assert_eq!(chart_url("http://h/charts", "https://cdn/app.tgz"), "https://cdn/app.tgz");
    }
}
