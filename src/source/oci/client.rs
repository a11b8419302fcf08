//! A client of the OCI distribution API (what every registry serves): resolve a tag to a
//! manifest digest with one HEAD, list tags, read a manifest, stream a blob to a file with
//! its digest checked and its size capped, and push blobs and manifests.
//!
//! Authentication as the registries ask for it: a request goes out without credentials; a
//! `401` with `WWW-Authenticate: Basic` is answered with the Secret's user and password, one
//! with `Bearer realm=...,service=...,scope=...` by fetching a token from the realm (with
//! the user and password, or anonymously) and sending it. The answer is kept for the
//! client's later requests.
//!
//! Messages name the registry, repository and what was asked, never a credential or token.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::auth::Credentials;
use super::reference::Repository;
use super::{OciError, media};

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The most a manifest, tag list or token answer may be: far above any real one.
const SMALL_BODY_LIMIT: usize = 4 << 20;
/// Redirects followed for one request (blob downloads are redirected to storage).
const MAX_REDIRECTS: usize = 5;

/// What a manifest may be, as `Accept` asks for it.
const MANIFEST_TYPES: [&str; 4] = [media::OCI_MANIFEST, media::OCI_INDEX, media::DOCKER_MANIFEST, media::DOCKER_MANIFEST_LIST];

/// A content descriptor: a blob by media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// An image (or artifact) manifest; an index is refused where it is read.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A connection to one registry, with the credentials of its requests.
pub struct Registry {
    http: HttpClient,
    /// `https://host[:port]` (`http://` when insecure).
    base: String,
    host: String,
    credentials: Option<Credentials>,
    /// The `Authorization` value the registry last accepted, and the scope it was got for.
    authorization: tokio::sync::Mutex<Option<HeaderValue>>,
    timeout: Duration,
}

impl Registry {
    /// A client of `registry` (`host[:port]`): https with `tls`, or plain http when
    /// `insecure` (Flux's `spec.insecure`).
    pub fn new(registry: &str, insecure: bool, tls: rustls::ClientConfig, credentials: Option<Credentials>, timeout: Duration) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
            base: format!("{}://{registry}", if insecure { "http" } else { "https" }),
            host: registry.to_string(),
            credentials,
            authorization: tokio::sync::Mutex::new(None),
            timeout,
        }
    }

    fn url(&self, repository: &Repository, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, repository.name)
    }

    /// The tags of `repository`, every page of them.
    pub async fn tags(&self, repository: &Repository) -> Result<Vec<String>, OciError> {
        #[derive(Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = self.url(repository, "tags/list?n=1000");
        let mut tags = Vec::new();
        for _ in 0..1000 {
            let answer = self.send(repository, Method::GET, &url, &[], None, Scope::Pull).await?;
            let next = answer.headers().get("link").and_then(|v| v.to_str().ok()).and_then(next_link);
            let body = self.expect_ok(answer, repository, "listing tags of").await?;
            let page: Tags = serde_json::from_slice(&body)
                .map_err(|e| OciError::InvalidManifest { url: repository.url(), detail: format!("the tag list is not JSON: {e}") })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(link) if link.starts_with('/') => url = format!("{}{link}", self.base),
                Some(link) => url = link,
                None => return Ok(tags),
            }
        }
        Ok(tags)
    }

    /// The digest of the manifest `reference` (a tag or digest) names: one HEAD request.
    pub async fn resolve(&self, repository: &Repository, reference: &str) -> Result<String, OciError> {
        let url = self.url(repository, &format!("manifests/{reference}"));
        let answer = self.send(repository, Method::HEAD, &url, &MANIFEST_TYPES, None, Scope::Pull).await?;
        if answer.status() == StatusCode::NOT_FOUND {
            return Err(OciError::NotFound { what: describe(reference), url: repository.url() });
        }
        let digest = answer.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        self.expect_ok(answer, repository, "resolving").await?;
        match digest {
            Some(d) if super::is_digest(&d) => Ok(d),
            // A registry that does not say: read the manifest and hash it.
            _ => Ok(self.manifest_bytes(repository, reference).await?.0),
        }
    }

    /// The manifest with `digest`, its bytes checked against the digest. An index (a
    /// multi-platform image) is refused: an artifact is one manifest.
    pub async fn manifest(&self, repository: &Repository, digest: &str) -> Result<Manifest, OciError> {
        let (actual, bytes) = self.manifest_bytes(repository, digest).await?;
        if actual != digest {
            return Err(OciError::DigestMismatch {
                what: format!("the manifest of {}", repository.url()),
                expected: digest.into(),
                actual,
            });
        }
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| OciError::InvalidManifest { url: repository.url(), detail: format!("not an OCI manifest: {e}") })?;
        let media_type = manifest.media_type.as_deref().unwrap_or_default();
        if manifest.manifests.is_some() || media_type == media::OCI_INDEX || media_type == media::DOCKER_MANIFEST_LIST {
            return Err(OciError::InvalidManifest {
                url: repository.url(),
                detail: format!("{digest} is an image index (several platforms), not an artifact; point spec.ref at an artifact"),
            });
        }
        Ok(manifest)
    }

    async fn manifest_bytes(&self, repository: &Repository, reference: &str) -> Result<(String, Bytes), OciError> {
        let url = self.url(repository, &format!("manifests/{reference}"));
        let answer = self.send(repository, Method::GET, &url, &MANIFEST_TYPES, None, Scope::Pull).await?;
        if answer.status() == StatusCode::NOT_FOUND {
            return Err(OciError::NotFound { what: describe(reference), url: repository.url() });
        }
        let bytes = self.expect_ok(answer, repository, "reading the manifest of").await?;
        Ok((format!("sha256:{}", hex::encode(Sha256::digest(&bytes))), bytes))
    }

    /// Streams the blob `digest` into `dest`, at most `limit` bytes, and checks its digest.
    /// Returns its size.
    pub async fn blob_to_file(&self, repository: &Repository, digest: &str, dest: &std::path::Path, limit: u64) -> Result<u64, OciError> {
        let url = self.url(repository, &format!("blobs/{digest}"));
        let answer = self.send(repository, Method::GET, &url, &[], None, Scope::Pull).await?;
        if answer.status() == StatusCode::NOT_FOUND {
            return Err(OciError::NotFound { what: format!("blob {digest}"), url: repository.url() });
        }
        if !answer.status().is_success() {
            return Err(self.failure(answer, repository, "downloading a layer of").await);
        }
        let io = |source| OciError::Io { path: dest.display().to_string(), source };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = answer.into_body();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| OciError::Unreachable { url: repository.url(), detail: format!("reading blob {digest}: {e}") })?;
            let Ok(chunk) = frame.into_data() else { continue };
            size += chunk.len() as u64;
            if size > limit {
                return Err(OciError::TooLarge { url: repository.url(), limit });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest {
            return Err(OciError::DigestMismatch { what: format!("a layer of {}", repository.url()), expected: digest.into(), actual });
        }
        Ok(size)
    }

    /// Uploads `data` as a blob (skipped when the registry has it) and returns its descriptor.
    pub async fn push_blob(&self, repository: &Repository, media_type: &str, data: Bytes) -> Result<Descriptor, OciError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        let descriptor =
            Descriptor { media_type: media_type.into(), digest: digest.clone(), size: data.len() as u64, annotations: Default::default() };
        let head = self.send(repository, Method::HEAD, &self.url(repository, &format!("blobs/{digest}")), &[], None, Scope::Push).await?;
        if head.status().is_success() {
            return Ok(descriptor);
        }
        let start = self
            .send(repository, Method::POST, &self.url(repository, "blobs/uploads/"), &[], Some((Bytes::new(), None)), Scope::Push)
            .await?;
        if start.status() != StatusCode::ACCEPTED {
            return Err(self.failure(start, repository, "starting an upload to").await);
        }
        let location = start.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string).ok_or_else(|| {
            OciError::Registry { url: repository.url(), status: 202, detail: "the upload was started without a Location".into() }
        })?;
        let location = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let done = self.send(repository, Method::PUT, &put, &[], Some((data, Some("application/octet-stream"))), Scope::Push).await?;
        if !done.status().is_success() {
            return Err(self.failure(done, repository, "uploading a blob to").await);
        }
        Ok(descriptor)
    }

    /// Puts `manifest` under `reference` (a tag) and returns its digest.
    pub async fn push_manifest(
        &self,
        repository: &Repository,
        reference: &str,
        media_type: &str,
        manifest: Bytes,
    ) -> Result<String, OciError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&manifest)));
        let url = self.url(repository, &format!("manifests/{reference}"));
        let answer = self.send(repository, Method::PUT, &url, &[], Some((manifest, Some(media_type))), Scope::Push).await?;
        if !answer.status().is_success() {
            return Err(self.failure(answer, repository, "pushing the manifest to").await);
        }
        Ok(digest)
    }

    /// Sends one request, answering the registry's authentication challenge once, and
    /// following redirects (without credentials to another host).
    async fn send(
        &self,
        repository: &Repository,
        method: Method,
        url: &str,
        accept: &[&str],
        body: Option<(Bytes, Option<&str>)>,
        scope: Scope,
    ) -> Result<Response<hyper::body::Incoming>, OciError> {
        let mut url = url.to_string();
        let mut challenged = false;
        for _ in 0..=MAX_REDIRECTS {
            let same_host = url.starts_with(&format!("{}/", self.base));
            let authorization = if same_host { self.authorization.lock().await.clone() } else { None };
            let answer = self.once(&method, &url, accept, body.clone(), authorization, repository).await?;
            let status = answer.status();
            if status == StatusCode::UNAUTHORIZED && same_host && !challenged {
                challenged = true;
                let challenge = answer.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_string);
                self.authorize(repository, challenge.as_deref(), scope).await?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(self.unauthorized(answer, repository).await);
            }
            if status.is_redirection()
                && let Some(location) = answer.headers().get(LOCATION).and_then(|v| v.to_str().ok())
            {
                url = if location.starts_with('/') { format!("{}{location}", self.base) } else { location.to_string() };
                continue;
            }
            return Ok(answer);
        }
        Err(OciError::Registry { url: repository.url(), status: 310, detail: format!("more than {MAX_REDIRECTS} redirects") })
    }

    async fn once(
        &self,
        method: &Method,
        url: &str,
        accept: &[&str],
        body: Option<(Bytes, Option<&str>)>,
        authorization: Option<HeaderValue>,
        repository: &Repository,
    ) -> Result<Response<hyper::body::Incoming>, OciError> {
        let mut request =
            Request::builder().method(method.clone()).uri(url).header("user-agent", concat!("driftless/", env!("CARGO_PKG_VERSION")));
        if !accept.is_empty() {
            request = request.header(ACCEPT, accept.join(", "));
        }
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let (bytes, content_type) = body.unwrap_or_default();
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if method == Method::PUT || method == Method::POST {
            request = request.header(CONTENT_LENGTH, bytes.len());
        }
        let request = request.body(Full::new(bytes)).map_err(|e| OciError::InvalidUrl(format!("{}: {e}", repository.url())))?;
        match tokio::time::timeout(self.timeout, self.http.request(request)).await {
            Err(_) => Err(OciError::Timeout { url: repository.url(), after: self.timeout }),
            Ok(Err(e)) => Err(OciError::Unreachable {
                url: repository.url(),
                detail: crate::tls::describe_failure(&e, &self.host, "spec.certSecretRef"),
            }),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Answers a challenge: Basic with the credentials, Bearer with a token from the realm.
    async fn authorize(&self, repository: &Repository, challenge: Option<&str>, scope: Scope) -> Result<(), OciError> {
        let challenge = challenge.map(Challenge::parse).unwrap_or(Challenge::Basic);
        let basic = self.credentials.as_ref().map(|c| {
            use base64::Engine as _;
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password)))
        });
        let value = match challenge {
            Challenge::Basic => basic.ok_or_else(|| OciError::Unauthorized {
                url: repository.url(),
                detail: "the registry asks for credentials and none are given".into(),
            })?,
            Challenge::Bearer { realm, service } => {
                let scope = format!("repository:{}:{}", repository.name, scope.actions());
                let mut token_url = format!("{realm}{}scope={}", if realm.contains('?') { '&' } else { '?' }, encode(&scope));
                if let Some(service) = service {
                    token_url.push_str(&format!("&service={}", encode(&service)));
                }
                let token = self.token(repository, &token_url, basic).await?;
                format!("Bearer {token}")
            }
        };
        let value = HeaderValue::from_str(&value).map_err(|_| OciError::Unauthorized {
            url: repository.url(),
            detail: "the credentials hold characters a header cannot carry".into(),
        })?;
        *self.authorization.lock().await = Some(value);
        Ok(())
    }

    async fn token(&self, repository: &Repository, url: &str, basic: Option<String>) -> Result<String, OciError> {
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let authorization = basic.and_then(|b| HeaderValue::from_str(&b).ok());
        let answer = self.once(&Method::GET, url, &[], None, authorization, repository).await?;
        if answer.status() == StatusCode::UNAUTHORIZED || answer.status() == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(answer, repository).await);
        }
        let body = self.expect_ok(answer, repository, "getting a token for").await?;
        let token: Token = serde_json::from_slice(&body).map_err(|_| OciError::Unauthorized {
            url: repository.url(),
            detail: "the token service answered something that is not a token".into(),
        })?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OciError::Unauthorized { url: repository.url(), detail: "the token service answered without a token".into() })
    }

    /// The body of a successful answer (bounded), or the failure it is.
    async fn expect_ok(&self, answer: Response<hyper::body::Incoming>, repository: &Repository, doing: &str) -> Result<Bytes, OciError> {
        if !answer.status().is_success() {
            return Err(self.failure(answer, repository, doing).await);
        }
        read_small(answer.into_body(), repository).await
    }

    async fn failure(&self, answer: Response<hyper::body::Incoming>, repository: &Repository, doing: &str) -> OciError {
        let status = answer.status().as_u16();
        let detail = read_small(answer.into_body(), repository).await.map(|b| registry_message(&b)).unwrap_or_default();
        OciError::Registry { url: repository.url(), status, detail: format!("{doing} {}: {detail}", repository.url()) }
    }

    async fn unauthorized(&self, answer: Response<hyper::body::Incoming>, repository: &Repository) -> OciError {
        let status = answer.status().as_u16();
        let detail = read_small(answer.into_body(), repository).await.map(|b| registry_message(&b)).unwrap_or_default();
        let given = if self.credentials.is_some() { "the credentials were refused" } else { "no credentials were given" };
        OciError::Unauthorized { url: repository.url(), detail: format!("{status}: {given} ({detail})") }
    }
}

/// What a request is for: the token scope it needs.
#[derive(Debug, Clone, Copy)]
enum Scope {
    Pull,
    Push,
}

impl Scope {
    fn actions(self) -> &'static str {
        match self {
            Scope::Pull => "pull",
            Scope::Push => "pull,push",
        }
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String> },
}

impl Challenge {
    fn parse(header: &str) -> Self {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Challenge::Basic;
        }
        let mut realm = None;
        let mut service = None;
        let mut rest = params;
        while let Some((key, after)) = rest.split_once('=') {
            let key = key.trim().trim_start_matches(',').trim();
            let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"').unwrap_or(quoted.len());
                (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            match key.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value.to_string()),
                "service" => service = Some(value.to_string()),
                _ => {}
            }
            rest = next;
        }
        match realm {
            Some(realm) => Challenge::Bearer { realm, service },
            None => Challenge::Basic,
        }
    }
}

/// The `rel="next"` target of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        part.get(start..end).map(str::to_string)
    })
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn describe(reference: &str) -> String {
    if reference.starts_with("sha256:") { format!("digest {reference}") } else { format!("tag {reference:?}") }
}

async fn read_small(body: hyper::body::Incoming, repository: &Repository) -> Result<Bytes, OciError> {
    let limited = http_body_util::Limited::new(body, SMALL_BODY_LIMIT);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| OciError::Unreachable { url: repository.url(), detail: format!("reading the answer: {e}") })
}

/// The registry's own error message (`{"errors":[{"code","message"}]}`), else the start of
/// the body.
fn registry_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(errors) = serde_json::from_slice::<Errors>(body) {
        return errors.errors.iter().map(|e| format!("{} {}", e.code, e.message).trim().to_string()).collect::<Vec<_>>().join("; ");
    }
    String::from_utf8_lossy(body).chars().take(200).collect::<String>().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read_as_registries_write_them() {
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Challenge::Basic);
        assert_eq!(
            Challenge::parse(r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a:pull""#),
            Challenge::Bearer { realm: "https://auth.example.com/token".into(), service: Some("registry.example.com".into()) }
        );
        assert_eq!(
            Challenge::parse("Bearer realm=https://h/token, service=h"),
            Challenge::Bearer { realm: "https://h/token".into(), service: Some("h".into()) }
        );
        assert_eq!(Challenge::parse("Bearer"), Challenge::Basic);
    }

    #[test]
    fn the_next_page_is_the_link_marked_next() {
        assert_eq!(next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(), Some("/v2/app/tags/list?last=b&n=2"));
        assert_eq!(next_link(r#"<https://h/x>; rel="prev""#), None);
    }

    #[test]
    fn registry_errors_are_shown_by_code_and_message() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(registry_message(body), "MANIFEST_UNKNOWN manifest unknown");
        assert_eq!(registry_message(b"  plain text  "), "plain text");
    }
}
