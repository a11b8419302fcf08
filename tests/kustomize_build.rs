//! `driftless build` against the real kustomize (`kubectl kustomize`, kustomize v5.5) on the
//! same inputs, object for object and in the same order: one fixture directory per supported
//! kustomization.yaml field under tests/fixtures/kustomize/. Plus the errors (unknown and
//! unsupported fields, invalid YAML) and postBuild substitution.
//!
//! Without kubectl the differential tests fail on CI (`CI=true`) and skip elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

fn fixtures() -> PathBuf {
    common::repo_root().join("tests/fixtures/kustomize")
}

fn kubectl() -> Option<PathBuf> {
    which::which("kubectl").ok().or_else(|| common::missing("kubectl (with its built-in kustomize v5)"))
}

fn driftless(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftless"))
        .args(args)
        // A build needs no store and no cluster.
        .env_remove("DRIFTLESS_STORE")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run driftless")
}

/// Every non-empty document of a YAML stream.
fn parse_stream(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("valid YAML output"))
        .filter(|v| !v.is_null())
        .collect()
}

fn build(dir: &Path) -> Vec<Value> {
    let out = driftless(&["build", &dir.to_string_lossy()]);
    assert!(out.status.success(), "driftless build {} failed:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
    parse_stream(&String::from_utf8_lossy(&out.stdout))
}

fn kustomize(kubectl: &Path, dir: &Path) -> Vec<Value> {
    let out = Command::new(kubectl).arg("kustomize").arg(dir).output().expect("run kubectl kustomize");
    assert!(out.status.success(), "kubectl kustomize {} failed:\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
    parse_stream(&String::from_utf8_lossy(&out.stdout))
}

fn id(v: &Value) -> String {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("");
    format!("{}/{}/{}", s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

/// Same objects, same order; on a difference, both versions of the first differing object.
fn assert_same(case: &str, ours: &[Value], theirs: &[Value]) {
    let ours_ids: Vec<String> = ours.iter().map(id).collect();
    let theirs_ids: Vec<String> = theirs.iter().map(id).collect();
    assert_eq!(ours_ids, theirs_ids, "{case}: driftless build (left) and kubectl kustomize (right) give different objects or order");
    for (a, b) in ours.iter().zip(theirs) {
        assert!(
            a == b,
            "{case}: {} differs\n--- driftless build\n{}--- kubectl kustomize\n{}",
            id(a),
            serde_yaml::to_string(a).unwrap_or_default(),
            serde_yaml::to_string(b).unwrap_or_default()
        );
    }
}

fn same_as_kustomize(case: &str) {
    let Some(kubectl) = kubectl() else { return };
    let dir = fixtures().join(case);
    let (ours, theirs) = (build(&dir), kustomize(&kubectl, &dir));
    assert!(!theirs.is_empty(), "{case}: the fixture builds to nothing");
    assert_same(case, &ours, &theirs);
}

macro_rules! differential {
    ($($name:ident => $case:literal),* $(,)?) => {$(
        #[test]
        fn $name() {
            same_as_kustomize($case);
        }
    )*};
}

differential! {
    resources_with_nested_bases_multi_document_files_lists_and_json_match_kustomize => "resources",
    namespace_matches_kustomize => "namespace",
    name_prefix_and_suffix_with_name_references_match_kustomize => "prefix-suffix",
    common_labels_match_kustomize => "common-labels",
    labels_with_selectors_templates_and_fields_match_kustomize => "labels",
    common_annotations_match_kustomize => "common-annotations",
    strategic_merge_patches_with_and_without_targets_match_kustomize => "patches-strategic",
    json6902_patches_with_target_selectors_match_kustomize => "patches-json6902",
    images_match_kustomize => "images",
    config_map_and_secret_generators_with_hashes_and_references_match_kustomize => "generators",
    replicas_match_kustomize => "replicas",
    fifo_sort_options_match_kustomize => "sort-fifo",
    custom_legacy_sort_options_match_kustomize => "sort-legacy-custom",
    an_overlay_over_a_base_matches_kustomize => "overlay/production",
    generator_merge_and_replace_over_a_base_match_kustomize => "generator-behavior",
    patch_directives_and_json_moves_match_kustomize => "patch-directives",
    binary_files_webhooks_and_volume_references_match_kustomize => "binary-data-and-services",
    components_with_nested_components_patches_generators_and_images_match_kustomize => "components/app",
    a_component_built_on_its_own_matches_kustomize => "components/features/tls-secret",
    replacements_with_selectors_rejects_wildcards_delimiters_and_create_match_kustomize => "replacements",
    replacements_in_a_base_a_component_and_an_overlay_match_kustomize => "replacements-overlay/prod",
}

/// Paths as Flux lists them for a directory without a kustomization: sorted, depth first,
/// manifest files and directories that hold a kustomization (not descended into).
fn flux_resources(dir: &Path, rel: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        if e.path().is_dir() {
            if e.path().join("kustomization.yaml").exists() {
                out.push(r.display().to_string());
            } else {
                flux_resources(&e.path(), &r, out);
            }
        } else if matches!(e.path().extension().and_then(|x| x.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(r.display().to_string());
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_plain_directory_builds_like_the_kustomization_flux_generates_for_it() {
    let Some(kubectl) = kubectl() else { return };
    let dir = fixtures().join("plain-directory");
    // kubectl needs a kustomization: write the one Flux would generate into a copy.
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&dir, copy.path());
    let mut resources = Vec::new();
    flux_resources(&dir, Path::new(""), &mut resources);
    let listed: String = resources.iter().map(|r| format!("- {r}\n")).collect();
    std::fs::write(copy.path().join("kustomization.yaml"), format!("resources:\n{listed}")).unwrap();
    let ours = build(&dir);
    assert_same("plain-directory", &ours, &kustomize(&kubectl, copy.path()));
    assert!(ours.iter().any(|o| id(o) == "ConfigMap/plain/kz-nested"), "a subdirectory's kustomization is built");
}

fn temp_kustomization(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn failing_build(dir: &Path) -> String {
    let out = driftless(&["build", &dir.to_string_lossy()]);
    assert!(!out.status.success(), "driftless build {} should fail, printed:\n{}", dir.display(), String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: \"1\"\n";

#[test]
fn an_unsupported_field_is_an_error_naming_the_file_and_the_field() {
    let dir = temp_kustomization(&[("kustomization.yaml", "resources: [cm.yaml]\nhelmCharts:\n- name: redis\n"), ("cm.yaml", CM)]);
    let stderr = failing_build(dir.path());
    let file = dir.path().join("kustomization.yaml");
    assert!(
        stderr.contains(&format!("{}: field \"helmCharts\" is not supported by driftless; see docs/KUSTOMIZE.md", file.display())),
        "{stderr}"
    );
    for field in ["vars", "transformers", "generators", "crds", "openapi", "configurations"] {
        let dir = temp_kustomization(&[("kustomization.yaml", &format!("resources: [cm.yaml]\n{field}: []\n")), ("cm.yaml", CM)]);
        assert!(failing_build(dir.path()).contains(&format!("field \"{field}\" is not supported")), "{field}");
    }
}

/// `kubectl kustomize` refuses `dir` too (the error case is kustomize's, not ours).
fn fails_in_kustomize_too(dir: &Path) {
    let Some(kubectl) = kubectl() else { return };
    let out = Command::new(kubectl).arg("kustomize").arg(dir).output().unwrap();
    assert!(!out.status.success(), "kubectl kustomize {} succeeded:\n{}", dir.display(), String::from_utf8_lossy(&out.stdout));
}

#[test]
fn components_flux_adds_to_a_kustomization_build_as_kustomize_builds_them_listed() {
    // kustomize-controller appends spec.components to the path's kustomization.yaml; this
    // is that file for spec.components: [../features/debug] (see src/kustomization/build.rs
    // for the build of a Kustomization object with it).
    let Some(kubectl) = kubectl() else { return };
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("components"), copy.path());
    let file = copy.path().join("app/kustomization.yaml");
    let text = std::fs::read_to_string(&file).unwrap().replace("- ../features/tls\n", "- ../features/tls\n- ../features/debug\n");
    std::fs::write(&file, text).unwrap();
    let dir = copy.path().join("app");
    let ours = build(&dir);
    assert_same("components + ../features/debug", &ours, &kustomize(&kubectl, &dir));
    let deployment = ours.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2, "the added component's replicas");
}

const COMPONENT: &str = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonLabels: {feature: on}\n";

#[test]
fn a_component_listed_in_resources_is_an_error_as_in_kustomize() {
    let dir = temp_kustomization(&[
        ("kustomization.yaml", "resources: [cm.yaml, feature]\n"),
        ("cm.yaml", CM),
        ("feature/kustomization.yaml", COMPONENT),
    ]);
    let stderr = failing_build(dir.path());
    let file = dir.path().join("feature/kustomization.yaml");
    assert!(stderr.contains(&format!("{}: is a Component", file.display())) && stderr.contains("`components`"), "{stderr}");
    fails_in_kustomize_too(dir.path());
}

#[test]
fn a_kustomization_listed_in_components_is_an_error_as_in_kustomize() {
    let dir = temp_kustomization(&[
        ("kustomization.yaml", "resources: [cm.yaml]\ncomponents: [base]\n"),
        ("cm.yaml", CM),
        ("base/kustomization.yaml", "resources: [cm.yaml]\n"),
        ("base/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n"),
    ]);
    let stderr = failing_build(dir.path());
    let file = dir.path().join("base/kustomization.yaml");
    assert!(stderr.contains(&format!("{}: is listed in `components`", file.display())) && stderr.contains("kind: Component"), "{stderr}");
    fails_in_kustomize_too(dir.path());
    // A missing component, or a file, are named in the field that lists them.
    for (entry, what) in [("gone", "gone"), ("cm.yaml", "not a directory")] {
        let dir = temp_kustomization(&[("kustomization.yaml", &format!("resources: [cm.yaml]\ncomponents: [{entry}]\n")), ("cm.yaml", CM)]);
        let stderr = failing_build(dir.path());
        assert!(stderr.contains("field \"components\"") && stderr.contains(what), "{entry}: {stderr}");
        fails_in_kustomize_too(dir.path());
    }
    // A Component with a Kustomization's apiVersion.
    let wrong = COMPONENT.replace("v1alpha1", "v1beta1");
    let dir = temp_kustomization(&[
        ("kustomization.yaml", "resources: [cm.yaml]\ncomponents: [c]\n"),
        ("cm.yaml", CM),
        ("c/kustomization.yaml", &wrong),
    ]);
    assert!(failing_build(dir.path()).contains("a Component must have apiVersion kustomize.config.k8s.io/v1alpha1"));
    fails_in_kustomize_too(dir.path());
}

#[test]
fn components_that_include_each_other_are_an_error() {
    let cycle = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents: [../b]\n";
    let back = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents: [../a]\n";
    let dir = temp_kustomization(&[
        ("kustomization.yaml", "resources: [cm.yaml]\ncomponents: [a]\n"),
        ("cm.yaml", CM),
        ("a/kustomization.yaml", cycle),
        ("b/kustomization.yaml", back),
    ]);
    assert!(failing_build(dir.path()).contains("cycle"));
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n";

#[test]
fn a_replacement_source_must_select_one_object_with_the_field_as_in_kustomize() {
    let cases = [
        ("source: {kind: Secret}", "nothing selected by kind Secret"),
        ("source: {kind: ConfigMap}", "selects 2 objects (ConfigMap/cm, ConfigMap/more)"),
        ("source: {kind: ConfigMap, name: cm, fieldPath: data.missing}", "\"data.missing\" is missing or empty in ConfigMap/cm"),
    ];
    for (source, message) in cases {
        let k =
            format!("resources: [cm.yaml, more.yaml, web.yaml]\nreplacements:\n- {source}\n  targets:\n  - select: {{kind: Deployment}}\n");
        let more = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: more\n";
        let dir = temp_kustomization(&[("kustomization.yaml", &k), ("cm.yaml", CM), ("more.yaml", more), ("web.yaml", DEPLOYMENT)]);
        let stderr = failing_build(dir.path());
        let file = dir.path().join("kustomization.yaml");
        assert!(stderr.contains(&format!("{}: field \"replacements\": replacements[0].source: ", file.display())), "{stderr}");
        assert!(stderr.contains(message), "{source}: {stderr}");
        fails_in_kustomize_too(dir.path());
    }
}

#[test]
fn a_missing_replacement_target_field_is_an_error_unless_created_as_in_kustomize() {
    let replacement = |options: &str| {
        format!(
            "resources: [cm.yaml, web.yaml]\nreplacements:\n- source: {{kind: ConfigMap, fieldPath: data.a}}\n  targets:\n  - select: {{kind: Deployment}}\n    fieldPaths: [metadata.annotations.a, spec.template.metadata.annotations.a]\n{options}"
        )
    };
    let dir = temp_kustomization(&[("kustomization.yaml", &replacement("")), ("cm.yaml", CM), ("web.yaml", DEPLOYMENT)]);
    let stderr = failing_build(dir.path());
    assert!(stderr.contains("unable to find field \"metadata.annotations.a\" in Deployment/web"), "{stderr}");
    fails_in_kustomize_too(dir.path());
    let dir = temp_kustomization(&[
        ("kustomization.yaml", &replacement("    options: {create: true}\n")),
        ("cm.yaml", CM),
        ("web.yaml", DEPLOYMENT),
    ]);
    let ours = build(dir.path());
    let deployment = ours.iter().find(|o| o["kind"] == "Deployment").unwrap();
    // Created from the string "1": read as YAML reads it, then annotations are written back
    // as strings (kustomize does both; a pod template's annotations it leaves alone).
    assert_eq!(deployment["metadata"]["annotations"]["a"], "1");
    assert_eq!(deployment["spec"]["template"]["metadata"]["annotations"]["a"], 1);
    let Some(kubectl) = kubectl() else { return };
    assert_same("replacement with create", &ours, &kustomize(&kubectl, dir.path()));
}

#[test]
fn an_unknown_field_is_an_error_and_kustomize_rejects_it_too() {
    let dir = temp_kustomization(&[("kustomization.yaml", "resources: [cm.yaml]\nnamePrefx: x-\n"), ("cm.yaml", CM)]);
    let stderr = failing_build(dir.path());
    assert!(stderr.contains("unknown field \"namePrefx\""), "{stderr}");
    let Some(kubectl) = kubectl() else { return };
    let out = Command::new(kubectl).arg("kustomize").arg(dir.path()).output().unwrap();
    assert!(!out.status.success(), "kubectl kustomize accepted an unknown field");
}

#[test]
fn a_misshapen_field_in_a_nested_kustomization_names_that_file_and_field() {
    let dir = temp_kustomization(&[
        ("kustomization.yaml", "resources: [base]\n"),
        ("base/kustomization.yaml", "resources: [cm.yaml]\nimages:\n- name: x\n  newTagg: y\n"),
        ("base/cm.yaml", CM),
    ]);
    let stderr = failing_build(dir.path());
    let file = dir.path().join("base/kustomization.yaml");
    assert!(stderr.contains(&format!("{}: field \"images\"", file.display())) && stderr.contains("newTagg"), "{stderr}");
}

#[test]
fn invalid_yaml_names_the_file_and_the_line() {
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata: {a: [1, 2}\n";
    let dir = temp_kustomization(&[("kustomization.yaml", "resources: [cm.yaml, bad.yaml]\n"), ("cm.yaml", CM), ("bad.yaml", bad)]);
    let stderr = failing_build(dir.path());
    assert!(stderr.contains(&format!("{}:5:", dir.path().join("bad.yaml").display())), "{stderr}");
    assert!(stderr.contains("invalid YAML"), "{stderr}");
    // A broken kustomization.yaml is named too.
    let dir = temp_kustomization(&[("kustomization.yaml", "resources:\n- cm.yaml\n  - oops: [\n")]);
    let stderr = failing_build(dir.path());
    assert!(stderr.contains(&format!("{}:", dir.path().join("kustomization.yaml").display())), "{stderr}");
}

#[test]
fn a_missing_resource_names_the_field_and_the_path() {
    let dir = temp_kustomization(&[("kustomization.yaml", "resources: [cm.yaml, gone.yaml]\n"), ("cm.yaml", CM)]);
    let stderr = failing_build(dir.path());
    assert!(stderr.contains("field \"resources\"") && stderr.contains("gone.yaml"), "{stderr}");
}

#[test]
fn a_patch_that_matches_nothing_is_an_error() {
    let patch =
        "  - patch: |-\n      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: other\n      data: {b: \"2\"}\n";
    let dir = temp_kustomization(&[("kustomization.yaml", &format!("resources: [cm.yaml]\npatches:\n{patch}")), ("cm.yaml", CM)]);
    let stderr = failing_build(dir.path());
    assert!(stderr.contains("field \"patches\"") && stderr.contains("ConfigMap/other"), "{stderr}");
}

const SUBSTITUTED: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-${ENV}
spec:
  replicas: ${REPLICAS:=2}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:${TAG:=1.27}
        args: ["echo $${HOME} $HOME"]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: script
  annotations:
    kustomize.toolkit.fluxcd.io/substitute: disabled
data:
  run.sh: echo ${NOT_A_VARIABLE}
"#;

#[test]
fn post_build_substitution_replaces_variables_and_defaults_and_keeps_escapes() {
    let dir = temp_kustomization(&[("kustomization.yaml", "resources: [app.yaml]\n"), ("app.yaml", SUBSTITUTED)]);
    let out = driftless(&["build", &dir.path().to_string_lossy(), "--substitute", "ENV=prod", "--substitute", "REPLICAS=3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let objects = parse_stream(&String::from_utf8_lossy(&out.stdout));
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["metadata"]["name"], "web-prod");
    assert_eq!(deployment["spec"]["replicas"], 3, "a substituted number is a number");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["args"][0], "echo ${HOME} $HOME");
    let script = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    assert_eq!(script["data"]["run.sh"], "echo ${NOT_A_VARIABLE}", "substitute: disabled is honored");
}

#[test]
fn a_missing_variable_without_default_names_the_variable_and_the_object() {
    let dir = temp_kustomization(&[("kustomization.yaml", "resources: [app.yaml]\n"), ("app.yaml", SUBSTITUTED)]);
    let out = driftless(&["build", &dir.path().to_string_lossy(), "--substitute", "REPLICAS=3"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Deployment/web-${ENV}: variable \"ENV\" is not set and has no default"), "{stderr}");
}

#[test]
fn without_substitutions_the_variables_are_printed_as_written() {
    let dir = temp_kustomization(&[("kustomization.yaml", "resources: [app.yaml]\n"), ("app.yaml", SUBSTITUTED)]);
    let objects = build(dir.path());
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["spec"]["replicas"], "${REPLICAS:=2}");
}
