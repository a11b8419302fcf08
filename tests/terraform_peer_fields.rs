//! tofu-controller's Terraform fields, with tofu-controller's meaning, end to end on the local
//! store with real terraform and real providers: an object moved over by its apiVersion does
//! what it did before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{MODULE, World, git_repository, objects};

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
