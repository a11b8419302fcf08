//! Bad input on the local store: each problem gives the right Ready reason and a message
//! naming it, the state is kept, and the next run recovers once the input is fixed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{MODULE, World, git_repository, objects, terraform_object};
use serde_json::Value;

fn ready_message(w: &World, name: &str) -> String {
    w.condition(name, "Ready")["message"].as_str().unwrap_or_default().to_string()
}

fn state_json(w: &World, name: &str) -> Value {
    let path = w.state_dir(name).join("default.tfstate");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("state {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("state {} is not JSON: {e}\n{text}", path.display()))
}

fn state_addresses(state: &Value) -> Vec<String> {
    state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| format!("{}.{}", r["type"].as_str().unwrap_or_default(), r["name"].as_str().unwrap_or_default()))
        .collect()
}

#[test]
fn invalid_hcl_is_an_invalid_module_naming_the_file_and_a_fixing_commit_recovers() {
    let Some(w) = World::new() else { return };
    w.commit(&[("infra/main.tf", MODULE)], "module");
    w.apply(&objects("app", "./infra", "auto", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    let applied_revision = w.get("terraform", "app")["status"]["lastAppliedRevision"].clone();

    w.commit(&[("infra/broken.tf", "resource \"drifttest_file\" \"extra\" {\n  path = \n")], "broken");
    let run = w.reconcile("app").fails();
    assert!(run.stderr.contains("InvalidModule"), "{}", run.stderr);
    assert_eq!(w.ready_reason("app"), "InvalidModule");
    let message = ready_message(&w, "app");
    assert!(message.contains("broken.tf"), "the message names the file: {message}");
    // Nothing was lost: the last applied revision, the state and the managed file stay.
    assert_eq!(w.get("terraform", "app")["status"]["lastAppliedRevision"], applied_revision);
    assert!(state_addresses(&state_json(&w, "app")).contains(&"drifttest_file.main".to_string()));
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");

    w.commit_removal(&["infra/broken.tf"], "fix");
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_ne!(w.get("terraform", "app")["status"]["lastAppliedRevision"], applied_revision, "the fixed revision is the applied one");
}

#[test]
fn invalid_hcl_in_a_first_revision_plans_fine_after_the_fix() {
    let Some(w) = World::new() else { return };
    w.commit(&[("infra/main.tf", MODULE), ("infra/broken.tf", "variable \"x\" {")], "module");
    w.apply(&objects("app", "./infra", "", "")).ok();
    let run = w.driftless(&["run", "--once"]).fails();
    assert!(run.all().contains("broken.tf"), "{}", run.all());
    assert_eq!(w.ready_reason("app"), "InvalidModule");
    assert!(ready_message(&w, "app").contains("infra/broken.tf"), "{}", ready_message(&w, "app"));
    assert_eq!(w.pending_plan("app"), None);

    w.commit_removal(&["infra/broken.tf"], "fix");
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "PlanPending");
    assert!(w.pending_plan("app").is_some());
}

#[test]
fn a_variable_the_module_does_not_declare_is_an_invalid_module_naming_it_and_the_declared_ones() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let extra = "    - name: colour\n      value: blue\n";
    w.apply(&objects("app", "./", "", extra)).ok();
    let run = w.reconcile("app").fails();
    assert!(run.stderr.contains("InvalidModule"), "{}", run.stderr);
    assert_eq!(w.ready_reason("app"), "InvalidModule");
    let message = ready_message(&w, "app");
    assert!(message.contains("colour"), "names the unknown variable: {message}");
    for declared in ["content", "target_dir", "token"] {
        assert!(message.contains(declared), "names the declared variable {declared}: {message}");
    }
    assert_eq!(w.pending_plan("app"), None);

    w.apply(&objects("app", "./", "", "")).ok();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "PlanPending");
}

#[test]
fn a_required_variable_without_a_value_is_reported_by_name() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let without_target = objects("app", "./", "", "").replace("    - name: target_dir\n      value: __MANAGED__\n", "");
    assert!(!without_target.contains("target_dir"));
    w.apply(&without_target).ok();
    let run = w.reconcile("app").fails();
    assert!(run.stderr.contains("VariablesNotFound"), "{}", run.stderr);
    assert_eq!(w.ready_reason("app"), "VariablesNotFound");
    let message = ready_message(&w, "app");
    assert!(message.contains("target_dir"), "names the missing variable: {message}");
    assert!(!message.contains("token"), "a variable with a default is not required: {message}");

    w.apply(&objects("app", "./", "", "")).ok();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "PlanPending");
}

#[test]
fn a_missing_source_is_source_not_ready_naming_it_until_it_exists() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&terraform_object("app", "nowhere", "./", "", "", "")).ok();
    let run = w.reconcile("app").fails();
    assert!(run.stderr.contains("SourceNotReady"), "{}", run.stderr);
    assert_eq!(w.ready_reason("app"), "SourceNotReady");
    let message = ready_message(&w, "app");
    assert!(message.contains("GitRepository") && message.contains("nowhere"), "{message}");

    w.apply(&git_repository("nowhere", "main")).ok();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "PlanPending");
}

#[test]
fn an_unknown_branch_fails_the_source_naming_it_and_the_terraform_waits_for_the_source() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&git_repository("app", "no-such-branch")).ok();
    w.apply(&terraform_object("app", "app", "./", "", "", "")).ok();
    w.driftless(&["run", "--once"]).fails();

    let source_ready = w.condition_of("gitrepository", "app", "Ready");
    assert_eq!(source_ready["status"], "False", "{source_ready}");
    assert!(source_ready["message"].as_str().unwrap_or_default().contains("no-such-branch"), "{source_ready}");
    assert_eq!(w.ready_reason("app"), "SourceNotReady");
    let message = ready_message(&w, "app");
    assert!(message.contains("app"), "{message}");
    assert!(!w.managed("main.txt").exists());

    w.apply(&git_repository("app", "main")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.condition_of("gitrepository", "app", "Ready")["status"], "True");
    assert_eq!(w.ready_reason("app"), "PlanPending");
}

#[test]
fn terraform_failing_mid_apply_is_apply_failed_with_the_diagnostic_keeps_the_state_and_recovers() {
    let Some(mut w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    w.extra_env.push(("DRIFTTEST_FAIL_ON_CONTENT".into(), "hello".into()));
    let run = w.driftless(&["run", "--once"]).fails();
    assert!(run.all().contains("ApplyFailed"), "{}", run.all());

    assert_eq!(w.ready_reason("app"), "ApplyFailed");
    let message = ready_message(&w, "app");
    assert!(message.contains("drifttest: simulated apply failure"), "the provider's diagnostic is in the message: {message}");
    assert!(!w.managed("main.txt").exists());
    // What was created before the failure stays in state: nothing is lost.
    let state = state_json(&w, "app");
    let addresses = state_addresses(&state);
    assert!(addresses.contains(&"null_resource.marker".to_string()), "{addresses:?}");
    assert!(!addresses.contains(&"drifttest_file.main".to_string()), "{addresses:?}");
    assert!(!w.state_dir("app").join("default.lock").exists(), "a failed apply leaves no lock behind");
    assert_eq!(w.pending_plan("app"), None, "a partly applied plan is never applied again");
    assert!(!w.events_with_reason("app", "ReconciliationFailed").is_empty());

    w.extra_env.clear();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
    let addresses = state_addresses(&state_json(&w, "app"));
    assert!(
        addresses.contains(&"null_resource.marker".to_string()) && addresses.contains(&"drifttest_file.main".to_string()),
        "{addresses:?}"
    );
    // The recovery plan only adds what is missing: the null resource was kept, not recreated.
    let plan = &w.get("terraform", "app")["status"]["plan"];
    assert_eq!(plan["summary"]["add"], 1, "{plan}");
}

#[test]
fn a_stuck_lock_is_reported_with_its_holder_and_cleared_by_unlock() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "", "")).ok();
    // The lock a crashed runner leaves behind, in terraform's LockInfo format.
    let lock = w.state_dir("app").join("default.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(
        &lock,
        r#"{"ID":"5b7d2c1e-0000-4000-8000-000000000001","Operation":"OperationTypeApply","Who":"crashed-runner@host","Version":"1.0.3","Created":"2026-01-01T00:00:00Z","Info":"","Path":""}"#,
    )
    .unwrap();

    let run = w.reconcile("app").fails();
    assert!(run.stderr.contains("StateLocked"), "{}", run.stderr);
    assert_eq!(w.ready_reason("app"), "StateLocked");
    let message = ready_message(&w, "app");
    assert!(message.contains("crashed-runner@host"), "the message names the holder: {message}");
    assert!(message.contains("driftless unlock app"), "the message says what to do: {message}");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["lock"]["holder"], "crashed-runner@host", "{}", tf["status"]);
    assert_eq!(tf["status"]["lock"]["since"], "2026-01-01T00:00:00Z");
    assert_eq!(w.condition("app", "StateLocked")["status"], "True");
    assert!(lock.exists(), "a run never breaks a lock it does not hold");
    assert!(!w.managed("main.txt").exists());

    // Without --yes and without a terminal to ask on, unlock refuses.
    let refused = w.driftless(&["unlock", "app"]).fails();
    assert!(refused.all().contains("crashed-runner@host"), "{}", refused.all());
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert!(lock.exists());

    w.driftless(&["unlock", "app", "--yes"]).ok();
    assert!(!lock.exists());
    w.reconcile("app").ok();
    assert!(matches!(w.ready_reason("app").as_str(), "PlanPending" | "Succeeded"), "{}", w.ready_reason("app"));
    let tf = w.get("terraform", "app");
    assert!(tf["status"]["lock"].is_null(), "{}", tf["status"]);
    assert_ne!(w.condition("app", "StateLocked")["status"], "True");
}

/// An approval is spent by one apply attempt: after a failed apply the plan is made again
/// (same inputs, same id, another stored plan), and that plan waits for a new approval; it
/// is never applied under the approval of the plan that failed.
#[test]
fn after_a_failed_apply_the_new_plan_waits_for_approval() {
    let Some(mut w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").unwrap();
    w.driftless(&["approve", "app", &plan]).ok();
    w.extra_env.push(("DRIFTTEST_FAIL_ON_CONTENT".into(), "hello".into()));
    w.reconcile("app").fails();
    assert_eq!(w.ready_reason("app"), "ApplyFailed");
    assert!(w.condition("app", "Ready")["message"].as_str().unwrap_or_default().contains("drifttest: simulated apply failure"));
    assert!(state_addresses(&state_json(&w, "app")).contains(&"null_resource.marker".to_string()));

    let tf = w.get("terraform", "app");
    assert!(tf["metadata"]["annotations"]["driftless.dev/approve-plan"].is_null(), "the approval was spent: {}", tf["metadata"]);

    // The cause is gone; the plan is made again and waits: nobody reviewed it yet.
    w.extra_env.clear();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "PlanPending", "{}", w.condition("app", "Ready"));
    assert_eq!(w.pending_plan("app").as_deref(), Some(plan.as_str()), "same inputs, same id");
    assert!(!w.managed("main.txt").exists(), "nothing applied without a new approval");

    // Approving it again (bound to the new stored plan) applies it.
    let approved = w.driftless(&["approve", "app"]).ok();
    assert!(approved.stdout.contains("stored plan sha256:"), "{}", approved.stdout);
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
}

/// Whether a `terraform apply` of this world runs (found by the marker in its environment).
fn applying(marker: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        cmdline.split(|b| *b == 0).any(|a| a == b"apply") && environ.split(|b| *b == 0).any(|v| v == marker.as_bytes())
    })
}

#[test]
fn a_state_the_backend_refused_is_kept_in_a_secret_nothing_runs_until_it_is_saved_and_nothing_is_made_twice() {
    let Some(mut w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "")).ok();
    let marker = format!("DRIFTLESS_TEST_WORLD={}", w.path().display());
    let (key, value) = marker.split_once('=').unwrap();
    w.extra_env.push((key.into(), value.into()));
    w.extra_env.push(("DRIFTTEST_APPLY_DELAY_MS".into(), "4000".into()));

    // The backend goes away while terraform applies (after it read the state, before it
    // writes it): terraform cannot save the state, and the runner cannot either.
    let mut cmd = std::process::Command::new(&w.tools.driftless);
    cmd.arg("--store").arg(w.store()).arg("--terraform").arg(&w.terraform).args(["reconcile", "terraform", "app", "--with-source"]);
    w.env(&mut cmd);
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    while !applying(&marker) {
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "terraform never applied");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let state_dir = w.state_dir("app");
    let away = state_dir.with_extension("away");
    std::fs::rename(&state_dir, &away).unwrap();
    std::fs::write(&state_dir, "not a directory").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    assert_eq!(w.ready_reason("app"), "BackendFailed");
    let message = ready_message(&w, "app");
    assert!(message.contains("driftless keeps it in Secret app-unsaved-tfstate"), "{message}");
    assert!(w.managed("main.txt").exists(), "the apply made the file");
    w.driftless(&["get", "secret", "app-unsaved-tfstate"]).ok();
    assert_eq!(w.events_with_reason("app", "StateNotSaved").len(), 1);

    // Still down: nothing runs, and the condition says why.
    w.extra_env.clear();
    w.reconcile("app").fails();
    assert_eq!(w.ready_reason("app"), "StateNotSaved");
    let message = ready_message(&w, "app");
    assert!(message.contains("kept in Secret app-unsaved-tfstate and not saved yet"), "{message}");

    // Back: the kept state is saved first, so the plan finds everything made.
    std::fs::remove_file(&state_dir).unwrap();
    std::fs::rename(&away, &state_dir).unwrap();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    let message = ready_message(&w, "app");
    assert!(message.contains("no changes"), "nothing is made twice: {message}");
    let addresses = state_addresses(&state_json(&w, "app"));
    assert!(
        addresses.contains(&"null_resource.marker".to_string()) && addresses.contains(&"drifttest_file.main".to_string()),
        "{addresses:?}"
    );
    assert!(!state_dir.join("default.lock").exists(), "terraform's lock, left by the failed apply, is released");
    assert_eq!(w.events_with_reason("app", "StateSaved").len(), 1);
    w.driftless(&["get", "secret", "app-unsaved-tfstate"]).fails();
    // The state (it holds the resources' values) never shows in status or events.
    for file in [w.store().join("events.jsonl"), w.store().join("objects/terraform/default/app.yaml")] {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("terraform_version") && !text.contains("\"lineage\""), "the state shows in {}", file.display());
    }
}
