//! The life of a Terraform object on the local store: auto approval, drift modes and ignore
//! rules, destroy, deletion, dependencies, no work for an unchanged revision, and the core
//! flow against every other terraform on this machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Engine, MODULE, World, engine_version, git_repository, objects, terraform_object};

crate::with_each_engine!(
    auto_approval_applies_the_first_plan_in_one_run,
    drift_correct_mode_with_auto_approval_restores_an_out_of_band_edit_in_one_reconcile,
    deleting_a_terraform_with_destroy_on_deletion_destroys_its_resources_and_outputs,
    spec_destroy_plans_a_destroy_that_waits_for_approval,
    a_failed_plan_names_the_engine_that_ran,
);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn auto_approval_applies_the_first_plan_in_one_run(engine: Engine) {
    let Some(w) = World::with_engine(engine) else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.driftless(&["run", "--once"]).ok();

    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_eq!(read(&w.managed("main.txt")), "hello");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["plan"]["pending"], false);
    assert_eq!(tf["status"]["plan"]["approvedBy"], "auto");
    assert_eq!(tf["status"]["plan"]["summary"]["add"], 2, "{}", tf["status"]["plan"]);
    assert_eq!(w.events_with_reason("app", "PlanApplied").len(), 1);
    assert!(w.events_with_reason("app", "PlanPending").is_empty(), "an auto-approved plan never waits");
    assert_eq!(w.state_written_by("app"), engine_version(w.engine_binary()), "{engine:?} applied the plan");
}

fn drift_correct_mode_with_auto_approval_restores_an_out_of_band_edit_in_one_reconcile(engine: Engine) {
    let Some(w) = World::with_engine(engine) else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "  drift:\n    mode: correct\n    interval: 1h\n")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");

    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("main.txt")), "hello", "the correction is applied by the reconcile alone");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["drift"]["detected"], false, "{}", tf["status"]["drift"]);
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_eq!(w.pending_plan("app"), None);
    let detected = w.events_with_reason("app", "DriftDetected");
    assert_eq!(detected.len(), 1, "the drift is still reported: {detected:?}");
    assert!(detected[0]["message"].as_str().unwrap_or_default().contains("drifttest_file.main"), "{detected:?}");
    assert_eq!(w.events_with_reason("app", "PlanApplied").len(), 2, "first apply and the correction");
    assert_eq!(w.state_written_by("app"), engine_version(w.engine_binary()), "{engine:?} applied the correction");
}

#[test]
fn drift_detect_mode_with_auto_approval_never_corrects_by_itself() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "  drift:\n    mode: detect\n    interval: 1h\n")).ok();
    w.driftless(&["run", "--once"]).ok();

    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("main.txt")), "edited by hand");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["drift"]["detected"], true);
    let correction = tf["status"]["drift"]["planId"].as_str().expect("a correction plan").to_string();
    assert_eq!(w.pending_plan("app").as_deref(), Some(correction.as_str()), "the correction waits for approval");
    assert_eq!(w.ready_reason("app"), "PlanPending");
    assert_eq!(w.events_with_reason("app", "PlanApplied").len(), 1, "only the first apply");
}

#[test]
fn drift_in_an_ignored_attribute_is_not_reported() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let drift = "  drift:\n    mode: detect\n    interval: 1h\n    ignore:\n      - address: drifttest_file.main\n        attributes: [\"content\"]\n";
    w.apply(&objects("app", "./", "auto", drift)).ok();
    w.driftless(&["run", "--once"]).ok();

    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    w.reconcile("app").ok();
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["drift"]["detected"], false, "{}", tf["status"]["drift"]);
    assert!(tf["status"]["drift"]["lastCheckedAt"].is_string(), "it was checked: {}", tf["status"]["drift"]);
    assert!(w.events_with_reason("app", "DriftDetected").is_empty());
    assert_eq!(w.pending_plan("app"), None, "no correction plan for ignored drift");
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_ne!(w.condition("app", "Drifted")["status"], "True");
    assert_eq!(read(&w.managed("main.txt")), "edited by hand");
}

#[test]
fn drift_in_an_ignored_attribute_is_not_corrected_in_correct_mode_either() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let drift = "  drift:\n    mode: correct\n    interval: 1h\n    ignore:\n      - address: drifttest_file.main\n        attributes: [\"content\"]\n";
    w.apply(&objects("app", "./", "auto", drift)).ok();
    w.driftless(&["run", "--once"]).ok();

    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    w.reconcile("app").ok();
    assert_eq!(w.get("terraform", "app")["status"]["drift"]["detected"], false);
    assert!(w.events_with_reason("app", "DriftDetected").is_empty());
    assert_eq!(w.events_with_reason("app", "PlanApplied").len(), 1, "no correction is applied for ignored drift");
    assert_eq!(read(&w.managed("main.txt")), "edited by hand", "an ignored attribute is left as it is");
}

fn deleting_a_terraform_with_destroy_on_deletion_destroys_its_resources_and_outputs(engine: Engine) {
    let Some(w) = World::with_engine(engine) else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "  destroyResourcesOnDeletion: true\n  writeOutputsToSecret:\n    name: app-outputs\n")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert!(w.managed("main.txt").exists());
    assert!(w.get("secret", "app-outputs")["data"]["path"].is_string());
    assert_eq!(w.state_written_by("app"), engine_version(w.engine_binary()), "{engine:?} applied the plan");

    let run = w.driftless(&["delete", "terraform", "app"]).ok();
    assert!(run.stdout.contains("destroying"), "{}", run.stdout);
    assert!(!w.managed("main.txt").exists(), "the managed file is destroyed");
    w.driftless(&["get", "terraform", "app", "-o", "json"]).fails();
    w.driftless(&["get", "secret", "app-outputs", "-o", "json"]).fails();
    assert!(!w.driftless(&["get", "terraform"]).ok().stdout.contains("app"));
    assert_eq!(w.events_with_reason("app", "Destroyed").len(), 1);
}

/// `writeOutputsToSecret` naming a Secret the Terraform did not write (a user's, or another
/// Terraform's state) neither overwrites it nor deletes it with the Terraform.
#[test]
fn outputs_never_overwrite_or_delete_a_secret_the_terraform_did_not_write() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: precious\nstringData:\n  key: mine\n").ok();
    w.apply(&objects("app", "./", "auto", "  destroyResourcesOnDeletion: true\n  writeOutputsToSecret:\n    name: precious\n")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert!(w.managed("main.txt").exists(), "the apply itself goes ahead");
    let condition = w.condition("app", "OutputsWritten");
    assert_eq!(condition["status"], "False", "{condition}");
    assert_eq!(condition["reason"], "OutputsWriteFailed");
    assert!(condition["message"].as_str().unwrap().contains("was not written by this Terraform"), "{condition}");
    let secret = w.get("secret", "precious");
    assert_eq!(secret["data"]["key"], "bWluZQ==", "unchanged: {secret}");
    assert!(secret["data"]["path"].is_null(), "no output written into it");

    w.driftless(&["delete", "terraform", "app"]).ok();
    assert!(!w.managed("main.txt").exists());
    assert_eq!(w.get("secret", "precious")["data"]["key"], "bWluZQ==", "not deleted with the Terraform");
}

#[test]
fn deleting_a_terraform_without_destroy_on_deletion_leaves_its_resources() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.driftless(&["run", "--once"]).ok();

    w.driftless(&["delete", "terraform", "app"]).ok();
    w.driftless(&["get", "terraform", "app", "-o", "json"]).fails();
    assert_eq!(read(&w.managed("main.txt")), "hello", "the managed file stays");
    assert!(w.events_with_reason("app", "Destroyed").is_empty());
}

fn spec_destroy_plans_a_destroy_that_waits_for_approval(engine: Engine) {
    let Some(w) = World::with_engine(engine) else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert!(w.managed("main.txt").exists());

    w.apply(&objects("app", "./", "", "  destroy: true\n")).ok();
    w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").expect("a pending destroy plan");
    assert!(w.managed("main.txt").exists(), "nothing is destroyed before approval");
    let shown = w.driftless(&["plan", "show", "app"]).ok().stdout;
    assert!(shown.contains("drifttest_file.main (delete)") && shown.contains("null_resource.marker (delete)"), "{shown}");
    assert!(shown.contains("2 to destroy"), "{shown}");

    w.driftless(&["approve", "app", &plan]).ok();
    w.reconcile("app").ok();
    assert!(!w.managed("main.txt").exists(), "the approved destroy plan is applied");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["plan"]["id"], plan.as_str());
    assert_eq!(tf["status"]["plan"]["pending"], false);
    assert_eq!(w.ready_reason("app"), "Destroyed");
    assert_eq!(w.state_written_by("app"), engine_version(w.engine_binary()), "{engine:?} applied the destroy plan");
}

#[test]
fn a_dependent_runs_as_soon_as_its_dependency_is_ready_in_one_run() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    // `a-app` sorts first, so the loop meets it before its dependency is Ready.
    let depends = "  dependsOn:\n    - name: z-db\n";
    let yaml = format!(
        "{}---\n{}---\n{}",
        git_repository("repo", "main"),
        terraform_object("a-app", "repo", "./", "auto", "app", depends),
        terraform_object("z-db", "repo", "./", "auto", "db", "")
    );
    w.apply(&yaml).ok();
    w.driftless(&["run", "--once"]).ok();

    assert_eq!(w.ready_reason("z-db"), "Succeeded");
    assert_eq!(w.ready_reason("a-app"), "Succeeded", "the dependent ran in the same run, not on its 1h interval");
    assert_eq!(read(&w.managed("db/main.txt")), "hello");
    assert_eq!(read(&w.managed("app/main.txt")), "hello");
    let applied: Vec<String> = w
        .events()
        .into_iter()
        .filter(|e| e["reason"] == "PlanApplied")
        .map(|e| e["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(applied, ["z-db", "a-app"], "the dependency is applied first");
}

#[test]
fn a_missing_dependency_is_dependency_not_ready_naming_it() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let yaml = format!(
        "{}---\n{}",
        git_repository("repo", "main"),
        terraform_object("app", "repo", "./", "auto", "app", "  dependsOn:\n    - name: ghost\n")
    );
    w.apply(&yaml).ok();
    let run = w.driftless(&["run", "--once"]).fails();
    assert!(run.all().contains("DependencyNotReady"), "{}", run.all());
    assert_eq!(w.ready_reason("app"), "DependencyNotReady");
    let message = w.condition("app", "Ready")["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("ghost"), "{message}");
    assert!(!w.managed("app/main.txt").exists());
}

/// A terraform that counts its invocations in `counter`, then is the real one.
fn counting_terraform(w: &World, counter: &Path) -> PathBuf {
    let wrapper = w.path().join("counting-terraform");
    let script = format!("#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n", counter.display(), w.tools.terraform.display());
    std::fs::write(&wrapper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    wrapper
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn an_unchanged_revision_starts_no_terraform() {
    let Some(mut w) = World::new() else { return };
    let counter = w.path().join("terraform-calls");
    w.terraform = counting_terraform(&w, &counter);
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    let after_apply = lines(&counter);
    assert!(after_apply > 0, "the wrapper is the terraform the runners use");
    let work_events = |w: &World| w.count_events("app", &["PlanPending", "PlanApplied"]);
    let events_after_apply = work_events(&w);

    w.driftless(&["run", "--once"]).ok();
    assert_eq!(lines(&counter), after_apply, "no terraform for an unchanged revision:\n{}", read(&counter));
    assert_eq!(work_events(&w), events_after_apply);
    assert_eq!(w.ready_reason("app"), "Succeeded");
}

/// Every terraform on this machine other than the pinned one, with its version.
fn other_terraforms(w: &World) -> Vec<(PathBuf, String)> {
    let mut candidates: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join("terraform")).collect()).unwrap_or_default();
    candidates.push(PathBuf::from("/usr/local/bin/terraform"));
    let pinned = std::fs::canonicalize(&w.tools.terraform).unwrap();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for c in candidates {
        let Ok(real) = std::fs::canonicalize(&c) else { continue };
        if !real.is_file() || real == pinned || seen.contains(&real) {
            continue;
        }
        seen.push(real.clone());
        let mut cmd = Command::new(&real);
        cmd.args(["version", "-json"]).env("CHECKPOINT_DISABLE", "1");
        w.env(&mut cmd);
        let Ok(output) = cmd.output() else { continue };
        let version = serde_json::from_slice::<serde_json::Value>(&output.stdout)
            .ok()
            .and_then(|v| v["terraform_version"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or_default().trim_start_matches("Terraform v").to_string()
            });
        if version.is_empty() || version == "1.0.3" {
            continue;
        }
        out.push((real, version));
    }
    out
}

/// plan -> approve -> apply -> out-of-band edit -> drift -> approve correction -> Ready.
fn core_flow(w: &World, label: &str) {
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "", "  drift:\n    mode: detect\n    interval: 1h\n")).ok();
    w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").unwrap_or_else(|| panic!("{label}: a pending plan"));
    let shown = w.driftless(&["plan", "show", "app"]).ok().stdout;
    assert!(shown.contains("+ drifttest_file.main (create)"), "{label}: {shown}");
    w.driftless(&["approve", "app", &plan]).ok();
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("main.txt")), "hello", "{label}");
    assert_eq!(w.ready_reason("app"), "Succeeded", "{label}");
    assert_eq!(w.get("terraform", "app")["status"]["availableOutputs"], serde_json::json!(["path", "token"]), "{label}");

    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    w.reconcile("app").ok();
    let tf = w.get("terraform", "app");
    let drift = &tf["status"]["drift"];
    assert_eq!(drift["detected"], true, "{label}: {drift}");
    assert_eq!(drift["objects"][0]["name"], "drifttest_file.main", "{label}: {drift}");
    assert_eq!(drift["objects"][0]["fields"], serde_json::json!(["content"]), "{label}: {drift}");
    let correction = drift["planId"].as_str().unwrap_or_else(|| panic!("{label}: a correction plan: {drift}")).to_string();
    w.driftless(&["approve", "app", &correction]).ok();
    w.reconcile("app").ok();
    assert_eq!(read(&w.managed("main.txt")), "hello", "{label}");
    assert_eq!(w.ready_reason("app"), "Succeeded", "{label}");
    assert_eq!(w.get("terraform", "app")["status"]["drift"]["detected"], false, "{label}");
}

#[test]
fn the_core_flow_works_with_every_other_terraform_on_this_machine() {
    let Some(probe) = World::new() else { return };
    let others = other_terraforms(&probe);
    if others.is_empty() {
        println!("no other terraform on this machine");
        return;
    }
    for (terraform, version) in others {
        let mut w = World::new().unwrap();
        w.terraform = terraform.clone();
        eprintln!("core flow with terraform {version} ({})", terraform.display());
        core_flow(&w, &format!("terraform {version} at {}", terraform.display()));
    }
}

#[test]
fn a_suspended_terraform_is_left_alone_until_resumed() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", common::MODULE)], "module");
    w.apply(&common::objects("app", "./", "auto", "")).ok();
    w.driftless(&["suspend", "terraform", "app"]).ok();
    w.driftless(&["run", "--once"]).ok();
    assert!(!w.managed("main.txt").exists(), "a suspended object is not applied");
    assert!(w.get("terraform", "app")["status"]["plan"].is_null(), "nor planned");
    let refused = w.driftless(&["reconcile", "terraform", "app"]).fails();
    assert!(refused.stderr.contains("suspended"), "{}", refused.stderr);

    w.driftless(&["resume", "terraform", "app"]).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
}

fn a_failed_plan_names_the_engine_that_ran(engine: Engine) {
    let Some(w) = World::with_engine(engine) else { return };
    let broken = format!("{MODULE}\noutput \"broken\" {{\n  value = null_resource.missing.id\n}}\n");
    w.commit(&[("main.tf", &broken)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.driftless(&["run", "--once"]).fails();
    let ready = w.condition("app", "Ready");
    let named = match engine {
        Engine::Terraform => "terraform plan failed",
        Engine::Tofu => "tofu plan failed",
    };
    assert!(ready["message"].as_str().unwrap_or_default().contains(named), "{named}: {ready}");
    assert!(!w.managed("main.txt").exists());
}

/// `spec.engine` picks the engine whatever else the runner has; unset, a runner with both
/// runs OpenTofu (as the runner image does).
#[test]
fn spec_engine_chooses_the_engine_and_an_unset_one_runs_tofu() {
    let Some(w) = World::with_engine(Engine::Tofu) else { return };
    let (tofu, terraform) = (engine_version(w.engine_binary()), engine_version(&w.terraform));
    assert_ne!(tofu, terraform, "two engines of different versions tell which one wrote a state");
    w.commit(&[("main.tf", MODULE)], "module");
    let yaml = format!(
        "{}---\n{}---\n{}---\n{}",
        git_repository("repo", "main"),
        terraform_object("by-default", "repo", "./", "auto", "default", ""),
        terraform_object("by-terraform", "repo", "./", "auto", "terraform", "  engine: terraform\n"),
        terraform_object("by-tofu", "repo", "./", "auto", "tofu", "  engine: tofu\n"),
    );
    w.apply(&yaml).ok();
    w.driftless(&["run", "--once"]).ok();
    for (name, version) in [("by-default", &tofu), ("by-terraform", &terraform), ("by-tofu", &tofu)] {
        assert_eq!(w.ready_reason(name), "Succeeded", "{name}");
        assert_eq!(&w.state_written_by(name), version, "{name}");
    }
    assert_eq!(w.get("terraform", "by-terraform")["spec"]["engine"], "terraform", "the field is kept as written");
}

/// A saved plan is applied by the engine that made it, even when the runner would pick
/// another one for the object today (here: tofu was added to a runner that had terraform
/// only, between the plan and its approval); status says which engine made the plan.
#[test]
fn a_plan_is_applied_by_the_engine_that_made_it_whatever_the_runner_prefers_since() {
    let Some(mut w) = World::new() else { return };
    let Some(tofu) = common::tofu() else { return };
    let terraform = engine_version(&w.terraform);
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").expect("a pending plan");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["plan"]["engine"], format!("Terraform {terraform}").as_str(), "{}", tf["status"]);

    // The runner now has tofu as well, which it prefers for objects that name no engine.
    w.tofu = Some(tofu);
    w.driftless(&["approve", "app", &plan]).ok();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.get("terraform", "app")["status"]);
    assert_eq!(w.state_written_by("app"), terraform, "terraform applied its own plan");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["plan"]["id"], plan.as_str());
    assert_eq!(tf["status"]["plan"]["engine"], format!("Terraform {terraform}").as_str(), "{}", tf["status"]);
}

/// An object asking for an engine the runner lacks fails naming it: the runner never runs
/// the other engine in its place.
#[test]
fn an_engine_the_runner_lacks_fails_by_name_and_is_never_swapped_for_the_other() {
    let Some(mut w) = World::new() else { return };
    // Only the world's terraform (`--terraform`): no tofu on the runner's PATH either.
    let empty = w.path().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    w.extra_env.push(("PATH".into(), empty.display().to_string()));
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "  engine: tofu\n")).ok();
    w.driftless(&["run", "--once"]).fails();
    let ready = w.condition("app", "Ready");
    assert_eq!(ready["status"], "False", "{ready}");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(message.contains("spec.engine is tofu but tofu is not on the runner's PATH"), "{ready}");
    assert!(!w.managed("main.txt").exists());
    assert!(!w.state_dir("app").join("default.tfstate").exists(), "terraform did not run instead");
}
