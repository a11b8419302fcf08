//! Putting driftless into a test cluster: its CRDs (waiting until they are Established),
//! the runner RBAC of a namespace taken from the real `driftless install --export`
//! manifests, and server-side apply of any object found by discovery.
//!
//! Why here: the integration tests and the controller benchmark set a cluster up the same
//! way; one copy keeps them from drifting apart (the tests unwrap these errors, the
//! benchmark reports them).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Client, discovery};
use serde_json::Value;

/// The field manager of everything tests and benchmarks apply.
pub const FIELD_MANAGER: &str = "driftless-tests";

/// How long a CRD may take to become Established.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors setting a cluster up.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is not what it should be.
    #[error("{0}")]
    Manifest(String),
    /// The API refused a request.
    #[error("{what}: {source}")]
    Api {
        /// What was attempted.
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// `driftless install --export` could not run or failed.
    #[error("driftless install --export: {0}")]
    Export(String),
    /// A CRD did not become Established in time.
    #[error("CRD {0} not Established within 30s")]
    NotEstablished(String),
}

/// Server-side applies one object of any kind (its resource found by discovery), forcing
/// conflicts, with [`FIELD_MANAGER`].
pub async fn apply_value(client: &Client, value: &Value) -> Result<(), InstallError> {
    let field = |key: &str| value[key].as_str().ok_or_else(|| InstallError::Manifest(format!("an object without {key}: {value}")));
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let name = value["metadata"]["name"].as_str().ok_or_else(|| InstallError::Manifest(format!("a {kind} without a name")))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|source| InstallError::Api { what: format!("discovering {api_version} {kind}"), source })?;
    let api: Api<DynamicObject> = match (caps.scope, value["metadata"]["namespace"].as_str()) {
        (discovery::Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    };
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(value))
        .await
        .map_err(|source| InstallError::Api { what: format!("applying {kind} {name}"), source })?;
    Ok(())
}

/// Server-side applies the CRDs (`*.yaml`) of `dir` and waits until each is Established,
/// so objects of their kinds can be created at once. Returns their names.
pub async fn install_crds(client: &Client, dir: &Path) -> Result<Vec<String>, InstallError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Read { path, source }
    };
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error(dir))? {
        let path = entry.map_err(read_error(dir))?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut names = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(read_error(&path))?;
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&text).map_err(|e| InstallError::Manifest(format!("{}: {e}", path.display())))?;
        let name = crd.metadata.name.clone().ok_or_else(|| InstallError::Manifest(format!("{}: a CRD without a name", path.display())))?;
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
            .await
            .map_err(|source| InstallError::Api { what: format!("applying CRD {name}"), source })?;
        names.push(name);
    }
    for name in &names {
        let established = kube::runtime::wait::conditions::is_crd_established();
        match tokio::time::timeout(ESTABLISHED_TIMEOUT, kube::runtime::wait::await_condition(api.clone(), name, established)).await {
            Err(_) => return Err(InstallError::NotEstablished(name.clone())),
            Ok(Err(e)) => return Err(InstallError::Manifest(format!("waiting for CRD {name}: {e}"))),
            Ok(Ok(_)) => {}
        }
    }
    Ok(names)
}

/// The runner ServiceAccount of `namespace` with the role `driftless install` gives it,
/// taken from the real install manifests (`driftless install --export --runner-namespaces
/// NAMESPACE`, run with the binary `driftless`): runner pods get exactly those rights.
/// Only the `driftless-runner` ClusterRole and the objects of that namespace are applied,
/// not the controller's Deployment.
pub async fn install_runner_rbac(client: &Client, driftless: &Path, namespace: &str) -> Result<(), InstallError> {
    let out = tokio::process::Command::new(driftless)
        .args(["install", "--export", "--runner-namespaces", namespace])
        .output()
        .await
        .map_err(|e| InstallError::Export(format!("cannot run {}: {e}", driftless.display())))?;
    if !out.status.success() {
        return Err(InstallError::Export(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let text = String::from_utf8(out.stdout).map_err(|e| InstallError::Export(format!("output is not UTF-8: {e}")))?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(doc).map_err(|e| InstallError::Export(format!("unreadable YAML: {e}")))?;
        let kind = value["kind"].as_str().unwrap_or_default();
        let name = value["metadata"]["name"].as_str().unwrap_or_default();
        let wanted = (kind == "ClusterRole" && name == "driftless-runner") || value["metadata"]["namespace"].as_str() == Some(namespace);
        if wanted {
            apply_value(client, &value).await?;
        }
    }
    Ok(())
}
