//! The keys of a `spec.decryption` (Flux's): the `*.agekey` (age identities) and `*.asc`
//! (armored OpenPGP private keys) entries of the Secret it names, for every kind that
//! decrypts (Kustomization manifests, Terraform var files).

use k8s_openapi::api::core::v1::Secret;

use crate::api::Decryption;
use crate::sops::Keys;
use crate::store::{ObjectStore, StoreError};

/// The keys of `decryption` in `namespace`: `Ok(None)` without a decryption, the inner
/// `Err` the message of a missing Secret or a key that does not parse.
pub async fn keys<S: ObjectStore>(
    store: &S,
    decryption: Option<&Decryption>,
    namespace: &str,
) -> Result<Result<Option<Keys>, String>, StoreError> {
    let Some(decryption) = decryption else { return Ok(Ok(None)) };
    let Some(secret_ref) = &decryption.secret_ref else { return Ok(Ok(Some(Keys::default()))) };
    let Some(secret) = store.get::<Secret>(namespace, &secret_ref.name).await? else {
        return Ok(Err(format!(
            "spec.decryption.secretRef: Secret {namespace}/{} not found; create it with the age (*.agekey) or PGP (*.asc) private keys",
            secret_ref.name
        )));
    };
    let entries = match driftless_core::secret::secret_strings(&secret) {
        Ok(e) => e,
        Err(k) => return Ok(Err(format!("spec.decryption.secretRef: Secret {namespace}/{} key {k:?} is not text", secret_ref.name))),
    };
    let mut keys = Keys::default();
    for (name, value) in &entries {
        let shown = format!("Secret {namespace}/{} key {name}", secret_ref.name);
        let added = if name.ends_with(".agekey") {
            keys.add_age(&shown, value)
        } else if name.ends_with(".asc") {
            keys.add_pgp(&shown, value)
        } else {
            continue;
        };
        if let Err(e) = added {
            return Ok(Err(format!("spec.decryption.secretRef: {e}")));
        }
    }
    Ok(Ok(Some(keys)))
}
