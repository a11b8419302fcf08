//! The OCI source: resolve an OCIRepository's `ref` to a manifest digest, and pull the
//! selected layer into a content-addressed artifact only when the digest moved; and push a
//! directory as an artifact the way `flux push artifact` does, so either tool reads what the
//! other pushed.
//!
//! # Guarantees
//! - The revision is Flux's `<tag>@sha256:<manifest digest>` (the digest alone when
//!   `ref.digest` pins it). When it is the last artifact's and that artifact is still in the
//!   store, nothing is downloaded: a tag costs one HEAD request, a semver range the tag list
//!   and one HEAD.
//! - The manifest's bytes and the layer's bytes are checked against their digests before
//!   anything is unpacked; the layer is capped at the store's size limit while it streams.
//! - The whole pull is bounded by the timeout; errors name the repository and what to fix,
//!   never a credential.

mod auth;
pub mod client;
pub mod reference;

use std::time::Duration;

use bytes::Bytes;

pub use auth::{Credentials, from_secret_data as credentials_from_secret};
pub use client::{Descriptor, Manifest, Registry};
pub use reference::{Repository, Selector};

use super::ArtifactOutcome;
use super::artifact::{ArtifactError, ArtifactStore};
use crate::api::{Artifact, OciLayerOperation, OciLayerSelector, reason};

pub const KIND: &str = crate::api::Kind::OciRepository.as_str();

/// Flux's default timeout of one pull.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The media types of the OCI image spec and of Flux's artifacts.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// The config blob of an artifact `flux push artifact` makes.
    pub const FLUX_CONFIG: &str = "application/vnd.cncf.flux.config.v1+json";
    /// Its one layer: the directory as a gzipped tarball.
    pub const FLUX_CONTENT: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
}

/// The OpenContainers annotations `flux push artifact` writes on the manifest.
pub mod annotation {
    pub const CREATED: &str = "org.opencontainers.image.created";
    pub const SOURCE: &str = "org.opencontainers.image.source";
    pub const REVISION: &str = "org.opencontainers.image.revision";
}

/// Errors of the OCI source. Messages name the repository, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("invalid OCI URL {0}")]
    InvalidUrl(String),
    #[error("invalid {0}")]
    InvalidRef(String),
    #[error("{0}")]
    InvalidSecret(String),
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url} refused access ({detail}); check the registry credentials in spec.secretRef")]
    Unauthorized { url: String, detail: String },
    #[error("{what} not found in {url}")]
    NotFound { what: String, url: String },
    #[error("no tag of {url} {} semver range {range:?}", if *.filtered { "passing ref.semverFilter matches" } else { "matches" })]
    NoSemverMatch { range: String, url: String, filtered: bool },
    #[error("{url} answered {status}: {detail}")]
    Registry { url: String, status: u16, detail: String },
    #[error("{url}: {detail}")]
    InvalidManifest { url: String, detail: String },
    #[error("the artifact of {url} has no layer{}; {hint}", .media_type.as_ref().map(|m| format!(" of media type {m:?}")).unwrap_or_default())]
    NoLayer { url: String, media_type: Option<String>, hint: String },
    #[error("{what}: digest mismatch, expected {expected}, got {actual}; refusing it")]
    DigestMismatch { what: String, expected: String, actual: String },
    #[error("a layer of {url} is larger than the limit of {limit} bytes; raise the controller's --max-artifact-size")]
    TooLarge { url: String, limit: u64 },
    #[error("pulling {url} timed out after {}", humantime::format_duration(*.after))]
    Timeout { url: String, after: Duration },
    #[error("the layer of {url} is not a gzipped tarball a runner can unpack: {detail}")]
    InvalidLayer { url: String, detail: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

impl OciError {
    /// The condition reason this error maps to (Flux's vocabulary).
    pub fn reason(&self) -> &'static str {
        match self {
            OciError::InvalidUrl(_) => reason::URL_INVALID,
            OciError::InvalidRef(_) => reason::INVALID_SPEC,
            OciError::InvalidSecret(_) | OciError::Unauthorized { .. } => reason::AUTHENTICATION_FAILED,
            OciError::NoLayer { .. } | OciError::InvalidLayer { .. } => reason::OCI_LAYER_OPERATION_FAILED,
            OciError::Io { .. } | OciError::Artifact(_) => reason::STORAGE_OPERATION_FAILED,
            _ => reason::OCI_PULL_FAILED,
        }
    }
}

pub type Result<T, E = OciError> = std::result::Result<T, E>;

/// Whether `digest` is `sha256:<64 lowercase hex>`.
pub fn is_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// The layer an artifact is made of: the first of `media_type` (the first at all when
/// unset). Pure.
pub fn select_layer<'a>(manifest: &'a Manifest, url: &str, media_type: Option<&str>) -> Result<&'a Descriptor> {
    let found = match media_type {
        None => manifest.layers.first(),
        Some(m) => manifest.layers.iter().find(|l| l.media_type == m),
    };
    found.ok_or_else(|| {
        let present: Vec<&str> = manifest.layers.iter().map(|l| l.media_type.as_str()).collect();
        OciError::NoLayer {
            url: url.to_string(),
            media_type: media_type.map(str::to_string),
            hint: if present.is_empty() {
                "push an artifact with a layer".into()
            } else {
                format!("its layers are {}; fix spec.layerSelector.mediaType", present.join(", "))
            },
        }
    })
}

/// One OCIRepository to pull.
pub struct OciSource {
    registry: Registry,
    repository: Repository,
    selector: Selector,
    layer: OciLayerSelector,
    timeout: Duration,
}

impl OciSource {
    /// A source for a repository, ref and layer selector; `tls` carries `certSecretRef`'s
    /// keys, `credentials` the Secret's entry for the registry.
    pub fn new(
        repository: Repository,
        selector: Selector,
        layer: Option<OciLayerSelector>,
        insecure: bool,
        tls: rustls::ClientConfig,
        credentials: Option<Credentials>,
        timeout: Option<Duration>,
    ) -> Self {
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        Self {
            registry: Registry::new(&repository.registry, insecure, tls, credentials, timeout),
            repository,
            selector,
            layer: layer.unwrap_or_default(),
            timeout,
        }
    }

    /// Resolves the ref; when the revision is `last`'s and its artifact is in `store`,
    /// returns `Unchanged` having downloaded nothing; else pulls the layer into the store.
    pub async fn fetch_artifact(
        &self,
        store: &ArtifactStore,
        namespace: &str,
        name: &str,
        ignore: Option<&str>,
        last: Option<&Artifact>,
    ) -> Result<ArtifactOutcome> {
        let work = async {
            let tags = if self.selector.needs_tags() { self.registry.tags(&self.repository).await? } else { Vec::new() };
            let picked = self.selector.pick(&self.repository, &tags)?;
            let digest = self.registry.resolve(&self.repository, &picked).await?;
            let revision = reference::revision(&picked, &digest);
            if let Some(last) = last
                && last.revision == revision
                && store.exists(&last.path)
            {
                return Ok(ArtifactOutcome::Unchanged { revision });
            }
            let manifest = self.registry.manifest(&self.repository, &digest).await?;
            let artifact = self.store_layer(&manifest, store, namespace, name, ignore).await?;
            Ok(ArtifactOutcome::Stored { commit: revision.clone(), revision, artifact, verified: None })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(OciError::Timeout { url: self.repository.url(), after: self.timeout }),
        }
    }

    async fn store_layer(
        &self,
        manifest: &Manifest,
        store: &ArtifactStore,
        namespace: &str,
        name: &str,
        ignore: Option<&str>,
    ) -> Result<super::StoredArtifact> {
        let url = self.repository.url();
        let layer = select_layer(manifest, &url, self.layer.media_type.as_deref())?;
        let io = |source| OciError::Io { path: "a temporary directory".into(), source };
        let work = tempfile::Builder::new().prefix("driftless-oci-").tempdir().map_err(io)?;
        let blob = work.path().join("layer.tar.gz");
        self.registry.blob_to_file(&self.repository, &layer.digest, &blob, store.max_size()).await?;
        let (store, ns, n, ignore) = (store.clone(), namespace.to_string(), name.to_string(), ignore.map(str::to_string));
        let (digest, operation) = (layer.digest.clone(), self.layer.operation.unwrap_or_default());
        let stored = tokio::task::spawn_blocking(move || -> Result<super::StoredArtifact> {
            let invalid = |e: ArtifactError| match e {
                e @ (ArtifactError::TooLarge { .. } | ArtifactError::Io { .. }) => OciError::Artifact(e),
                other => OciError::InvalidLayer { url: url.clone(), detail: other.to_string() },
            };
            match operation {
                OciLayerOperation::Copy => store.store_archive(KIND, &ns, &n, &blob).map_err(invalid),
                OciLayerOperation::Extract => {
                    let tree = work.path().join("tree");
                    let file = std::fs::File::open(&blob).map_err(|source| OciError::Io { path: blob.display().to_string(), source })?;
                    super::unpack_verified(std::io::BufReader::new(file), &digest, &tree).map_err(invalid)?;
                    Ok(store.archive_dir(KIND, &ns, &n, &tree, ignore.as_deref())?)
                }
            }
        })
        .await
        .map_err(|e| OciError::Io { path: "the artifact".into(), source: std::io::Error::other(e) })??;
        Ok(stored)
    }
}

/// What `push` records about the content, as `flux push artifact --source --revision`.
#[derive(Debug, Clone, Default)]
pub struct PushMetadata {
    pub source: Option<String>,
    pub revision: Option<String>,
    /// RFC 3339; now when unset.
    pub created: Option<String>,
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Pushes `layer` (a gzipped tarball) to `repository:tag` as Flux's artifacts are: an OCI
/// image manifest with Flux's config media type, one layer of Flux's content media type,
/// and the source, revision and creation time as OpenContainers annotations. Returns the
/// manifest digest.
pub async fn push(registry: &Registry, repository: &Repository, tag: &str, layer: Bytes, meta: &PushMetadata) -> Result<String> {
    let created = meta.created.clone().unwrap_or_else(|| jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    let layer = registry.push_blob(repository, media::FLUX_CONTENT, layer).await?;
    let config = serde_json::json!({
        "created": created,
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let config = registry.push_blob(repository, media::FLUX_CONFIG, Bytes::from(config.to_string())).await?;
    let mut annotations = meta.annotations.clone();
    annotations.insert(annotation::CREATED.into(), created);
    if let Some(source) = &meta.source {
        annotations.insert(annotation::SOURCE.into(), source.clone());
    }
    if let Some(revision) = &meta.revision {
        annotations.insert(annotation::REVISION.into(), revision.clone());
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        config: Some(config),
        layers: vec![layer],
        manifests: None,
        annotations,
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| OciError::InvalidManifest { url: repository.url(), detail: e.to_string() })?;
    registry.push_manifest(repository, tag, media::OCI_MANIFEST, Bytes::from(bytes)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(media_type: &str, n: u8) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: format!("sha256:{}", hex::encode([n; 32])),
            size: 1,
            annotations: Default::default(),
        }
    }

    #[test]
    fn the_first_layer_or_the_first_of_the_media_type_is_selected() {
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: None,
            layers: vec![layer("application/a", 1), layer(media::FLUX_CONTENT, 2), layer(media::FLUX_CONTENT, 3)],
            manifests: None,
            annotations: Default::default(),
        };
        assert_eq!(select_layer(&manifest, "oci://h/a", None).unwrap().digest, layer("", 1).digest);
        assert_eq!(select_layer(&manifest, "oci://h/a", Some(media::FLUX_CONTENT)).unwrap().digest, layer("", 2).digest);
        let err = select_layer(&manifest, "oci://h/a", Some("application/b")).expect_err("none").to_string();
        assert!(err.contains("application/b") && err.contains("application/a") && err.contains("spec.layerSelector.mediaType"), "{err}");
    }

    #[test]
    fn digests_are_sha256_in_lowercase_hex() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest(&format!("sha512:{}", "a".repeat(64))));
    }
}
