//! Who may download an artifact from the artifact server: whoever holds a URL the controller
//! signed for one run, until it expires. A runner pod gets such a URL in its RunSpec; the
//! URL in a source's status (which anyone who may read the object sees, and which alerts
//! and messages may quote) carries no token and is refused, so listing GitRepositories
//! gives no access to their content.
//!
//! A signature covers the artifact's store path and the expiry, with HMAC-SHA256 under a key
//! the controller holds: random per process unless `--artifact-key-file` names one (so a
//! restarted controller, or another replica, honours URLs it signed before). A local store
//! hands runners `file://` URLs, which are never signed: the runner reads the same disk.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::api::Artifact;

/// Query parameter names of a signed URL.
const EXPIRES: &str = "expires";
const TOKEN: &str = "token";
/// Shortest key `--artifact-key-file` may hold.
pub const MIN_KEY_BYTES: usize = 32;

/// Why a download was refused (answered 403, with this text).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Denied {
    #[error("artifact URLs are signed per run; this one has no token (the URL in a source's status is not a download link)")]
    Unsigned,
    #[error("the artifact URL's token does not match this artifact")]
    BadToken,
    #[error("the artifact URL expired; the next run gets a new one")]
    Expired,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the artifact key file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the artifact key file {path} holds {len} bytes; use at least {MIN_KEY_BYTES} random bytes")]
    Short { path: String, len: usize },
    #[error("no randomness for the artifact key: {0}")]
    Random(String),
}

/// The signing key, or none (a local store: nothing is served over HTTP).
#[derive(Clone)]
pub struct ArtifactAccess {
    key: Option<Vec<u8>>,
}

impl std::fmt::Debug for ArtifactAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactAccess").field("signed", &self.key.is_some()).finish()
    }
}

impl ArtifactAccess {
    /// No signing: URLs are handed out as they are (a local store's `file://` URLs).
    pub fn unsigned() -> Self {
        Self { key: None }
    }

    /// A fresh random key: URLs signed by this process only.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = vec![0u8; MIN_KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self { key: Some(key) })
    }

    /// The key in `path` (e.g. a mounted Secret), shared by every process that reads it.
    pub fn from_key_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let key = std::fs::read(path).map_err(|source| KeyError::Read { path: shown.clone(), source })?;
        let key = key.trim_ascii().to_vec();
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::Short { path: shown, len: key.len() });
        }
        Ok(Self { key: Some(key) })
    }

    fn mac(key: &[u8], path: &str, expires: u64) -> Hmac<Sha256> {
        // A key of any length is accepted by HMAC; the constructor cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The URL a runner downloads `artifact` from, valid for `valid_for` from `now`. Unsigned
    /// access, or a URL that is not served over HTTP, is returned as it is.
    pub fn grant(&self, artifact: &Artifact, valid_for: Duration, now: SystemTime) -> String {
        let Some(key) = &self.key else { return artifact.url.clone() };
        if !artifact.url.starts_with("http://") && !artifact.url.starts_with("https://") {
            return artifact.url.clone();
        }
        let expires = (now + valid_for).duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let token = hex::encode(Self::mac(key, &artifact.path, expires).finalize().into_bytes());
        format!("{}?{EXPIRES}={expires}&{TOKEN}={token}", artifact.url)
    }

    /// Whether a request for store path `path` with query string `query` may download it at
    /// `now`. The token is compared in constant time.
    pub fn check(&self, path: &str, query: Option<&str>, now: SystemTime) -> Result<(), Denied> {
        let Some(key) = &self.key else { return Ok(()) };
        let (mut expires, mut token) = (None, None);
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                EXPIRES => expires = v.parse::<u64>().ok(),
                TOKEN => token = hex::decode(v.as_bytes()).ok(),
                _ => {}
            }
        }
        let (Some(expires), Some(token)) = (expires, token) else { return Err(Denied::Unsigned) };
        Self::mac(key, path, expires).verify_slice(&token).map_err(|_| Denied::BadToken)?;
        let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        if now > expires {
            return Err(Denied::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact() -> Artifact {
        Artifact {
            path: "gitrepository/team/app/ab.tar.gz".into(),
            url: "http://artifacts:9090/gitrepository/team/app/ab.tar.gz".into(),
            revision: "main@sha1:1".into(),
            digest: "sha256:ab".into(),
            last_update_time: String::new(),
            size: 0,
        }
    }

    fn query(url: &str) -> Option<&str> {
        url.split_once('?').map(|(_, q)| q)
    }

    fn access() -> ArtifactAccess {
        ArtifactAccess { key: Some(vec![7; 32]) }
    }

    #[test]
    fn a_granted_url_opens_its_artifact_until_it_expires() {
        let now = SystemTime::now();
        let url = access().grant(&artifact(), Duration::from_secs(60), now);
        assert!(url.starts_with(&artifact().url), "{url}");
        assert_eq!(access().check(&artifact().path, query(&url), now), Ok(()));
        assert_eq!(access().check(&artifact().path, query(&url), now + Duration::from_secs(61)), Err(Denied::Expired));
    }

    #[test]
    fn the_status_url_another_path_a_changed_expiry_or_another_key_is_refused() {
        let now = SystemTime::now();
        let url = access().grant(&artifact(), Duration::from_secs(60), now);
        assert_eq!(access().check(&artifact().path, None, now), Err(Denied::Unsigned));
        assert_eq!(access().check("gitrepository/other/app/ab.tar.gz", query(&url), now), Err(Denied::BadToken));
        let (_, expires) = query(&url).unwrap().split_once('&').unwrap().0.split_once('=').unwrap();
        let later = url.replace(&format!("expires={expires}"), &format!("expires={}", expires.parse::<u64>().unwrap() + 3600));
        assert_eq!(access().check(&artifact().path, query(&later), now), Err(Denied::BadToken));
        let other = ArtifactAccess { key: Some(vec![8; 32]) };
        assert_eq!(other.check(&artifact().path, query(&url), now), Err(Denied::BadToken));
        assert_eq!(access().check(&artifact().path, Some("expires=1&token=zz"), now), Err(Denied::Unsigned));
    }

    #[test]
    fn unsigned_access_and_file_urls_pass_through() {
        assert_eq!(ArtifactAccess::unsigned().grant(&artifact(), Duration::from_secs(1), SystemTime::now()), artifact().url);
        let file = Artifact { url: "file:///store/a.tar.gz".into(), ..artifact() };
        assert_eq!(access().grant(&file, Duration::from_secs(1), SystemTime::now()), file.url);
        assert_eq!(ArtifactAccess::unsigned().check("x", None, SystemTime::now()), Ok(()));
    }

    #[test]
    fn a_short_key_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "short\n").unwrap();
        let err = ArtifactAccess::from_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("holds 5 bytes") && err.contains("at least 32"), "{err}");
        std::fs::write(&path, "k".repeat(40)).unwrap();
        assert!(ArtifactAccess::from_key_file(&path).is_ok());
    }

    #[test]
    fn messages_show_no_token() {
        let url = access().grant(&artifact(), Duration::from_secs(60), SystemTime::now());
        assert_eq!(driftless_core::artifact::shown_url(&url), artifact().url);
    }
}
