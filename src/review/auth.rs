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
//!   itself is the controller's, after the review said yes. A plan's rendering is read from
//!   its backend with the controller's rights, so it is shown only to a caller who may `get`
//!   Secrets in the object's namespace (where the backend keeps it, or its credentials).
//! - Failed logins (a wrong login link, a token the TokenReview refuses, pasted or as a
//!   bearer) spend the client address's budget ([`LOGIN_BUDGET`]); past it, logins from that
//!   address get 429 with `Retry-After` and cost the API server nothing. Sessions and cached
//!   answers live in capped maps ([`Expiring`]), so no flood of made-up tokens grows them.
//!
//! Cookie-authenticated POSTs carry the session's CSRF token and must come from this origin
//! (`Origin`, else `Referer`); bearer requests cannot be forged by a browser and need neither.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::Api;
use kube::api::PostParams;

use super::cache::Expiring;
use super::model::Kind;
use super::{Problem, ReviewError};
use crate::throttle::{Budget, Throttle};

/// The session cookie.
pub const COOKIE: &str = "driftless_review";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long a TokenReview's answer is reused for the same bearer token: the page polls every
/// 2 s, and asking the API server twice per poll gains nothing.
const TOKEN_TTL: Duration = Duration::from_secs(10);
/// How long a viewing right (`list` objects, `get` Secrets for renderings) is reused per
/// caller: revoking a right takes effect within this time. Actions (`patch`) are never cached.
const VIEW_TTL: Duration = Duration::from_secs(30);
/// Sessions held at once; past it, the one expiring soonest is dropped (its user logs in again).
const MAX_SESSIONS: usize = 4096;
/// TokenReview answers held at once (valid and refused tokens alike).
const MAX_TOKENS: usize = 4096;
/// Access review answers held at once: an overview asks one per kind and namespace per caller.
const MAX_RIGHTS: usize = 16_384;
/// Failed logins per client address: 10 at once, then one more every 6 s.
pub const LOGIN_BUDGET: Budget = Budget { burst: 10, every: Duration::from_secs(6) };
/// Client addresses whose failed logins are remembered at once.
const MAX_CLIENTS: usize = 4096;

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

/// Sessions, the login token, the cached answers of the API server and the failed logins.
pub struct Auth {
    mode: Mode,
    sessions: Mutex<Expiring<String, Session>>,
    tokens: Mutex<Expiring<String, Option<User>>>,
    rights: Mutex<Expiring<RightKey, bool>>,
    failures: Mutex<Throttle<IpAddr>>,
}

/// What an access review asks about: the reviewed kinds, or the Secrets of a namespace (where
/// plans and their renderings are kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Objects(Kind),
    Secrets,
}

impl Resource {
    fn group(self) -> &'static str {
        match self {
            Self::Objects(_) => crate::api::GROUP,
            Self::Secrets => "",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Self::Objects(kind) => kind.plural(),
            Self::Secrets => "secrets",
        }
    }
}

/// A cached access review: caller and verb, resource, namespace.
type RightKey = (String, Resource, String);

/// Whether an access review's answer may be reused for a while: viewing rights are; an
/// action's right is asked every time.
fn cacheable(verb: &str) -> bool {
    matches!(verb, "list" | "get")
}

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
        Self {
            mode,
            sessions: Mutex::new(Expiring::new(MAX_SESSIONS)),
            tokens: Mutex::new(Expiring::new(MAX_TOKENS)),
            rights: Mutex::new(Expiring::new(MAX_RIGHTS)),
            failures: Mutex::new(Throttle::new(LOGIN_BUDGET, MAX_CLIENTS)),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self.mode, Mode::Local { .. })
    }

    /// The caller of a request from `client` (see [`crate::throttle::peer`]), or 401; 429
    /// when a bearer token needs a TokenReview and `client` has spent its failed logins.
    pub async fn caller(&self, headers: &HeaderMap, client: IpAddr) -> Result<Caller, Problem> {
        if let Some(token) = bearer(headers) {
            let Mode::Cluster { client: api } = &self.mode else {
                return Err(self.unauthenticated("a local review page takes no bearer token; open the login link it printed"));
            };
            let principal = digest(token);
            return match self.review_token(api, token, &principal, client).await? {
                Some(user) => Ok(Caller { user, session: None, csrf: None, principal: format!("token:{principal}") }),
                None => Err(self.unauthenticated("the bearer token is not valid (TokenReview refused it)")),
            };
        }
        if let Some(id) = cookie(headers, COOKIE) {
            let id = id.to_string();
            let mut sessions = lock(&self.sessions);
            if let Some(s) = sessions.get(&id, Instant::now()) {
                return Ok(Caller {
                    user: s.user.clone(),
                    csrf: Some(s.csrf.clone()),
                    principal: format!("session:{id}"),
                    session: Some(id),
                });
            }
            sessions.remove(&id);
        }
        Err(self.unauthenticated("log in to review"))
    }

    /// Spends one login attempt of `client`, or 429 with how long to wait.
    fn attempt_login(&self, client: IpAddr) -> Result<(), Problem> {
        lock(&self.failures).attempt(&client, Instant::now()).map_err(|wait| {
            let secs = crate::throttle::retry_after_secs(wait);
            tracing::warn!(%client, "review page: too many failed logins; refused for {secs} s");
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed logins from your address: try again in {secs} s. Each further failure adds {} s.",
                    LOGIN_BUDGET.every.as_secs()
                ),
            )
            .retry_after(secs)
            .login(!self.is_local())
        })
    }

    /// A login attempt of `client` succeeded: it costs nothing.
    fn login_succeeded(&self, client: IpAddr) {
        lock(&self.failures).forgive(&client, Instant::now());
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
        let now = Instant::now();
        lock(&self.sessions).insert(id.clone(), Session { user, csrf, flash: None }, now + SESSION_TTL, now);
        let secure = if secure { "; Secure" } else { "" };
        Ok(format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_TTL.as_secs()))
    }

    /// Local login from `client`: the printed token, once. Returns the session cookie.
    pub fn login_local(&self, presented: &str, client: IpAddr) -> Result<String, Problem> {
        let Mode::Local { token } = &self.mode else {
            return Err(Problem::new(StatusCode::NOT_FOUND, "no login link here; log in with a token"));
        };
        self.attempt_login(client)?;
        {
            let mut slot = lock(token);
            match slot.as_deref() {
                Some(expected) if same(expected, presented) => *slot = None,
                Some(_) => return Err(self.unauthenticated("this login link is not valid")),
                None => return Err(self.unauthenticated("this login link was already used")),
            }
        }
        self.login_succeeded(client);
        self.open_session(local_user(), false).map_err(Problem::internal)
    }

    /// Cluster login from `client`: a pasted token, checked with a TokenReview. Returns the
    /// session cookie.
    pub async fn login_token(&self, token: &str, secure: bool, client: IpAddr) -> Result<String, Problem> {
        let Mode::Cluster { client: api } = &self.mode else {
            return Err(Problem::new(StatusCode::NOT_FOUND, "a local review page logs in with the link it printed"));
        };
        let principal = digest(token);
        match self.review_token(api, token, &principal, client).await? {
            Some(user) => self.open_session(user, secure).map_err(Problem::internal),
            None => Err(self.unauthenticated("that token is not valid (TokenReview refused it)")),
        }
    }

    pub fn logout(&self, session: &str) {
        lock(&self.sessions).remove(&session.to_string());
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
        if let Some(id) = &caller.session
            && let Some(s) = lock(&self.sessions).get_mut(id, Instant::now())
        {
            s.flash = Some(flash);
        }
    }

    pub fn take_flash(&self, caller: &Caller) -> Option<Flash> {
        let id = caller.session.as_ref()?;
        lock(&self.sessions).get_mut(id, Instant::now())?.flash.take()
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
        self.allowed_on(caller, verb, Resource::Objects(kind), namespace, name).await
    }

    /// Whether `caller` may read plan renderings of objects in `namespace`: they are read from
    /// the backend with the controller's rights, so the caller must hold the right that
    /// backend needs, `get` on Secrets there. Local mode: yes (the store's owner).
    pub async fn may_read_plans(&self, caller: &Caller, namespace: &str) -> Result<bool, Problem> {
        self.allowed_on(caller, "get", Resource::Secrets, namespace, None).await
    }

    async fn allowed_on(
        &self,
        caller: &Caller,
        verb: &'static str,
        resource: Resource,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<bool, Problem> {
        let Mode::Cluster { client } = &self.mode else { return Ok(true) };
        let key = (format!("{}|{verb}", caller.principal), resource, namespace.to_string());
        let cached = cacheable(verb);
        if cached && let Some(answer) = lock(&self.rights).get(&key, Instant::now()) {
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
                    group: Some(resource.group().into()),
                    resource: Some(resource.plural().into()),
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
            let now = Instant::now();
            lock(&self.rights).insert(key, answer, now + VIEW_TTL, now);
        }
        Ok(answer)
    }

    /// Who `token` belongs to, per the API server (`None`: not authenticated). A token not
    /// answered recently spends a login attempt of `client` (429 past its budget), given back
    /// when the token is valid.
    async fn review_token(&self, api: &kube::Client, token: &str, principal: &str, client: IpAddr) -> Result<Option<User>, Problem> {
        let principal = principal.to_string();
        if let Some(user) = lock(&self.tokens).get(&principal, Instant::now()) {
            if user.is_none() {
                // A refused token again: a failure like any other, though the answer is cached.
                self.attempt_login(client)?;
            }
            return Ok(user.clone());
        }
        self.attempt_login(client)?;
        let review = TokenReview { spec: TokenReviewSpec { token: token.to_string(), audiences: None }, ..Default::default() };
        let reviews: Api<TokenReview> = Api::all(api.clone());
        let answer = reviews.create(&PostParams::default(), &review).await;
        let status = match answer {
            Ok(r) => r.status.unwrap_or_default(),
            Err(e) => {
                // The API server failed, not the caller.
                self.login_succeeded(client);
                return Err(Problem::unavailable(format!("cannot check the token (TokenReview): {}", crate::store::kube::describe(&e))));
            }
        };
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(u)) if u.username.as_deref().is_some_and(|n| !n.is_empty()) => Some(User {
                name: u.username.unwrap_or_default(),
                uid: u.uid,
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default(),
            }),
            _ => None,
        };
        if user.is_some() {
            self.login_succeeded(client);
        }
        let now = Instant::now();
        lock(&self.tokens).insert(principal, user.clone(), now + TOKEN_TTL, now);
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse as _;

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn the_login_token_opens_one_session_and_is_spent() {
        let auth = Auth::local("a".repeat(32));
        assert_eq!(auth.login_local(&"b".repeat(32), HERE).unwrap_err().status, StatusCode::UNAUTHORIZED);
        let cookie_header = auth.login_local(&"a".repeat(32), HERE).unwrap();
        assert!(cookie_header.contains("HttpOnly") && cookie_header.contains("SameSite=Strict"), "{cookie_header}");
        let problem = auth.login_local(&"a".repeat(32), HERE).unwrap_err();
        assert!(problem.message.contains("already used"), "{}", problem.message);

        let id = cookie_header.split(';').next().unwrap().split_once('=').unwrap().1;
        let caller = auth.caller(&headers(&[(header::COOKIE, &format!("other=1; {COOKIE}={id}"))]), HERE).await.unwrap();
        assert!(caller.csrf.is_some());
        assert_eq!(
            auth.caller(&headers(&[(header::COOKIE, &format!("{COOKIE}=forged"))]), HERE).await.unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(auth.caller(&HeaderMap::new(), HERE).await.unwrap_err().status, StatusCode::UNAUTHORIZED);

        auth.set_flash(&caller, Flash { ok: true, text: "done".into() });
        assert_eq!(auth.take_flash(&caller).map(|f| f.text).as_deref(), Some("done"));
        assert_eq!(auth.take_flash(&caller), None, "a flash shows once");

        let good = headers(&[(header::HOST, "127.0.0.1:8000"), (header::ORIGIN, "http://127.0.0.1:8000")]);
        let csrf = caller.csrf.clone();
        assert!(auth.check_form(&caller, &good, csrf.as_deref()).is_ok());
        assert_eq!(auth.check_form(&caller, &good, None).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(auth.check_form(&caller, &good, Some("wrong")).unwrap_err().status, StatusCode::FORBIDDEN);
        auth.logout(caller.session.as_deref().unwrap());
        assert!(auth.caller(&headers(&[(header::COOKIE, &format!("{COOKIE}={id}"))]), HERE).await.is_err());
    }

    #[test]
    fn failed_logins_from_one_address_are_refused_with_429_and_others_are_not() {
        let auth = Auth::local("a".repeat(32));
        for _ in 0..LOGIN_BUDGET.burst {
            assert_eq!(auth.login_local("wrong", HERE).unwrap_err().status, StatusCode::UNAUTHORIZED);
        }
        let refused = auth.login_local(&"a".repeat(32), HERE).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "even the right token waits: {}", refused.message);
        assert!(refused.message.contains("Too many failed logins") && refused.message.contains("try again in"), "{}", refused.message);
        assert_eq!(refused.retry_after, Some(LOGIN_BUDGET.every.as_secs()));
        let response = refused.into_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("6"));
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert!(auth.login_local(&"a".repeat(32), elsewhere).is_ok(), "another address has its own budget");
    }

    #[test]
    fn a_successful_login_costs_no_attempt() {
        let auth = Auth::local("a".repeat(32));
        for _ in 0..LOGIN_BUDGET.burst - 1 {
            assert!(auth.login_local("wrong", HERE).is_err());
        }
        assert!(auth.login_local(&"a".repeat(32), HERE).is_ok());
        assert_eq!(auth.login_local("wrong", HERE).unwrap_err().status, StatusCode::UNAUTHORIZED, "the success gave its attempt back");
        assert_eq!(auth.login_local("wrong", HERE).unwrap_err().status, StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn viewing_rights_are_cached_and_actions_are_not() {
        assert!(cacheable("list") && cacheable("get") && !cacheable("patch"));
        assert_eq!((Resource::Secrets.group(), Resource::Secrets.plural()), ("", "secrets"));
        assert_eq!(Resource::Objects(Kind::Terraform).group(), crate::api::GROUP);
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
