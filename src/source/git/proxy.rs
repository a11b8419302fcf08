//! Flux's `proxySecretRef`: the proxy an http(s) remote is reached through, read from a
//! Secret's `address` (required), `username` and `password`.
//!
//! driftless tunnels every request through the proxy with `CONNECT` (for http:// remotes
//! too, where Go's client sends absolute-form requests instead) and supports `http://`
//! proxies only; Flux also takes `https://` and `socks5://` ones, which are refused by name.

use std::fmt;

use axum::http::{HeaderValue, Uri};
use base64::Engine as _;

use super::{GitError, Result};

/// A proxy to tunnel through, with its credentials.
#[derive(Clone)]
pub struct Proxy {
    uri: Uri,
    /// `host:port` of the proxy, for messages.
    address: String,
    username: Option<String>,
    password: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Proxy {
    /// From the Secret of `spec.proxySecretRef`.
    ///
    /// # Errors
    /// `InvalidProxy` naming the key: no `address`, one that is not an `http://host:port`
    /// URL (or carries credentials of its own), or credentials that cannot be sent.
    pub fn from_secret_data(data: &std::collections::BTreeMap<String, String>) -> Result<Self> {
        let invalid = |m: String| GitError::InvalidProxy(m);
        let get = |key: &str| data.get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let address = get("address")
            .ok_or_else(|| invalid("the Secret has no address (the proxy's URL, e.g. http://proxy.example.com:3128)".into()))?;
        let (scheme, rest) =
            address.split_once("://").ok_or_else(|| invalid(format!("address {address:?} is not a URL: write it as http://host:port")))?;
        if scheme != "http" {
            return Err(invalid(format!(
                "address {address:?}: driftless supports http:// proxies only (Flux also takes https:// and socks5://)"
            )));
        }
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(invalid(
                "address must be http://host[:port], without a path or credentials in it (put them in username and password)".into(),
            ));
        }
        let authority =
            if authority.rsplit_once(':').is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit())) && !authority.ends_with(']') {
                authority.to_string()
            } else {
                format!("{authority}:80")
            };
        let uri = format!("http://{authority}").parse::<Uri>().map_err(|e| invalid(format!("address {address:?}: {e}")))?;
        let (username, password) = (get("username"), get("password"));
        if password.is_some() && username.is_none() {
            return Err(invalid("password is set but username is not".into()));
        }
        let proxy = Proxy { uri, address: authority, username, password };
        if proxy.authorization().is_none() && proxy.username.is_some() {
            return Err(invalid("username or password holds characters a Proxy-Authorization header cannot carry".into()));
        }
        Ok(proxy)
    }

    pub(super) fn uri(&self) -> &Uri {
        &self.uri
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The `Proxy-Authorization` of the CONNECT requests (basic), when there is a username.
    pub(super) fn authorization(&self) -> Option<HeaderValue> {
        let user = self.username.as_deref()?;
        let pair = format!("{user}:{}", self.password.as_deref().unwrap_or_default());
        let mut value = HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// The values to scrub from messages.
    pub(super) fn secrets(&self) -> impl Iterator<Item = &str> {
        self.password.as_deref().into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_address_is_an_http_proxy_and_credentials_go_in_their_keys() {
        let proxy = Proxy::from_secret_data(&data(&[("address", "http://127.0.0.1:3128"), ("username", "u"), ("password", "pw-123456")]))
            .expect("proxy");
        assert_eq!(proxy.address(), "127.0.0.1:3128");
        assert_eq!(proxy.authorization().expect("auth").to_str().expect("ascii"), "Basic dTpwdy0xMjM0NTY=");
        assert!(!format!("{proxy:?}").contains("pw-123456"));
        assert_eq!(
            Proxy::from_secret_data(&data(&[("address", "http://proxy.example.com")])).expect("proxy").address(),
            "proxy.example.com:80"
        );
        for (bad, says) in [
            (&[("username", "u")][..], "no address"),
            (&[("address", "socks5://127.0.0.1:1080")], "http:// proxies only"),
            (&[("address", "127.0.0.1:3128")], "not a URL"),
            (&[("address", "http://u:p@127.0.0.1:3128")], "without a path or credentials"),
            (&[("address", "http://127.0.0.1:3128"), ("password", "p")], "username is not"),
        ] {
            let err = Proxy::from_secret_data(&data(bad)).expect_err(says).to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
