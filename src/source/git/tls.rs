//! The TLS client of an https remote whose Secret holds TLS keys (`ca.crt`, besides the
//! system's, as Flux adds them to the system pool, and `tls.crt` + `tls.key` for mutual TLS,
//! which libgit2 cannot present): [`crate::tls`]'s, with errors as `GitError`s naming
//! `spec.secretRef`.

use super::{GitAuth, GitError, Result};

/// rustls's client config for `auth`'s TLS keys.
///
/// # Errors
/// `InvalidAuth` naming the key: a `ca.crt` without a usable PEM certificate, a `tls.crt`
/// or `tls.key` that is not PEM, or a key that does not fit the certificate.
pub(super) fn client_config(auth: &GitAuth) -> Result<rustls::ClientConfig> {
    crate::tls::client_config(crate::tls::TlsKeys {
        ca_cert: auth.ca_cert.as_deref(),
        client_cert: auth.client_cert.as_deref(),
        client_key: auth.client_key.as_deref(),
    })
    .map_err(GitError::InvalidAuth)
}

/// What a failed connection to `host` says to do (which key of `spec.secretRef` to set).
pub(super) fn describe_failure(error: &(dyn std::error::Error + 'static), host: &str) -> String {
    crate::tls::describe_failure(error, host, "spec.secretRef")
}

pub(super) use crate::tls::chain_text;
