//! Credentials for a Git remote: Flux's Secret keys, the answers given to libgit2 when it
//! asks for credentials, the known_hosts check of an ssh host key, and keeping every secret
//! (including a password in the URL) out of messages.
//!
//! They live together because they share one rule: a credential is handed to libgit2 and
//! to nothing else, so a rejected one is reported by kind and never by value. The supported
//! auth methods and known_hosts syntax are described on the parent module.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use git2::{CertificateCheckStatus, Cred, CredentialType, cert::Cert};

use super::fetch::{CallContext, Failure};
use super::{GitError, GitSource, Result};

/// Credentials for a Git remote, as Flux reads them from a Secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GitAuth {
    pub username: Option<String>,
    /// Basic auth password (https), or the passphrase of `identity` (ssh).
    pub password: Option<String>,
    pub bearer_token: Option<String>,
    /// A private key (PEM or OpenSSH format) for ssh.
    pub identity: Option<String>,
    /// known_hosts lines the ssh server's host key must match.
    pub known_hosts: Option<String>,
    /// PEM certificates of CAs to trust for https, besides the system's (`ca.crt`, or the
    /// older `caFile`).
    pub ca_cert: Option<String>,
    /// A PEM client certificate (chain) for mutual TLS over https (`tls.crt`).
    pub client_cert: Option<String>,
    /// The PEM private key of `client_cert` (`tls.key`).
    pub client_key: Option<String>,
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("GitAuth")
            .field("username", &self.username)
            .field("password", &set(&self.password))
            .field("bearer_token", &set(&self.bearer_token))
            .field("identity", &set(&self.identity))
            .field("known_hosts", &self.known_hosts.as_ref().map(|k| k.lines().count()))
            .field("ca_cert", &set(&self.ca_cert))
            .field("client_cert", &set(&self.client_cert))
            .field("client_key", &set(&self.client_key))
            .finish()
    }
}

impl GitAuth {
    /// Read Flux's Secret keys: `username`, `password`, `bearerToken`, `identity`,
    /// `known_hosts`, and for https `ca.crt` (else the older `caFile`, as Flux), `tls.crt` and
    /// `tls.key`. Empty values count as absent; other keys are ignored.
    ///
    /// # Errors
    /// A bearer token together with a username or password, a password without a username
    /// (and without an identity it could unlock), a bearer token that cannot be a header
    /// value, and `tls.crt` without `tls.key` or the other way round.
    pub fn from_secret_data(data: &BTreeMap<String, String>) -> Result<Self> {
        let get = |key: &str| data.get(key).filter(|v| !v.is_empty()).cloned();
        let auth = GitAuth {
            username: get("username"),
            password: get("password"),
            bearer_token: get("bearerToken").map(|t| t.trim().to_string()),
            identity: get("identity"),
            known_hosts: get("known_hosts"),
            ca_cert: get("ca.crt").or_else(|| get("caFile")),
            client_cert: get("tls.crt"),
            client_key: get("tls.key"),
        };
        auth.validate()?;
        Ok(auth)
    }

    pub(super) fn validate(&self) -> Result<()> {
        if self.bearer_token.is_some() && (self.username.is_some() || self.password.is_some()) {
            return Err(GitError::InvalidAuth("bearerToken cannot be combined with username/password: use one or the other".into()));
        }
        if self.password.is_some() && self.username.is_none() && self.identity.is_none() {
            return Err(GitError::InvalidAuth("password is set but username is not".into()));
        }
        if let Some(token) = &self.bearer_token
            && token.chars().any(|c| c.is_control())
        {
            return Err(GitError::InvalidAuth("bearerToken contains control characters".into()));
        }
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => {
                return Err(GitError::InvalidAuth("tls.crt is set but tls.key is not: a client certificate needs its key".into()));
            }
            (None, Some(_)) => {
                return Err(GitError::InvalidAuth("tls.key is set but tls.crt is not: a client certificate needs both".into()));
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether any TLS key (`ca.crt`, `tls.crt`) is set: the https connection is then made by
    /// driftless's own TLS client ([`super::gateway`]) instead of libgit2's.
    pub(super) fn has_tls(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some()
    }

    /// Every secret value, to scrub from messages.
    fn secrets(&self) -> impl Iterator<Item = &str> {
        [&self.password, &self.bearer_token, &self.identity, &self.client_key].into_iter().flatten().map(String::as_str)
    }
}

impl GitSource {
    /// Remove every secret (and the raw URL, which may carry a password) from a message.
    pub(super) fn scrub(&self, message: &str) -> String {
        let out = message.replace(&self.url, &self.display_url());
        let url_password = url_password(&self.url);
        let proxy = self.proxy.iter().flat_map(super::Proxy::secrets);
        driftless_core::scrub::Scrubber::credentials(
            self.auth.iter().flat_map(GitAuth::secrets).chain(proxy).chain(url_password.as_deref()),
        )
        .scrub(&out)
    }
}

impl CallContext {
    /// libgit2's credentials callback: each credential type is handed out once per
    /// connection, so being asked again means the server rejected it.
    pub(super) fn credentials(
        &self,
        auth: Option<&GitAuth>,
        username_from_url: Option<&str>,
        allowed: CredentialType,
        given: &mut CredentialType,
    ) -> Result<Cred, git2::Error> {
        if !self.keep_going() {
            return Err(git2::Error::from_str("timed out"));
        }
        let mut once = |kind: CredentialType| -> Result<(), git2::Error> {
            if given.contains(kind) {
                self.fail(Failure::Rejected);
                return Err(git2::Error::from_str("credentials rejected"));
            }
            given.insert(kind);
            Ok(())
        };
        let user = username_from_url.or(auth.and_then(|a| a.username.as_deref())).unwrap_or("git");
        if allowed.contains(CredentialType::USERNAME) {
            once(CredentialType::USERNAME)?;
            return Cred::username(user);
        }
        if let Some(identity) = auth.and_then(|a| a.identity.as_deref())
            && allowed.contains(CredentialType::SSH_KEY)
        {
            once(CredentialType::SSH_KEY)?;
            let passphrase = auth.and_then(|a| a.password.as_deref());
            return Cred::ssh_key_from_memory(user, None, identity, passphrase).map_err(|_| {
                self.fail(Failure::Rejected);
                git2::Error::from_str("the identity is not a usable private key")
            });
        }
        if let Some(auth) = auth
            && let (Some(username), Some(password)) = (auth.username.as_deref(), auth.password.as_deref())
            && allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
        {
            once(CredentialType::USER_PASS_PLAINTEXT)?;
            return Cred::userpass_plaintext(username, password);
        }
        if !given.is_empty() || auth.is_some_and(|a| a.bearer_token.is_some()) {
            self.fail(Failure::Rejected);
        } else {
            self.fail(Failure::NoCredentials);
        }
        Err(git2::Error::from_str("no usable credentials"))
    }

    /// libgit2's certificate callback: an ssh host key must be in `known_hosts`, which is
    /// required, as Flux requires it (without it any server could pose as the repository);
    /// anything else (https certificates) is left to libgit2's own check.
    pub(super) fn check_certificate(
        &self,
        known_hosts: Option<&str>,
        port: u16,
        cert: &Cert<'_>,
        host: &str,
    ) -> Result<CertificateCheckStatus, git2::Error> {
        let Some(hostkey) = cert.as_hostkey() else {
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(known_hosts) = known_hosts else {
            self.fail(Failure::NoKnownHosts(host_label(host, port)));
            return Err(git2::Error::from_str("no known_hosts to check the host key against"));
        };
        let key = hostkey.hostkey().zip(hostkey.hostkey_type());
        let known = key.is_some_and(|(raw, kind)| host_key_known(known_hosts, host, port, kind.name(), raw));
        if known {
            Ok(CertificateCheckStatus::CertificateOk)
        } else {
            self.fail(Failure::HostKey(host_label(host, port)));
            Err(git2::Error::from_str("host key rejected"))
        }
    }
}

/// The URL without a password in its user info.
pub(super) fn redact_url(url: &str) -> String {
    match split_userinfo(url) {
        Some((scheme, userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}{user}@{rest}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The password in the URL's user info, if any.
pub(super) fn url_password(url: &str) -> Option<String> {
    let (_, userinfo, _) = split_userinfo(url)?;
    userinfo.split_once(':').map(|(_, p)| p.to_string())
}

/// `scheme://userinfo@rest` → (`scheme://`, userinfo, rest).
fn split_userinfo(url: &str) -> Option<(&str, &str, &str)> {
    let scheme_end = url.find("://")? + 3;
    let (scheme, after) = url.split_at(scheme_end);
    let authority_end = after.find('/').unwrap_or(after.len());
    let at = after[..authority_end].rfind('@')?;
    Some((scheme, &after[..at], &after[at + 1..]))
}

/// The port of an `ssh://` URL (22 otherwise).
pub(super) fn ssh_port(url: &str) -> u16 {
    let Some(after) = url.strip_prefix("ssh://").or_else(|| url.strip_prefix("ssh+git://")) else { return 22 };
    let authority = &after[..after.find('/').unwrap_or(after.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.rfind(']') {
        Some(close) => host_port[close + 1..].strip_prefix(':'),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

/// How known_hosts names a host: `host` on port 22, `[host]:port` otherwise.
fn host_label(host: &str, port: u16) -> String {
    if port == 22 { host.to_string() } else { format!("[{host}]:{port}") }
}

/// Whether `known_hosts` holds a line for this host with this key (and no `@revoked` one).
/// Keys are compared as known_hosts writes them: standard base64, padded.
fn host_key_known(known_hosts: &str, host: &str, port: u16, key_type: &str, raw_key: &[u8]) -> bool {
    let name = host_label(host, port);
    let key = base64::engine::general_purpose::STANDARD.encode(raw_key);
    let mut found = false;
    for line in known_hosts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(mut first) = fields.next() else { continue };
        let marker = first.strip_prefix('@');
        if marker.is_some() {
            let Some(next) = fields.next() else { continue };
            first = next;
        }
        let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else { continue };
        if kind != key_type || blob != key || !hosts_match(first, &name) {
            continue;
        }
        match marker {
            Some("revoked") => return false,
            Some(_) => {}
            None => found = true,
        }
    }
    found
}

/// OpenSSH host pattern list: comma-separated, `*`/`?` wildcards, `!` negates.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if wildcard_match(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard_match(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard_match(rest, &name[1..]),
        Some((c, rest)) => name.first().is_some_and(|n| n.eq_ignore_ascii_case(c)) && wildcard_match(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_data_maps_flux_keys_and_refuses_mixtures() {
        let data = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let auth = GitAuth::from_secret_data(&data(&[("username", "u"), ("password", "p"), ("other", "x")])).expect("auth");
        assert_eq!(auth.username.as_deref(), Some("u"));
        assert_eq!(auth.password.as_deref(), Some("p"));
        let auth = GitAuth::from_secret_data(&data(&[("bearerToken", "t\n"), ("known_hosts", "h k v")])).expect("auth");
        assert_eq!(auth.bearer_token.as_deref(), Some("t"));
        assert!(GitAuth::from_secret_data(&data(&[("bearerToken", "t"), ("username", "u")])).is_err());
        assert!(GitAuth::from_secret_data(&data(&[("password", "p")])).is_err());
        assert!(GitAuth::from_secret_data(&data(&[("identity", "key"), ("password", "pass")])).is_ok());
    }

    #[test]
    fn tls_keys_are_read_as_flux_reads_them() {
        let data = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let auth = GitAuth::from_secret_data(&data(&[("caFile", "old"), ("tls.crt", "c"), ("tls.key", "k")])).expect("auth");
        assert_eq!(auth.ca_cert.as_deref(), Some("old"), "caFile is read when ca.crt is absent");
        assert!(auth.has_tls());
        let auth = GitAuth::from_secret_data(&data(&[("ca.crt", "new"), ("caFile", "old")])).expect("auth");
        assert_eq!(auth.ca_cert.as_deref(), Some("new"), "ca.crt takes precedence over caFile");
        let err = GitAuth::from_secret_data(&data(&[("tls.crt", "c")])).expect_err("no key");
        assert!(err.to_string().contains("tls.key"), "{err}");
        let err = GitAuth::from_secret_data(&data(&[("tls.key", "k")])).expect_err("no cert");
        assert!(err.to_string().contains("tls.crt"), "{err}");
        assert!(!GitAuth::from_secret_data(&data(&[("username", "u")])).expect("auth").has_tls());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let auth = GitAuth {
            username: Some("user".into()),
            password: Some("hunter2".into()),
            bearer_token: Some("tok3n".into()),
            identity: Some("-----BEGIN".into()),
            client_key: Some("PRIVATE-KEY-BYTES".into()),
            ..Default::default()
        };
        let shown = format!("{auth:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok3n") && !shown.contains("BEGIN") && !shown.contains("PRIVATE-KEY-BYTES"),
            "{shown}"
        );
    }

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(redact_url("https://u:secret@example.com/r.git"), "https://u@example.com/r.git");
        assert_eq!(redact_url("https://example.com/a@b"), "https://example.com/a@b");
        assert_eq!(url_password("https://u:secret@example.com/r.git").as_deref(), Some("secret"));
        let source = GitSource::new("https://u:secret@example.com/r.git", None, "cache")
            .expect("source")
            .with_auth(Some(GitAuth { username: Some("u".into()), password: Some("pw".into()), ..Default::default() }))
            .expect("auth");
        let scrubbed = source.scrub("failed for https://u:secret@example.com/r.git with pw and secret");
        assert_eq!(scrubbed, "failed for https://u@example.com/r.git with *** and ***");
    }

    #[test]
    fn ssh_ports_and_known_hosts_names() {
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/repo"), 2222);
        assert_eq!(ssh_port("ssh://git@host/repo"), 22);
        assert_eq!(ssh_port("ssh://git@[::1]:2200/repo"), 2200);
        assert_eq!(ssh_port("git@host:org/repo"), 22);
        assert_eq!(host_label("h", 22), "h");
        assert_eq!(host_label("h", 2222), "[h]:2222");
    }

    #[test]
    fn known_hosts_lines_match_by_host_type_and_key() {
        let raw = b"key bytes";
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        let kh = format!("# comment\n[127.0.0.1]:2222 ssh-ed25519 {b64}\n*.example.com,!bad.example.com ssh-rsa {b64}\n");
        assert!(host_key_known(&kh, "127.0.0.1", 2222, "ssh-ed25519", raw));
        assert!(!host_key_known(&kh, "127.0.0.1", 22, "ssh-ed25519", raw));
        assert!(!host_key_known(&kh, "127.0.0.1", 2222, "ssh-ed25519", b"other"));
        assert!(!host_key_known(&kh, "127.0.0.1", 2222, "ssh-rsa", raw));
        assert!(host_key_known(&kh, "git.example.com", 22, "ssh-rsa", raw));
        assert!(!host_key_known(&kh, "bad.example.com", 22, "ssh-rsa", raw));
        let revoked = format!("{kh}@revoked * ssh-rsa {b64}\n");
        assert!(!host_key_known(&revoked, "git.example.com", 22, "ssh-rsa", raw));
    }

    /// The key blob is compared as text, so it must be encoded exactly as known_hosts writes
    /// it: the standard alphabet (`+` and `/`) with `=` padding.
    #[test]
    fn known_hosts_keys_are_standard_padded_base64() {
        for (raw, blob) in [(&b"f"[..], "Zg=="), (b"fo", "Zm8="), (b"foo", "Zm9v"), (b"foobar", "Zm9vYmFy"), (&[0xfb, 0xff], "+/8=")] {
            assert!(host_key_known(&format!("h ssh-ed25519 {blob}"), "h", 22, "ssh-ed25519", raw), "{blob}");
        }
        assert!(!host_key_known("h ssh-ed25519 Zg", "h", 22, "ssh-ed25519", b"f"));
        assert!(!host_key_known("h ssh-ed25519 -_8=", "h", 22, "ssh-ed25519", &[0xfb, 0xff]));
    }
}
