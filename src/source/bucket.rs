//! The Bucket source: list an S3-compatible bucket (under a prefix), and download it into a
//! content-addressed artifact only when the listing changed.
//!
//! # Guarantees
//! - The revision is `sha256:<hex>` of the sorted `key etag` lines of the objects the
//!   artifact would hold (ignored keys and directory markers left out), as Flux computes it:
//!   an unchanged bucket gives the same revision, and when that revision's artifact is still
//!   in the store nothing is downloaded and no artifact is written.
//! - Objects are downloaded (a few at a time) into a temporary directory under their full
//!   key, then archived with the store's deterministic tar.gz; a key that would land outside
//!   that directory (`..`, absolute) fails the fetch.
//! - The whole fetch is bounded by the timeout; errors name the bucket and endpoint, never a
//!   credential.

use std::path::{Component, Path};
use std::time::Duration;

use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::ArtifactOutcome;
use super::artifact::{ArtifactError, ArtifactStore};
use crate::api::{Artifact, BucketSpec};
use crate::backend::s3::{S3Connection, S3Credentials, S3Failure, classify, connect};

pub const KIND: &str = crate::api::Kind::Bucket.as_str();

/// Flux's default timeout of one bucket operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Downloads in flight at once.
const PARALLEL_DOWNLOADS: usize = 8;

/// Errors of the Bucket source. Messages name the bucket and endpoint, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("cannot reach {endpoint}: {detail}")]
    Unreachable { endpoint: String, detail: String },
    #[error("{endpoint} refused the credentials for bucket {bucket}: {detail}; check spec.secretRef (accesskey/secretkey)")]
    AccessDenied { bucket: String, endpoint: String, detail: String },
    #[error("bucket {bucket} does not exist at {endpoint}; create it or fix spec.bucketName")]
    NotFound { bucket: String, endpoint: String },
    #[error("{op} of bucket {bucket} at {endpoint} failed: {detail}")]
    Operation { op: &'static str, bucket: String, endpoint: String, detail: String },
    #[error("object key {key:?} would be written outside the artifact; refusing to fetch bucket {bucket}")]
    UnsafeKey { bucket: String, key: String },
    #[error("fetching bucket {bucket} from {endpoint} timed out after {}", humantime::format_duration(*.after))]
    Timeout { bucket: String, endpoint: String, after: Duration },
    #[error(
        "bucket {bucket} holds more than the limit of {limit} bytes; raise the controller's --max-artifact-size, or narrow spec.prefix or spec.ignore"
    )]
    TooLarge { bucket: String, limit: u64 },
    #[error("invalid spec.ignore: {0}")]
    InvalidIgnore(String),
    #[error("download directory {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

impl BucketError {
    /// The condition reason this error maps to (Flux's vocabulary).
    pub fn reason(&self) -> &'static str {
        match self {
            BucketError::AccessDenied { .. } => crate::api::reason::AUTHENTICATION_FAILED,
            BucketError::InvalidIgnore(_) => crate::api::reason::INVALID_SPEC,
            BucketError::Io { .. } | BucketError::Artifact(_) => crate::api::reason::STORAGE_OPERATION_FAILED,
            _ => crate::api::reason::BUCKET_OPERATION_FAILED,
        }
    }
}

pub type Result<T, E = BucketError> = std::result::Result<T, E>;

/// The objects an artifact is made of: `(key, etag)`, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<(String, String)>,
}

impl Listing {
    /// `sha256:<hex>` of the `key etag` lines: the revision.
    pub fn revision(&self) -> String {
        let mut h = Sha256::new();
        for (key, etag) in &self.objects {
            h.update(key.as_bytes());
            h.update(b" ");
            h.update(etag.trim_matches('"').as_bytes());
            h.update(b"\n");
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// The endpoint URL of a Flux-style `endpoint` (`host[:port]`, https unless `insecure`).
pub fn endpoint_url(endpoint: &str, insecure: bool) -> String {
    if endpoint.contains("://") {
        endpoint.trim_end_matches('/').to_string()
    } else {
        format!("{}://{}", if insecure { "http" } else { "https" }, endpoint.trim_end_matches('/'))
    }
}

/// One bucket to list and download.
#[derive(Debug, Clone)]
pub struct BucketSource {
    client: Client,
    bucket: String,
    prefix: Option<String>,
    endpoint: String,
    timeout: Duration,
}

impl BucketSource {
    /// A source for a Bucket's spec; `credentials` from its `secretRef`, else the standard chain.
    /// A source for `spec`; without `credentials`, `anonymous` reads the bucket unsigned
    /// instead of with the standard AWS chain (the controller's own identity).
    pub async fn connect(spec: &BucketSpec, credentials: Option<S3Credentials>, anonymous: bool) -> Self {
        let endpoint = endpoint_url(&spec.endpoint, spec.insecure);
        let connection = S3Connection {
            region: spec.region.clone(),
            endpoint: Some(endpoint.clone()),
            // S3-compatible servers addressed by host name want path-style; so does AWS
            // for bucket names with dots. AWS accepts it for every bucket.
            force_path_style: true,
            credentials,
            anonymous,
        };
        Self {
            client: connect(&connection).await,
            bucket: spec.bucket_name.clone(),
            prefix: spec.prefix.clone().filter(|p| !p.is_empty()),
            endpoint,
            timeout: spec.timeout.as_ref().map(|t| t.as_std()).unwrap_or(DEFAULT_TIMEOUT),
        }
    }

    fn error<E, R>(&self, op: &'static str, err: &aws_sdk_s3::error::SdkError<E, R>) -> BucketError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (bucket, endpoint) = (self.bucket.clone(), self.endpoint.clone());
        match classify(err) {
            S3Failure::Unreachable(detail) => BucketError::Unreachable { endpoint, detail },
            S3Failure::Denied(detail) => BucketError::AccessDenied { bucket, endpoint, detail },
            S3Failure::NoSuchBucket => BucketError::NotFound { bucket, endpoint },
            S3Failure::NoSuchKey => BucketError::Operation { op, bucket, endpoint, detail: "no such key".into() },
            S3Failure::Precondition => BucketError::Operation { op, bucket, endpoint, detail: "precondition failed".into() },
            S3Failure::Other(detail) => BucketError::Operation { op, bucket, endpoint, detail },
        }
    }

    /// Lists the objects under the prefix that `ignore` keeps.
    pub async fn list(&self, ignore: Option<&str>) -> Result<Listing> {
        let matcher = ignore_matcher(ignore)?;
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).set_prefix(self.prefix.clone()).into_paginator().send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("listing", &e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                if key.ends_with('/') || matcher.matched_path_or_any_parents(key, false).is_ignore() {
                    continue;
                }
                objects.push((key.to_string(), o.e_tag().unwrap_or_default().to_string()));
            }
        }
        objects.sort();
        Ok(Listing { objects })
    }

    /// Lists the bucket; when the revision is `last`'s and its artifact is in `store`,
    /// returns `Unchanged` having downloaded nothing; else downloads and archives.
    pub async fn fetch_artifact(
        &self,
        store: &ArtifactStore,
        namespace: &str,
        name: &str,
        ignore: Option<&str>,
        last: Option<&Artifact>,
    ) -> Result<ArtifactOutcome> {
        let work = async {
            let listing = self.list(ignore).await?;
            let revision = listing.revision();
            if let Some(last) = last
                && last.revision == revision
                && store.exists(&last.path)
            {
                return Ok(ArtifactOutcome::Unchanged { revision });
            }
            let dir = tempfile::Builder::new()
                .prefix("driftless-bucket-")
                .tempdir()
                .map_err(|source| BucketError::Io { path: "a temporary directory".into(), source })?;
            self.download(&listing, dir.path(), store.max_size()).await?;
            let (store, dir_path, ignore) = (store.clone(), dir.path().to_path_buf(), ignore.map(str::to_string));
            let (ns, n) = (namespace.to_string(), name.to_string());
            let artifact = tokio::task::spawn_blocking(move || store.archive_dir(KIND, &ns, &n, &dir_path, ignore.as_deref()))
                .await
                .map_err(|e| BucketError::Io { path: "the artifact".into(), source: std::io::Error::other(e) })??;
            drop(dir);
            Ok(ArtifactOutcome::Stored { commit: revision.clone(), revision, artifact, verified: None })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(BucketError::Timeout { bucket: self.bucket.clone(), endpoint: self.endpoint.clone(), after: self.timeout }),
        }
    }

    /// Downloads every listed object into `dir`, at most `max_bytes` in all (counted as
    /// they arrive: a listing's sizes are the server's word).
    async fn download(&self, listing: &Listing, dir: &Path, max_bytes: u64) -> Result<()> {
        let budget = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(max_bytes));
        for (key, _) in &listing.objects {
            let safe = !key.starts_with('/') && Path::new(key).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !safe {
                return Err(BucketError::UnsafeKey { bucket: self.bucket.clone(), key: key.clone() });
            }
        }
        let mut pending = listing.objects.iter().map(|(k, _)| k.clone());
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < PARALLEL_DOWNLOADS {
                let Some(key) = pending.next() else { break };
                let this = self.clone();
                let dest = dir.join(&key);
                let budget = (budget.clone(), max_bytes);
                running.spawn(async move { this.download_one(&key, &dest, budget).await });
            }
            match running.join_next().await {
                None => return Ok(()),
                Some(Ok(r)) => r?,
                Some(Err(e)) => return Err(BucketError::Io { path: dir.display().to_string(), source: std::io::Error::other(e) }),
            }
        }
    }

    async fn download_one(
        &self,
        key: &str,
        dest: &Path,
        (budget, limit): (std::sync::Arc<std::sync::atomic::AtomicU64>, u64),
    ) -> Result<()> {
        let io = |source| BucketError::Io { path: dest.display().to_string(), source };
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| self.error("download", &e))?;
        let mut body = out.body;
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| BucketError::Unreachable { endpoint: self.endpoint.clone(), detail: format!("reading {key}: {e}") })?
        {
            let spend = chunk.len() as u64;
            let spent = budget
                .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |left| left.checked_sub(spend));
            if spent.is_err() {
                return Err(BucketError::TooLarge { bucket: self.bucket.clone(), limit });
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        Ok(())
    }
}

fn ignore_matcher(ignore: Option<&str>) -> Result<ignore::gitignore::Gitignore> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new("/");
    for line in ignore.unwrap_or_default().lines() {
        builder.add_line(None, line).map_err(|e| BucketError::InvalidIgnore(format!("{line:?}: {e}")))?;
    }
    builder.build().map_err(|e| BucketError::InvalidIgnore(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_depends_on_keys_and_etags_only() {
        let a = Listing { objects: vec![("a.tf".into(), "\"1\"".into()), ("b.tf".into(), "\"2\"".into())] };
        let same = Listing { objects: vec![("a.tf".into(), "1".into()), ("b.tf".into(), "2".into())] };
        let changed = Listing { objects: vec![("a.tf".into(), "1".into()), ("b.tf".into(), "3".into())] };
        assert_eq!(a.revision(), same.revision());
        assert_ne!(a.revision(), changed.revision());
        assert!(a.revision().starts_with("sha256:"));
    }

    #[test]
    fn a_bare_endpoint_is_https_unless_insecure() {
        assert_eq!(endpoint_url("minio.example.com:9000", false), "https://minio.example.com:9000");
        assert_eq!(endpoint_url("127.0.0.1:9000", true), "http://127.0.0.1:9000");
        assert_eq!(endpoint_url("http://127.0.0.1:9000/", true), "http://127.0.0.1:9000");
    }

    #[test]
    fn ignored_keys_are_matched_like_gitignore() {
        let m = ignore_matcher(Some("*.md\ndocs/\n")).unwrap();
        assert!(m.matched_path_or_any_parents("README.md", false).is_ignore());
        assert!(m.matched_path_or_any_parents("docs/a.tf", false).is_ignore());
        assert!(!m.matched_path_or_any_parents("main.tf", false).is_ignore());
    }
}
