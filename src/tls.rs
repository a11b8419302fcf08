//! TLS pieces shared by every HTTPS client of driftless (alert deliveries, the Git and OCI
//! sources): the system's CA roots, read once; a client config from Flux's TLS Secret keys
//! (`ca.crt`, `tls.crt`, `tls.key`); and what a refused handshake means, in words a user can
//! act on (which key to set or fix), found in a client's error chain. Nothing here ever puts
//! key material in a message. Imports nothing of the crate outside its tests.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError};

/// The system's CA roots, read once.
pub(crate) fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!("skipping unreadable system CA certificates: {error}");
        }
        found.certs
    })
}

/// The rustls error in a chain, looking inside `io::Error`s (whose `source` skips the error
/// they wrap).
pub(crate) fn find_rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = find_rustls_error(inner)
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// The TLS keys of a Secret as Flux names them: `ca.crt` (CAs trusted besides the system's),
/// `tls.crt` + `tls.key` (a client certificate for mutual TLS).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TlsKeys<'a> {
    pub ca_cert: Option<&'a str>,
    pub client_cert: Option<&'a str>,
    pub client_key: Option<&'a str>,
}

/// rustls's client config trusting the system's CAs and `keys.ca_cert`, presenting
/// `keys`' client certificate when both halves are set.
///
/// # Errors
/// A message naming the key (`ca.crt: ...`, `tls.key ...`): a `ca.crt` without a usable PEM
/// certificate, a `tls.crt` or `tls.key` that is not PEM, or a key that does not fit the
/// certificate. No message ever holds key material.
pub(crate) fn client_config(keys: TlsKeys<'_>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(native_roots().iter().cloned());
    if let Some(pem) = keys.ca_cert {
        let certs = pem_certificates(pem).map_err(|e| format!("ca.crt: {e}"))?;
        for cert in certs {
            roots.add(cert).map_err(|e| format!("ca.crt is not a usable CA certificate: {e}"))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (keys.client_cert, keys.client_key) {
        (Some(cert), Some(key)) => {
            let chain = pem_certificates(cert).map_err(|e| format!("tls.crt: {e}"))?;
            // The parser's own message may quote a line of the input: never shown for a key.
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|_| "tls.key is not a PEM private key (PKCS#8, PKCS#1 or SEC1)".to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls.key does not fit tls.crt, or is of a kind not supported: {}", key_problem(&e)))
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
/// chain's text when there is none); `field` is the spec field of the Secret with the TLS
/// keys (`spec.secretRef`, `spec.certSecretRef`).
pub(crate) fn describe_failure(error: &(dyn std::error::Error + 'static), host: &str, field: &str) -> String {
    let Some(tls) = find_rustls_error(error) else {
        return chain_text(error);
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            format!("the certificate of {host} is not signed by a trusted CA: put the CA's certificate (PEM) in ca.crt of {field}")
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
            "{host} refused the TLS handshake ({alert:?}): it wants a client certificate it trusts; set tls.crt and tls.key in {field}, or check the ones set"
        ),
        other => format!("TLS with {host} failed: {other}"),
    }
}

/// An error and its sources, `: `-joined, without repeats.
pub(crate) fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
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
    use crate::source::git::GitAuth;

    fn client_config(auth: &GitAuth) -> Result<rustls::ClientConfig, String> {
        super::client_config(TlsKeys {
            ca_cert: auth.ca_cert.as_deref(),
            client_cert: auth.client_cert.as_deref(),
            client_key: auth.client_key.as_deref(),
        })
    }

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
        let text = describe_failure(&unknown, "127.0.0.1", "spec.secretRef");
        assert!(text.contains("ca.crt") && text.contains("127.0.0.1"), "{text}");
        let wanted = std::io::Error::other(rustls::Error::AlertReceived(AlertDescription::CertificateRequired));
        let text = describe_failure(&wanted, "git.example.com", "spec.secretRef");
        assert!(text.contains("tls.crt and tls.key"), "{text}");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        assert_eq!(describe_failure(&refused, "h", "spec.secretRef"), "connection refused");
    }
}
