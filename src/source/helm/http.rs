//! Downloads from an HTTP chart repository: a GET with the repository's Basic credentials
//! (only to the repository's own host unless `passCredentials`), its TLS keys and timeout,
//! redirects followed, and the body capped while it streams. Messages name the URL without
//! its query and never a credential.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{AUTHORIZATION, HeaderValue, LOCATION};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::HelmError;

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

const MAX_REDIRECTS: usize = 5;

/// The user and password of a repository's `secretRef`.
#[derive(Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A client of one chart repository.
pub struct ChartRepositoryClient {
    http: HttpClient,
    /// The repository URL, whose host gets the credentials.
    base: String,
    auth: Option<BasicAuth>,
    pass_credentials: bool,
    timeout: Duration,
}

impl ChartRepositoryClient {
    pub fn new(base: &str, tls: rustls::ClientConfig, auth: Option<BasicAuth>, pass_credentials: bool, timeout: Duration) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
        Self { http: Client::builder(TokioExecutor::new()).build(connector), base: base.to_string(), auth, pass_credentials, timeout }
    }

    /// The body of `url`, at most `limit` bytes.
    ///
    /// # Errors
    /// [`HelmError::Http`] with the status and URL, [`HelmError::Unreachable`],
    /// [`HelmError::Unauthorized`], [`HelmError::TooLarge`], [`HelmError::Timeout`].
    pub async fn get(&self, url: &str, limit: u64) -> Result<Bytes, HelmError> {
        match tokio::time::timeout(self.timeout, self.get_unbounded_in_time(url, limit)).await {
            Ok(r) => r,
            Err(_) => Err(HelmError::Timeout { url: shown(url), after: self.timeout }),
        }
    }

    async fn get_unbounded_in_time(&self, url: &str, limit: u64) -> Result<Bytes, HelmError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let uri: Uri = url.parse().map_err(|e| HelmError::InvalidUrl(format!("{}: {e}", shown(&url))))?;
            let mut request = Request::get(&uri).header("user-agent", concat!("driftless/", env!("CARGO_PKG_VERSION")));
            if let Some(auth) = &self.auth
                && (self.pass_credentials || same_host(&self.base, &uri))
            {
                use base64::Engine as _;
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.username, auth.password));
                let mut value = HeaderValue::from_str(&format!("Basic {token}")).map_err(|_| {
                    HelmError::InvalidSecret("spec.secretRef: username or password holds a character HTTP cannot send".into())
                })?;
                value.set_sensitive(true);
                request = request.header(AUTHORIZATION, value);
            }
            let request = request.body(Empty::new()).map_err(|e| HelmError::InvalidUrl(format!("{}: {e}", shown(&url))))?;
            let host = uri.host().unwrap_or_default().to_string();
            let answer = self.http.request(request).await.map_err(|e| HelmError::Unreachable {
                url: shown(&url),
                detail: crate::tls::describe_failure(&e, &host, "spec.certSecretRef"),
            })?;
            let status = answer.status();
            if status.is_redirection()
                && let Some(location) = answer.headers().get(LOCATION).and_then(|v| v.to_str().ok())
            {
                url = resolve(&uri, location);
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let given = if self.auth.is_some() {
                    "the credentials in spec.secretRef were refused"
                } else {
                    "no credentials were given (set spec.secretRef)"
                };
                return Err(HelmError::Unauthorized { url: shown(&url), detail: format!("{}: {given}", status.as_u16()) });
            }
            if !status.is_success() {
                return Err(HelmError::Http { url: shown(&url), status: status.as_u16() });
            }
            let mut body = answer.into_body();
            let mut bytes = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| HelmError::Unreachable { url: shown(&url), detail: format!("reading the answer: {e}") })?;
                let Ok(chunk) = frame.into_data() else { continue };
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Err(HelmError::TooLarge { what: shown(&url), limit });
                }
                bytes.extend_from_slice(&chunk);
            }
            return Ok(Bytes::from(bytes));
        }
        Err(HelmError::Unreachable { url: shown(&url), detail: format!("more than {MAX_REDIRECTS} redirects") })
    }
}

/// Whether `uri` is on the repository's own scheme, host and port.
fn same_host(base: &str, uri: &Uri) -> bool {
    let Ok(base) = base.parse::<Uri>() else { return false };
    base.scheme() == uri.scheme() && base.authority() == uri.authority()
}

/// A redirect target, absolute or relative to `from`.
fn resolve(from: &Uri, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme = from.scheme_str().unwrap_or("https");
    let authority = from.authority().map(|a| a.as_str()).unwrap_or_default();
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let dir = from.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{scheme}://{authority}{dir}/{location}")
}

/// A URL as messages show it: without query or user info.
pub fn shown(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((authority, path)) => format!("{scheme}://{}/{path}", authority.rsplit('@').next().unwrap_or(authority)),
            None => format!("{scheme}://{}", rest.rsplit('@').next().unwrap_or(rest)),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_the_repository_s_own_origin() {
        let base = "https://charts.example:8443/stable";
        assert!(same_host(base, &"https://charts.example:8443/stable/a.tgz".parse().unwrap()));
        assert!(!same_host(base, &"https://cdn.example/a.tgz".parse().unwrap()));
        assert!(!same_host(base, &"http://charts.example:8443/a.tgz".parse().unwrap()));
    }

    #[test]
    fn redirects_resolve_and_shown_urls_hide_user_info_and_queries() {
        let from: Uri = "http://h:1/a/b/index.yaml".parse().unwrap();
        assert_eq!(resolve(&from, "/x"), "http://h:1/x");
        assert_eq!(resolve(&from, "c.tgz"), "http://h:1/a/b/c.tgz");
        assert_eq!(resolve(&from, "https://o/y"), "https://o/y");
        assert_eq!(shown("https://u:p@h/x?sig=1"), "https://h/x");
    }
}
