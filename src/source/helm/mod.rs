//! The Helm sources: a HelmRepository's index (downloaded from an HTTP chart repository
//! into an artifact when it changed), and a HelmChart's chart archive (picked from that
//! index or from an OCI registry by semver range, or packaged from a directory of a Git or
//! Bucket artifact), as Flux's source-controller makes them.
//!
//! # Guarantees
//! - The index revision is `sha256:<hex>` of the index as served; an unchanged index makes
//!   no new artifact. A chart's revision is its version (with Flux's build metadata for
//!   values files and `reconcileStrategy: Revision`); when it equals the last artifact's, no
//!   chart is downloaded or packaged.
//! - A chart from a repository is stored byte for byte unless values files are merged into
//!   it; the index's digest of it is checked when the index gives one.
//! - Downloads are capped while they stream and bounded by the repository's timeout;
//!   messages name the URL and what to fix, never a credential.

mod chart;
mod http;
mod index;

use std::path::Path;
use std::time::Duration;

pub use chart::{ChartMeta, archive_meta, merge_values, stage};
pub use http::{BasicAuth, ChartRepositoryClient, shown as shown_url};
pub use index::{ChartVersion, Index, chart_url};

use super::ArtifactOutcome;
use super::artifact::{ArtifactError, ArtifactStore};
use super::oci::{OciError, Registry, Repository};
use super::semver::Range;
use crate::api::{Artifact, ReconcileStrategy, reason};

pub const REPOSITORY_KIND: &str = crate::api::Kind::HelmRepository.as_str();
pub const CHART_KIND: &str = crate::api::Kind::HelmChart.as_str();

/// Flux's default timeout of an index or chart download.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest index read, as Flux caps it.
pub const INDEX_LIMIT: u64 = 50 << 20;

/// The media types a Helm chart in an OCI registry is pushed with (`helm push`), and the
/// older one Helm still reads.
pub mod media {
    pub const CHART_CONTENT: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
    pub const LEGACY_CHART_CONTENT: &str = "application/tar+gzip";
}

/// Errors of the Helm sources. Messages name the URL, chart or file, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("invalid URL {0}")]
    InvalidUrl(String),
    #[error("{0}")]
    InvalidSecret(String),
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url} refused access ({detail})")]
    Unauthorized { url: String, detail: String },
    #[error("{url} answered HTTP {status}")]
    Http { url: String, status: u16 },
    #[error("{what} is larger than the limit of {limit} bytes; raise the controller's --max-artifact-size")]
    TooLarge { what: String, limit: u64 },
    #[error("downloading {url} timed out after {}", humantime::format_duration(*.after))]
    Timeout { url: String, after: Duration },
    #[error("{url} is not a Helm repository index: {detail}")]
    InvalidIndex { url: String, detail: String },
    #[error("chart {chart:?}: {detail}")]
    ChartNotFound { chart: String, detail: String },
    #[error("chart {chart}: {detail}")]
    InvalidChart { chart: String, detail: String },
    #[error("chart {chart}: {detail}")]
    Dependency { chart: String, detail: String },
    #[error("values file {file:?}: {detail}")]
    InvalidValues { file: String, detail: String },
    #[error("{what}: digest mismatch, expected {expected}, got {actual}; refusing it")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl HelmError {
    /// The condition reason of a HelmRepository's failure (Flux's vocabulary).
    pub fn repository_reason(&self) -> &'static str {
        match self {
            HelmError::InvalidUrl(_) => reason::URL_INVALID,
            HelmError::InvalidSecret(_) | HelmError::Unauthorized { .. } => reason::AUTHENTICATION_FAILED,
            HelmError::InvalidIndex { .. } => reason::INDEXATION_FAILED,
            HelmError::Io { .. } | HelmError::Artifact(_) => reason::STORAGE_OPERATION_FAILED,
            _ => reason::FAILED,
        }
    }

    /// The condition reason of a HelmChart's failure (Flux's vocabulary).
    pub fn chart_reason(&self) -> &'static str {
        match self {
            HelmError::InvalidUrl(_) => reason::URL_INVALID,
            HelmError::InvalidSecret(_) | HelmError::Unauthorized { .. } => reason::AUTHENTICATION_FAILED,
            HelmError::Oci(e) if e.reason() == reason::AUTHENTICATION_FAILED => reason::AUTHENTICATION_FAILED,
            HelmError::ChartNotFound { .. } | HelmError::Oci(OciError::NotFound { .. } | OciError::NoSemverMatch { .. }) => {
                reason::INVALID_CHART_REFERENCE
            }
            HelmError::InvalidChart { .. } => reason::CHART_PACKAGE_ERROR,
            HelmError::Dependency { .. } => reason::DEPENDENCY_BUILD_ERROR,
            HelmError::InvalidValues { .. } => reason::VALUES_FILES_ERROR,
            HelmError::Io { .. } | HelmError::Artifact(_) => reason::STORAGE_OPERATION_FAILED,
            _ => reason::CHART_PULL_ERROR,
        }
    }
}

pub type Result<T, E = HelmError> = std::result::Result<T, E>;

fn io(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> HelmError {
    move |source| HelmError::Io { path: path.to_string(), source }
}

/// The index URL of a repository: `index.yaml` joined to its path, its query kept.
pub fn index_url(repository: &str) -> String {
    let (base, query) = match repository.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (repository, None),
    };
    let url = format!("{}/index.yaml", base.trim_end_matches('/'));
    match query {
        Some(q) => format!("{url}?{q}"),
        None => url,
    }
}

/// Downloads the index of the HTTP repository `url`; when its revision is `last`'s and that
/// artifact is in `store`, returns `Unchanged`; else checks it is an index and stores it
/// (as `index.yaml` in an artifact).
pub async fn fetch_index(
    client: &ChartRepositoryClient,
    url: &str,
    store: &ArtifactStore,
    namespace: &str,
    name: &str,
    last: Option<&Artifact>,
) -> Result<ArtifactOutcome> {
    let index_url = index_url(url);
    let bytes = client.get(&index_url, INDEX_LIMIT.min(store.max_size())).await?;
    let revision = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
    if let Some(last) = last
        && last.revision == revision
        && store.exists(&last.path)
    {
        return Ok(ArtifactOutcome::Unchanged { revision });
    }
    Index::parse(&bytes, &shown_url(&index_url))?;
    let (store, ns, n) = (store.clone(), namespace.to_string(), name.to_string());
    let artifact = tokio::task::spawn_blocking(move || -> Result<super::StoredArtifact> {
        let dir = tempfile::Builder::new().prefix("driftless-index-").tempdir().map_err(io("a temporary directory"))?;
        std::fs::write(dir.path().join("index.yaml"), &bytes).map_err(io("index.yaml"))?;
        Ok(store.archive_dir(REPOSITORY_KIND, &ns, &n, dir.path(), None)?)
    })
    .await
    .map_err(|e| HelmError::Io { path: "the index".into(), source: std::io::Error::other(e) })??;
    Ok(ArtifactOutcome::Stored { commit: revision.clone(), revision, artifact, verified: None })
}

/// The index a HelmRepository's artifact holds (blocking).
pub fn read_index(store: &ArtifactStore, artifact: &Artifact) -> Result<Index> {
    let dir = tempfile::Builder::new().prefix("driftless-index-").tempdir().map_err(io("a temporary directory"))?;
    store.unpack(&artifact.path, &artifact.digest, dir.path())?;
    let text = std::fs::read(dir.path().join("index.yaml")).map_err(io("index.yaml of the repository's artifact"))?;
    Index::parse(&text, "the HelmRepository's artifact")
}

/// What a HelmChart asks for, whichever its source.
#[derive(Debug, Clone)]
pub struct ChartRequest {
    /// `namespace/name` of the HelmChart, for messages.
    pub object: String,
    pub chart: String,
    pub version: String,
    pub values_files: Vec<String>,
    pub ignore_missing_values_files: bool,
    pub strategy: ReconcileStrategy,
    pub generation: i64,
}

impl ChartRequest {
    /// The values files that change the chart: none when the list is only the chart's own
    /// `values.yaml` (as Flux counts them).
    fn merged_values_files(&self, from_repository: bool) -> &[String] {
        if from_repository && self.values_files.len() == 1 && self.values_files[0].trim_start_matches("./") == "values.yaml" {
            return &[];
        }
        &self.values_files
    }
}

/// The revision of a chart: its version with Flux's build metadata (any it had replaced):
/// `+<generation>` when values files are merged; for `reconcileStrategy: Revision` (a Git
/// or Bucket chart) `+<first 12 hex of the source revision>`, then `.<generation>` with
/// values files. Pure.
pub fn chart_revision(version: &str, strategy: ReconcileStrategy, source_revision: Option<&str>, values: bool, generation: i64) -> String {
    let base = version.split('+').next().unwrap_or(version);
    let hash = match (strategy, source_revision) {
        (ReconcileStrategy::Revision, Some(revision)) => {
            let hex = revision.rsplit(':').next().unwrap_or(revision);
            Some(hex.chars().take(12).collect::<String>())
        }
        _ => None,
    };
    match (hash, values) {
        (Some(h), true) => format!("{base}+{h}.{generation}"),
        (Some(h), false) => format!("{base}+{h}"),
        (None, true) => format!("{base}+{generation}"),
        (None, false) => version.to_string(),
    }
}

fn unchanged(last: Option<&Artifact>, revision: &str, store: &ArtifactStore) -> bool {
    last.is_some_and(|l| l.revision == revision && store.exists(&l.path))
}

/// The chart `request` asks for from an HTTP repository's `index`: picked by range (an
/// exact version string wins, as in Flux), downloaded from its first URL with `client`
/// unless the last artifact is that version already.
pub async fn chart_from_index(
    client: &ChartRepositoryClient,
    repository_url: &str,
    index: &Index,
    request: &ChartRequest,
    store: &ArtifactStore,
    namespace: &str,
    last: Option<&Artifact>,
) -> Result<ArtifactOutcome> {
    let entry = pick_entry(index, &request.chart, &request.version)?;
    let values = !request.merged_values_files(true).is_empty();
    let revision = chart_revision(&entry.version, ReconcileStrategy::ChartVersion, None, values, request.generation);
    if unchanged(last, &revision, store) {
        return Ok(ArtifactOutcome::Unchanged { revision });
    }
    let url = entry.urls.first().map(|u| chart_url(repository_url, u)).ok_or_else(|| HelmError::ChartNotFound {
        chart: request.chart.clone(),
        detail: format!("version {} has no URL in the index", entry.version),
    })?;
    let bytes = client.get(&url, store.max_size()).await?;
    if let Some(expected) = entry.digest.as_deref().filter(|d| !d.is_empty()) {
        let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if !actual.eq_ignore_ascii_case(expected.trim_start_matches("sha256:")) {
            return Err(HelmError::DigestMismatch { what: shown_url(&url), expected: expected.into(), actual });
        }
    }
    store_remote_chart(bytes, request, revision, store, namespace).await
}

fn pick_entry<'a>(index: &'a Index, chart: &str, version: &str) -> Result<&'a ChartVersion> {
    if let Some(exact) = index.entries.get(chart).and_then(|v| v.iter().find(|e| e.version == version)) {
        return Ok(exact);
    }
    let range = Range::parse(if version.is_empty() { "*" } else { version })
        .map_err(|e| HelmError::ChartNotFound { chart: chart.into(), detail: format!("spec.version: {e}") })?;
    index.pick(chart, &range, version)
}

/// The chart `request` asks for from the OCI repository `base` (`oci://host/path`, the
/// chart being `base/<chart>`): a version that is semver is pulled as that tag, else the
/// highest tag in the range (`_` read as `+`, as Helm writes tags).
pub async fn chart_from_oci(
    registry: &Registry,
    base: &Repository,
    request: &ChartRequest,
    store: &ArtifactStore,
    namespace: &str,
    last: Option<&Artifact>,
) -> Result<ArtifactOutcome> {
    let repository = Repository { registry: base.registry.clone(), name: format!("{}/{}", base.name, request.chart) };
    let exact = semver::Version::parse(request.version.trim_start_matches('v')).is_ok();
    let tag = if exact {
        request.version.replace('+', "_")
    } else {
        let tags = registry.tags(&repository).await?;
        let versions: Vec<String> = tags.iter().map(|t| t.replace('_', "+")).collect();
        let range = Range::parse(&request.version)
            .map_err(|e| HelmError::ChartNotFound { chart: request.chart.clone(), detail: format!("spec.version: {e}") })?;
        let strict = versions.iter().filter(|v| semver::Version::parse(v.trim_start_matches('v')).is_ok()).map(String::as_str);
        let picked = range.highest(strict).ok_or_else(|| HelmError::ChartNotFound {
            chart: request.chart.clone(),
            detail: format!("no tag of {} matches {:?}; fix spec.version", repository.url(), request.version),
        })?;
        picked.replace('+', "_")
    };
    let version = tag.replace('_', "+");
    let values = !request.merged_values_files(true).is_empty();
    let revision = chart_revision(&version, ReconcileStrategy::ChartVersion, None, values, request.generation);
    if unchanged(last, &revision, store) {
        return Ok(ArtifactOutcome::Unchanged { revision });
    }
    let digest = registry.resolve(&repository, &tag).await?;
    let manifest = registry.manifest(&repository, &digest).await?;
    let layer =
        manifest.layers.iter().find(|l| l.media_type == media::CHART_CONTENT || l.media_type == media::LEGACY_CHART_CONTENT).ok_or_else(
            || HelmError::InvalidChart {
                chart: format!("{}:{tag}", repository.url()),
                detail: format!("the artifact has no layer of media type {} (was it pushed with helm push?)", media::CHART_CONTENT),
            },
        )?;
    let work = tempfile::Builder::new().prefix("driftless-chart-").tempdir().map_err(io("a temporary directory"))?;
    let file = work.path().join("chart.tgz");
    registry.blob_to_file(&repository, &layer.digest, &file, store.max_size()).await?;
    let bytes = std::fs::read(&file).map_err(io("the downloaded chart"))?;
    store_remote_chart(bytes::Bytes::from(bytes), request, revision, store, namespace).await
}

/// Stores a downloaded chart archive: as it is, or unpacked, with the values files merged
/// and the version set to `revision`, and packed again.
async fn store_remote_chart(
    bytes: bytes::Bytes,
    request: &ChartRequest,
    revision: String,
    store: &ArtifactStore,
    namespace: &str,
) -> Result<ArtifactOutcome> {
    let (store, ns, request) = (store.clone(), namespace.to_string(), request.clone());
    tokio::task::spawn_blocking(move || -> Result<ArtifactOutcome> {
        let work = tempfile::Builder::new().prefix("driftless-chart-").tempdir().map_err(io("a temporary directory"))?;
        let file = work.path().join("chart.tgz");
        std::fs::write(&file, &bytes).map_err(io("the downloaded chart"))?;
        let meta = archive_meta(&file, &request.object)?;
        if meta.name != request.chart {
            return Err(HelmError::InvalidChart {
                chart: request.object.clone(),
                detail: format!("the archive holds chart {:?}, not {:?}", meta.name, request.chart),
            });
        }
        let files = request.merged_values_files(true).to_vec();
        let artifact = if files.is_empty() && revision == meta.version {
            store.store_archive(CHART_KIND, &ns, &request_name(&request), &file)?
        } else {
            let tree = work.path().join("tree");
            let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
            super::unpack_verified(std::io::Cursor::new(&bytes[..]), &digest, &tree)
                .map_err(|e| HelmError::InvalidChart { chart: request.object.clone(), detail: e.to_string() })?;
            let chart_root = tree.join(&meta.name);
            rewrite(&chart_root, &chart_root, &files, request.ignore_missing_values_files, &revision)?;
            store.archive_dir(CHART_KIND, &ns, &request_name(&request), &tree, None)?
        };
        Ok(ArtifactOutcome::Stored { commit: revision.clone(), revision, artifact, verified: None })
    })
    .await
    .map_err(|e| HelmError::Io { path: "the chart".into(), source: std::io::Error::other(e) })?
}

/// The HelmChart's name from its `namespace/name`.
fn request_name(request: &ChartRequest) -> String {
    request.object.rsplit('/').next().unwrap_or(&request.object).to_string()
}

/// Packages the chart at `request.chart` (a path) in the unpacked source `root` (a Git or
/// Bucket artifact of revision `source_revision`), unless the last artifact is of the same
/// revision (blocking).
pub fn chart_from_tree(
    root: &Path,
    source_revision: &str,
    request: &ChartRequest,
    store: &ArtifactStore,
    namespace: &str,
    last: Option<&Artifact>,
) -> Result<ArtifactOutcome> {
    let work = tempfile::Builder::new().prefix("driftless-chart-").tempdir().map_err(io("a temporary directory"))?;
    let meta = stage(root, &root.join(request.chart.trim_start_matches("./")), work.path(), &request.object)?;
    let values = !request.values_files.is_empty();
    let revision = chart_revision(&meta.version, request.strategy, Some(source_revision), values, request.generation);
    if unchanged(last, &revision, store) {
        return Ok(ArtifactOutcome::Unchanged { revision });
    }
    let chart_root = work.path().join(&meta.name);
    rewrite(&chart_root, root, &request.values_files, request.ignore_missing_values_files, &revision)?;
    let artifact = store.archive_dir(CHART_KIND, namespace, &request_name(request), work.path(), None)?;
    Ok(ArtifactOutcome::Stored { commit: revision.clone(), revision, artifact, verified: None })
}

/// Merges `files` (read under `values_root`) into the staged chart's `values.yaml` and sets
/// its Chart.yaml version to `version`.
fn rewrite(chart_root: &Path, values_root: &Path, files: &[String], ignore_missing: bool, version: &str) -> Result<()> {
    if !files.is_empty() {
        let mut documents = Vec::new();
        for file in files {
            match chart::read_values_file(values_root, file)? {
                Some(text) => documents.push((file.clone(), text)),
                None if ignore_missing => {}
                None => {
                    return Err(HelmError::InvalidValues {
                        file: file.clone(),
                        detail: "no such file in the chart's source; fix spec.valuesFiles or set spec.ignoreMissingValuesFiles".into(),
                    });
                }
            }
        }
        let merged = merge_values(&documents)?;
        let text =
            serde_yaml::to_string(&merged).map_err(|e| HelmError::InvalidValues { file: "values.yaml".into(), detail: e.to_string() })?;
        std::fs::write(chart_root.join("values.yaml"), text).map_err(io("values.yaml"))?;
    }
    let chart_yaml = chart_root.join("Chart.yaml");
    let text = std::fs::read(&chart_yaml).map_err(io("Chart.yaml"))?;
    let mut value: serde_yaml::Value =
        serde_yaml::from_slice(&text).map_err(|e| HelmError::InvalidChart { chart: "Chart.yaml".into(), detail: e.to_string() })?;
    if value.get("version").and_then(|v| v.as_str()) != Some(version) {
        if let Some(map) = value.as_mapping_mut() {
            map.insert("version".into(), version.into());
        }
        let text =
            serde_yaml::to_string(&value).map_err(|e| HelmError::InvalidChart { chart: "Chart.yaml".into(), detail: e.to_string() })?;
        std::fs::write(&chart_yaml, text).map_err(io("Chart.yaml"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_revisions_carry_flux_s_build_metadata() {
        use ReconcileStrategy::{ChartVersion, Revision};
        assert_eq!(chart_revision("1.2.3", ChartVersion, None, false, 4), "1.2.3");
        assert_eq!(chart_revision("1.2.3+old", ChartVersion, None, true, 4), "1.2.3+4");
        let git = "main@sha1:0123456789abcdef0123";
        assert_eq!(chart_revision("1.2.3", Revision, Some(git), false, 4), "1.2.3+0123456789ab");
        assert_eq!(chart_revision("1.2.3", Revision, Some(git), true, 4), "1.2.3+0123456789ab.4");
        assert_eq!(chart_revision("1.2.3", ChartVersion, Some(git), false, 4), "1.2.3");
        assert_eq!(chart_revision("1.0.0", Revision, Some("sha256:fedcba9876543210aa"), false, 1), "1.0.0+fedcba987654");
    }

    #[test]
    fn a_download_over_the_cap_names_it_and_the_flag_that_raises_it() {
        let e = HelmError::TooLarge { what: "http://h/app-1.0.0.tgz".into(), limit: 10 };
        assert_eq!(e.chart_reason(), reason::CHART_PULL_ERROR);
        let text = e.to_string();
        assert!(text.contains("http://h/app-1.0.0.tgz") && text.contains("10 bytes") && text.contains("--max-artifact-size"), "{text}");
    }

    #[test]
    fn the_index_is_joined_to_the_repository_path_with_its_query_kept() {
        assert_eq!(index_url("https://h/charts/"), "https://h/charts/index.yaml");
        assert_eq!(index_url("https://h"), "https://h/index.yaml");
        assert_eq!(index_url("https://h/c?token=1"), "https://h/c/index.yaml?token=1");
    }

    #[test]
    fn an_exact_version_wins_over_the_range_reading() {
        let text = "apiVersion: v1\nentries:\n  app:\n  - {name: app, version: 2.0.0-rc.1, urls: [a]}\n  - {name: app, version: 1.0.0, urls: [b]}\n";
        let index = Index::parse(text.as_bytes(), "u").unwrap();
        assert_eq!(pick_entry(&index, "app", "2.0.0-rc.1").unwrap().version, "2.0.0-rc.1");
        assert_eq!(pick_entry(&index, "app", "*").unwrap().version, "1.0.0");
        assert_eq!(pick_entry(&index, "app", "").unwrap().version, "1.0.0");
    }
}
