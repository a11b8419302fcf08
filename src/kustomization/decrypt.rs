//! A Kustomization's `spec.decryption` (Flux's): every SOPS-encrypted file its build reads
//! (manifests, and the env files and files of secretGenerator and configMapGenerator) is
//! decrypted with the age and PGP keys of a Secret as it is read, so patches, generators
//! and substitution see plain values, and a file that does not decrypt (a wrong key, a
//! cloud KMS, a MAC mismatch) fails the build before anything is applied. A SOPS-encrypted
//! file in a build without `spec.decryption` fails it too: applying ciphertext as a Secret's
//! value is never what was meant.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::api::Kustomization;
use crate::reconcile::ReconcileError;
use crate::sops::{self, Format, Keys};
use crate::store::ObjectStore;

/// The keys of `spec.decryption.secretRef`: `Ok(None)` when the spec has no decryption,
/// `Err` the message of a missing Secret or a key that does not parse.
pub async fn keys<S: ObjectStore>(store: &S, object: &Kustomization) -> Result<Result<Option<Keys>, String>, ReconcileError> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    Ok(crate::reconcile::decryption::keys(store, object.spec.decryption.as_ref(), namespace).await?)
}

/// Where the keys of a build come from, for the message of a file no key opens.
#[derive(Debug, Clone, Copy)]
pub enum KeySource {
    /// A Kustomization's `spec.decryption`.
    Spec,
    /// `driftless build --decryption-key-file` / `SOPS_AGE_KEY_FILE`.
    Cli,
}

/// The read filter of one build: decrypts what is encrypted, remembers every decrypted value
/// (to scrub from messages) and the first failure (for the condition).
#[derive(Debug)]
pub struct Decryptor {
    /// `None`: decryption is not configured, and an encrypted file is an error.
    keys: Option<Keys>,
    source: KeySource,
    found: Mutex<Found>,
}

#[derive(Debug, Default)]
struct Found {
    plaintexts: Vec<String>,
    failure: Option<String>,
}

impl Decryptor {
    pub fn new(keys: Option<Keys>, source: KeySource) -> Arc<Decryptor> {
        Arc::new(Decryptor { keys, source, found: Mutex::new(Found::default()) })
    }

    /// Every value decrypted so far.
    pub fn plaintexts(&self) -> Vec<String> {
        self.found.lock().map(|f| f.plaintexts.clone()).unwrap_or_default()
    }

    /// The first file that did not decrypt, and why.
    pub fn failure(&self) -> Option<String> {
        self.found.lock().ok().and_then(|f| f.failure.clone())
    }

    fn fail(&self, message: String) -> String {
        if let Ok(mut f) = self.found.lock() {
            f.failure.get_or_insert_with(|| message.clone());
        }
        message
    }
}

impl crate::kustomize::ReadFilter for Decryptor {
    fn filter(&self, shown: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        let Some(format) = Format::of_encrypted(shown, &bytes) else { return Ok(bytes) };
        let file = shown.display().to_string();
        let Some(keys) = &self.keys else {
            return Err(self.fail(match self.source {
                KeySource::Spec => format!(
                    "{file} is SOPS-encrypted and spec.decryption is not set: set spec.decryption (provider: sops, secretRef: a Secret with the age or PGP private key) to decrypt it"
                ),
                KeySource::Cli => {
                    format!("{file} is SOPS-encrypted: pass --decryption-key-file (an age key file or an armored PGP private key) or set SOPS_AGE_KEY_FILE")
                }
            }));
        };
        let decrypted = match format {
            Format::Yaml => {
                let text = String::from_utf8(bytes).map_err(|_| format!("{file} is not UTF-8"))?;
                match sops::decrypt_manifests(&file, &text, keys) {
                    Ok(Some(d)) => d,
                    Ok(None) => return Ok(text.into_bytes()),
                    Err(e) => return Err(self.fail(e.to_string())),
                }
            }
            f => sops::decrypt(&file, f, &bytes, keys).map_err(|e| self.fail(e.to_string()))?,
        };
        if let Ok(mut found) = self.found.lock() {
            found.plaintexts.extend(decrypted.plaintexts);
        }
        Ok(decrypted.bytes)
    }
}
