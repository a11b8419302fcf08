//! GitRepository `include` on a local store, through the CLI a user runs: one
//! GitRepository's artifact copied into another's, what status says about it, and a new
//! commit of the included repository making the includer's artifact again.
//!
//! Needs the `git` CLI and `tar`; with `CI=true` a missing tool fails the test.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(!in_ci(), "{tool} is required and missing; install it in CI");
        eprintln!("skipping: {tool} is not installed");
    }
    found
}

struct Repo(tempfile::TempDir);

impl Repo {
    fn new(files: &[(&str, &str)]) -> Repo {
        let repo = Repo(tempfile::tempdir().expect("tempdir"));
        repo.git(&["init", "-q", "-b", "main"]);
        repo.commit(files);
        repo
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(self.0.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn commit(&self, files: &[(&str, &str)]) -> String {
        for (path, content) in files {
            let p = self.0.path().join(path);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, content).expect("write");
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", "change"]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn url(&self) -> String {
        format!("file://{}", self.0.path().display())
    }
}

struct Store(tempfile::TempDir);

impl Store {
    fn driftless(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_driftless"))
            .arg("--store")
            .arg(self.0.path().join("store"))
            .args(args)
            .env_remove("DRIFTLESS_STORE")
            .output()
            .expect("driftless");
        (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }

    fn apply(&self, yaml: &str) {
        let file = self.0.path().join("objects.yaml");
        fs::write(&file, yaml).expect("write");
        let (ok, out) = self.driftless(&["apply", "-f", file.to_str().expect("utf8")]);
        assert!(ok, "{out}");
    }

    fn reconcile(&self, name: &str) -> (bool, String) {
        self.driftless(&["reconcile", "gitrepository", name])
    }

    fn get(&self, name: &str) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_driftless"))
            .arg("--store")
            .arg(self.0.path().join("store"))
            .args(["get", "gitrepository", name, "-o", "json"])
            .output()
            .expect("driftless");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// The files of `name`'s artifact, unpacked with tar from the file its status names.
    fn artifact_files(&self, name: &str) -> BTreeMap<String, String> {
        let object = self.get(name);
        let url = object["status"]["artifact"]["url"].as_str().expect("artifact url").to_string();
        let path = PathBuf::from(url.strip_prefix("file://").expect("a local store's artifacts are file:// URLs"));
        let out = tempfile::tempdir().expect("tempdir");
        let status = Command::new("tar").arg("-xzf").arg(&path).arg("-C").arg(out.path()).status().expect("tar");
        assert!(status.success());
        let mut files = BTreeMap::new();
        walk(out.path(), out.path(), &mut files);
        files
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).expect("ls") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.insert(path.strip_prefix(root).expect("rel").display().to_string(), fs::read_to_string(&path).expect("read"));
        }
    }
}

fn ready(object: &Value) -> (String, String, String) {
    let c = object["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready").cloned().unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (text(&c["status"]), text(&c["reason"]), text(&c["message"]))
}

#[test]
fn an_included_repository_is_copied_in_and_its_new_commit_makes_the_artifact_again() {
    if !have("git") || !have("tar") {
        return;
    }
    let lib = Repo::new(&[("modules/net/main.tf", "# net v1\n"), ("README.md", "lib readme\n")]);
    let app = Repo::new(&[("main.tf", "module \"net\" { source = \"./vendor/net\" }\n")]);
    let app_sha = app.git(&["rev-parse", "HEAD"]);
    let store = Store(tempfile::tempdir().expect("tempdir"));
    store.apply(&format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata: {{name: app}}\nspec:\n  url: {}\n  interval: 1h\n  ref: {{branch: main}}\n  include:\n  - repository: {{name: lib}}\n    fromPath: modules/net\n    toPath: vendor/net\n  - repository: {{name: lib}}\n---\napiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata: {{name: lib}}\nspec:\n  url: {}\n  interval: 1h\n  ref: {{branch: main}}\n",
        app.url(),
        lib.url()
    ));

    // The included repository has no artifact yet: not Ready, saying which and why.
    let (_, out) = store.reconcile("app");
    let (status, reason, message) = ready(&store.get("app"));
    assert_eq!((status.as_str(), reason.as_str()), ("False", "IncludeUnavailable"), "{message}\n{out}");
    assert!(message.contains("spec.include[0]") && message.contains("default/lib") && message.contains("no artifact"), "{message}");

    let (ok, out) = store.reconcile("lib");
    assert!(ok, "{out}");
    let (ok, out) = store.reconcile("app");
    assert!(ok, "{out}");
    let first = store.get("app");
    assert_eq!(ready(&first).0, "True", "{first}");
    assert_eq!(first["status"]["artifact"]["revision"], format!("main@sha1:{app_sha}"), "the revision is the includer's own commit");
    let lib_status = store.get("lib")["status"]["artifact"].clone();
    let included = first["status"]["includedArtifacts"].as_array().expect("includedArtifacts").clone();
    assert_eq!(included.len(), 2);
    assert_eq!(included[0]["revision"], lib_status["revision"]);
    assert_eq!(included[0]["digest"], lib_status["digest"]);
    let files = store.artifact_files("app");
    assert_eq!(files.get("main.tf").map(String::as_str), Some("module \"net\" { source = \"./vendor/net\" }\n"));
    assert_eq!(files.get("vendor/net/main.tf").map(String::as_str), Some("# net v1\n"), "fromPath to toPath: {files:?}");
    assert_eq!(files.get("lib/README.md").map(String::as_str), Some("lib readme\n"), "toPath defaults to the name: {files:?}");
    assert!(!files.contains_key("vendor/net/README.md"));

    // Nothing changed anywhere: the same artifact.
    store.reconcile("app");
    assert_eq!(store.get("app")["status"]["artifact"]["digest"], first["status"]["artifact"]["digest"]);

    // A new commit of the included repository: same revision, a new digest and content.
    lib.commit(&[("modules/net/main.tf", "# net v2\n")]);
    let (ok, out) = store.reconcile("lib");
    assert!(ok, "{out}");
    let (ok, out) = store.reconcile("app");
    assert!(ok, "{out}");
    let second = store.get("app");
    assert_eq!(second["status"]["artifact"]["revision"], first["status"]["artifact"]["revision"]);
    assert_ne!(second["status"]["artifact"]["digest"], first["status"]["artifact"]["digest"]);
    assert_eq!(second["status"]["includedArtifacts"][0]["revision"], store.get("lib")["status"]["artifact"]["revision"]);
    assert_eq!(store.artifact_files("app").get("vendor/net/main.tf").map(String::as_str), Some("# net v2\n"));
}

#[test]
fn an_include_that_leaves_the_artifact_or_names_itself_is_refused_by_field() {
    let store = Store(tempfile::tempdir().expect("tempdir"));
    let file = store.0.path().join("bad.yaml");
    fs::write(
        &file,
        "apiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata: {name: app}\nspec:\n  url: https://example.com/app.git\n  interval: 1h\n  include:\n  - repository: {name: app}\n  - repository: {name: lib}\n    toPath: ../outside\n",
    )
    .expect("write");
    let (ok, out) = store.driftless(&["apply", "-f", file.to_str().expect("utf8")]);
    assert!(!ok, "{out}");
    assert!(out.contains("spec.include[0].repository.name") && out.contains("cannot include itself"), "{out}");
    assert!(out.contains("spec.include[1].toPath") && out.contains("'..'"), "{out}");

    fs::write(
        &file,
        "apiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata: {name: app}\nspec:\n  url: ssh://git@example.com/app.git\n  interval: 1h\n  proxySecretRef: {name: proxy}\n",
    )
    .expect("write");
    let (ok, out) = store.driftless(&["apply", "-f", file.to_str().expect("utf8")]);
    assert!(!ok && out.contains("spec.proxySecretRef") && out.contains("http(s) URLs only"), "{out}");
}

#[test]
fn a_proxy_secret_without_an_address_is_reported_on_the_object() {
    let store = Store(tempfile::tempdir().expect("tempdir"));
    store.apply(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: proxy}\nstringData: {username: u, password: proxy-pw-9753}\n---\napiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata: {name: app}\nspec:\n  url: https://127.0.0.1:9/app.git\n  interval: 1h\n  proxySecretRef: {name: proxy}\n",
    );
    store.reconcile("app");
    let object = store.get("app");
    let (status, reason, message) = ready(&object);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "AuthenticationFailed"), "{message}");
    assert!(message.contains("spec.proxySecretRef: Secret proxy: the Secret has no address"), "{message}");
    assert!(!object.to_string().contains("proxy-pw-9753"));
}

#[test]
fn includes_that_form_a_cycle_are_refused_naming_the_chain() {
    if !have("git") {
        return;
    }
    let a = Repo::new(&[("a.txt", "a\n")]);
    let b = Repo::new(&[("b.txt", "b\n")]);
    let store = Store(tempfile::tempdir().expect("tempdir"));
    store.apply(&format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata: {{name: a}}\nspec:\n  url: {}\n  interval: 1h\n  ref: {{branch: main}}\n  include: [{{repository: {{name: b}}}}]\n---\napiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata: {{name: b}}\nspec:\n  url: {}\n  interval: 1h\n  ref: {{branch: main}}\n  include: [{{repository: {{name: a}}}}]\n",
        a.url(),
        b.url()
    ));
    store.reconcile("a");
    let (status, reason, message) = ready(&store.get("a"));
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"), "{message}");
    assert!(message.contains("includes this one back (b -> a)") && message.contains("cycle"), "{message}");
}
