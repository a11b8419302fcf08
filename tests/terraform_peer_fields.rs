//! tofu-controller's Terraform fields, with tofu-controller's meaning, end to end on the local
//! store with real terraform and real providers: an object moved over by its apiVersion does
//! what it did before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Engine, MODULE, World, git_repository, objects};

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A module fed only by tofu-controller's variable sources: `values`, and `valueFrom` keys
/// of a ConfigMap and of a Secret.
const INPUTS_MODULE: &str = r#"
terraform {
  required_providers {
    drifttest = {
      source  = "driftless/drifttest"
      version = "0.1.0"
    }
  }
}

variable "values" {
  type = any
}

variable "target_dir" {
  type = string
}

variable "region" {
  type = string
}

variable "password" {
  type    = string
  default = "no password"
}

resource "drifttest_file" "main" {
  path    = "${var.target_dir}/main.txt"
  content = "${var.values.greeting} from ${var.region}"
}

resource "drifttest_file" "password" {
  path    = "${var.target_dir}/password.txt"
  content = var.password
}
"#;

fn inputs_object(region_key: &str, secret: &str, password_optional: bool) -> String {
    format!(
        r#"{repo}---
apiVersion: driftless.dev/v1alpha1
kind: Terraform
metadata:
  name: app
spec:
  sourceRef:
    kind: GitRepository
    name: app
  path: ./
  interval: 1h
  approvePlan: auto
  values:
    greeting: hi
  vars:
    - name: target_dir
      value: __MANAGED__
    - name: region
      valueFrom:
        configMapKeyRef:
          name: settings
          key: {region_key}
    - name: password
      valueFrom:
        secretKeyRef:
          name: {secret}
          key: password
          optional: {password_optional}
"#,
        repo = git_repository("app", "main")
    )
}

#[test]
fn values_and_value_from_config_maps_and_secrets_reach_the_module_and_the_secret_stays_out_of_sight() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", INPUTS_MODULE)], "module");
    w.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  region: eu-west-1\n").ok();
    w.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: pa55-w0rd-from-a-secret\n").ok();
    w.apply(&inputs_object("region", "db", false)).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(read(&w.managed("main.txt")), "hi from eu-west-1");
    assert_eq!(read(&w.managed("password.txt")), "pa55-w0rd-from-a-secret");
    assert!(!w.store_text_outside_secrets_and_state().contains("pa55-w0rd-from-a-secret"), "a Secret's value is sensitive");

    // A key that is not there: the condition names the variable's field and the key.
    w.apply(&inputs_object("zone", "db", false)).ok();
    w.reconcile("app").fails();
    let ready = w.condition("app", "Ready");
    let message = ready["message"].as_str().unwrap_or_default();
    assert_eq!(ready["status"], "False");
    assert!(message.contains("spec.vars[1].valueFrom.configMapKeyRef") && message.contains("\"zone\""), "{message}");

    // An optional Secret that is not there leaves the variable to its default.
    w.apply(&inputs_object("region", "not-there", true)).ok();
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("password.txt")), "no password");
}

#[test]
fn targets_plan_and_apply_only_the_named_resources() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "", "  targets:\n    - null_resource.marker\n")).ok();
    w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").expect("a pending plan");
    let shown = w.driftless(&["plan", "show", "app"]).ok().stdout;
    assert!(shown.contains("null_resource.marker") && shown.contains("1 to add"), "{shown}");
    assert!(!shown.contains("drifttest_file.main"), "a resource not targeted is not planned: {shown}");

    w.driftless(&["approve", "app", &plan]).ok();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert!(!w.managed("main.txt").exists(), "the untargeted file was not created");

    // Without targets the rest of the module is planned: another plan, not the applied one.
    w.apply(&objects("app", "./", "", "")).ok();
    w.reconcile("app").ok();
    let whole = w.pending_plan("app").expect("a plan of the whole module");
    assert_ne!(whole, plan);
    assert!(w.driftless(&["plan", "show", "app"]).ok().stdout.contains("drifttest_file.main"));
}

#[test]
fn disable_drift_detection_runs_no_drift_check() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "  disableDriftDetection: true\n")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");

    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(read(&w.managed("main.txt")), "edited by hand", "nothing checked, nothing corrected");
    assert!(w.events_with_reason("app", "DriftDetected").is_empty(), "nothing reported");
    assert_ne!(w.get("terraform", "app")["status"]["drift"]["detected"], true);
    assert_eq!(w.ready_reason("app"), "Succeeded");

    // Asked for, a reconcile plans afresh (tofu-controller plans on every reconcile) and
    // auto-approval applies that plan: a rollout, still no drift report.
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("main.txt")), "hello");
    assert!(w.events_with_reason("app", "DriftDetected").is_empty());
    assert_eq!(w.events_with_reason("app", "PlanApplied").len(), 2);
}

/// tofu-controller's `approvePlan: auto` corrects drift: so does driftless's when the object
/// names no drift mode (`detect` is the opt-in for reporting only).
#[test]
fn auto_approval_without_a_drift_mode_corrects_drift_as_tofu_controller_does() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("main.txt")), "hello", "corrected");
    assert_eq!(w.events_with_reason("app", "DriftDetected").len(), 1, "and reported");
    assert_eq!(w.ready_reason("app"), "Succeeded");
}

/// tofu-controller approves the pending plan whose id starts with `approvePlan`; a prefix
/// must name at least the revision (`plan-<7 hex>`), so it never approves every plan.
#[test]
fn a_plan_id_prefix_naming_the_revision_approves_that_plan() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").unwrap();

    w.apply(&objects("app", "./", &plan[.."plan-".len() + 3], "")).ok();
    w.reconcile("app").fails();
    assert_eq!(w.ready_reason("app"), "ApprovalStale", "too short a prefix approves nothing");
    assert!(!w.managed("main.txt").exists());

    let revision_prefix = &plan[.."plan-".len() + 7];
    w.apply(&objects("app", "./", revision_prefix, "")).ok();
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("main.txt")), "hello");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["plan"]["id"], plan.as_str());
    assert_eq!(tf["status"]["plan"]["approvedBy"], "spec");
}

/// `force` applies every plan whatever approvePlan says (with tofu-controller's defaults of
/// alwaysCleanupRunnerPod and storeReadablePlan, accepted as they are); parallelism, upgradeOnInit and
/// refreshBeforeApply reach terraform's commands (a flag terraform refused would fail the run).
#[test]
fn force_applies_without_approval_and_the_command_flags_reach_terraform() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let flags = "  force: true\n  parallelism: 1\n  upgradeOnInit: true\n  refreshBeforeApply: true\n  alwaysCleanupRunnerPod: true\n  storeReadablePlan: none\n";
    w.apply(&objects("app", "./", "", flags)).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(read(&w.managed("main.txt")), "hello");
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(w.get("terraform", "app")["status"]["plan"]["approvedBy"], "auto");
    assert!(w.events_with_reason("app", "PlanPending").is_empty(), "nothing waits");
}

/// tofu-controller's drift-detection-only mode: every check runs against the current revision,
/// what differs is reported as drift, and nothing is planned for approval or applied.
#[test]
fn approve_plan_disable_only_checks_for_drift_and_applies_nothing() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(read(&w.managed("main.txt")), "hello");

    w.apply(&objects("app", "./", "disable", "")).ok();
    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    w.reconcile("app");
    assert_eq!(read(&w.managed("main.txt")), "edited by hand", "nothing applied");
    let ready = w.condition("app", "Ready");
    assert_eq!(ready["reason"], "DriftDetected", "{ready}");
    assert!(ready["message"].as_str().unwrap_or_default().contains("approvePlan: disable"), "{ready}");
    assert_eq!(w.events_with_reason("app", "DriftDetected").len(), 1);
    assert_eq!(w.pending_plan("app"), None, "nothing waits for approval");
    let refused = w.driftless(&["approve", "app"]).fails();
    assert!(refused.stderr.contains("no plan waiting"), "{}", refused.stderr);

    // A new commit is checked against, not planned for approval.
    w.commit(&[("main.tf", &MODULE.replace("content = var.content\n}", "content = \"${var.content}!\"\n}"))], "change");
    w.reconcile("app");
    assert_eq!(read(&w.managed("main.txt")), "edited by hand");
    assert_eq!(w.pending_plan("app"), None);
    assert_eq!(w.ready_reason("app"), "DriftDetected");
}

/// A module of plain variables: what each ends up as is written to a file.
const VARS_MODULE: &str = r#"
terraform {
  required_providers {
    drifttest = {
      source  = "driftless/drifttest"
      version = "0.1.0"
    }
  }
}

variable "target_dir" {
  type = string
}

variable "region" {
  type = string
}

variable "size" {
  type = string
}

variable "zone" {
  type    = string
  default = "default zone"
}

resource "drifttest_file" "main" {
  path    = "${var.target_dir}/main.txt"
  content = "${var.region} ${var.size} ${var.zone}"
}
"#;

fn vars_object(extra_spec: &str) -> String {
    format!(
        "{repo}---\napiVersion: driftless.dev/v1alpha1\nkind: Terraform\nmetadata:\n  name: app\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: app\n  path: ./infra\n  interval: 1h\n  approvePlan: auto\n{extra_spec}",
        repo = git_repository("app", "main")
    )
}

/// tofu-controller's precedence: `vars`, then `varsFrom` over them, then `tfVarsFiles` (terraform's
/// `-var-file`, from the artifact's root) over both, later files over earlier ones. A required
/// variable only a file sets is not missing; a file that is not there names the field.
#[test]
fn tf_vars_files_and_vars_from_win_in_tofu_controllers_order() {
    let Some(w) = World::new() else { return };
    w.commit(
        &[
            ("infra/main.tf", VARS_MODULE),
            ("env/base.tfvars", "size = \"small\"\nzone = \"zone-a\"\n"),
            ("env/prod.tfvars.json", r#"{"zone": "zone-b"}"#),
        ],
        "module",
    );
    w.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  region: from-vars-from\n").ok();
    let spec = "  vars:\n    - name: target_dir\n      value: __MANAGED__\n    - name: region\n      value: from-vars\n  varsFrom:\n    - kind: ConfigMap\n      name: settings\n  tfVarsFiles:\n    - env/base.tfvars\n    - ./env/prod.tfvars.json\n";
    w.apply(&vars_object(spec)).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(read(&w.managed("main.txt")), "from-vars-from small zone-b");

    w.apply(&vars_object(&spec.replace("env/base.tfvars", "env/missing.tfvars"))).ok();
    w.reconcile("app").fails();
    let ready = w.condition("app", "Ready");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(message.contains("spec.tfVarsFiles") && message.contains("env/missing.tfvars"), "{ready}");
}

/// `fileMappings`: a Secret's key becomes a file in the module directory or in terraform's
/// home directory (a private one of the run's: a workstation's own home is never written).
#[test]
fn file_mappings_put_secret_keys_in_the_workspace_and_in_terraforms_home() {
    let Some(w) = World::new() else { return };
    let module = r#"
terraform {
  required_providers {
    drifttest = {
      source  = "driftless/drifttest"
      version = "0.1.0"
    }
  }
}

variable "target_dir" {
  type = string
}

resource "drifttest_file" "main" {
  path    = "${var.target_dir}/main.txt"
  content = "${file("${path.module}/conf/app.conf")}|${file(pathexpand("~/.config/app/token"))}"
}
"#;
    w.commit(&[("infra/main.tf", module)], "module");
    w.apply(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: files\nstringData:\n  conf: listen=8080\n  token: t0ken-from-a-secret-file\n",
    )
    .ok();
    let spec = "  vars:\n    - name: target_dir\n      value: __MANAGED__\n  fileMappings:\n    - location: workspace\n      path: conf/app.conf\n      secretRef:\n        name: files\n        key: conf\n    - location: home\n      path: .config/app/token\n      secretRef:\n        name: files\n        key: token\n";
    w.apply(&vars_object(spec)).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(read(&w.managed("main.txt")), "listen=8080|t0ken-from-a-secret-file");
    let home = std::env::var("HOME").unwrap_or_default();
    assert!(!std::path::Path::new(&home).join(".config/app/token").exists(), "the user's home is left alone");

    // A key the Secret lacks names the mapping and the key.
    w.apply(&vars_object(&spec.replace("key: token", "key: tokn"))).ok();
    w.reconcile("app").fails();
    let message = w.condition("app", "Ready")["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("spec.fileMappings[1].secretRef") && message.contains("\"tokn\""), "{message}");
}

/// tofu-controller's outputs-to-inputs chain: one Terraform writes its outputs to a Secret
/// (with tofu-controller's `<key>__type` beside a value that is not text), another depends on
/// it and reads them with `readInputsFromSecrets` in its `values` templates; a changed output
/// reaches the dependent.
#[test]
fn read_inputs_from_secrets_carries_one_terraforms_outputs_into_anothers_values() {
    let Some(w) = World::new() else { return };
    let net = r#"
variable "cidr" {
  type = string
}

output "cidr" {
  value = var.cidr
}

output "ports" {
  value = [80, 443]
}
"#;
    let app = r#"
terraform {
  required_providers {
    drifttest = {
      source  = "driftless/drifttest"
      version = "0.1.0"
    }
  }
}

variable "values" {
  type = any
}

variable "target_dir" {
  type = string
}

resource "drifttest_file" "main" {
  path    = "${var.target_dir}/main.txt"
  content = "network ${var.values.network} on port ${var.values.port}"
}
"#;
    w.commit(&[("net/main.tf", net), ("app/main.tf", app)], "modules");
    let objects = |cidr: &str| {
        format!(
            r#"{repo}---
apiVersion: driftless.dev/v1alpha1
kind: Terraform
metadata:
  name: net
spec:
  sourceRef:
    kind: GitRepository
    name: app
  path: ./net
  interval: 1h
  approvePlan: auto
  vars:
    - name: cidr
      value: {cidr}
  writeOutputsToSecret:
    name: net-outputs
---
apiVersion: driftless.dev/v1alpha1
kind: Terraform
metadata:
  name: app
spec:
  sourceRef:
    kind: GitRepository
    name: app
  path: ./app
  interval: 1h
  approvePlan: auto
  dependsOn:
    - name: net
  readInputsFromSecrets:
    - name: net-outputs
      as: net
  values:
    network: ${{{{ .net.cidr }}}}
    port: "${{{{ .net.ports }}}}"
  vars:
    - name: target_dir
      value: __MANAGED__
"#,
            repo = git_repository("app", "main")
        )
    };
    // A list cannot be written into a string: the template says so, naming the field.
    w.apply(&objects("10.0.0.0/16")).ok();
    w.driftless(&["run", "--once"]).fails();
    assert_eq!(w.ready_reason("net"), "Succeeded", "{}", w.condition("net", "Ready"));
    let message = w.condition("app", "Ready")["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("spec.values") && message.contains(".net.ports") && message.contains("list"), "{message}");
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_yaml::from_str(&read(&w.store().join("objects/secret/default/net-outputs.yaml"))).unwrap();
    let data = secret.data.unwrap_or_default();
    let decoded = |key: &str| String::from_utf8(data.get(key).map(|b| b.0.clone()).unwrap_or_default()).unwrap();
    assert_eq!(decoded("cidr"), "10.0.0.0/16");
    assert_eq!(decoded("ports"), "[80,443]");
    assert!(decoded("ports__type").contains("number"), "tofu-controller's type key: {}", decoded("ports__type"));

    let fixed = objects("10.0.0.0/16").replace("\"${{ .net.ports }}\"", "\"${{ .net.cidr }}-port\"");
    w.apply(&fixed).ok();
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("main.txt")), "network 10.0.0.0/16 on port 10.0.0.0/16-port");

    // The dependency's output changes: applying it wakes its dependents, whose inputs
    // changed, so the one pass plans and applies both.
    w.apply(&fixed.replace("value: 10.0.0.0/16", "value: 10.1.0.0/16")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(read(&w.managed("main.txt")), "network 10.1.0.0/16 on port 10.1.0.0/16-port");
}

/// `backendConfig.disable` writes no backend: the module's own is used, here a local one
/// whose path comes from `backendConfigsFrom` (a value with quotes and `${` reaches it
/// literally); the state lives there, not in driftless's backend, and the next plan finds it.
#[test]
fn backend_config_disable_uses_the_modules_backend_with_settings_from_backend_configs_from() {
    let Some(w) = World::new() else { return };
    let module = MODULE.replacen("terraform {", "terraform {\n  backend \"local\" {}\n", 1);
    w.commit(&[("main.tf", &module)], "module");
    let state = w.path().join("own state ${x} \"q\".tfstate");
    w.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: backend\ndata:\n  path: '{}'\n",
        state.display().to_string().replace('\'', "''")
    ))
    .ok();
    let spec =
        "  backendConfig:\n    disable: true\n  backendConfigsFrom:\n    - kind: ConfigMap\n      name: backend\n      keys: [path]\n";
    w.apply(&objects("app", "./", "auto", spec)).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(read(&w.managed("main.txt")), "hello");
    let written = read(&state);
    assert!(written.contains("drifttest_file"), "the module's own backend holds the state: {written}");
    assert!(!w.state_dir("app").join("default.tfstate").exists(), "driftless's backend holds none");

    // The state is found again: a new input plans an update, not a second create.
    w.apply(&objects("app", "./", "auto", spec).replace("value: hello", "value: bye")).ok();
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("main.txt")), "bye");
    let applied = w.condition("app", "Ready")["message"].to_string();
    // Without the state every resource would be added again, nothing changed or destroyed.
    assert!(!applied.contains("0 to change, 0 to destroy"), "the resources the state holds are changed: {applied}");
}

/// `cliConfigSecretRef`: the Secret's `.tfrc` is terraform's CLI configuration. One that
/// points at an empty provider mirror makes init fail (it is used, not ignored); one that
/// points at the real mirror works.
#[test]
fn cli_config_secret_ref_is_terraforms_cli_configuration() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let real = read(&common::tools_dir().join("terraformrc"));
    let empty_mirror = w.path().join("empty-mirror");
    std::fs::create_dir_all(&empty_mirror).unwrap();
    let mirror = real.lines().find(|l| l.trim_start().starts_with("path")).unwrap().to_string();
    let broken = real.replace(&mirror, &format!("    path    = \"{}\"", empty_mirror.display()));
    let secret = |config: &str| {
        let indented: String = config.lines().map(|l| format!("    {l}\n")).collect();
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: cli\nstringData:\n  terraform.tfrc: |\n{indented}")
    };
    let spec = "  cliConfigSecretRef:\n    name: cli\n";
    w.apply(&secret(&broken)).ok();
    w.apply(&objects("app", "./", "auto", spec)).ok();
    w.driftless(&["run", "--once"]);
    let ready = w.condition("app", "Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    assert!(!w.managed("main.txt").exists());

    w.apply(&secret(&real)).ok();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(read(&w.managed("main.txt")), "hello");
}

/// A module whose outputs say where its service listens: what tofu-controller's health checks
/// read (`host` comes from a Secret, so that output is sensitive).
const SERVICE_MODULE: &str = r#"
terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "2.1.2"
    }
  }
}

variable "url" {
  type = string
}

variable "port" {
  type = number
}

variable "host" {
  type      = string
  sensitive = true
}

resource "null_resource" "service" {
  triggers = {
    url = var.url
  }
}

output "url" {
  value = var.url
}

output "port" {
  value = var.port
}

output "host" {
  value     = var.host
  sensitive = true
}
"#;

/// An HTTP server on 127.0.0.1 answering every request with the status it is set to, counting
/// the requests.
struct Service {
    addr: String,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Service {
    fn start() -> Service {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(200));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, r) = (status.clone(), requests.clone());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                if !String::from_utf8_lossy(&buf[..n]).starts_with("GET /healthz ") {
                    let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
                r.fetch_add(1, Ordering::SeqCst);
                let code = s.load(Ordering::SeqCst);
                let body = if code == 200 { "ok" } else { "database unreachable" };
                let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        Service { addr, status, requests }
    }

    fn answer(&self, code: u16) {
        self.status.store(code, std::sync::atomic::Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A port of 127.0.0.1 nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn service_object(url: &str, port: u16, checks: &str) -> String {
    format!(
        r#"{repo}---
apiVersion: driftless.dev/v1alpha1
kind: Terraform
metadata:
  name: app
spec:
  sourceRef:
    kind: GitRepository
    name: app
  path: ./
  interval: 1h
  approvePlan: auto
  writeOutputsToSecret:
    name: app-outputs
  vars:
    - name: url
      value: {url}
    - name: port
      value: {port}
    - name: host
      valueFrom:
        secretKeyRef:
          name: service-host
          key: host
  healthChecks:
{checks}"#,
        repo = git_repository("app", "main")
    )
}

const CHECKS: &str = r#"    - name: web
      type: http
      url: "${{ .url }}/healthz"
      timeout: 5s
    - name: listener
      type: tcp
      address: "127.0.0.1:${{ .port }}"
"#;

fn message(w: &World, type_: &str) -> String {
    w.condition("app", type_)["message"].as_str().unwrap_or_default().to_string()
}

crate::with_each_engine!(health_checks_read_the_outputs_and_a_failing_check_is_not_ready_until_it_passes);

/// tofu-controller's healthChecks after an apply: an http check of a URL and a tcp check of an
/// address, both from the module's outputs; a failing check makes the object not Ready naming
/// the check, and passes again once the service does. With each engine: OpenTofu hands
/// sensitive outputs over otherwise (`output -json`).
fn health_checks_read_the_outputs_and_a_failing_check_is_not_ready_until_it_passes(engine: Engine) {
    let Some(w) = World::with_engine(engine) else { return };
    let service = Service::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    w.commit(&[("main.tf", SERVICE_MODULE)], "module");
    w.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: service-host\nstringData:\n  host: 127.0.0.77\n").ok();
    let url = format!("http://{}", service.addr);
    w.apply(&service_object(&url, port, CHECKS)).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    let hc = w.condition("app", "HealthCheck");
    assert_eq!((hc["status"].as_str(), hc["reason"].as_str()), (Some("True"), Some("HealthChecksSucceed")), "{hc}");
    assert_eq!(hc["message"], "health checks succeeded: web, listener");
    assert_eq!(service.requests(), 1, "the http check ran once");

    // Not on every reconcile: passed at this generation, nothing applied.
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(service.requests(), 1);

    // The service fails: a reconcile asked for checks again, and the object is not Ready.
    service.answer(500);
    w.reconcile("app").fails();
    let ready = w.condition("app", "Ready");
    assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("False"), Some("HealthChecksFailed")), "{ready}");
    let expected = format!("health check \"web\" (http) failed on {url}/healthz: answered 500: database unreachable");
    assert_eq!(ready["message"], expected.as_str());
    assert_eq!(message(&w, "HealthCheck"), expected);
    assert_eq!(w.condition("app", "HealthCheck")["reason"], "HealthChecksFailed");
    assert_eq!(w.events_with_reason("app", "HealthChecksFailed").len(), 1);

    // Retried like any failure, it passes once the service does (no apply: the outputs are
    // read from the Secret).
    w.driftless(&["run", "--once"]).fails();
    assert_eq!(w.events_with_reason("app", "HealthChecksFailed").len(), 1, "the same failure is announced once");
    service.answer(200);
    w.driftless(&["run", "--once"]).ok();
    let ready = w.condition("app", "Ready");
    assert_eq!(ready["reason"], "Succeeded", "{ready}");
    assert!(message(&w, "Ready").starts_with("health checks succeeded: web, listener; applied plan plan-"), "{ready}");
    assert_eq!(w.events_with_reason("app", "HealthChecksSucceed").len(), 1);
    assert_eq!(w.events_with_reason("app", "PlanApplied").len(), 1, "no apply was needed");

    // A closed port fails the tcp check, naming it and its address; the checks changed, so
    // they run without an apply.
    let closed = closed_port();
    let tcp_closed = CHECKS.replace("127.0.0.1:${{ .port }}", &format!("127.0.0.1:{closed}"));
    w.apply(&service_object(&url, port, &tcp_closed)).ok();
    w.driftless(&["run", "--once"]).fails();
    let m = message(&w, "Ready");
    assert_eq!(w.ready_reason("app"), "HealthChecksFailed");
    assert!(m.starts_with(&format!("health check \"listener\" (tcp) failed on 127.0.0.1:{closed}: cannot connect: ")), "{m}");

    // A sensitive output in the address: the check is shown as written, the value never.
    let sensitive = CHECKS.replace("127.0.0.1:${{ .port }}", &format!("${{{{ .host }}}}:{closed}"));
    w.apply(&service_object(&url, port, &sensitive)).ok();
    w.driftless(&["run", "--once"]).fails();
    let m = message(&w, "Ready");
    assert!(m.starts_with(&format!("health check \"listener\" (tcp) failed on ${{{{ .host }}}}:{closed}: cannot connect")), "{m}");
    assert!(!w.store_text_outside_secrets_and_state().contains("127.0.0.77"), "a sensitive output stays out of status and events");

    // A template naming an output the module does not have.
    let missing = CHECKS.replace("${{ .url }}/healthz", "${{ .endpoint }}/healthz");
    w.apply(&service_object(&url, port, &missing)).ok();
    w.driftless(&["run", "--once"]).fails();
    assert_eq!(
        message(&w, "Ready"),
        "health check \"web\" (http, spec.healthChecks[0].url): ${{ .endpoint }} names no output of Secret app-outputs; it holds host, port, url"
    );
    drop(listener);
}

/// The lock a crashed runner leaves behind in the local backend, in terraform's format.
fn stuck_lock(w: &World, id: &str) -> std::path::PathBuf {
    let lock = w.state_dir("app").join("default.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let info = serde_json::json!({ "ID": id, "Operation": "OperationTypeApply", "Who": "crashed-runner@host",
                                   "Version": "1.0.3", "Created": "2026-01-01T00:00:00Z", "Info": "", "Path": "" });
    std::fs::write(&lock, info.to_string()).unwrap();
    lock
}

/// tofu-controller's tfstate.forceUnlock: `no` keeps someone else's lock (the run fails
/// StateLocked with the lock's id in status.lock.id), `yes` breaks only the lock whose id is
/// lockIdentifier, `auto` breaks whatever lock is held; each break is an event.
#[test]
fn force_unlock_breaks_the_named_lock_or_any_under_auto_and_none_under_no() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let held = "5b7d2c1e-0000-4000-8000-000000000001";
    let with = |tfstate: &str| objects("app", "./", "auto", &format!("  tfstate:\n{tfstate}"));

    w.apply(&with("    forceUnlock: \"no\"\n")).ok();
    let lock = stuck_lock(&w, held);
    w.reconcile("app").fails();
    assert_eq!(w.ready_reason("app"), "StateLocked");
    assert_eq!(w.get("terraform", "app")["status"]["lock"]["id"], held, "the id a lockIdentifier names");
    assert!(lock.exists(), "no: the lock is kept");

    // yes with another lock's id: kept.
    w.apply(&with("    forceUnlock: \"yes\"\n    lockIdentifier: 00000000-dead-beef-0000-000000000000\n")).ok();
    w.reconcile("app").fails();
    assert_eq!(w.ready_reason("app"), "StateLocked");
    assert!(lock.exists(), "yes breaks only the lock it names");
    assert!(w.events_with_reason("app", "ForceUnlock").is_empty());

    // yes with the held lock's id: broken, and the run goes on.
    w.apply(&with(&format!("    forceUnlock: \"yes\"\n    lockIdentifier: {held}\n"))).ok();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(read(&w.managed("main.txt")), "hello");
    let events = w.events_with_reason("app", "ForceUnlock");
    assert_eq!(events.len(), 1, "{events:?}");
    let message = events[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains(held) && message.contains("crashed-runner@host"), "{message}");
    assert!(w.get("terraform", "app")["status"]["lock"].is_null());

    // auto: whatever lock is held.
    let other = "7c8e3d2f-0000-4000-8000-000000000002";
    let lock = stuck_lock(&w, other);
    w.apply(&with("    forceUnlock: auto\n")).ok();
    w.commit(&[("main.tf", &MODULE.replace("content = var.content\n}", "content = \"${var.content}!\"\n}"))], "change");
    w.reconcile("app").ok();
    assert!(!lock.exists() || !read(&lock).contains(other), "auto broke the lock");
    assert_eq!(read(&w.managed("main.txt")), "hello!");
    let events = w.events_with_reason("app", "ForceUnlock");
    assert!(events.iter().any(|e| e["message"].as_str().unwrap_or_default().contains(other)), "{events:?}");
}

/// tofu-controller's storeReadablePlan on the local store: each plan also lands where
/// tofu-controller keeps it, json in a gzipped Secret and human in a ConfigMap, with no
/// sensitive value in either.
#[test]
fn store_readable_plan_writes_the_plan_where_tofu_controller_keeps_it() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-token\nstringData:\n  token: s3cr3t-plan-token\n";
    let spec = "  storeReadablePlan: json\n  varsFrom:\n    - kind: Secret\n      name: app-token\n";
    w.apply(&format!("{secret}---\n{}", objects("app", "./", "", spec))).ok();
    w.reconcile("app").ok();
    let plan = w.pending_plan("app").expect("a pending plan");
    let stored = store_object(&w, "secret", "tfplan-default-app.json");
    assert_eq!(stored["metadata"]["annotations"]["savedPlan"], plan.as_str(), "{stored}");
    assert_eq!(stored["metadata"]["annotations"]["encoding"], "gzip");
    assert_eq!(stored["metadata"]["labels"]["infra.contrib.fluxcd.io/plan-name"], "app.json");
    let json = gunzip_base64(stored["data"]["tfplan"].as_str().unwrap());
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let addresses: Vec<&str> = doc["resource_changes"].as_array().unwrap().iter().filter_map(|r| r["address"].as_str()).collect();
    assert!(addresses.contains(&"drifttest_file.main"), "{addresses:?}");
    assert!(!json.contains("s3cr3t-plan-token"), "a sensitive value reached the readable plan");

    w.apply(&format!("{secret}---\n{}", objects("app", "./", "", &spec.replace("json", "human")))).ok();
    w.commit(&[("main.tf", &MODULE.replace("content = var.content\n}", "content = \"${var.content}!\"\n}"))], "change");
    w.reconcile("app").ok();
    let stored = store_object(&w, "configmap", "tfplan-default-app");
    let text = stored["data"]["tfplan"].as_str().unwrap();
    assert!(text.contains("drifttest_file.main") && text.contains(" to add"), "{text}");
    assert!(!text.contains("s3cr3t-plan-token"), "{text}");
    assert_eq!(stored["metadata"]["annotations"]["savedPlan"], w.pending_plan("app").unwrap().as_str());
}

fn gunzip_base64(data: &str) -> String {
    use base64::Engine as _;
    use std::io::Read as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
    let mut out = String::new();
    flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut out).unwrap();
    out
}

/// An object of the local store as JSON (`kind` lowercased, as the store names its folders).
fn store_object(w: &World, kind: &str, name: &str) -> serde_json::Value {
    let path = w.store().join("objects").join(kind).join("default").join(format!("{name}.yaml"));
    serde_yaml::from_str(&read(&path)).unwrap()
}
