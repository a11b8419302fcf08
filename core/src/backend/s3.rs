//! State and plans in an S3 bucket (AWS S3 or any S3-compatible server with conditional
//! writes), and the S3 connection the Bucket source shares.
//!
//! Layout under `<prefix>/<kind>/<namespace>/<name>/`:
//! - `<state>.tfstate`: the current state; `<state>.tfstate.lock`: the lock (JSON: terraform's
//!   lock info plus `Expires`);
//! - `history/<state>/<UTC time>-<serial>.tfstate`: every state ever written, and the last
//!   one before a delete, so nothing is overwritten without trace. The copy is made
//!   server-side after the write returns (terraform does not wait for it); every write first
//!   makes sure the state it replaces has its copy (the state object's metadata names it),
//!   and the runner waits for pending copies before it releases the lock;
//! - `plans/<id>.tfplan` (with its sha256 in the object metadata) and `plans/<id>.json` (the
//!   [`PlanMeta`], written after the plan, so a meta always names a complete plan).
//!
//! # Guarantees
//! - A lock is taken with `If-None-Match: *`: of two runners racing, exactly one write
//!   succeeds (S3 answers the other 412), and the loser is told the holder.
//! - A lock is released or broken with `If-Match: <etag>`: only the lock that was read is
//!   deleted, never one another runner took in between.
//! - A lock past its `Expires` belongs to a runner that is gone (the expiry is later than the
//!   runner's own deadline): the next `lock` takes it over (conditionally, so again only one
//!   runner wins), and `driftless unlock` breaks it without asking.
//! - State is written only while the caller's lock id is the one stored. The check and the
//!   write are two requests, as in terraform's own S3 backend: a lock broken by hand in
//!   between is not noticed.
//! - A plan is returned only when its bytes hash to the digest recorded in its meta (and in
//!   the object's metadata): anything else is [`BackendError::PlanDigestMismatch`].
//! - Errors say what failed (unreachable endpoint, refused credentials, missing bucket) and
//!   never carry a credential.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{BackendError, LockInfo, PlanMeta, PlanStore, Result, StateKey, StateStore, is_expired};
use crate::error::chain;
use crate::key::ObjectKey;

/// Object metadata key carrying a plan's `sha256:<hex>` digest (`x-amz-meta-sha256`).
const DIGEST_METADATA: &str = "sha256";
/// Object metadata key of a state object naming its copy under `history/`
/// (`x-amz-meta-history`), so the next writer can check the copy exists before overwriting.
const HISTORY_METADATA: &str = "history";

/// Static S3 credentials, resolved by the reconciler from a Secret. `Debug` never prints them.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl S3Credentials {
    /// Reads credentials from a Secret's data. Two spellings are accepted: Flux Bucket's
    /// `accesskey`/`secretkey`, and `accessKeyID`/`secretAccessKey` (+ `sessionToken`).
    pub fn from_secret_data(data: &std::collections::BTreeMap<String, String>) -> std::result::Result<Self, String> {
        let pick = |keys: &[&str]| keys.iter().find_map(|k| data.get(*k)).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let access_key_id = pick(&["accessKeyID", "accesskey"]);
        let secret_access_key = pick(&["secretAccessKey", "secretkey"]);
        match (access_key_id, secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => {
                Ok(Self { access_key_id, secret_access_key, session_token: pick(&["sessionToken", "sessiontoken"]) })
            }
            _ => Err("needs keys accessKeyID and secretAccessKey (or Flux's accesskey and secretkey)".into()),
        }
    }

    /// The values to scrub from any text that leaves the process.
    pub fn secrets(&self) -> Vec<String> {
        [Some(&self.access_key_id), Some(&self.secret_access_key), self.session_token.as_ref()]
            .into_iter()
            .flatten()
            .filter(|s| s.len() >= 4)
            .cloned()
            .collect()
    }
}

/// How to reach an S3-compatible endpoint. Without credentials, the standard AWS chain is
/// used (environment, profile, web identity for IRSA, instance metadata).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct S3Connection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `https://host[:port]` or `http://host[:port]`; AWS's endpoint for the region when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key` (most
    /// S3-compatible servers want this).
    #[serde(default)]
    pub force_path_style: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<S3Credentials>,
    /// Without credentials, sign nothing (public buckets) instead of using the standard
    /// chain: what a tenant's Bucket gets unless the cluster owner allows ambient credentials.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
}

/// Where a Terraform's state and plans live in S3: what `BackendSpec::S3` carries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct S3Location {
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_prefix: String,
    #[serde(flatten)]
    pub connection: S3Connection,
}

impl S3Location {
    /// `s3://bucket/prefix/...` of a key, for status and messages.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The directory of one object's state, history and plans.
    pub fn object_prefix(&self, object: &ObjectKey) -> String {
        let prefix = self.key_prefix.trim_matches('/');
        let tail = format!("{}/{}/{}", object.kind, object.namespace, object.name);
        if prefix.is_empty() { tail } else { format!("{prefix}/{tail}") }
    }

    pub fn plan_key(&self, object: &ObjectKey, id: &str) -> String {
        format!("{}/plans/{id}.tfplan", self.object_prefix(object))
    }
}

/// The HTTPS client for every S3 connection: rustls on ring, the system's CA roots.
fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// An S3 client for `connection`. Region defaults to the standard chain, then `us-east-1`
/// (what S3-compatible servers expect); credentials to the standard chain.
pub async fn connect(connection: &S3Connection) -> Client {
    let http = http_client();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    loader = match &connection.region {
        Some(region) => loader.region(Region::new(region.clone())),
        None => loader.region(aws_config::meta::region::RegionProviderChain::default_provider().or_else(Region::from_static("us-east-1"))),
    };
    if let Some(c) = &connection.credentials {
        loader = loader.credentials_provider(Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "driftless-secret",
        ));
    } else if connection.anonymous {
        loader = loader.no_credentials();
    }
    let shared = loader.load().await;
    let mut config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(connection.force_path_style)
        // A short connect timeout makes an unreachable endpoint a quick, clear error; the
        // retries ride out a restarting server.
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).read_timeout(Duration::from_secs(120)).build())
        .retry_config(RetryConfig::standard().with_max_attempts(5).with_max_backoff(Duration::from_secs(8)));
    if let Some(endpoint) = &connection.endpoint {
        config = config.endpoint_url(endpoint.clone());
    }
    Client::from_conf(config.build())
}

/// What an S3 error means for the user (shared with the Bucket source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Failure {
    /// No answer: connection refused, DNS, TLS, timeout.
    Unreachable(String),
    /// The credentials were refused (unknown key, bad signature, access denied, expired).
    Denied(String),
    NoSuchBucket,
    NoSuchKey,
    /// A conditional request's condition did not hold (412), or a concurrent conditional
    /// write won (409).
    Precondition,
    Other(String),
}

/// Classifies an SDK error; the detail is the error chain, without credentials.
pub fn classify<E, R>(err: &SdkError<E, R>) -> S3Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => S3Failure::Unreachable(chain(err)),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service.err().message().unwrap_or_default();
            let detail = if message.is_empty() { code.to_string() } else { format!("{code}: {message}") };
            match code {
                "NoSuchBucket" => S3Failure::NoSuchBucket,
                "NoSuchKey" | "NotFound" => S3Failure::NoSuchKey,
                "PreconditionFailed" | "ConditionalRequestConflict" => S3Failure::Precondition,
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "ExpiredToken"
                | "InvalidToken"
                | "AuthorizationHeaderMalformed" => S3Failure::Denied(detail),
                _ => S3Failure::Other(if detail.is_empty() { chain(err) } else { detail }),
            }
        }
        _ => S3Failure::Other(chain(err)),
    }
}

/// The HTTP status of a failed request (HEAD answers carry no error code, only a status).
fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// The S3 StateStore and PlanStore.
#[derive(Clone)]
pub struct S3Backend {
    client: Client,
    location: Arc<S3Location>,
    /// How long a lock is valid; longer than the runner's own deadline.
    lock_ttl: Duration,
    /// Credential strings scrubbed from every message.
    secrets: Arc<crate::scrub::Scrubber>,
    /// History copies still running.
    pending: Arc<tokio::sync::Mutex<Vec<tokio::task::JoinHandle<Result<()>>>>>,
    /// State objects this backend wrote last (their history copy is pending or done): the
    /// next write of one needs no check of what it replaces.
    written: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend").field("location", &self.location).field("lock_ttl", &self.lock_ttl).finish()
    }
}

impl S3Backend {
    /// A backend on `location`; locks it takes expire after `lock_ttl`.
    pub async fn connect(location: &S3Location, lock_ttl: Duration) -> Self {
        let client = connect(&location.connection).await;
        Self::with_client(client, location.clone(), lock_ttl)
    }

    /// A backend on an existing client (benchmarks compare it with raw client calls).
    pub fn with_client(client: Client, location: S3Location, lock_ttl: Duration) -> Self {
        let secrets = location.connection.credentials.as_ref().map(S3Credentials::secrets).unwrap_or_default();
        Self {
            client,
            location: Arc::new(location),
            lock_ttl,
            secrets: Arc::new(crate::scrub::Scrubber::new(secrets)),
            pending: Arc::default(),
            written: Arc::default(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// One cheap request (HeadBucket) that turns a missing bucket, refused credentials or
    /// an unreachable endpoint into a clear error before any work starts.
    pub async fn check(&self) -> Result<()> {
        match self.client.head_bucket().bucket(&self.location.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(match status_of(&e) {
                Some(404) => self.bucket_missing(),
                Some(403) | Some(401) => {
                    BackendError::AccessDenied { bucket: self.location.bucket.clone(), detail: "HeadBucket was refused (403)".into() }
                }
                _ => self.error("check bucket", "", &e),
            }),
        }
    }

    fn endpoint(&self) -> String {
        self.location
            .connection
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("AWS S3 ({})", self.location.connection.region.as_deref().unwrap_or("default region")))
    }

    fn scrub(&self, text: String) -> String {
        self.secrets.scrub_with(&text, "<redacted>")
    }

    fn bucket_missing(&self) -> BackendError {
        BackendError::BucketNotFound { bucket: self.location.bucket.clone(), endpoint: self.endpoint() }
    }

    /// The BackendError for a failed request on `key`.
    fn error<E, R>(&self, op: &'static str, key: &str, err: &SdkError<E, R>) -> BackendError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        match classify(err) {
            S3Failure::Unreachable(detail) => BackendError::Unreachable { endpoint: self.endpoint(), detail: self.scrub(detail) },
            S3Failure::Denied(detail) => BackendError::AccessDenied { bucket: self.location.bucket.clone(), detail: self.scrub(detail) },
            S3Failure::NoSuchBucket => self.bucket_missing(),
            S3Failure::NoSuchKey => BackendError::Remote { op, key: self.location.url(key), detail: "no such key".into() },
            S3Failure::Precondition => BackendError::Remote { op, key: self.location.url(key), detail: "precondition failed".into() },
            S3Failure::Other(detail) => BackendError::Remote { op, key: self.location.url(key), detail: self.scrub(detail) },
        }
    }

    fn state_key(&self, key: &StateKey) -> String {
        format!("{}/{}.tfstate", self.location.object_prefix(&key.object), key.state_name)
    }

    fn lock_key(&self, key: &StateKey) -> String {
        format!("{}.lock", self.state_key(key))
    }

    fn history_key(&self, key: &StateKey, serial: Option<u64>, suffix: &str) -> String {
        let now = jiff::Timestamp::now();
        let time = now.strftime("%Y%m%dT%H%M%S%.6fZ").to_string();
        let serial = serial.map(|s| format!("-{s}")).unwrap_or_default();
        format!("{}/history/{}/{time}{serial}{suffix}.tfstate", self.location.object_prefix(&key.object), key.state_name)
    }

    /// Reads an object; `None` when it does not exist. Returns the bytes, ETag and metadata.
    async fn read(&self, op: &'static str, key: &str) -> Result<Option<(Vec<u8>, String, Option<String>)>> {
        let out = match self.client.get_object().bucket(&self.location.bucket).key(key).send().await {
            Ok(o) => o,
            Err(e) => {
                return match classify(&e) {
                    S3Failure::NoSuchKey => Ok(None),
                    _ => Err(self.error(op, key, &e)),
                };
            }
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let digest = out.metadata().and_then(|m| m.get(DIGEST_METADATA)).cloned();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| BackendError::Unreachable { endpoint: self.endpoint(), detail: format!("reading {key}: {e}") })?
            .into_bytes()
            .to_vec();
        Ok(Some((bytes, etag, digest)))
    }

    /// The lock and its ETag, if one is held.
    async fn read_lock(&self, key: &StateKey) -> Result<Option<(LockInfo, String)>> {
        let lock_key = self.lock_key(key);
        match self.read("read lock", &lock_key).await? {
            None => Ok(None),
            Some((bytes, etag, _)) => {
                let info: LockInfo = serde_json::from_slice(&bytes).map_err(|e| BackendError::Corrupt {
                    what: format!("lock of {key} ({})", self.location.url(&lock_key)),
                    reason: e.to_string(),
                })?;
                Ok(Some((info, etag)))
            }
        }
    }

    /// Deletes the lock only if it is still the object with `etag`. `Ok(false)`: it changed.
    async fn delete_lock(&self, key: &StateKey, etag: &str) -> Result<bool> {
        let lock_key = self.lock_key(key);
        match self.client.delete_object().bucket(&self.location.bucket).key(&lock_key).if_match(etag).send().await {
            Ok(_) => Ok(true),
            Err(e) => match classify(&e) {
                S3Failure::Precondition => Ok(false),
                // Gone already: whoever removed it did what we wanted.
                S3Failure::NoSuchKey => Ok(true),
                _ if status_of(&e) == Some(404) => Ok(true),
                _ => Err(self.error("delete lock", &lock_key, &e)),
            },
        }
    }

    /// Keeps a copy of the object at `from` (with `etag`) under `to`: a server-side copy,
    /// or, when the server cannot copy, an upload of `bytes` (read from `from` if not given).
    async fn keep_copy(&self, from: &str, etag: &str, to: &str, bytes: Option<Bytes>) -> Result<()> {
        let source = format!("{}/{}", self.location.bucket, percent_encode_key(from));
        let copied =
            self.client.copy_object().bucket(&self.location.bucket).key(to).copy_source(source).copy_source_if_match(etag).send().await;
        let Err(e) = copied else { return Ok(()) };
        tracing::debug!("server-side copy to {to} failed ({}); uploading instead", chain(&e));
        let bytes = match bytes {
            Some(b) => b,
            None => match self.read("read state", from).await? {
                Some((b, _, _)) => Bytes::from(b),
                None => return Ok(()),
            },
        };
        self.client
            .put_object()
            .bucket(&self.location.bucket)
            .key(to)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("write state history", to, &e))?;
        Ok(())
    }

    /// Waits for the history copies still running. A failed copy is reported here and
    /// repaired by the next write, which then checks what it replaces.
    pub async fn flush_history(&self) -> Result<()> {
        let handles = std::mem::take(&mut *self.pending.lock().await);
        let mut outcome = Ok(());
        for handle in handles {
            let result = handle.await.unwrap_or_else(|e| {
                Err(BackendError::Remote { op: "write state history", key: self.location.url(""), detail: e.to_string() })
            });
            if let Err(e) = result {
                if let Ok(mut w) = self.written.lock() {
                    w.clear();
                }
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
        }
        outcome
    }

    /// Before the state object is overwritten: makes sure the version there has its copy
    /// under `history/` (a runner may have died before its copy was made).
    async fn keep_current(&self, key: &StateKey, state_key: &str) -> Result<()> {
        if self.written.lock().is_ok_and(|w| w.contains(state_key)) {
            return Ok(());
        }
        let head = match self.client.head_object().bucket(&self.location.bucket).key(state_key).send().await {
            Ok(h) => h,
            Err(e) if status_of(&e) == Some(404) => return Ok(()),
            Err(e) => return Err(self.error("read state", state_key, &e)),
        };
        let recorded = head.metadata().and_then(|m| m.get(HISTORY_METADATA)).cloned();
        if let Some(copy) = &recorded {
            match self.client.head_object().bucket(&self.location.bucket).key(copy).send().await {
                Ok(_) => return Ok(()),
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => return Err(self.error("read state history", copy, &e)),
            }
        }
        let to = recorded.unwrap_or_else(|| self.history_key(key, None, "-kept"));
        tracing::info!("state {state_key} has no history copy yet; copying it to {to} before overwriting it");
        self.keep_copy(state_key, head.e_tag().unwrap_or_default(), &to, None).await
    }

    fn meta_key(&self, object: &ObjectKey, id: &str) -> String {
        format!("{}/plans/{id}.json", self.location.object_prefix(object))
    }
}

/// RFC 3986 percent-encoding of an S3 key for `x-amz-copy-source`, keeping `/`.
fn percent_encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Terraform's `serial`, from the head of a state file (terraform writes it near the top;
/// a full parse of a large state is not worth a history key).
fn state_serial(state: &[u8]) -> Option<u64> {
    let head = &state[..state.len().min(4096)];
    let text = std::str::from_utf8(head).ok().or_else(|| std::str::from_utf8(&head[..head.len().saturating_sub(3)]).ok())?;
    let rest = &text[text.find("\"serial\"")? + "\"serial\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl StateStore for S3Backend {
    async fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>> {
        Ok(self.read("read state", &self.state_key(key)).await?.map(|(bytes, _, _)| bytes))
    }

    async fn put(&self, key: &StateKey, state: &[u8], lock_id: Option<&str>) -> Result<()> {
        if let Some(id) = lock_id {
            match self.read_lock(key).await? {
                Some((held, _)) if held.id == id => {}
                _ => return Err(BackendError::LockMismatch { key: key.to_string(), id: id.to_string() }),
            }
        }
        if let Err(e) = self.flush_history().await {
            tracing::warn!("a state history copy failed ({e}); checking before overwriting");
        }
        let state_key = self.state_key(key);
        self.keep_current(key, &state_key).await?;
        let history = self.history_key(key, state_serial(state), "");
        let bytes = Bytes::copy_from_slice(state);
        let mut request = self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&state_key)
            .content_type("application/json")
            .body(ByteStream::from(bytes.clone()));
        if history.is_ascii() {
            request = request.metadata(HISTORY_METADATA, &history);
        }
        let written = request.send().await.map_err(|e| self.error("write state", &state_key, &e))?;
        let etag = written.e_tag().unwrap_or_default().to_string();
        if let Ok(mut w) = self.written.lock() {
            w.insert(state_key.clone());
        }
        // Terraform need not wait for the copy: the next write and the runner's end do.
        let this = self.clone();
        let copy = tokio::spawn(async move { this.keep_copy(&state_key, &etag, &history, Some(bytes)).await });
        self.pending.lock().await.push(copy);
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        self.flush_history().await
    }

    async fn delete(&self, key: &StateKey) -> Result<()> {
        self.flush_history().await?;
        let state_key = self.state_key(key);
        let Some((bytes, etag, _)) = self.read("read state", &state_key).await? else { return Ok(()) };
        let history = self.history_key(key, state_serial(&bytes), "-deleted");
        self.keep_copy(&state_key, &etag, &history, Some(Bytes::from(bytes))).await?;
        self.client
            .delete_object()
            .bucket(&self.location.bucket)
            .key(&state_key)
            .send()
            .await
            .map_err(|e| self.error("delete state", &state_key, &e))?;
        if let Ok(mut w) = self.written.lock() {
            w.remove(&state_key);
        }
        Ok(())
    }

    async fn lock(&self, key: &StateKey, info: &LockInfo) -> Result<()> {
        let lock_key = self.lock_key(key);
        let expires = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(self.lock_ttl).unwrap_or(jiff::SignedDuration::from_hours(1)))
            .unwrap_or_else(|_| jiff::Timestamp::now());
        let mut info = info.clone();
        info.expires = Some(expires.to_string());
        let body = serde_json::to_vec(&info).map_err(|e| BackendError::Corrupt { what: "lock info".into(), reason: e.to_string() })?;
        // A few rounds: the holder may release, or an expired lock may be taken over, between
        // our write and our read.
        for _ in 0..4 {
            let put = self
                .client
                .put_object()
                .bucket(&self.location.bucket)
                .key(&lock_key)
                .if_none_match("*")
                .content_type("application/json")
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            let err = match put {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if classify(&err) != S3Failure::Precondition && status_of(&err) != Some(412) && status_of(&err) != Some(409) {
                return Err(self.error("take lock", &lock_key, &err));
            }
            match self.read_lock(key).await? {
                None => continue,
                Some((held, etag)) if is_expired(&held) => {
                    tracing::warn!(
                        "state lock {} of {key} held by {} expired at {}; taking it over",
                        held.id,
                        held.who,
                        held.expires.as_deref().unwrap_or("?")
                    );
                    self.delete_lock(key, &etag).await?;
                }
                Some((held, _)) => return Err(BackendError::Locked { key: key.to_string(), holder: Box::new(held) }),
            }
        }
        let holder = self.read_lock(key).await?.map(|(h, _)| h).unwrap_or_default();
        Err(BackendError::Locked { key: key.to_string(), holder: Box::new(holder) })
    }

    async fn unlock(&self, key: &StateKey, id: &str) -> Result<()> {
        for _ in 0..4 {
            match self.read_lock(key).await? {
                None => return Ok(()),
                Some((held, etag)) if held.id == id => {
                    if self.delete_lock(key, &etag).await? {
                        return Ok(());
                    }
                }
                Some((held, _)) => return Err(BackendError::Locked { key: key.to_string(), holder: Box::new(held) }),
            }
        }
        Err(BackendError::Remote {
            op: "release lock",
            key: self.location.url(&self.lock_key(key)),
            detail: "the lock kept changing".into(),
        })
    }

    async fn lock_info(&self, key: &StateKey) -> Result<Option<LockInfo>> {
        Ok(self.read_lock(key).await?.map(|(info, _)| info))
    }

    async fn force_unlock(&self, key: &StateKey) -> Result<Option<LockInfo>> {
        let mut broken = None;
        for _ in 0..4 {
            match self.read_lock(key).await? {
                None => return Ok(broken),
                Some((held, etag)) => {
                    if self.delete_lock(key, &etag).await? {
                        return Ok(Some(held));
                    }
                    broken = Some(held);
                }
            }
        }
        Ok(broken)
    }
}

impl PlanStore for S3Backend {
    async fn put_plan(&self, object: &ObjectKey, meta: &PlanMeta, plan: &[u8]) -> Result<()> {
        let plan_key = self.location.plan_key(object, &meta.id);
        let mut request = self
            .client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&plan_key)
            .content_type("application/octet-stream")
            .metadata(DIGEST_METADATA, &meta.digest)
            .body(ByteStream::from(plan.to_vec()));
        // The digest doubles as S3's upload checksum: a body corrupted on the way is refused
        // by the server, and the SDK need not hash the plan a second time.
        if let Ok(hex) = crate::artifact::parse_digest(&meta.digest)
            && let Ok(raw) = hex::decode(hex)
        {
            use base64::Engine;
            request = request.checksum_sha256(base64::engine::general_purpose::STANDARD.encode(raw));
        }
        request.send().await.map_err(|e| self.error("store plan", &plan_key, &e))?;
        let json =
            serde_json::to_vec_pretty(meta).map_err(|e| BackendError::Corrupt { what: "plan meta".into(), reason: e.to_string() })?;
        let meta_key = self.meta_key(object, &meta.id);
        self.client
            .put_object()
            .bucket(&self.location.bucket)
            .key(&meta_key)
            .content_type("application/json")
            .body(ByteStream::from(json))
            .send()
            .await
            .map_err(|e| self.error("store plan meta", &meta_key, &e))?;
        Ok(())
    }

    async fn get_plan(&self, object: &ObjectKey, id: &str) -> Result<(PlanMeta, Vec<u8>)> {
        let not_found = || BackendError::PlanNotFound { object: object.to_string(), id: id.to_string() };
        let meta = self.plan_meta(object, id).await?.ok_or_else(not_found)?;
        let (bytes, _, stored_digest) = self.read("read plan", &self.location.plan_key(object, id)).await?.ok_or_else(not_found)?;
        let stored: Vec<&str> = stored_digest.as_deref().into_iter().collect();
        super::verified_plan(object, id, meta, bytes, &stored)
    }

    async fn plan_meta(&self, object: &ObjectKey, id: &str) -> Result<Option<PlanMeta>> {
        match self.read("read plan meta", &self.meta_key(object, id)).await? {
            None => Ok(None),
            Some((bytes, _, _)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| BackendError::Corrupt { what: format!("plan {id} of {object}"), reason: e.to_string() }),
        }
    }

    async fn prune_plans(&self, object: &ObjectKey, keep: &[&str]) -> Result<()> {
        let prefix = format!("{}/plans/", self.location.object_prefix(object));
        let mut pages = self.client.list_objects_v2().bucket(&self.location.bucket).prefix(&prefix).into_paginator().send();
        let mut doomed = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("list plans", &prefix, &e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let file = key.strip_prefix(&prefix).unwrap_or(key);
                let stem = file.rsplit_once('.').map(|(s, _)| s).unwrap_or(file);
                if !keep.contains(&stem) {
                    doomed.push(key.to_string());
                }
            }
        }
        for key in doomed {
            self.client
                .delete_object()
                .bucket(&self.location.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| self.error("delete plan", &key, &e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serial_is_read_from_the_head_of_a_state() {
        assert_eq!(state_serial(br#"{"version": 4, "terraform_version": "1.0.3", "serial": 17, "lineage": "x"}"#), Some(17));
        assert_eq!(state_serial(br#"{"version":4,"serial":3}"#), Some(3));
        assert_eq!(state_serial(b"not json"), None);
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let c = S3Credentials { access_key_id: "AKIAEXAMPLEKEY".into(), secret_access_key: "very-secret".into(), session_token: None };
        let location = S3Location {
            bucket: "b".into(),
            key_prefix: String::new(),
            connection: S3Connection { credentials: Some(c), ..Default::default() },
        };
        let text = format!("{location:?}");
        assert!(!text.contains("AKIAEXAMPLEKEY") && !text.contains("very-secret"), "{text}");
    }

    #[test]
    fn both_secret_spellings_are_accepted() {
        let flux = [("accesskey", "a"), ("secretkey", "s")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        assert_eq!(S3Credentials::from_secret_data(&flux).map(|c| c.access_key_id), Ok("a".to_string()));
        let long =
            [("accessKeyID", "a"), ("secretAccessKey", "s"), ("sessionToken", "t")].map(|(k, v)| (k.to_string(), v.to_string())).into();
        assert_eq!(S3Credentials::from_secret_data(&long).map(|c| c.session_token), Ok(Some("t".to_string())));
        assert!(S3Credentials::from_secret_data(&Default::default()).is_err());
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let location = S3Location { bucket: "b".into(), key_prefix: "/team/".into(), ..Default::default() };
        let object = ObjectKey { kind: "Terraform".into(), namespace: "default".into(), name: "app".into() };
        assert_eq!(location.object_prefix(&object), "team/Terraform/default/app");
        assert_eq!(location.plan_key(&object, "plan-1"), "team/Terraform/default/app/plans/plan-1.tfplan");
        assert_eq!(percent_encode_key("a b/c+d"), "a%20b/c%2Bd");
    }
}
