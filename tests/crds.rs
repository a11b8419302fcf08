//! The CRD YAML in `crds/` is what the API types render, and every CRD has the shape the
//! controller relies on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crds")
}

#[test]
fn crds_in_the_repository_are_what_the_api_types_render() {
    let rendered: BTreeMap<String, String> = driftless::api::crds()
        .iter()
        .map(|crd| (format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default()), serde_yaml::to_string(crd).unwrap()))
        .collect();
    let on_disk: BTreeMap<String, String> = std::fs::read_dir(crds_dir())
        .unwrap_or_else(|e| panic!("crds/ is stale: run `cargo run -- crds` ({}: {e})", crds_dir().display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&on_disk), names(&rendered), "crds/ is stale: run `cargo run -- crds` (files differ)");
    for (file, yaml) in &rendered {
        assert!(on_disk[file] == *yaml, "crds/ is stale: run `cargo run -- crds` ({file} differs from the API types)");
    }
}

#[test]
fn every_crd_is_driftless_dev_v1alpha1_with_a_status_subresource() {
    let crds = driftless::api::crds();
    assert!(!crds.is_empty());
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        assert_eq!(crd.spec.group, "driftless.dev", "{name}");
        assert_eq!(name, format!("{}.driftless.dev", crd.spec.names.plural), "{name}");
        assert_eq!(crd.spec.versions.len(), 1, "{name}: one version");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1", "{name}");
        assert!(version.served && version.storage, "{name}: served and stored");
        assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "{name}: status subresource");
        assert!(version.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).is_some(), "{name}: schema");
    }
}
