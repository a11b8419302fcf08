//! HelmRepository and HelmChart sources against real parts: charts written by the tests and
//! packaged by the real helm CLI, served as an HTTP chart repository (`helm repo index`) on
//! 127.0.0.1 and pushed with `helm push` to the real distribution registry. Differential
//! where helm defines the answer: the artifact of a chart is what helm packaged (byte for
//! byte when nothing is merged), and `helm template` renders the artifact as it renders the
//! chart itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::helm::{ChartServer, Helm, write_chart};
use common::registry::{Mode, PASSWORD, Registry, USER};
use common::{World, git_repository};

fn helm_repository(name: &str, url: &str, extra: &str) -> String {
    format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: HelmRepository\nmetadata:\n  name: {name}\nspec:\n  url: {url}\n  interval: 1h\n{extra}"
    )
}

fn helm_chart(name: &str, chart: &str, version: &str, kind: &str, source: &str, extra: &str) -> String {
    format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: HelmChart\nmetadata:\n  name: {name}\nspec:\n  chart: {chart}\n  version: \"{version}\"\n  interval: 1h\n  sourceRef:\n    kind: {kind}\n    name: {source}\n{extra}"
    )
}

fn artifact(w: &World, kind: &str, name: &str) -> serde_json::Value {
    w.get(kind, name)["status"]["artifact"].clone()
}

/// The file of an artifact in the local store.
fn artifact_file(w: &World, artifact: &serde_json::Value) -> PathBuf {
    driftless::source::ArtifactStore::new(w.store().join("artifacts")).local_path(artifact["path"].as_str().unwrap()).unwrap()
}

fn message(w: &World, kind: &str, name: &str) -> (String, String) {
    let ready = w.condition_of(kind, name, "Ready");
    (ready["reason"].as_str().unwrap_or_default().to_string(), ready["message"].as_str().unwrap_or_default().to_string())
}

fn charts(helm: &Helm, server: &ChartServer, versions: &[&str]) {
    let src = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = versions
        .iter()
        .map(|v| {
            let dir = src.path().join(v);
            write_chart(&dir, "app", v, &[("values-prod.yaml", "greeting: hi-prod\n")])
        })
        .collect();
    server.publish(helm, &dirs.iter().map(PathBuf::as_path).collect::<Vec<&Path>>());
}

#[test]
fn a_chart_is_picked_by_range_from_an_http_repository_and_stored_as_helm_packaged_it() {
    let Some(w) = World::new() else { return };
    let Some(helm) = Helm::find() else { return };
    let server = ChartServer::start(None);
    charts(&helm, &server, &["1.0.0", "1.1.0", "2.0.0-rc.1"]);

    w.apply(&helm_repository("charts", &server.url(), "")).ok();
    w.driftless(&["reconcile", "helmrepository", "charts"]).ok();
    let index = artifact(&w, "helmrepository", "charts");
    let served = std::fs::read(server.dir.path().join("index.yaml")).unwrap();
    assert_eq!(index["revision"], common::registry::sha256(&served), "the revision is the digest of the index as served");

    w.apply(&helm_chart("app", "app", ">=1.0.0 <2.0.0", "HelmRepository", "charts", "")).ok();
    let out = w.driftless(&["reconcile", "helmchart", "app"]).ok();
    let a = artifact(&w, "helmchart", "app");
    assert_eq!(a["revision"], "1.1.0", "{}", out.all());
    let packaged = std::fs::read(server.dir.path().join("app-1.1.0.tgz")).unwrap();
    let stored = artifact_file(&w, &a);
    assert_eq!(std::fs::read(&stored).unwrap(), packaged, "a chart nothing is merged into is stored byte for byte");
    assert!(helm.template(&stored, &[]).contains("greeting: \"hello\""));
    assert_eq!(server.hits("/app-1.1.0.tgz"), 1);

    // Nothing changed: no download of the chart, the same artifact.
    w.driftless(&["reconcile", "helmrepository", "charts"]).ok();
    w.driftless(&["reconcile", "helmchart", "app"]).ok();
    assert_eq!(artifact(&w, "helmchart", "app"), a);
    assert_eq!(server.hits("/app-1.1.0.tgz"), 1, "an unchanged version downloads nothing");

    // A new version in range is published: the index moves and the chart follows.
    // `reconcile --with-source` fetches the repository's index first.
    charts(&helm, &server, &["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1"]);
    w.driftless(&["reconcile", "helmchart", "app", "--with-source"]).ok();
    assert_ne!(artifact(&w, "helmrepository", "charts")["revision"], index["revision"]);
    assert_eq!(artifact(&w, "helmchart", "app")["revision"], "1.2.0");
    let listed = w.driftless(&["get", "helmcharts"]).ok().stdout;
    assert!(listed.contains("app") && listed.contains("1.2.0"), "{listed}");

    // A range naming a prerelease takes it; `*` does not.
    w.apply(&helm_chart("rc", "app", ">=2.0.0-0", "HelmRepository", "charts", "")).ok();
    w.apply(&helm_chart("star", "app", "*", "HelmRepository", "charts", "")).ok();
    w.driftless(&["reconcile", "helmchart", "rc"]).ok();
    w.driftless(&["reconcile", "helmchart", "star"]).ok();
    assert_eq!(artifact(&w, "helmchart", "rc")["revision"], "2.0.0-rc.1");
    assert_eq!(artifact(&w, "helmchart", "star")["revision"], "1.2.0");

    // No version in range: the condition names the chart, the range and what there is.
    w.apply(&helm_chart("none", "app", ">=3", "HelmRepository", "charts", "")).ok();
    w.driftless(&["reconcile", "helmchart", "none"]).fails();
    let (reason, text) = message(&w, "helmchart", "none");
    assert_eq!(reason, "InvalidChartReference");
    assert!(text.contains("\"app\"") && text.contains(">=3") && text.contains("1.2.0") && text.contains("spec.version"), "{text}");
}

#[test]
fn values_files_are_merged_into_the_chart_as_helm_merges_them() {
    let Some(w) = World::new() else { return };
    let Some(helm) = Helm::find() else { return };
    let server = ChartServer::start(None);
    charts(&helm, &server, &["1.0.0"]);
    w.apply(&helm_repository("charts", &server.url(), "")).ok();
    w.driftless(&["reconcile", "helmrepository", "charts"]).ok();
    let extra = "  valuesFiles:\n  - values.yaml\n  - values-prod.yaml\n";
    w.apply(&helm_chart("prod", "app", "1.0.0", "HelmRepository", "charts", extra)).ok();
    w.driftless(&["reconcile", "helmchart", "prod"]).ok();
    let a = artifact(&w, "helmchart", "prod");
    let generation = w.get("helmchart", "prod")["metadata"]["generation"].as_i64().unwrap_or(1);
    assert_eq!(a["revision"], format!("1.0.0+{generation}"), "Flux's build metadata for merged values");

    // helm reads the artifact: its values are the merge, its version the revision, and it
    // renders as the original chart with both files given to helm.
    let stored = artifact_file(&w, &a);
    let original = server.dir.path().join("app-1.0.0.tgz");
    let values = helm.run(&["show", "values", stored.to_str().unwrap()]);
    assert!(values.contains("greeting: hi-prod") && values.contains("replicas: 1"), "{values}");
    let chart = helm.run(&["show", "chart", stored.to_str().unwrap()]);
    assert!(chart.contains(&format!("version: 1.0.0+{generation}")), "{chart}");
    let unpacked = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar").arg("-xzf").arg(&original).arg("-C").arg(unpacked.path()).status().unwrap();
    assert!(status.success());
    let prod = unpacked.path().join("app/values-prod.yaml");
    let expected = helm.template(&original, &["-f", prod.to_str().unwrap()]);
    let rendered = helm.template(&stored, &[]);
    assert_eq!(rendered.replace(&format!("1.0.0+{generation}"), "1.0.0"), expected);

    // A values file that is not there: refused by name, or skipped when asked.
    w.apply(&helm_chart("missing", "app", "1.0.0", "HelmRepository", "charts", "  valuesFiles:\n  - values-nope.yaml\n")).ok();
    w.driftless(&["reconcile", "helmchart", "missing"]).fails();
    let (reason, text) = message(&w, "helmchart", "missing");
    assert_eq!(reason, "ValuesFilesError");
    assert!(text.contains("values-nope.yaml") && text.contains("ignoreMissingValuesFiles"), "{text}");
    let skip = "  valuesFiles:\n  - values-nope.yaml\n  - values-prod.yaml\n  ignoreMissingValuesFiles: true\n";
    w.apply(&helm_chart("skip", "app", "1.0.0", "HelmRepository", "charts", skip)).ok();
    w.driftless(&["reconcile", "helmchart", "skip"]).ok();
}

#[test]
fn a_chart_directory_in_git_is_packaged_as_helm_packages_it() {
    let Some(w) = World::new() else { return };
    let Some(helm) = Helm::find() else { return };
    let repo = w.path().join("repo");
    write_chart(
        &repo.join("charts"),
        "lib",
        "0.1.0",
        &[("templates/lib.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lib\n")],
    );
    let deps = "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: lib\n  version: 0.1.0\n  repository: file://../lib\n";
    write_chart(&repo.join("charts"), "app", "1.0.0", &[("Chart.yaml", deps), (".helmignore", "*.md\n"), ("NOTES.md", "not packaged\n")]);
    let commit = w.commit(&[("README.md", "charts\n")], "charts");
    w.apply(&git_repository("repo", "main")).ok();
    w.driftless(&["reconcile", "gitrepository", "repo"]).ok();

    w.apply(&helm_chart("app", "./charts/app", "*", "GitRepository", "repo", "  reconcileStrategy: Revision\n")).ok();
    let out = w.driftless(&["reconcile", "helmchart", "app"]).ok();
    let a = artifact(&w, "helmchart", "app");
    assert_eq!(a["revision"], format!("1.0.0+{}", &commit[..12]), "{}", out.all());

    // What helm renders from the artifact is what it renders from the directory with its
    // dependency built by helm itself.
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp").arg("-r").arg(repo.join("charts")).arg(copy.path()).status().unwrap();
    assert!(status.success());
    let app = copy.path().join("charts/app");
    helm.run(&["dependency", "build", app.to_str().unwrap()]);
    let stored = artifact_file(&w, &a);
    let rendered = helm.template(&stored, &[]);
    assert_eq!(rendered.replace(&format!("1.0.0+{}", &commit[..12]), "1.0.0"), helm.template(&app, &[]));
    assert!(rendered.contains("name: lib"), "the local dependency is packaged: {rendered}");
    let listing = std::process::Command::new("tar").arg("-tzf").arg(&stored).output().unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(listing.contains("app/Chart.yaml") && !listing.contains("NOTES.md"), "{listing}");

    // A remote dependency that is not vendored: the condition says what to do.
    write_chart(
        &repo.join("charts"),
        "remote",
        "1.0.0",
        &[(
            "Chart.yaml",
            "apiVersion: v2\nname: remote\nversion: 1.0.0\ndependencies:\n- name: redis\n  version: 1.x\n  repository: https://charts.invalid\n",
        )],
    );
    w.commit(&[], "remote");
    w.driftless(&["reconcile", "gitrepository", "repo"]).ok();
    w.apply(&helm_chart("remote", "charts/remote", "*", "GitRepository", "repo", "")).ok();
    w.driftless(&["reconcile", "helmchart", "remote"]).fails();
    let (reason, text) = message(&w, "helmchart", "remote");
    assert_eq!(reason, "DependencyBuildError");
    assert!(text.contains("\"redis\"") && text.contains("helm dependency build"), "{text}");
}

#[test]
fn an_oci_repository_serves_charts_helm_pushed_with_credentials() {
    let Some(w) = World::new() else { return };
    let Some(helm) = Helm::find() else { return };
    let Some(reg) = Registry::start(Mode::Auth) else { return };
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    helm.run(&["registry", "login", &reg.host(), "--plain-http", "-u", USER, "-p", PASSWORD]);
    let mut packaged = std::collections::BTreeMap::new();
    for version in ["0.9.0", "1.0.0", "1.3.0"] {
        let dir = write_chart(&src.path().join(version), "app", version, &[]);
        let archive = helm.package(&dir, out.path());
        helm.run(&["push", archive.to_str().unwrap(), &format!("oci://{}/charts", reg.host()), "--plain-http"]);
        packaged.insert(version, std::fs::read(&archive).unwrap());
    }
    let secret =
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  username: {USER}\n  password: {PASSWORD}\n");
    w.apply(&secret).ok();
    let oci = "  type: oci\n  insecure: true\n  secretRef:\n    name: creds\n";
    w.apply(&helm_repository("oci", &format!("oci://{}/charts", reg.host()), oci)).ok();
    w.driftless(&["reconcile", "helmrepository", "oci"]).ok();
    let (reason, text) = message(&w, "helmrepository", "oci");
    assert_eq!(reason, "Succeeded", "{text}");
    assert!(artifact(&w, "helmrepository", "oci").is_null(), "an OCI repository has no index artifact");

    w.apply(&helm_chart("app", "app", "1.x", "HelmRepository", "oci", "")).ok();
    w.driftless(&["reconcile", "helmchart", "app"]).ok();
    let a = artifact(&w, "helmchart", "app");
    assert_eq!(a["revision"], "1.3.0");
    assert_eq!(std::fs::read(artifact_file(&w, &a)).unwrap(), packaged["1.3.0"], "the chart helm pushed, byte for byte");
    w.apply(&helm_chart("pinned", "app", "0.9.0", "HelmRepository", "oci", "")).ok();
    w.driftless(&["reconcile", "helmchart", "pinned"]).ok();
    assert_eq!(artifact(&w, "helmchart", "pinned")["revision"], "0.9.0");

    // Wrong credentials: the condition says so, names the object, holds no password.
    let wrong = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: wrong\nstringData:\n  username: tester\n  password: not-the-password\n";
    w.apply(wrong).ok();
    w.apply(&helm_repository(
        "bad",
        &format!("oci://{}/charts", reg.host()),
        "  type: oci\n  insecure: true\n  secretRef:\n    name: wrong\n",
    ))
    .ok();
    w.driftless(&["reconcile", "helmrepository", "bad"]).ok();
    w.apply(&helm_chart("denied", "app", "1.x", "HelmRepository", "bad", "")).ok();
    w.driftless(&["reconcile", "helmchart", "denied"]).fails();
    let (reason, text) = message(&w, "helmchart", "denied");
    assert_eq!(reason, "AuthenticationFailed", "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
    assert!(!w.store_text_outside_secrets_and_state().contains("not-the-password"));
}

#[test]
fn http_repositories_with_basic_auth_and_bad_specs_are_refused_by_field() {
    let Some(w) = World::new() else { return };
    let Some(helm) = Helm::find() else { return };
    let server = ChartServer::start(Some(("chartuser", "chartpass")));
    charts(&helm, &server, &["1.0.0"]);
    w.apply(&helm_repository("noauth", &server.url(), "")).ok();
    w.driftless(&["reconcile", "helmrepository", "noauth"]).fails();
    let (reason, text) = message(&w, "helmrepository", "noauth");
    assert_eq!(reason, "AuthenticationFailed", "{text}");
    assert!(text.contains("spec.secretRef"), "{text}");

    w.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: basic\nstringData:\n  username: chartuser\n  password: chartpass\n").ok();
    w.apply(&helm_repository("auth", &server.url(), "  secretRef:\n    name: basic\n")).ok();
    w.driftless(&["reconcile", "helmrepository", "auth"]).ok();
    w.apply(&helm_chart("app", "app", "1.0.0", "HelmRepository", "auth", "")).ok();
    w.driftless(&["reconcile", "helmchart", "app"]).ok();
    assert_eq!(artifact(&w, "helmchart", "app")["revision"], "1.0.0");

    // Not an index: a clear condition.
    std::fs::write(server.dir.path().join("index.yaml"), "<html>not an index</html>\n").unwrap();
    w.driftless(&["reconcile", "helmrepository", "auth"]).fails();
    let (reason, text) = message(&w, "helmrepository", "auth");
    assert_eq!(reason, "IndexationFailed", "{text}");

    // Bad specs are refused by field, on the local store as by the CRD.
    let cases = [
        (helm_repository("r1", "oci://127.0.0.1:1/charts", ""), "spec.type: oci"),
        (helm_repository("r2", &server.url(), "  insecure: true\n"), "spec.insecure"),
        (helm_repository("r3", &server.url(), "  accessFrom:\n    namespaceSelectors: []\n"), "accessFrom"),
        (helm_chart("c1", "app", "1.0.0", "HelmRepository", "auth", "  verify:\n    provider: cosign\n"), "spec.verify"),
        (helm_chart("c2", "app", "1.0.0", "OCIRepository", "x", ""), "spec.sourceRef.kind"),
        (helm_chart("c3", "app", "not a range", "HelmRepository", "auth", ""), "spec.version"),
        (helm_chart("c4", "../app", "*", "GitRepository", "auth", ""), "spec.chart"),
    ];
    for (yaml, field) in cases {
        let run = w.apply(&yaml).fails();
        assert!(run.all().contains(field), "{field}: {}", run.all());
    }
    let namespaced =
        helm_chart("c5", "app", "*", "HelmRepository", "auth", "").replace("    name: auth\n", "    name: auth\n    namespace: other\n");
    assert!(w.apply(&namespaced).fails().all().contains("spec.sourceRef.namespace"));
}

/// The controller on the testkit's apiserver reconciles both kinds: the CRDs, its rights
/// and its status writes hold for them as for the other sources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_makes_chart_artifacts_on_a_cluster() {
    use common::kube::{KubeWorld, condition_in};
    let Some(mut k) = KubeWorld::new("helm-src").await else { return };
    let Some(helm) = Helm::find() else { return };
    let server = ChartServer::start(None);
    charts(&helm, &server, &["0.1.0", "0.2.0"]);
    k.apply(&helm_repository("charts", &server.url(), "")).await;
    k.apply(&helm_chart("app", "app", "0.x", "HelmRepository", "charts", "")).await;
    k.apply(&helm_repository("oci", "oci://127.0.0.1:1/charts", "  type: oci\n  insecure: true\n")).await;
    k.start_controller(&[]);
    let ready = |o: &serde_json::Value| condition_in(o, "Ready")["status"] == "True";
    let long = std::time::Duration::from_secs(120);
    let index = k.wait_for("HelmRepository", "charts", "Ready", long, ready).await;
    assert!(index["status"]["artifact"]["revision"].as_str().unwrap().starts_with("sha256:"), "{index}");
    let chart = k.wait_for("HelmChart", "app", "Ready", long, ready).await;
    assert_eq!(chart["status"]["artifact"]["revision"], "0.2.0", "{chart}");
    assert_eq!(chart["status"]["observedGeneration"], chart["metadata"]["generation"]);
    let oci = k.wait_for("HelmRepository", "oci", "Ready", long, ready).await;
    assert!(oci["status"]["artifact"].is_null(), "{oci}");
}
