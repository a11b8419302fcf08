//! The CLI refuses bad input with one clear line per problem, naming the object, the field
//! and the reason, and a refused `apply` stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{MODULE, Run, World, objects};

/// A store directory and the `driftless` binary, without terraform: validation needs none.
struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli { dir: tempfile::Builder::new().prefix("driftless-cli-").tempdir().unwrap() }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn run_in(&self, store: &Path, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_driftless"))
            .arg("--store")
            .arg(store)
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("DRIFTLESS_STORE")
            .env_remove("DRIFTLESS_TERRAFORM")
            .output()
            .unwrap();
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.store(), args)
    }

    /// `apply -f` of YAML written to a file named `file`.
    fn apply(&self, file: &str, yaml: &str) -> Run {
        let path = self.dir.path().join(file);
        std::fs::write(&path, yaml).unwrap();
        self.run(&["apply", "-f", path.to_str().unwrap()])
    }

    /// Nothing of any kind is stored.
    fn assert_stores_nothing(&self) {
        for kind in ["terraform", "gitrepository", "bucket"] {
            let listed = self.run(&["get", kind]).ok().stdout;
            assert_eq!(listed.lines().count(), 1, "only the header: {listed}");
        }
    }
}

const GIT_REPOSITORY: &str = "apiVersion: driftless.dev/v1alpha1
kind: GitRepository
metadata:
  name: app
spec:
  url: file:///nowhere/repo
  interval: 1h
  ref:
    branch: main
";

const TERRAFORM: &str = r#"apiVersion: driftless.dev/v1alpha1
kind: Terraform
metadata:
  name: app
spec:
  sourceRef:
    kind: GitRepository
    name: app
  path: ./
  interval: 1h
  approvePlan: ""
  vars:
    - name: content
      value: hello
"#;

/// Applies a valid GitRepository with the bad object in one file and checks the refusal.
fn refused(yaml_of_bad_object: &str, expected: &[&str]) {
    let cli = Cli::new();
    let yaml = format!("{GIT_REPOSITORY}---\n{yaml_of_bad_object}");
    let run = cli.apply("objects.yaml", &yaml).fails();
    let line = run.stderr.lines().find(|l| l.contains("objects.yaml")).unwrap_or_else(|| panic!("a line naming the file: {}", run.stderr));
    for e in expected {
        assert!(line.contains(e), "{e:?} missing in {line:?}");
    }
    assert!(run.stdout.is_empty(), "nothing reported as applied: {}", run.stdout);
    cli.assert_stores_nothing();
}

/// A tofu-controller Terraform moved over by its apiVersion alone: its fields driftless does
/// not implement are refused by name with what to use instead, never stored and ignored.
#[test]
fn a_peer_field_driftless_does_not_implement_is_refused_by_name_with_the_alternative() {
    let moved = TERRAFORM.replace("  interval: 1h\n", "  interval: 1h\n  planOnly: true\n  enableInventory: true\n");
    refused(&moved, &["Terraform/default/app", "spec.planOnly", "spec.approvePlan", "spec.enableInventory"]);
}

/// tofu-controller's fields driftless implements are checked as the peer's CRD and runner
/// would: one line naming the field and what to do.
#[test]
fn tofu_controller_fields_with_bad_values_are_refused_by_field() {
    let var = |v: &str| TERRAFORM.replace("      value: hello\n", v);
    refused(
        &var("      value: hello\n      valueFrom:\n        secretKeyRef:\n          name: s\n          key: k\n"),
        &["spec.vars[0]", "either value or valueFrom"],
    );
    refused(&var("      valueFrom: {}\n"), &["spec.vars[0].valueFrom", "exactly one of secretKeyRef and configMapKeyRef"]);
    refused(
        &var("      valueFrom:\n        configMapKeyRef:\n          name: Not_A_Name\n          key: k\n"),
        &["spec.vars[0].valueFrom.configMapKeyRef.name", "Not_A_Name"],
    );
    let spec = |extra: &str| TERRAFORM.replace("  interval: 1h\n", &format!("  interval: 1h\n{extra}"));
    refused(&spec("  values: [1, 2]\n"), &["spec.values", "must be an object"]);
    refused(&spec("  parallelism: -1\n"), &["spec.parallelism"]);
    refused(&spec("  storeReadablePlan: yaml\n"), &["storeReadablePlan", "yaml"]);
    refused(&spec("  tfstate:\n    forceUnlock: \"yes\"\n"), &["spec.tfstate.lockIdentifier", "status.lock.id"]);
    refused(&spec("  tfstate:\n    forceUnlock: sometimes\n"), &["forceUnlock", "sometimes"]);
    refused(
        &spec(
            "  tfstate:\n    forceUnlock: auto\n  backendConfig:\n    customConfiguration: |\n      terraform {\n        backend \"local\" {}\n      }\n",
        ),
        &["spec.tfstate.forceUnlock", "customConfiguration"],
    );
    refused(&spec("  tfstate:\n    lockTimeout: 30s\n"), &["spec.tfstate.lockTimeout", "not implemented"]);
    refused(&spec("  targets: [\"\"]\n"), &["spec.targets[0]", "not a resource address"]);
    refused(&spec("  disableDriftDetection: true\n  drift:\n    mode: correct\n"), &["spec.disableDriftDetection", "drift.mode: correct"]);
    refused(
        &TERRAFORM.replace("  approvePlan: \"\"\n", "  approvePlan: disable\n  destroy: true\n"),
        &["spec.approvePlan", "only checks for drift", "spec.destroy"],
    );
    refused(&spec("  tfVarsFiles: [../outside.tfvars]\n"), &["spec.tfVarsFiles[0]", "inside the source"]);
    let mapping = |location: &str, path: &str| {
        spec(&format!(
            "  fileMappings:\n    - location: {location}\n      path: {path}\n      secretRef:\n        name: files\n        key: k\n"
        ))
    };
    refused(&mapping("home", "/etc/passwd"), &["spec.fileMappings[0].path", "stays inside"]);
    refused(&mapping("elsewhere", "x"), &["spec.fileMappings[0].location"]);
    refused(&spec("  readInputsFromSecrets:\n    - name: out\n      as: not-an-identifier\n"), &["spec.readInputsFromSecrets[0].as"]);
    refused(&spec("  backendConfigsFrom:\n    - kind: Pod\n      name: x\n"), &["spec.backendConfigsFrom[0].kind"]);
    refused(
        &spec("  backendConfig:\n    disable: true\n    customConfiguration: 'backend \"local\" {}'\n"),
        &["spec.backendConfig.disable", "customConfiguration"],
    );
}

/// tofu-controller's healthChecks are checked as its CRD would, and beyond: each refusal
/// names the check's field.
#[test]
fn a_bad_health_check_is_refused_naming_its_field() {
    let checks = |c: &str| TERRAFORM.replace("  interval: 1h\n", &format!("  interval: 1h\n  healthChecks:\n{c}"));
    refused(
        &checks("    - name: web\n      type: udp\n      url: http://127.0.0.1/\n"),
        &["spec.healthChecks[0].type", "udp", "tcp", "http"],
    );
    refused(&checks("    - name: web\n      type: http\n"), &["spec.healthChecks[0].url", "required when type is http"]);
    refused(
        &checks("    - name: db\n      type: tcp\n      url: http://127.0.0.1/\n"),
        &["spec.healthChecks[0].address", "required when type is tcp", "spec.healthChecks[0].url", "reads address"],
    );
    refused(&checks("    - name: web\n      type: http\n      url: 127.0.0.1:80\n"), &["spec.healthChecks[0].url", "http:// or https://"]);
    refused(&checks("    - name: db\n      type: tcp\n      address: 127.0.0.1:70000\n"), &["spec.healthChecks[0].address", "\"70000\""]);
    refused(&checks("    - name: \"\"\n      type: tcp\n      address: 127.0.0.1:80\n"), &["spec.healthChecks[0].name"]);
    refused(
        &checks("    - name: db\n      type: tcp\n      address: 127.0.0.1:80\n      timeout: 0s\n"),
        &["spec.healthChecks[0].timeout", "greater than zero"],
    );
    refused(
        &checks("    - name: web\n      type: http\n      url: \"{{ .url }}\"\n"),
        &["spec.healthChecks[0].url", "${{ .name }}", "taken as text"],
    );
    refused(
        &checks("    - name: web\n      type: http\n      url: \"${{ .url }}\"\n"),
        &["spec.healthChecks[0].url", "set spec.writeOutputsToSecret"],
    );
}

/// tofu-controller's runnerPodTemplate.spec fields are accepted, but a runner pod stays
/// within the restricted Pod Security profile and keeps driftless's own names: each
/// overreach is refused by field, with why.
#[test]
fn a_runner_pod_template_asking_for_more_than_the_restricted_profile_is_refused_by_field() {
    let template = |spec: &str| TERRAFORM.replace("  interval: 1h\n", &format!("  interval: 1h\n  runnerPodTemplate:\n    spec:\n{spec}"));
    refused(
        &template("      securityContext:\n        privileged: true\n        runAsUser: 0\n"),
        &[
            "spec.runnerPodTemplate.spec.securityContext.privileged",
            "spec.runnerPodTemplate.spec.securityContext.runAsUser",
            "restricted Pod Security profile",
        ],
    );
    refused(
        &template("      securityContext:\n        capabilities:\n          add: [NET_ADMIN]\n"),
        &["spec.runnerPodTemplate.spec.securityContext.capabilities.add", "NET_ADMIN"],
    );
    // Host namespaces are not the template's to set (tofu-controller has no such field either).
    refused(&template("      hostNetwork: true\n"), &["spec.runnerPodTemplate.spec.hostNetwork", "unknown field"]);
    refused(
        &template("      volumes:\n        - name: host\n          hostPath:\n            path: /var/run\n"),
        &["spec.runnerPodTemplate.spec.volumes[0].hostPath", "hostPath volumes are refused"],
    );
    refused(
        &template("      initContainers:\n        - name: runner\n          image: busybox\n"),
        &["spec.runnerPodTemplate.spec.initContainers[0].name", "driftless's own container"],
    );
    refused(
        &template("      volumes:\n        - name: work\n          emptyDir: {}\n"),
        &["spec.runnerPodTemplate.spec.volumes[0].name", "driftless's own volume"],
    );
    refused(
        &template("      volumeMounts:\n        - name: mine\n          mountPath: /run/driftless\n"),
        &["spec.runnerPodTemplate.spec.volumeMounts[0].mountPath", "/run/driftless"],
    );
    // Within the profile: accepted and stored as given.
    let cli = Cli::new();
    let fine = template(concat!(
        "      envFrom:\n        - configMapRef:\n            name: runner-env\n",
        "      volumes:\n        - name: cfg\n          configMap:\n            name: cfg\n",
        "      volumeMounts:\n        - name: cfg\n          mountPath: /etc/cfg\n",
        "      initContainers:\n        - name: prepare\n          image: busybox\n          command: [\"true\"]\n",
        "      hostAliases:\n        - ip: 127.0.0.1\n          hostnames: [state.internal]\n",
        "      priorityClassName: runners\n",
        "      affinity:\n        nodeAffinity:\n          preferredDuringSchedulingIgnoredDuringExecution:\n",
        "            - weight: 1\n              preference:\n                matchExpressions:\n",
        "                  - key: pool\n                    operator: In\n                    values: [runners]\n",
        "      securityContext:\n        runAsUser: 1000\n        readOnlyRootFilesystem: false\n",
    ));
    cli.apply("objects.yaml", &format!("{GIT_REPOSITORY}---\n{fine}")).ok();
    let stored = cli.run(&["get", "terraform", "app", "-o", "yaml"]).ok().stdout;
    for field in ["envFrom", "runner-env", "hostAliases", "priorityClassName: runners", "initContainers", "runAsUser: 1000"] {
        assert!(stored.contains(field), "{field} kept: {stored}");
    }
}

#[test]
fn a_misspelt_field_is_refused_listing_the_fields_it_may_be() {
    refused(&TERRAFORM.replace("  path: ./\n", "  pathh: ./\n"), &["spec.pathh", "unknown field", "path"]);
    refused(
        &GIT_REPOSITORY
            .replace("name: app\nspec", "name: other\nspec")
            .replace("    branch: main\n", "    branch: main\n    nmae: refs/heads/main\n"),
        &["spec.ref.nmae", "a typo", "name"],
    );
}

#[test]
fn a_duration_that_is_not_one_is_refused_with_its_field() {
    refused(&TERRAFORM.replace("interval: 1h", "interval: soon"), &["Terraform", "app", "spec.interval", "\"soon\"", "1h"]);
}

#[test]
fn a_duration_the_api_server_would_refuse_is_refused_locally_too() {
    // humantime reads "5 minutes"; the CRD's pattern does not, so neither does a local store.
    refused(&TERRAFORM.replace("interval: 1h", "interval: 5 minutes"), &["Terraform", "spec.interval", "\"5 minutes\"", "ms, s, m, h"]);
}

#[test]
fn a_duration_longer_than_a_year_is_refused_naming_the_bound() {
    refused(
        &TERRAFORM.replace("interval: 1h", "interval: 3000000000000000h"),
        &["Terraform/default/app", "spec.interval", "longer than a year", "8784h"],
    );
}

#[test]
fn a_source_kind_that_is_not_a_source_is_refused() {
    refused(
        &TERRAFORM.replace("kind: GitRepository", "kind: HelmRepository"),
        &["Terraform", "app", "spec.sourceRef.kind", "HelmRepository", "GitRepository"],
    );
}

#[test]
fn an_approval_that_is_neither_auto_nor_a_plan_id_is_refused() {
    refused(&TERRAFORM.replace("approvePlan: \"\"", "approvePlan: \"yes\""), &["Terraform", "app", "spec.approvePlan", "\"yes\"", "auto"]);
}

#[test]
fn a_variable_set_twice_is_refused() {
    let yaml = format!("{TERRAFORM}    - name: content\n      value: again\n");
    refused(&yaml, &["Terraform", "app", "spec.vars[1].name", "content", "twice"]);
}

#[test]
fn a_missing_required_field_is_refused_naming_it() {
    let yaml = TERRAFORM.replace("  sourceRef:\n    kind: GitRepository\n    name: app\n", "");
    assert!(!yaml.contains("sourceRef"));
    refused(&yaml, &["Terraform", "app", "spec", "sourceRef", "missing"]);
}

#[test]
fn a_flux_api_version_is_refused_with_a_hint_to_change_it() {
    let flux = GIT_REPOSITORY.replace("driftless.dev/v1alpha1", "source.toolkit.fluxcd.io/v1").replace("name: app", "name: flux-app");
    refused(
        &flux,
        &[
            "GitRepository",
            "apiVersion",
            "source.toolkit.fluxcd.io/v1",
            "driftless.dev/v1alpha1",
            "change the apiVersion",
            "driftless migrate",
        ],
    );
}

#[test]
fn a_flux_api_version_refusal_names_the_object() {
    let flux = GIT_REPOSITORY.replace("driftless.dev/v1alpha1", "source.toolkit.fluxcd.io/v1").replace("name: app", "name: flux-app");
    refused(&flux, &["GitRepository", "flux-app", "apiVersion"]);
}

#[test]
fn every_bad_object_of_a_file_gets_its_own_line_and_nothing_is_stored() {
    let cli = Cli::new();
    let yaml = format!(
        "{GIT_REPOSITORY}---\n{}---\n{}",
        TERRAFORM.replace("approvePlan: \"\"", "approvePlan: \"yes\""),
        TERRAFORM.replace("name: app\nspec", "name: other\nspec").replace("interval: 1h", "interval: soon")
    );
    let run = cli.apply("objects.yaml", &yaml).fails();
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.contains("objects.yaml")).collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert!(lines.iter().any(|l| l.contains("app") && l.contains("spec.approvePlan")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("other") && l.contains("spec.interval")), "{lines:?}");
    cli.assert_stores_nothing();
}

#[test]
fn commands_on_a_store_that_does_not_exist_fail_with_a_clear_line() {
    let cli = Cli::new();
    let missing = cli.dir.path().join("no-such-store");
    for args in [
        &["get", "terraform"][..],
        &["reconcile", "terraform", "app"],
        &["run", "--once"],
        &["approve", "app"],
        &["unlock", "app", "--yes"],
    ] {
        let run = cli.run_in(&missing, args).fails();
        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: one error line: {}", run.stderr);
        assert!(errors[0].contains(&missing.display().to_string()) && errors[0].contains("no driftless store"), "{args:?}: {}", errors[0]);
        assert!(!missing.exists(), "{args:?}: a mistyped --store is not created");
    }
}

#[test]
fn approving_a_plan_that_is_not_pending_is_refused_naming_the_pending_one() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    let pending = w.pending_plan("app").expect("a pending plan");

    let run = w.driftless(&["approve", "app", "plan-0000000-0000000000"]).fails();
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(errors[0].contains("plan-0000000-0000000000") && errors[0].contains(&pending), "{}", errors[0]);
    let tf = w.get("terraform", "app");
    assert!(tf["metadata"]["annotations"]["driftless.dev/approve-plan"].is_null(), "nothing approved: {}", tf["metadata"]);

    w.reconcile("app").ok();
    assert_eq!(w.pending_plan("app").as_deref(), Some(pending.as_str()));
    assert!(!w.managed("main.txt").exists());
}

#[test]
fn a_bad_s3_backend_config_is_refused_naming_each_field() {
    let yaml = format!(
        "{TERRAFORM}  backendConfig:\n    customConfiguration: |\n      terraform {{}}\n    s3:\n      bucket: Not_A_Bucket\n      endpoint: ftp://127.0.0.1:9000\n      secretRef:\n        name: Bad_Name\n"
    );
    refused(
        &yaml,
        &[
            "Terraform",
            "spec.backendConfig.s3.bucket",
            "Not_A_Bucket",
            "spec.backendConfig.s3.endpoint",
            "ftp",
            "spec.backendConfig.s3.secretRef.name",
            "either s3 or customConfiguration",
        ],
    );
}

/// Flux's `verify`: a mode Flux does not have, a tag mode without a tag to verify and a
/// Secret that is not named are refused by field; `head` (Flux's older spelling) is taken.
#[test]
fn a_bad_verify_of_a_gitrepository_is_refused_naming_the_field() {
    let signed = |verify: &str, reference: &str| {
        format!(
            "apiVersion: driftless.dev/v1alpha1\nkind: GitRepository\nmetadata:\n  name: signed\nspec:\n  url: file:///nowhere/signed\n  interval: 1h\n  ref: {reference}\n  verify:\n{verify}"
        )
    };
    refused(
        &signed("    mode: tag\n    secretRef: {name: keys}\n", "{branch: main}"),
        &["GitRepository signed", "spec.verify.mode", "tag", "TagAndHEAD"],
    );
    refused(
        &signed("    mode: Tag\n    secretRef: {name: keys}\n", "{branch: main}"),
        &["GitRepository/default/signed", "spec.verify.mode", "Tag verifies a signed tag object", "ref.tag"],
    );
    refused(
        &signed("    mode: TagAndHEAD\n    secretRef: {name: keys}\n", "{tag: v1, commit: 0123456789abcdef0123456789abcdef01234567}"),
        &["spec.verify.mode", "spec.ref names no tag"],
    );
    refused(&signed("    mode: HEAD\n", "{branch: main}"), &["spec.verify", "secretRef"]);
    refused(&signed("    secretRef: {name: Not_A_Name}\n", "{branch: main}"), &["spec.verify.secretRef.name"]);
    refused(&signed("    secretRef: {name: keys}\n    keyring: x\n", "{branch: main}"), &["spec.verify.keyring", "mode, secretRef"]);

    let cli = Cli::new();
    for (verify, reference) in [
        ("    mode: head\n    secretRef: {name: keys}\n", "{branch: main}"),
        ("    secretRef: {name: keys}\n", "{branch: main}"),
        ("    mode: Tag\n    secretRef: {name: keys}\n", "{semver: '>=1.0.0'}"),
        ("    mode: TagAndHEAD\n    secretRef: {name: keys}\n", "{name: refs/tags/v1}"),
    ] {
        cli.apply("signed.yaml", &signed(verify, reference)).ok();
    }
}

#[test]
fn a_bucket_with_an_unsupported_provider_or_plain_http_is_refused() {
    let bucket = "apiVersion: driftless.dev/v1alpha1
kind: Bucket
metadata:
  name: modules
spec:
  provider: gcp
  bucketName: modules
  endpoint: http://127.0.0.1:9000
  interval: 5m
";
    refused(bucket, &["Bucket", "modules", "spec.provider", "gcp", "generic", "spec.endpoint", "spec.insecure: true"]);
}

#[test]
fn a_review_url_that_links_nowhere_is_refused_naming_the_flag() {
    let cli = Cli::new();
    for args in [&["install", "--export", "--review-url", "driftless.example.com"][..], &["controller", "--review-url", "/review"]] {
        let run = cli.run(args).fails();
        assert!(run.stderr.contains("--review-url"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("absolute http(s) URL"), "{args:?}: {}", run.stderr);
    }
    let run = cli.run(&["install", "--export", "--review-url", "https://driftless.example.com"]).ok();
    assert!(run.stdout.contains("value: https://driftless.example.com"), "{}", run.stderr);
}
