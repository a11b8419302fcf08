//! A Terraform's `spec.decryption`: the SOPS-encrypted var files of its source (its
//! `tfVarsFiles`, and the ones terraform loads from the module directory by name) are
//! decrypted here, where the keys are, and reach the runner as files replacing their
//! encrypted form (`FileLocation::Source`), whose values the runner scrubs from all it
//! reports. The runner refuses an encrypted var file that comes without its plaintext, so
//! ciphertext never becomes a variable's value.

use std::path::Path;

use crate::api::{Artifact, Terraform};
use crate::sops;
use crate::store::{ObjectStore, StoreError};
use driftless_core::artifact::ArtifactStore;
use driftless_core::contract::{FileLocation, RunFile};

/// The var files of `object` a run reads, as paths from the source's root: `tfVarsFiles`,
/// then the module directory's own, once each.
pub fn candidates(object: &Terraform, src: &Path) -> Vec<String> {
    let mut out: Vec<String> = object.spec.tf_vars_files.iter().map(|f| f.trim_start_matches("./").to_string()).collect();
    let module = object.spec.path.trim_start_matches("./").trim_end_matches('/');
    let module = if module == "." { "" } else { module };
    let mut auto: Vec<String> = std::fs::read_dir(src.join(module))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().to_str().filter(|n| driftless_core::engine::is_auto_var_file(n)).map(str::to_string))
        .map(|n| if module.is_empty() { n } else { format!("{module}/{n}") })
        .collect();
    auto.sort();
    for a in auto {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The decrypted var files of a run of `object` on `artifact`: none without
/// `spec.decryption`; the inner `Err` names the file and what its decryption needs.
pub async fn var_files<S: ObjectStore>(
    store: &S,
    artifacts: &ArtifactStore,
    object: &Terraform,
    artifact: &Artifact,
) -> Result<Result<Vec<RunFile>, String>, StoreError> {
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    let keys = match crate::reconcile::decryption::keys(store, object.spec.decryption.as_ref(), namespace).await? {
        Ok(Some(keys)) => keys,
        Ok(None) => return Ok(Ok(Vec::new())),
        Err(message) => return Ok(Err(message)),
    };
    let dir = match tempfile::Builder::new().prefix("driftless-decrypt-").tempdir() {
        Ok(d) => d,
        Err(e) => return Ok(Err(format!("spec.decryption: a temporary directory: {e}"))),
    };
    if let Err(e) = artifacts.unpack(&artifact.path, &artifact.digest, dir.path()) {
        return Ok(Err(format!("spec.decryption: cannot read the source artifact: {e}")));
    }
    let mut files = Vec::new();
    for path in candidates(object, dir.path()) {
        let Ok(bytes) = std::fs::read(dir.path().join(&path)) else { continue };
        let Some(format) = sops::Format::of_encrypted(Path::new(&path), &bytes) else { continue };
        match sops::decrypt(&path, format, &bytes, &keys) {
            Ok(decrypted) => files.push(RunFile { location: FileLocation::Source, path, content: decrypted.bytes }),
            Err(e) => return Ok(Err(format!("spec.decryption: {e}"))),
        }
    }
    Ok(Ok(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_var_files_are_the_listed_ones_then_those_terraform_loads_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("infra")).expect("infra");
        for f in ["infra/terraform.tfvars", "infra/b.auto.tfvars.json", "infra/a.auto.tfvars", "infra/other.tfvars", "infra/main.tf"] {
            std::fs::write(dir.path().join(f), "").expect("file");
        }
        let object: Terraform = serde_json::from_value(serde_json::json!({
            "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
            "metadata": { "name": "app", "namespace": "team" },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "repo" }, "interval": "1h", "path": "./infra",
                      "tfVarsFiles": ["./infra/other.tfvars", "infra/a.auto.tfvars"] }
        }))
        .expect("terraform");
        assert_eq!(
            candidates(&object, dir.path()),
            ["infra/other.tfvars", "infra/a.auto.tfvars", "infra/b.auto.tfvars.json", "infra/terraform.tfvars"]
        );
    }
}
