//! Certificates for one test cluster: a private CA, the apiserver's serving certificate,
//! and the service-account signing key.
//!
//! Everything is generated fresh per cluster (ECDSA P-256, fast to generate) so that no
//! key material is checked in and no two clusters trust each other.

use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Errors while generating certificates or keys.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused the parameters or failed to sign.
    #[error("generating certificate for {what}: {source}")]
    Generate {
        /// Which certificate or key.
        what: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// A DNS name could not be used as a subject alternative name.
    #[error("invalid subject alternative name {0:?}")]
    InvalidName(String),
}

type Result<T, E = CertError> = std::result::Result<T, E>;

fn generate(what: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |source| CertError::Generate { what, source }
}

/// A certificate authority that signs the cluster's serving certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A PEM certificate with its PEM (PKCS#8) private key.
#[derive(Clone)]
pub struct CertPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA.
    pub fn new(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate().map_err(generate("CA key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(generate("CA"))?;
        Ok(Self { issuer })
    }

    /// The CA certificate, PEM: what clients trust.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A serving certificate for `dns_names` and `ips`, signed by this CA.
    pub fn serving_cert(&self, common_name: &str, dns_names: &[&str], ips: &[IpAddr]) -> Result<CertPair> {
        let key = KeyPair::generate().map_err(generate("serving key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        let mut sans = Vec::new();
        for name in dns_names {
            let ia5 = (*name).try_into().map_err(|_| CertError::InvalidName((*name).to_owned()))?;
            sans.push(SanType::DnsName(ia5));
        }
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).map_err(generate("serving certificate"))?;
        Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// A serving certificate for a process listening on the loopback address.
    pub fn loopback_serving_cert(&self, common_name: &str, extra_dns: &[&str]) -> Result<CertPair> {
        let mut dns = vec!["localhost"];
        dns.extend_from_slice(extra_dns);
        self.serving_cert(common_name, &dns, &[IpAddr::V4(Ipv4Addr::LOCALHOST)])
    }
}

/// The key pair that the apiserver signs service-account tokens with (and that the
/// controller-manager's token controller needs too), PEM.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// Private key, PKCS#8 PEM.
    pub private_pem: String,
    /// Public key, PEM.
    pub public_pem: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey").finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// A fresh ECDSA P-256 key (the apiserver signs with ES256 then).
    pub fn generate() -> Result<Self> {
        let key = KeyPair::generate().map_err(generate("service-account key"))?;
        Ok(Self { private_pem: key.serialize_pem(), public_pem: key.public_key_pem() })
    }
}
