//! OCIRepository sources and `push`/`pull artifact` against a real OCI registry (the CNCF
//! distribution registry on 127.0.0.1): Flux's revision, an unchanged digest downloading
//! nothing, semver and digest selection, layer selection and `copy`, credentials, TLS, a
//! Terraform reading its module from an artifact, and artifacts shaped as Flux pushes them
//! (made with GNU tar and a hand-written manifest) read the same as driftless's own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::registry::{self, Mode, PASSWORD, Registry, USER};
use common::{MODULE, World, terraform_object};

const REPO: &str = "manifests/app";

fn oci_repository(name: &str, url: &str, reference: &str, extra: &str) -> String {
    format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: OCIRepository\nmetadata:\n  name: {name}\nspec:\n  url: {url}\n  interval: 1h\n  insecure: true\n  ref:\n    {reference}\n{extra}"
    )
}

fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// `driftless push artifact` of `files`; the pushed `oci://...@sha256:` reference.
fn push(w: &World, url_with_tag: &str, files: &[(&str, &str)], revision: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), files);
    let path = dir.path().to_str().unwrap().to_string();
    let mut args =
        vec!["push", "artifact", url_with_tag, "--path", &path, "--source", "https://github.com/example/app", "--revision", revision];
    args.extend_from_slice(extra);
    let out = w.driftless(&args).ok();
    out.stdout.trim().to_string()
}

fn artifact(w: &World, name: &str) -> serde_json::Value {
    w.get("ocirepository", name)["status"]["artifact"].clone()
}

fn unpacked(w: &World, artifact: &serde_json::Value) -> tempfile::TempDir {
    let dest = tempfile::tempdir().unwrap();
    let store = driftless::source::ArtifactStore::new(w.store().join("artifacts"));
    store.unpack(artifact["path"].as_str().unwrap(), artifact["digest"].as_str().unwrap(), dest.path()).unwrap();
    dest
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn a_pushed_artifact_is_pulled_with_flux_s_revision_and_an_unchanged_digest_downloads_nothing() {
    let Some(w) = World::new() else { return };
    let Some(reg) = Registry::start(Mode::Plain) else { return };
    let url = reg.url(REPO);
    let pushed = push(
        &w,
        &format!("{url}:v1.0.0"),
        &[("app/cm.yaml", "kind: ConfigMap\n"), ("README.md", "# docs\n")],
        "main@sha1:1111",
        &["--insecure-registry"],
    );
    let digest = pushed.rsplit_once('@').unwrap().1.to_string();
    assert!(pushed.starts_with(&format!("{url}@sha256:")), "{pushed}");

    w.apply(&oci_repository("app", &url, "tag: v1.0.0", "  ignore: \"*.md\"\n")).ok();
    let first = w.driftless(&["reconcile", "ocirepository", "app"]).ok();
    let a1 = artifact(&w, "app");
    assert_eq!(a1["revision"], format!("v1.0.0@{digest}"), "{}", first.all());
    let files = unpacked(&w, &a1);
    assert_eq!(read(files.path(), "app/cm.yaml"), "kind: ConfigMap\n");
    assert!(!files.path().join("README.md").exists(), "spec.ignore applies");
    assert_eq!(reg.blob_downloads(REPO), 1, "one layer downloaded");

    // Nothing changed: same artifact, no download, no second NewArtifact event.
    w.driftless(&["reconcile", "ocirepository", "app"]).ok();
    assert_eq!(artifact(&w, "app"), a1);
    assert_eq!(reg.blob_downloads(REPO), 1, "an unchanged digest downloads nothing");
    assert_eq!(w.count_events("app", &["NewArtifact"]), 1);

    // The tag moves: a new revision and artifact.
    let pushed =
        push(&w, &format!("{url}:v1.0.0"), &[("app/cm.yaml", "kind: ConfigMap # v2\n")], "main@sha1:2222", &["--insecure-registry"]);
    w.driftless(&["reconcile", "ocirepository", "app"]).ok();
    let a2 = artifact(&w, "app");
    assert_eq!(a2["revision"], format!("v1.0.0@{}", pushed.rsplit_once('@').unwrap().1));
    assert_ne!(a2["digest"], a1["digest"]);
    assert_eq!(read(unpacked(&w, &a2).path(), "app/cm.yaml"), "kind: ConfigMap # v2\n");
    let table = w.driftless(&["get", "ocirepository"]).ok().stdout;
    assert!(table.contains("app") && table.contains(a2["revision"].as_str().unwrap()), "{table}");
}

#[test]
fn semver_picks_the_highest_tag_the_filter_passes_and_a_digest_pins() {
    let Some(w) = World::new() else { return };
    let Some(reg) = Registry::start(Mode::Plain) else { return };
    let url = reg.url(REPO);
    let mut digests = std::collections::BTreeMap::new();
    for tag in ["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest"] {
        let pushed = push(&w, &format!("{url}:{tag}"), &[("version.txt", tag)], tag, &["--insecure-registry"]);
        digests.insert(tag, pushed.rsplit_once('@').unwrap().1.to_string());
    }
    let cases = [
        ("semver: \">=1.0.0 <2.0.0\"", "1.1.0"),
        ("semver: \">=1.0.0-0 <2.0.0\"\n    semverFilter: \".*-rc.*\"", "1.2.0-rc.1"),
        ("semver: \"*\"\n    tag: latest", "2.0.0"),
        ("tag: latest", "latest"),
    ];
    for (i, (reference, tag)) in cases.iter().enumerate() {
        let name = format!("sel{i}");
        w.apply(&oci_repository(&name, &url, reference, "")).ok();
        w.driftless(&["reconcile", "ocirepository", &name]).ok();
        let a = artifact(&w, &name);
        assert_eq!(a["revision"], format!("{tag}@{}", digests[tag]), "{reference}");
        assert_eq!(read(unpacked(&w, &a).path(), "version.txt"), *tag);
    }
    // A digest wins over a tag and is the revision on its own.
    let pinned = format!("digest: {}\n    tag: latest", digests["1.0.0"]);
    w.apply(&oci_repository("pinned", &url, &pinned, "")).ok();
    w.driftless(&["reconcile", "ocirepository", "pinned"]).ok();
    assert_eq!(artifact(&w, "pinned")["revision"], digests["1.0.0"]);

    // No tag in the range: a clear condition, and the object is not Ready.
    w.apply(&oci_repository("none", &url, "semver: \">=3.0.0\"", "")).ok();
    w.driftless(&["reconcile", "ocirepository", "none"]).fails();
    let ready = w.condition_of("ocirepository", "none", "Ready");
    assert_eq!(ready["reason"], "OCIArtifactPullFailed");
    assert!(ready["message"].as_str().unwrap().contains("no tag of") && ready["message"].as_str().unwrap().contains(">=3.0.0"), "{ready}");
}

#[test]
fn an_artifact_shaped_as_flux_pushes_it_is_read_and_driftless_pushes_flux_s_shape() {
    let Some(w) = World::new() else { return };
    let Some(reg) = Registry::start(Mode::Plain) else { return };
    let host = reg.host();
    // Made without driftless: GNU tar and a manifest with Flux's media types.
    let src = tempfile::tempdir().unwrap();
    write_tree(src.path(), &[("deploy/app.yaml", "kind: Deployment\n"), ("deploy/nested/x.txt", "x\n")]);
    let digest = registry::push_as_flux(&host, "flux/app", "v1", src.path(), "main@sha1:abcd");
    w.apply(&oci_repository("flux", &reg.url("flux/app"), "tag: v1", "")).ok();
    w.driftless(&["reconcile", "ocirepository", "flux"]).ok();
    let a = artifact(&w, "flux");
    assert_eq!(a["revision"], format!("v1@{digest}"));
    let files = unpacked(&w, &a);
    assert_eq!(read(files.path(), "deploy/app.yaml"), "kind: Deployment\n");
    assert_eq!(read(files.path(), "deploy/nested/x.txt"), "x\n");

    // `copy` keeps the layer as it is: the artifact's digest is the layer's.
    let layer = registry::get_manifest(&host, "flux/app", "v1")["layers"][0].clone();
    let copy = "  layerSelector:\n    mediaType: application/vnd.cncf.flux.content.v1.tar+gzip\n    operation: copy\n";
    w.apply(&oci_repository("copied", &reg.url("flux/app"), "tag: v1", copy)).ok();
    w.driftless(&["reconcile", "ocirepository", "copied"]).ok();
    assert_eq!(artifact(&w, "copied")["digest"], layer["digest"]);

    // A media type the artifact has no layer of: a clear condition naming what it has.
    let wrong = "  layerSelector:\n    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip\n";
    w.apply(&oci_repository("wrong", &reg.url("flux/app"), "tag: v1", wrong)).ok();
    w.driftless(&["reconcile", "ocirepository", "wrong"]).fails();
    let ready = w.condition_of("ocirepository", "wrong", "Ready");
    assert_eq!(ready["reason"], "OCIArtifactLayerOperationFailed");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("helm.chart") && message.contains("flux.content") && message.contains("spec.layerSelector.mediaType"),
        "{message}"
    );

    // What driftless pushes is Flux's shape, and GNU tar unpacks its layer to the same tree.
    let pushed = push(
        &w,
        &format!("{}:v2", reg.url("flux/app")),
        &[("deploy/app.yaml", "kind: Deployment\n")],
        "main@sha1:ef01",
        &["--insecure-registry", "-a", "team=platform"],
    );
    let manifest = registry::get_manifest(&host, "flux/app", "v2");
    assert_eq!(registry::sha256(&serde_json::to_vec(&manifest).unwrap()).len(), 71);
    assert!(pushed.ends_with(manifest_digest(&host, "flux/app", "v2").as_str()), "{pushed}");
    assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.cncf.flux.config.v1+json");
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.cncf.flux.content.v1.tar+gzip");
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.source"], "https://github.com/example/app");
    assert_eq!(annotations["org.opencontainers.image.revision"], "main@sha1:ef01");
    assert_eq!(annotations["team"], "platform");
    assert!(annotations["org.opencontainers.image.created"].as_str().unwrap().ends_with('Z'));
    let blob = registry::get_blob(&host, "flux/app", manifest["layers"][0]["digest"].as_str().unwrap());
    let out = tempfile::tempdir().unwrap();
    registry::untar_gz(&blob, out.path());
    assert_eq!(read(out.path(), "deploy/app.yaml"), "kind: Deployment\n");

    // `pull artifact` unpacks either tool's artifact.
    let pulled = tempfile::tempdir().unwrap();
    let target = pulled.path().to_str().unwrap();
    w.driftless(&["pull", "artifact", &format!("{}:v1", reg.url("flux/app")), "--output", target, "--insecure-registry"]).ok();
    assert_eq!(read(pulled.path(), "deploy/nested/x.txt"), "x\n");
}

fn manifest_digest(host: &str, repository: &str, tag: &str) -> String {
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let (_, headers, _) = registry::raw(host, "HEAD", &format!("/v2/{repository}/manifests/{tag}"), &[("Accept", accept)], b"");
    headers.into_iter().find(|(k, _)| k == "docker-content-digest").map(|(_, v)| v).unwrap()
}

#[test]
fn credentials_come_from_a_docker_config_secret_and_refusals_say_what_to_fix() {
    let Some(w) = World::new() else { return };
    let Some(reg) = Registry::start(Mode::Auth) else { return };
    let url = reg.url(REPO);
    let creds = format!("{USER}:{PASSWORD}");
    // Without credentials the push is refused, with them it goes through.
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("a.yaml", "a: 1\n")]);
    let path = dir.path().to_str().unwrap();
    let tagged = format!("{url}:v1");
    let refused =
        w.driftless(&["push", "artifact", &tagged, "--path", path, "--source", "s", "--revision", "r", "--insecure-registry"]).fails();
    assert!(refused.stderr.contains("refused access") && refused.stderr.contains("credentials and none are given"), "{}", refused.all());
    push(&w, &tagged, &[("a.yaml", "a: 1\n")], "r", &["--insecure-registry", "--creds", &creds]);

    // No secretRef: AuthenticationFailed, naming spec.secretRef.
    w.apply(&oci_repository("anon", &url, "tag: v1", "")).ok();
    w.driftless(&["reconcile", "ocirepository", "anon"]).fails();
    let ready = w.condition_of("ocirepository", "anon", "Ready");
    assert_eq!(ready["reason"], "AuthenticationFailed", "{ready}");
    assert!(ready["message"].as_str().unwrap().contains("spec.secretRef"), "{ready}");

    // A wrong password: refused, and the password never shows.
    w.apply(&reg.docker_secret("wrong", USER, "not-the-password-9431")).ok();
    w.apply(&oci_repository("wrong", &url, "tag: v1", "  secretRef:\n    name: wrong\n")).ok();
    w.driftless(&["reconcile", "ocirepository", "wrong"]).fails();
    let ready = w.condition_of("ocirepository", "wrong", "Ready");
    assert_eq!(ready["reason"], "AuthenticationFailed", "{ready}");
    assert!(ready["message"].as_str().unwrap().contains("credentials were refused"), "{ready}");

    // The right ones: Ready.
    w.apply(&reg.docker_secret("right", USER, PASSWORD)).ok();
    w.apply(&oci_repository("right", &url, "tag: v1", "  secretRef:\n    name: right\n")).ok();
    w.driftless(&["reconcile", "ocirepository", "right"]).ok();
    assert_eq!(read(unpacked(&w, &artifact(&w, "right")).path(), "a.yaml"), "a: 1\n");

    // A tag that is not there, a Secret that is not a docker config.
    w.apply(&oci_repository("missing", &url, "tag: v9", "  secretRef:\n    name: right\n")).ok();
    w.driftless(&["reconcile", "ocirepository", "missing"]).fails();
    let ready = w.condition_of("ocirepository", "missing", "Ready");
    assert_eq!(ready["reason"], "OCIArtifactPullFailed");
    assert!(ready["message"].as_str().unwrap().contains("tag \"v9\" not found"), "{ready}");
    w.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: plain\nstringData:\n  username: tester\n  password: s3cret\n").ok();
    w.apply(&oci_repository("plain", &url, "tag: v1", "  secretRef:\n    name: plain\n")).ok();
    w.driftless(&["reconcile", "ocirepository", "plain"]).fails();
    let ready = w.condition_of("ocirepository", "plain", "Ready");
    assert!(ready["message"].as_str().unwrap().contains(".dockerconfigjson"), "{ready}");

    let everything = w.store_text_outside_secrets_and_state();
    for secret in [PASSWORD, "not-the-password-9431"] {
        assert!(!everything.contains(secret), "{secret} leaked into the store");
    }
}

#[test]
fn a_tls_registry_is_trusted_through_cert_secret_ref() {
    let Some(w) = World::new() else { return };
    let Some(plain) = Registry::start(Mode::Plain) else { return };
    push(&w, &format!("{}:v1", plain.url(REPO)), &[("a.yaml", "a: 1\n")], "r", &["--insecure-registry"]);
    let data = plain.data_dir();
    let Some(tls) = Registry::start_on(Mode::Tls, Some(&data)) else { return };
    let url = tls.url(REPO);
    let https = |name: &str, extra: &str| oci_repository(name, &url, "tag: v1", extra).replace("  insecure: true\n", "");

    w.apply(&https("untrusted", "")).ok();
    w.driftless(&["reconcile", "ocirepository", "untrusted"]).fails();
    let ready = w.condition_of("ocirepository", "untrusted", "Ready");
    assert!(ready["message"].as_str().unwrap().contains("ca.crt of spec.certSecretRef"), "{ready}");

    let ca = tls.ca_pem.clone().unwrap().replace('\n', "\n    ");
    w.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: registry-ca\nstringData:\n  ca.crt: |\n    {ca}\n")).ok();
    w.apply(&https("trusted", "  certSecretRef:\n    name: registry-ca\n")).ok();
    w.driftless(&["reconcile", "ocirepository", "trusted"]).ok();
    assert_eq!(read(unpacked(&w, &artifact(&w, "trusted")).path(), "a.yaml"), "a: 1\n");

    // Without `insecure`, plain HTTP is never tried: the https handshake with a plain server fails.
    w.apply(&oci_repository("nohttp", &plain.url(REPO), "tag: v1", "").replace("  insecure: true\n", "")).ok();
    w.driftless(&["reconcile", "ocirepository", "nohttp"]).fails();
    assert_eq!(w.condition_of("ocirepository", "nohttp", "Ready")["reason"], "OCIArtifactPullFailed");
}

#[test]
fn a_terraform_module_from_an_oci_artifact_is_planned_and_applied() {
    let Some(w) = World::new() else { return };
    let Some(reg) = Registry::start(Mode::Plain) else { return };
    let url = reg.url("modules/app");
    push(&w, &format!("{url}:1.0.0"), &[("infra/main.tf", MODULE)], "main@sha1:1", &["--insecure-registry"]);
    w.apply(&oci_repository("modules", &url, "semver: \"1.x\"", "")).ok();
    w.apply(&terraform_object("app", "modules", "./infra", "auto", "", "").replace("kind: GitRepository", "kind: OCIRepository")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
    assert_eq!(w.get("terraform", "app")["status"]["lastAppliedRevision"], artifact(&w, "modules")["revision"]);

    // A new version in the range is pulled with the Terraform and applied.
    let changed = MODULE.replace("content = var.content\n}", "content = \"${var.content}!\"\n}");
    push(&w, &format!("{url}:1.1.0"), &[("infra/main.tf", &changed)], "main@sha1:2", &["--insecure-registry"]);
    w.driftless(&["reconcile", "terraform", "app", "--with-source"]).ok();
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello!");
    assert!(artifact(&w, "modules")["revision"].as_str().unwrap().starts_with("1.1.0@sha256:"));
}

#[test]
fn bad_oci_specs_are_refused_by_field() {
    let Some(w) = World::new() else { return };
    for (spec, field) in [("oci://127.0.0.1:5000/app:v1", "spec.url"), ("https://127.0.0.1:5000/app", "spec.url")] {
        let refused = w.apply(&oci_repository("bad", spec, "tag: v1", "")).fails();
        assert!(refused.all().contains(field), "{spec}: {}", refused.all());
    }
    let refused = w.apply(&oci_repository("bad", "oci://127.0.0.1:5000/app", "semver: \">=\"", "")).fails();
    assert!(refused.all().contains("ref.semver"), "{}", refused.all());
    for (extra, field) in [
        ("  verify:\n    provider: cosign\n", "spec.verify"),
        ("  provider: aws\n", "spec.provider"),
        ("  serviceAccountName: puller\n", "spec.serviceAccountName"),
        ("  proxySecretRef:\n    name: p\n", "spec.proxySecretRef"),
    ] {
        let refused = w.apply(&oci_repository("bad", "oci://127.0.0.1:5000/app", "tag: v1", extra)).fails();
        assert!(refused.all().contains(field), "{field}: {}", refused.all());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_applies_a_kustomization_from_an_oci_artifact() {
    use common::kube::{KubeWorld, condition_in};
    let Some(mut k) = KubeWorld::new("oci-ks").await else { return };
    let Some(reg) = Registry::start(Mode::Plain) else { return };
    let url = reg.url("deploy/web");
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-oci\ndata:\n  key: one\n";
    push(&k.world, &format!("{url}:v1"), &[("deploy/cm.yaml", cm)], "main@sha1:1", &["--insecure-registry"]);
    k.apply(&oci_repository("web", &url, "tag: v1", "")).await;
    let ks = format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: web\nspec:\n  sourceRef:\n    kind: OCIRepository\n    name: web\n  path: ./deploy\n  interval: 1h\n  prune: true\n  targetNamespace: {}\n",
        k.ns.name
    );
    k.apply(&ks).await;
    k.start_controller(&[]);
    let ready = |o: &serde_json::Value| condition_in(o, "Ready")["status"] == "True";
    let source = k.wait_for("OCIRepository", "web", "Ready", std::time::Duration::from_secs(120), ready).await;
    let revision = source["status"]["artifact"]["revision"].as_str().unwrap().to_string();
    assert!(revision.starts_with("v1@sha256:"), "{source}");
    let applied = k.wait_for("Kustomization", "web", "Ready", std::time::Duration::from_secs(120), ready).await;
    assert_eq!(applied["status"]["lastAppliedRevision"], revision.as_str());
    assert_eq!(k.get("ConfigMap", "from-oci").await["data"]["key"], "one");
}
