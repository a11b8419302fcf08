//! Who is asking, and what they may do.
//!
//! - Local store: whoever can read the process's stdout owns the store. The server prints a
//!   one-time login link; `/login?token=` turns it into a session cookie (HttpOnly,
//!   SameSite=Strict) once, so a link left in a terminal's scrollback or a shell history is
//!   worth nothing afterwards. Requests must name a loopback host, which defeats DNS
//!   rebinding (a foreign page whose name resolves to 127.0.0.1 carries its own host).
//! - Cluster: the page grants nothing RBAC does not. A bearer token (API clients) or a
//!   pasted token (`kubectl create token`, turned into a session) is checked with a
//!   TokenReview; viewing needs `list` on the kind in the namespace and each action `patch`
//!   on the object, asked with a SubjectAccessReview for that user and groups. The write
//!   itself is the controller's, after the review said yes.
//!
//! Cookie-authenticated POSTs carry the session's CSRF token and must come from this origin
//! (`Origin`, else `Referer`); bearer requests cannot be forged by a browser and need neither.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::Api;
use kube::api::PostParams;

use super::model::Kind;
use super::{Problem, ReviewError};

/// The session cookie.
pub const COOKIE: &str = "driftless_review";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long a TokenReview's answer is reused for the same bearer token: the page polls every
/// 2 s, and asking the API server twice per poll gains nothing.
const TOKEN_TTL: Duration = Duration::from_secs(10);
/// How long a `list` SubjectAccessReview is reused per caller: revoking a right takes effect
/// within this time. Actions (`patch`) are never cached.
const LIST_TTL: Duration = Duration::from_secs(30);
/// Entries a cache may hold before expired ones are dropped.
const PRUNE_AT: usize = 1024;

/// An authenticated user, as a TokenReview returns it (or the local store's owner).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The caller of one request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    /// The session id, when the caller came with the cookie (not a bearer token).
    pub session: Option<String>,
    /// The session's CSRF token (forms carry it).
    pub csrf: Option<String>,
    /// Key of this caller's cached rights (session id or token digest).
    principal: String,
}

/// The result of the last action, shown once on the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

struct Session {
    user: User,
    csrf: String,
    expires: Instant,
    flash: Option<Flash>,
}

enum Mode {
    /// The login token, until it is used.
    Local {
        token: Mutex<Option<String>>,
    },
    Cluster {
        client: kube::Client,
    },
}

/// Sessions, the login token and the cached answers of the API server.
pub struct Auth {
    mode: Mode,
    sessions: Mutex<HashMap<String, Session>>,
    tokens: Mutex<HashMap<String, (Option<User>, Instant)>>,
    rights: Mutex<HashMap<RightKey, (bool, Instant)>>,
}

/// A cached access review: caller and verb, kind, namespace.
type RightKey = (String, Kind, String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps: a panic while one was held cannot leave an entry half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `bytes` random bytes as hex, from the kernel's random source.
pub fn random_hex(bytes: usize) -> Result<String, ReviewError> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).map_err(ReviewError::Random)?;
    Ok(hex::encode(buf))
}

/// Equality that takes the same time wherever the first difference is, for secrets.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn digest(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The value of cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The authority (`host:port`) of an absolute http(s) URL.
fn authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// Whether a browser request comes from a page of this server: its `Origin` (else its
/// `Referer`) names the host it was sent to. A request with neither is refused: every
/// browser that submits a form sends one of them.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Problem> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let from = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let claimed = match (from(header::ORIGIN), from(header::REFERER)) {
        (Some(origin), _) => authority(origin),
        (None, Some(referer)) => authority(referer),
        (None, None) => {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "refused: the request has no Origin or Referer header to show it came from this page",
            ));
        }
    };
    if host.is_empty() || claimed != Some(host) {
        return Err(Problem::new(StatusCode::FORBIDDEN, "refused: the form was not submitted from this page (cross-origin request)"));
    }
    Ok(())
}

/// Whether the request's `Host` is a loopback name (local mode answers nothing else).
pub fn loopback_host(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The name the local store's owner acts under (`driftless.dev/acted-by`).
fn local_user() -> User {
    let name = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "local".into());
    User { name, uid: None, groups: Vec::new(), extra: BTreeMap::new() }
}

impl Auth {
    /// Local mode, accepting `token` once.
    pub fn local(token: String) -> Self {
        Self::with(Mode::Local { token: Mutex::new(Some(token)) })
    }

    /// Cluster mode: tokens and rights are asked of the API server `client` talks to.
    pub fn cluster(client: kube::Client) -> Self {
        Self::with(Mode::Cluster { client })
    }

    fn with(mode: Mode) -> Self {
        Self { mode, sessions: Mutex::default(), tokens: Mutex::default(), rights: Mutex::default() }
    }

    pub fn is_local(&self) -> bool {
        matches!(self.mode, Mode::Local { .. })
    }

    /// The caller of a request, or 401.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        if let Some(token) = bearer(headers) {
            let Mode::Cluster { client } = &self.mode else {
                return Err(self.unauthenticated("a local review page takes no bearer token; open the login link it printed"));
            };
            let principal = digest(token);
            return match self.review_token(client, token, &principal).await? {
                Some(user) => Ok(Caller { user, session: None, csrf: None, principal: format!("token:{principal}") }),
                None => Err(self.unauthenticated("the bearer token is not valid (TokenReview refused it)")),
            };
        }
        if let Some(id) = cookie(headers, COOKIE) {
            let mut sessions = lock(&self.sessions);
            let now = Instant::now();
            if let Some(s) = sessions.get(id).filter(|s| s.expires > now) {
                return Ok(Caller {
                    user: s.user.clone(),
                    session: Some(id.to_string()),
                    csrf: Some(s.csrf.clone()),
                    principal: format!("session:{id}"),
                });
            }
            sessions.remove(id);
        }
        Err(self.unauthenticated("log in to review"))
    }

    fn unauthenticated(&self, why: &str) -> Problem {
        let hint = if self.is_local() {
            "Open the login link `driftless review` printed; it works once. Restart `driftless review` for a new one."
        } else {
            "Log in with a Kubernetes token (`kubectl create token ...`) at /login, or send it as `Authorization: Bearer`."
        };
        Problem::new(StatusCode::UNAUTHORIZED, format!("{why}. {hint}")).login(!self.is_local())
    }

    /// A new session for `user`; returns its `Set-Cookie` value.
    fn open_session(&self, user: User, secure: bool) -> Result<String, ReviewError> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        if sessions.len() >= PRUNE_AT {
            sessions.retain(|_, s| s.expires > now);
        }
        sessions.insert(id.clone(), Session { user, csrf, expires: now + SESSION_TTL, flash: None });
        let secure = if secure { "; Secure" } else { "" };
        Ok(format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_TTL.as_secs()))
    }

    /// Local login: the printed token, once. Returns the session cookie.
    pub fn login_local(&self, presented: &str) -> Result<String, Problem> {
        let Mode::Local { token } = &self.mode else {
            return Err(Problem::new(StatusCode::NOT_FOUND, "no login link here; log in with a token"));
        };
        {
            let mut slot = lock(token);
            match slot.as_deref() {
                Some(expected) if same(expected, presented) => *slot = None,
                Some(_) => return Err(self.unauthenticated("this login link is not valid")),
                None => return Err(self.unauthenticated("this login link was already used")),
            }
        }
        self.open_session(local_user(), false).map_err(Problem::internal)
    }

    /// Cluster login: a pasted token, checked with a TokenReview. Returns the session cookie.
    pub async fn login_token(&self, token: &str, secure: bool) -> Result<String, Problem> {
        let Mode::Cluster { client } = &self.mode else {
            return Err(Problem::new(StatusCode::NOT_FOUND, "a local review page logs in with the link it printed"));
        };
        let principal = digest(token);
        match self.review_token(client, token, &principal).await? {
            Some(user) => self.open_session(user, secure).map_err(Problem::internal),
            None => Err(self.unauthenticated("that token is not valid (TokenReview refused it)")),
        }
    }

    pub fn logout(&self, session: &str) {
        lock(&self.sessions).remove(session);
    }

    /// Checks a cookie-authenticated POST: same origin, and the session's CSRF token in the
    /// form. Bearer callers pass.
    pub fn check_form(&self, caller: &Caller, headers: &HeaderMap, presented: Option<&str>) -> Result<(), Problem> {
        let Some(expected) = caller.csrf.as_deref() else { return Ok(()) };
        same_origin(headers)?;
        if !presented.is_some_and(|p| same(p, expected)) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "refused: the form's CSRF token is missing or belongs to another session; reload the page and try again",
            ));
        }
        Ok(())
    }

    pub fn set_flash(&self, caller: &Caller, flash: Flash) {
        if let Some(id) = caller.session.as_deref()
            && let Some(s) = lock(&self.sessions).get_mut(id)
        {
            s.flash = Some(flash);
        }
    }

    pub fn take_flash(&self, caller: &Caller) -> Option<Flash> {
        let id = caller.session.as_deref()?;
        lock(&self.sessions).get_mut(id)?.flash.take()
    }

    /// Whether `caller` may `verb` the kind's objects in `namespace` (`name`: one object).
    /// Local mode: yes. Cluster: a SubjectAccessReview; `list` answers are cached briefly.
    pub async fn allowed(
        &self,
        caller: &Caller,
        verb: &'static str,
        kind: Kind,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<bool, Problem> {
        let Mode::Cluster { client } = &self.mode else { return Ok(true) };
        let key = (format!("{}|{verb}", caller.principal), kind, namespace.to_string());
        let cached = verb == "list";
        if cached
            && let Some((answer, at)) = lock(&self.rights).get(&key)
            && at.elapsed() < LIST_TTL
        {
            return Ok(*answer);
        }
        let user = &caller.user;
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: user.uid.clone(),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(crate::api::GROUP.into()),
                    resource: Some(kind.plural().into()),
                    verb: Some(verb.into()),
                    namespace: Some(namespace.into()),
                    name: name.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                Problem::unavailable(format!("cannot check your rights (SubjectAccessReview): {}", crate::store::kube::describe(&e)))
            })?
            .status
            .is_some_and(|s| s.allowed);
        if cached {
            let mut rights = lock(&self.rights);
            if rights.len() >= PRUNE_AT {
                rights.retain(|_, (_, at)| at.elapsed() < LIST_TTL);
            }
            rights.insert(key, (answer, Instant::now()));
        }
        Ok(answer)
    }

    /// Who `token` belongs to, per the API server (`None`: not authenticated).
    async fn review_token(&self, client: &kube::Client, token: &str, principal: &str) -> Result<Option<User>, Problem> {
        if let Some((user, at)) = lock(&self.tokens).get(principal)
            && at.elapsed() < TOKEN_TTL
        {
            return Ok(user.clone());
        }
        let review = TokenReview { spec: TokenReviewSpec { token: token.to_string(), audiences: None }, ..Default::default() };
        let api: Api<TokenReview> = Api::all(client.clone());
        let status = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Problem::unavailable(format!("cannot check the token (TokenReview): {}", crate::store::kube::describe(&e))))?
            .status
            .unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(u)) if u.username.as_deref().is_some_and(|n| !n.is_empty()) => Some(User {
                name: u.username.unwrap_or_default(),
                uid: u.uid,
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default(),
            }),
            _ => None,
        };
        let mut tokens = lock(&self.tokens);
        if tokens.len() >= PRUNE_AT {
            tokens.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
        }
        tokens.insert(principal.to_string(), (user.clone(), Instant::now()));
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[tokio::test]
    async fn the_login_token_opens_one_session_and_is_spent() {
        let auth = Auth::local("a".repeat(32));
        assert_eq!(auth.login_local(&"b".repeat(32)).unwrap_err().status, StatusCode::UNAUTHORIZED);
        let cookie_header = auth.login_local(&"a".repeat(32)).unwrap();
        assert!(cookie_header.contains("HttpOnly") && cookie_header.contains("SameSite=Strict"), "{cookie_header}");
        let problem = auth.login_local(&"a".repeat(32)).unwrap_err();
        assert!(problem.message.contains("already used"), "{}", problem.message);

        let id = cookie_header.split(';').next().unwrap().split_once('=').unwrap().1;
        let caller = auth.caller(&headers(&[(header::COOKIE, &format!("other=1; {COOKIE}={id}"))])).await.unwrap();
        assert!(caller.csrf.is_some());
        assert_eq!(
            auth.caller(&headers(&[(header::COOKIE, &format!("{COOKIE}=forged"))])).await.unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(auth.caller(&HeaderMap::new()).await.unwrap_err().status, StatusCode::UNAUTHORIZED);

        auth.set_flash(&caller, Flash { ok: true, text: "done".into() });
        assert_eq!(auth.take_flash(&caller).map(|f| f.text).as_deref(), Some("done"));
        assert_eq!(auth.take_flash(&caller), None, "a flash shows once");

        let good = headers(&[(header::HOST, "127.0.0.1:8000"), (header::ORIGIN, "http://127.0.0.1:8000")]);
        let csrf = caller.csrf.clone();
        assert!(auth.check_form(&caller, &good, csrf.as_deref()).is_ok());
        assert_eq!(auth.check_form(&caller, &good, None).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(auth.check_form(&caller, &good, Some("wrong")).unwrap_err().status, StatusCode::FORBIDDEN);
        auth.logout(caller.session.as_deref().unwrap());
        assert!(auth.caller(&headers(&[(header::COOKIE, &format!("{COOKIE}={id}"))])).await.is_err());
    }

    #[test]
    fn a_post_must_come_from_this_origin() {
        let host = (header::HOST, "127.0.0.1:8000");
        assert!(same_origin(&headers(&[host.clone(), (header::ORIGIN, "http://127.0.0.1:8000")])).is_ok());
        assert!(same_origin(&headers(&[host.clone(), (header::REFERER, "http://127.0.0.1:8000/objects/x?y")])).is_ok());
        assert!(same_origin(&headers(&[host.clone(), (header::ORIGIN, "http://evil.example")])).is_err());
        assert!(same_origin(&headers(&[host.clone(), (header::ORIGIN, "null")])).is_err());
        assert!(same_origin(&headers(&[host.clone(), (header::REFERER, "http://127.0.0.1:8000.evil.example/")])).is_err());
        assert!(same_origin(&headers(&[host])).is_err(), "neither header");
    }

    #[test]
    fn only_loopback_host_names_are_local() {
        for ok in ["127.0.0.1:1234", "localhost:1", "[::1]:80", "127.0.0.1"] {
            assert!(loopback_host(&headers(&[(header::HOST, ok)])), "{ok}");
        }
        for bad in ["evil.example:1234", "10.0.0.1:80", "", "[fe80::1]:80"] {
            assert!(!loopback_host(&headers(&[(header::HOST, bad)])), "{bad}");
        }
    }

    #[test]
    fn bearer_and_cookie_headers_are_read_exactly() {
        assert_eq!(bearer(&headers(&[(header::AUTHORIZATION, "Bearer abc")])), Some("abc"));
        assert_eq!(bearer(&headers(&[(header::AUTHORIZATION, "Basic abc")])), None);
        assert_eq!(cookie(&headers(&[(header::COOKIE, "a=1; b=2")]), "b"), Some("2"));
        assert_eq!(cookie(&headers(&[(header::COOKIE, "ab=1")]), "b"), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
