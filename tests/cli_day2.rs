//! The day-2 verbs on a local store, as a `flux` user would type them: `export`, `get all`,
//! `get --status-selector`, `suspend/resume --all`, `version`, `completion`, and their
//! refusals of bad input. The real `driftless` binary, a real Git repository; no terraform
//! runs (nothing here plans). `tree` and `trace` read what a Kustomization applied to a
//! cluster: they are tested in cli_cluster.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Run, World, git_repository, terraform_object};

const KUSTOMIZATION: &str = "apiVersion: driftless.dev/v1alpha1
kind: Kustomization
metadata:
  name: web
  labels:
    team: platform
  annotations:
    team.example.com/owner: ops
spec:
  sourceRef:
    kind: GitRepository
    name: app
  path: ./deploy
  interval: 10m
  prune: true
";

const BROKEN_SOURCE: &str = "apiVersion: driftless.dev/v1alpha1
kind: GitRepository
metadata:
  name: broken
spec:
  url: file:///nowhere/repo
  interval: 1h
  ref:
    branch: main
";

/// `driftless --store STORE ARGS` in the world's environment.
fn in_store(w: &World, store: &std::path::Path, args: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(&w.tools.driftless);
    cmd.arg("--store").arg(store).args(args);
    w.env(&mut cmd);
    let out = cmd.output().unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn error_line(run: &Run) -> &str {
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {}", run.stderr);
    errors[0]
}

/// A store with a GitRepository that fetched (Ready), one that cannot (Ready=False), a
/// Kustomization and a Terraform that were never reconciled (Ready Unknown).
fn world_with_objects() -> Option<World> {
    let w = World::new()?;
    w.commit(&[("deploy/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")], "manifests");
    w.apply(&format!(
        "{}---\n{BROKEN_SOURCE}---\n{KUSTOMIZATION}---\n{}",
        git_repository("app", "main"),
        terraform_object("db", "app", "./", "", "", "")
    ))
    .ok();
    w.driftless(&["reconcile", "gitrepository", "app"]).ok();
    w.driftless(&["reconcile", "gitrepository", "broken"]).fails();
    Some(w)
}

#[test]
fn export_prints_clean_yaml_that_applies_again_unchanged() {
    let Some(w) = world_with_objects() else { return };
    let one = w.driftless(&["export", "gitrepository", "app"]).ok().stdout;
    assert!(
        one.starts_with(
            "---\napiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata:\n  name: app\n  namespace: default\nspec:\n"
        ),
        "{one}"
    );
    for server_field in
        ["status", "uid", "resourceVersion", "managedFields", "creationTimestamp", "generation", "reconcile-requested-at", "conditions"]
    {
        assert!(!one.contains(server_field), "{server_field} exported: {one}");
    }
    assert!(one.contains(&format!("url: {}", w.repo_url())) && one.contains("branch: main"), "{one}");

    let ks = w.driftless(&["export", "ks", "web"]).ok().stdout;
    assert!(
        ks.contains("  labels:\n    team: platform\n") && ks.contains("team.example.com/owner: ops") && ks.contains("path: ./deploy"),
        "{ks}"
    );

    let all = w.driftless(&["export", "--all"]).ok().stdout;
    assert_eq!(all.matches("---\n").count(), 4, "one document per object: {all}");
    for kind in ["kind: GitRepository", "kind: Kustomization", "kind: Terraform"] {
        assert!(all.contains(kind), "{kind} missing: {all}");
    }
    let sources = w.driftless(&["export", "gitrepository", "--all", "-A"]).ok().stdout;
    assert_eq!(sources.matches("kind: GitRepository").count(), 2, "{sources}");
    assert!(!sources.contains("kind: Terraform"), "{sources}");

    // What export prints is what a repository keeps: applied to another store it gives the
    // same objects, and exported from there the same text.
    let file = w.path().join("exported.yaml");
    std::fs::write(&file, &all).unwrap();
    let other = w.path().join("other-store");
    let applied = in_store(&w, &other, &["apply", "-f", file.to_str().unwrap()]).ok().stdout;
    assert_eq!(applied.matches(" created").count(), 4, "{applied}");
    let again = in_store(&w, &other, &["export", "--all"]).ok().stdout;
    assert_eq!(again, all);
}

#[test]
fn export_refuses_what_it_cannot_export_saying_what_to_do() {
    let Some(w) = world_with_objects() else { return };
    let unknown = w.driftless(&["export", "helmrelease", "x"]).fails();
    assert!(
        error_line(&unknown).contains("unknown kind \"helmrelease\"") && unknown.stderr.contains("kustomization"),
        "{}",
        unknown.stderr
    );
    let missing = w.driftless(&["export", "terraform", "nope"]).fails();
    assert!(
        error_line(&missing).contains("Terraform default/nope not found") && missing.stderr.contains("driftless get terraform"),
        "{}",
        missing.stderr
    );
    let unnamed = w.driftless(&["export", "terraform"]).fails();
    assert!(error_line(&unnamed).contains("--all"), "{}", unnamed.stderr);
    let both = w.driftless(&["export", "terraform", "db", "--all"]).fails();
    assert!(error_line(&both).contains("not both"), "{}", both.stderr);
    let secret = w.driftless(&["export", "secret", "x"]).fails();
    assert!(error_line(&secret).contains("not exported"), "{}", secret.stderr);
    let empty = w.driftless(&["export", "bucket", "--all"]).fails();
    assert!(error_line(&empty).contains("no bucket objects in namespace default"), "{}", empty.stderr);
}

#[test]
fn get_all_groups_every_kind_and_the_status_selector_picks_what_failed() {
    let Some(w) = world_with_objects() else { return };
    let all = w.driftless(&["get", "all"]).ok().stdout;
    let tables: Vec<&str> = all.split("\n\n").collect();
    assert_eq!(tables.len(), 3, "one table per kind with objects (sources, Terraform, Kustomization): {all}");
    assert!(
        tables[0].starts_with("NAMESPACE") && tables[0].contains("gitrepository/app") && tables[0].contains("gitrepository/broken"),
        "{all}"
    );
    assert!(tables[1].contains("terraform/db") && tables[2].contains("kustomization/web"), "{all}");

    let failing = w.driftless(&["get", "all", "--status-selector", "ready=false"]).ok().stdout;
    assert!(failing.lines().count() == 2 && failing.contains("gitrepository/broken") && failing.contains("False"), "{failing}");
    let fetched = w.driftless(&["get", "gitrepository", "--status-selector", "Ready=True"]).ok().stdout;
    assert!(fetched.lines().count() == 2 && fetched.lines().nth(1).unwrap().contains("app"), "{fetched}");
    let waiting = w.driftless(&["get", "all", "--status-selector", "ready=unknown"]).ok().stdout;
    assert!(waiting.contains("terraform/db") && waiting.contains("kustomization/web") && !waiting.contains("gitrepository"), "{waiting}");
    let as_json: serde_json::Value =
        serde_json::from_str(&w.driftless(&["get", "all", "--status-selector", "ready=false", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(as_json["metadata"]["name"], "broken", "{as_json}");

    let nothing = w.driftless(&["get", "all", "-n", "elsewhere"]).ok();
    assert!(nothing.stdout.is_empty() && nothing.stderr.contains("no driftless objects in namespace elsewhere"), "{}", nothing.all());
    let bad = w.driftless(&["get", "all", "--status-selector", "ready"]).fails();
    assert!(error_line(&bad).contains("CONDITION=STATUS"), "{}", bad.stderr);
    let bad = w.driftless(&["get", "terraform", "--status-selector", "ready=maybe"]).fails();
    assert!(error_line(&bad).contains("true, false or unknown"), "{}", bad.stderr);
    let secrets = w.driftless(&["get", "secret", "--status-selector", "ready=false"]).fails();
    assert!(error_line(&secrets).contains("no status conditions"), "{}", secrets.stderr);
    let named = w.driftless(&["get", "all", "app"]).fails();
    assert!(error_line(&named).contains("name its kind"), "{}", named.stderr);
}

#[test]
fn suspend_and_resume_all_act_on_every_object_of_the_kind() {
    let Some(w) = World::new() else { return };
    let other = terraform_object("c", "app", "./", "", "", "").replace("  name: c\n", "  name: c\n  namespace: team\n");
    w.apply(&format!(
        "{}---\n{}---\n{other}",
        terraform_object("a", "app", "./", "", "", ""),
        terraform_object("b", "app", "./", "", "", "")
    ))
    .ok();

    let suspended = w.driftless(&["suspend", "terraform", "--all"]).ok().stdout;
    assert_eq!(suspended, "terraform/a suspended\nterraform/b suspended\n", "the default namespace only");
    assert_eq!(w.get("terraform", "a")["spec"]["suspend"], true);
    let table = w.driftless(&["get", "terraform", "-A"]).ok().stdout;
    assert_eq!(table.matches("(suspended)").count(), 2, "{table}");

    let resumed = w.driftless(&["resume", "tf", "--all", "-A"]).ok().stdout;
    assert_eq!(resumed.lines().count(), 3, "{resumed}");
    assert!(resumed.contains("terraform/c resumed"), "{resumed}");
    assert_eq!(w.get("terraform", "a")["spec"]["suspend"], false);

    let unnamed = w.driftless(&["suspend", "terraform"]).fails();
    assert!(error_line(&unnamed).contains("--all"), "{}", unnamed.stderr);
    let both = w.driftless(&["suspend", "terraform", "a", "--all"]).fails();
    assert!(error_line(&both).contains("not both"), "{}", both.stderr);
    let none = w.driftless(&["suspend", "bucket", "--all"]).fails();
    assert!(error_line(&none).contains("no bucket objects in namespace default"), "{}", none.stderr);
    let not_reconciled = w.driftless(&["resume", "alert", "--all"]).fails();
    assert!(error_line(&not_reconciled).contains("cannot be suspended"), "{}", not_reconciled.stderr);
}

#[test]
fn completion_scripts_are_generated_and_bash_parses_its_own() {
    let Some(w) = World::new() else { return };
    let bash = w.driftless(&["completion", "bash"]).ok().stdout;
    assert!(bash.contains("_driftless()") && bash.contains("complete -F _driftless"), "{}", &bash[..bash.len().min(400)]);
    for verb in ["export", "tree", "trace", "completion", "version"] {
        assert!(bash.contains(verb), "{verb} completes");
    }
    let script = w.path().join("driftless.bash");
    std::fs::write(&script, &bash).unwrap();
    let parsed = std::process::Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(parsed.status.success(), "bash -n: {}", String::from_utf8_lossy(&parsed.stderr));

    let zsh = w.driftless(&["completion", "zsh"]).ok().stdout;
    assert!(zsh.starts_with("#compdef driftless"), "{}", &zsh[..zsh.len().min(200)]);
    let fish = w.driftless(&["completion", "fish"]).ok().stdout;
    assert!(fish.contains("complete -c driftless"), "{}", &fish[..fish.len().min(200)]);
    let other = w.driftless(&["completion", "tcsh"]).fails();
    assert!(other.stderr.contains("bash") && other.stderr.contains("fish"), "names the shells it has: {}", other.stderr);
}

#[test]
fn version_names_the_client_and_a_local_store_has_no_controller() {
    let Some(w) = World::new() else { return };
    let version = env!("CARGO_PKG_VERSION");
    let local = w.driftless(&["version"]).ok().stdout;
    assert_eq!(local, format!("client: {version}\ncontroller: none (a local store: this CLI reconciles it)\n"));
    let client = w.driftless(&["version", "--client"]).ok().stdout;
    assert_eq!(client, format!("client: {version}\n"));
}

#[test]
fn create_makes_objects_from_flags_as_flux_create_does_or_prints_them() {
    let Some(w) = World::new() else { return };
    w.commit(&[("deploy/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")], "manifests");
    let url = w.repo_url();

    // --export prints the object and stores nothing.
    let printed = w
        .driftless(&[
            "create",
            "source",
            "git",
            "app",
            "--url",
            &url,
            "--branch",
            "main",
            "--interval",
            "5m",
            "--label",
            "team=web",
            "--export",
        ])
        .ok()
        .stdout;
    let object: serde_yaml::Value = serde_yaml::from_str(printed.trim_start_matches("---\n")).unwrap();
    assert_eq!(object["apiVersion"], "driftless.dev/v1alpha1");
    assert_eq!(object["kind"], "GitRepository");
    assert_eq!(object["metadata"]["labels"]["team"], "web");
    assert_eq!(object["spec"]["ref"]["branch"], "main");
    assert_eq!(object["spec"]["interval"], "5m");
    let nothing = w.driftless(&["get", "gitrepository", "app"]).fails().all();
    assert!(nothing.contains("no driftless store") || nothing.contains("not found"), "--export stores nothing: {nothing}");

    // What it printed applies; created directly it is the same object, and it reconciles.
    let file = w.path().join("app.yaml");
    std::fs::write(&file, &printed).unwrap();
    assert!(w.driftless(&["apply", "-f", file.to_str().unwrap()]).ok().stdout.contains("gitrepository/app created"));
    let created =
        w.driftless(&["create", "source", "git", "app", "--url", &url, "--branch", "main", "--interval", "5m", "--label", "team=web"]).ok();
    assert!(
        created.stdout.contains("gitrepository/app unchanged") || created.stdout.contains("gitrepository/app configured"),
        "{}",
        created.stdout
    );
    w.driftless(&["reconcile", "gitrepository", "app"]).ok();
    assert_eq!(w.condition_of("gitrepository", "app", "Ready")["status"], "True");

    // A Kustomization and a Terraform of that source, and credentials for sources.
    let ks = w.driftless(&["create", "kustomization", "web", "--source", "GitRepository/app", "--path", "./deploy", "--prune"]).ok();
    assert!(ks.stdout.contains("kustomization/web created"), "{}", ks.stdout);
    let spec = &w.get("kustomization", "web")["spec"];
    assert_eq!(
        (spec["path"].as_str(), spec["prune"].as_bool(), spec["sourceRef"]["name"].as_str()),
        (Some("./deploy"), Some(true), Some("app"))
    );
    w.driftless(&["create", "terraform", "net", "--source", "app", "--approve-plan", "auto"]).ok();
    assert_eq!(w.get("terraform", "net")["spec"]["approvePlan"], "auto");
    let secret = w
        .driftless(&["create", "secret", "oci", "creds", "--url", "127.0.0.1:5000", "--username", "u", "--password", "pw", "--export"])
        .ok()
        .stdout;
    assert!(secret.contains("kubernetes.io/dockerconfigjson") && secret.contains(".dockerconfigjson"), "{secret}");
    w.driftless(&[
        "create",
        "source",
        "oci",
        "manifests",
        "--url",
        "oci://127.0.0.1:5000/app",
        "--tag-semver",
        "1.x",
        "--secret-ref",
        "creds",
        "--insecure",
    ])
    .ok();
    assert_eq!(w.get("ocirepository", "manifests")["spec"]["ref"]["semver"], "1.x");

    // Bad flags: the same refusals as a file gets, naming the field, and nothing stored.
    let bad = w.driftless(&["create", "source", "git", "bad", "--url", "ftp://x/y"]).fails();
    assert!(bad.stderr.contains("spec.url"), "{}", bad.stderr);
    assert!(w.driftless(&["get", "gitrepository", "bad"]).fails().all().contains("not found"));
    let interval = w.driftless(&["create", "kustomization", "k", "--source", "app", "--interval", "5 minutes"]).fails();
    assert!(interval.stderr.contains("spec.interval"), "{}", interval.stderr);
    let kind = w.driftless(&["create", "kustomization", "k", "--source", "HelmChart/app"]).fails();
    assert!(kind.stderr.contains("not a source kind"), "{}", kind.stderr);
}

/// `driftless ARGS` started in the background with its stdout read line by line.
struct Watching {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watching {
    fn start(w: &World, args: &[&str]) -> Watching {
        let mut cmd = std::process::Command::new(&w.tools.driftless);
        cmd.arg("--store").arg(w.store()).args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        w.env(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watching { child, lines }
    }

    /// The first line (within a minute) that `wanted` accepts; the lines before it.
    fn until(&self, wanted: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut before = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return (line, before),
                Ok(line) => before.push(line),
                Err(_) => break,
            }
        }
        panic!("no such line; got {before:?}");
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn get_and_events_watch_print_what_changes_as_it_changes() {
    let Some(w) = World::new() else { return };
    w.commit(&[("deploy/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")], "manifests");
    w.apply(&git_repository("app", "main")).ok();
    let get = Watching::start(&w, &["get", "gitrepositories", "--watch"]);
    let events = Watching::start(&w, &["events", "--watch"]);
    let (header, _) = get.until(|l| l.starts_with("NAMESPACE"));
    assert!(header.contains("READY"), "{header}");
    get.until(|l| l.contains("app") && !l.contains("True"));

    // A reconcile elsewhere: the watch prints the object's new row and the new event.
    w.driftless(&["reconcile", "gitrepository", "app"]).ok();
    let (row, _) = get.until(|l| l.contains("app") && l.contains("True"));
    assert!(row.contains("main@sha1:"), "{row}");
    let (event, _) = events.until(|l| l.contains("gitrepository/app") && l.contains("NewArtifact"));
    assert!(event.contains("stored artifact"), "{event}");

    // A second object appears in the watch; nothing already shown is printed again.
    w.apply(&git_repository("other", "main")).ok();
    let (_, between) = get.until(|l| l.contains("other"));
    assert!(between.iter().all(|l| !l.contains("app ")), "{between:?}");

    let refused = w.driftless(&["get", "all", "--watch"]).fails();
    assert!(refused.stderr.contains("--watch shows the table of one kind"), "{}", refused.stderr);
}

/// The driftless binary alone (no driftless-runner beside it or on PATH): storing and
/// listing objects works; the first run that needs the runner says where it is missing.
#[test]
fn apply_and_get_work_without_a_runner_and_a_run_says_it_is_missing() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", common::MODULE)], "module");
    let alone = w.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(&w.tools.driftless, alone.join("driftless")).unwrap();
    let file = w.path().join("objects.yaml");
    let yaml = format!("{}---\n{}", git_repository("app", "main"), terraform_object("net", "app", "./", "auto", "", ""))
        .replace("__REPO__", &w.repo_url())
        .replace("__MANAGED__", &w.path().join("managed").display().to_string());
    std::fs::write(&file, yaml).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(alone.join("driftless"))
            .arg("--store")
            .arg(w.store())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", w.path().join("home"))
            .output()
            .unwrap();
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let applied = run(&["apply", "-f", file.to_str().unwrap()]).ok();
    assert!(applied.stdout.contains("terraform/net created"), "{}", applied.stdout);
    assert!(run(&["get", "terraform"]).ok().stdout.contains("net"));
    let reconciled = run(&["reconcile", "terraform", "net", "--with-source"]).fails();
    assert!(reconciled.stderr.contains("driftless-runner is not beside driftless nor on PATH"), "{}", reconciled.stderr);
    let ready = w.condition_of("terraform", "net", "Ready");
    assert_eq!(ready["reason"], "RunnerFailed");
    assert!(ready["message"].as_str().unwrap().contains("DRIFTLESS_RUNNER"), "{ready}");
}

/// `logs` on a local store: the store's log, which `reconcile` and `run` write (a line per
/// reconcile, about its object, with its Ready reason), filtered as `flux logs` filters.
#[test]
fn logs_show_each_reconcile_of_the_objects_and_levels_asked_for() {
    let Some(w) = world_with_objects() else { return };
    let all = w.driftless(&["logs"]).ok().stdout;
    let about = |name: &str| {
        all.lines().any(|l| l.contains(&format!("reconcile{{namespace=\"default\" name=\"{name}\"")) && l.contains("kind=GitRepository}"))
    };
    assert!(about("app") && about("broken"), "{all}");
    let broken = w.driftless(&["logs", "--kind", "gitrepository", "--name", "broken", "--level", "error"]).ok().stdout;
    assert!(!broken.is_empty(), "{all}");
    assert!(broken.lines().all(|l| l.contains(r#"name="broken""#) && l.contains("ERROR")), "{broken}");
    assert!(broken.contains("reason=GitOperationFailed"), "{broken}");
    let app = w.driftless(&["logs", "--name", "app"]).ok().stdout;
    assert!(app.contains("INFO") && !app.contains(r#"name="broken""#), "{app}");
    assert!(!w.driftless(&["logs", "-n", "other"]).ok().stdout.contains("kind=GitRepository"), "another namespace's objects");
    assert_eq!(w.driftless(&["logs", "--tail", "1"]).ok().stdout.lines().count(), 1);
    // The CLI's own stderr does not repeat those lines.
    let again = w.driftless(&["reconcile", "gitrepository", "broken"]).fails();
    assert!(!again.stderr.contains("next try in"), "{}", again.stderr);

    let fresh = tempfile::tempdir().unwrap();
    let none = in_store(&w, fresh.path(), &["logs"]);
    assert_ne!(none.status, 0);
    assert!(none.stderr.contains("this store has no log yet"), "{}", none.stderr);
}
