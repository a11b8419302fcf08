//! TLS pieces shared by every HTTPS client of driftless (alert deliveries, the Git source):
//! the system's CA roots, read once, and finding the rustls error inside a client's error
//! chain, which is what tells a user why a connection was refused. Imports nothing of the
//! crate.

use std::sync::OnceLock;

use rustls::pki_types::CertificateDer;

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
