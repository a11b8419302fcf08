//! Registry credentials from a `kubernetes.io/dockerconfigjson` Secret (what `kubectl create
//! secret docker-registry` writes, the format of `imagePullSecrets`), picked for one
//! registry host as the container runtimes pick them. Pure.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

impl Credentials {
    /// `user:password`, as `--creds` takes them.
    pub fn parse_pair(pair: &str) -> Option<Self> {
        let (username, password) = pair.split_once(':')?;
        Some(Self { username: username.to_string(), password: password.to_string() })
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// The credentials for `registry` (`host[:port]`) in a Secret's data: `.dockerconfigjson`,
/// else the older `.dockercfg` (a bare `auths` map). `Ok(None)` when the Secret has no entry
/// for the registry, which is a public pull.
///
/// # Errors
/// A message naming the key: neither key present, JSON that does not parse, an `auth` that
/// is not base64 of `user:password`, an identity token (OAuth2 refresh tokens are not
/// supported). Never any of the credential.
pub fn from_secret_data(data: &BTreeMap<String, String>, registry: &str) -> Result<Option<Credentials>, String> {
    let (key, auths) = if let Some(json) = data.get(".dockerconfigjson") {
        let config: DockerConfig = serde_json::from_str(json)
            .map_err(|e| format!(".dockerconfigjson is not a Docker config (JSON with \"auths\"): {}", e.classify_name()))?;
        (".dockerconfigjson", config.auths)
    } else if let Some(json) = data.get(".dockercfg") {
        let auths: BTreeMap<String, AuthEntry> =
            serde_json::from_str(json).map_err(|e| format!(".dockercfg is not a Docker config (JSON): {}", e.classify_name()))?;
        (".dockercfg", auths)
    } else {
        return Err("has neither .dockerconfigjson nor .dockercfg; create it with kubectl create secret docker-registry".into());
    };
    let Some(entry) = auths.into_iter().find(|(host, _)| normalize(host) == normalize(registry)).map(|(_, e)| e) else {
        return Ok(None);
    };
    if entry.identity_token.as_deref().is_some_and(|t| !t.is_empty()) {
        return Err(format!("{key}: the entry for {registry} holds an identitytoken, which is not supported; give username and password"));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password)
        && !username.is_empty()
    {
        return Ok(Some(Credentials { username: username.clone(), password: password.clone() }));
    }
    let Some(auth) = entry.auth.filter(|a| !a.is_empty()) else {
        return Err(format!("{key}: the entry for {registry} has neither username and password nor auth"));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| format!("{key}: the auth of {registry} is not base64 of user:password"))?;
    Credentials::parse_pair(&decoded).map(Some).ok_or_else(|| format!("{key}: the auth of {registry} is not base64 of user:password"))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    /// serde's message may quote the input, which holds credentials: only its category.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "unexpected fields or types",
            serde_json::error::Category::Eof => "cut short",
        }
    }
}

/// A Docker config key as a bare `host[:port]`: without scheme, path or Docker Hub's
/// legacy index name.
fn normalize(host: &str) -> String {
    let host = host.trim().trim_start_matches("https://").trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(key: &str, json: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(key.to_string(), json.to_string())])
    }

    #[test]
    fn credentials_are_found_by_host_in_any_spelling() {
        let auth = base64::engine::general_purpose::STANDARD.encode("flux:s3cret");
        let json = format!(r#"{{"auths":{{"https://127.0.0.1:5000/v1/":{{"auth":"{auth}"}},"other":{{"username":"u","password":"p"}}}}}}"#);
        let c = from_secret_data(&data(".dockerconfigjson", &json), "127.0.0.1:5000").unwrap().expect("found");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("flux", "s3cret"));
        let c = from_secret_data(&data(".dockerconfigjson", &json), "OTHER").unwrap().expect("found");
        assert_eq!(c.username, "u");
        assert_eq!(from_secret_data(&data(".dockerconfigjson", &json), "127.0.0.1:5001").unwrap(), None);
        let legacy = r#"{"127.0.0.1:5000":{"username":"a","password":"b"}}"#;
        assert_eq!(from_secret_data(&data(".dockercfg", legacy), "127.0.0.1:5000").unwrap().unwrap().password, "b");
    }

    #[test]
    fn bad_secrets_are_named_without_their_content() {
        let err = from_secret_data(&data("username", "u"), "h").expect_err("no docker config");
        assert!(err.contains(".dockerconfigjson"), "{err}");
        let err = from_secret_data(&data(".dockerconfigjson", r#"{"auths": {"h": {"auth": "s3cret!"}}"#), "h").expect_err("syntax");
        assert!(!err.contains("s3cret"), "{err}");
        let err = from_secret_data(&data(".dockerconfigjson", r#"{"auths": {"h": {"auth": "s3cretXX"}}}"#), "h").expect_err("not a pair");
        assert!(err.contains("user:password") && !err.contains("s3cret"), "{err}");
        let err = from_secret_data(&data(".dockerconfigjson", r#"{"auths": {"h": {"identitytoken": "t"}}}"#), "h").expect_err("token");
        assert!(err.contains("identitytoken"), "{err}");
        assert!(!format!("{:?}", Credentials { username: "u".into(), password: "pw123".into() }).contains("pw123"));
    }
}
