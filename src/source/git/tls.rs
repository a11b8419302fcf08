//! The TLS client of an https remote whose Secret holds TLS keys: the CAs to trust
//! (`ca.crt`, besides the system's, as Flux adds them to the system pool) and the client
//! certificate of mutual TLS (`tls.crt` + `tls.key`), which libgit2 cannot present.
//!
//! Also what a refused handshake means, in words a user can act on: which key of
//! `spec.secretRef` to set or fix. Nothing here ever puts key material in a message.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError};

use super::{GitAuth, GitError, Result};
use crate::tls::{find_rustls_error, native_roots};

/// rustls's client config for `auth`'s TLS keys.
///
/// # Errors
/// `InvalidAuth` naming the key: a `ca.crt` without a usable PEM certificate, a `tls.crt`
/// or `tls.key` that is not PEM, or a key that does not fit the certificate.
pub(super) fn client_config(auth: &GitAuth) -> Result<rustls::ClientConfig> {
    let invalid = |m: String| GitError::InvalidAuth(m);
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(native_roots().iter().cloned());
    if let Some(pem) = &auth.ca_cert {
        let certs = pem_certificates(pem).map_err(|e| invalid(format!("ca.crt: {e}")))?;
        for cert in certs {
            roots.add(cert).map_err(|e| invalid(format!("ca.crt is not a usable CA certificate: {e}")))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots);
    match (&auth.client_cert, &auth.client_key) {
        (Some(cert), Some(key)) => {
            let chain = pem_certificates(cert).map_err(|e| invalid(format!("tls.crt: {e}")))?;
            // The parser's own message may quote a line of the input: never shown for a key.
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|_| invalid("tls.key is not a PEM private key (PKCS#8, PKCS#1 or SEC1)".into()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(format!("tls.key does not fit tls.crt, or is of a kind not supported: {}", key_problem(&e))))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Every certificate of a PEM bundle; at least one.
fn pem_certificates(pem: &str) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// rustls's reason a key was refused, without any of the key.
fn key_problem(e: &rustls::Error) -> String {
    match e {
        rustls::Error::General(m) => m.clone(),
        other => format!("{other:?}").chars().take(120).collect(),
    }
}

/// What a failed connection to `host` says to do, from the rustls error in its chain (the
/// chain's text when there is none).
pub(super) fn describe_failure(error: &(dyn std::error::Error + 'static), host: &str) -> String {
    let Some(tls) = find_rustls_error(error) else {
        return chain_text(error);
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("the certificate of {host} is not signed by a trusted CA: put the CA's certificate (PEM) in ca.crt of spec.secretRef")
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }) => {
            format!("the certificate of {host} is not valid for the name {host}")
        }
        rustls::Error::InvalidCertificate(other) => format!("the certificate of {host} was refused: {other:?}"),
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::HandshakeFailure
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied),
        ) => format!(
            "{host} refused the TLS handshake ({alert:?}): it wants a client certificate it trusts; set tls.crt and tls.key in spec.secretRef, or check the ones set"
        ),
        other => format!("TLS with {host} failed: {other}"),
    }
}

/// An error and its sources, `: `-joined, without repeats.
pub(super) fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_pem_are_refused_by_name_without_their_content() {
        let auth = GitAuth { ca_cert: Some("not a certificate".into()), ..Default::default() };
        let err = client_config(&auth).expect_err("no PEM").to_string();
        assert!(err.contains("ca.crt") && err.contains("no PEM certificate"), "{err}");

        let ca = testkit::certs::Ca::new("test CA").expect("ca");
        let pair = ca.loopback_serving_cert("client", &[]).expect("cert");
        let auth = GitAuth {
            client_cert: Some(pair.cert_pem.clone()),
            client_key: Some("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n".into()),
            ..Default::default()
        };
        let err = client_config(&auth).expect_err("bad key").to_string();
        assert!(err.contains("tls.key") && !err.contains("c2VjcmV0"), "{err}");

        let auth = GitAuth {
            ca_cert: Some(ca.cert_pem()),
            client_cert: Some(pair.cert_pem.clone()),
            client_key: Some(pair.key_pem.clone()),
            ..Default::default()
        };
        client_config(&auth).expect("a matching pair is accepted");
        let other = ca.loopback_serving_cert("other", &[]).expect("cert");
        let auth = GitAuth { client_cert: Some(other.cert_pem), client_key: Some(pair.key_pem), ..Default::default() };
        let err = client_config(&auth).expect_err("key of another certificate").to_string();
        assert!(err.contains("tls.key does not fit tls.crt") && !err.contains("PRIVATE"), "{err}");
    }

    #[test]
    fn refused_handshakes_say_which_key_to_set() {
        let unknown = std::io::Error::other(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
        let text = describe_failure(&unknown, "127.0.0.1");
        assert!(text.contains("ca.crt") && text.contains("127.0.0.1"), "{text}");
        let wanted = std::io::Error::other(rustls::Error::AlertReceived(AlertDescription::CertificateRequired));
        let text = describe_failure(&wanted, "git.example.com");
        assert!(text.contains("tls.crt and tls.key"), "{text}");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(describe_failure(&refused, "h"), "connection refused");
    }
}
