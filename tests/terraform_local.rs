//! End to end on the local store: a Terraform module in a real Git repository is planned,
//! approved, applied and watched for drift by the real binaries and real terraform; the
//! key scenarios once with each engine (terraform, and OpenTofu as the runner picks it when
//! it has both), with the same user-visible results.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Engine, MODULE, World, engine_version, objects};

crate::with_each_engine!(
    first_plan_waits_then_the_approved_plan_is_applied_with_outputs,
    an_out_of_band_change_is_detected_once_and_corrected_after_approval
);

fn first_plan_waits_then_the_approved_plan_is_applied_with_outputs(engine: Engine) {
    let Some(w) = World::with_engine(engine) else { return };
    w.commit(&[("infra/main.tf", MODULE)], "module");
    w.apply(&objects(
        "app",
        "./infra",
        "",
        "  writeOutputsToSecret:\n    name: app-outputs\n  varsFrom:\n    - kind: Secret\n      name: app-token\n",
    ));
    w.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-token\nstringData:\n  token: very-secret-token-value\n").ok();

    let run = w.driftless(&["run", "--once"]).ok();
    let plan = w.pending_plan("app").expect("a pending plan");
    assert!(run.stdout.contains(&plan), "{}", run.stdout);
    assert_eq!(w.ready_reason("app"), "PlanPending");
    assert!(!w.managed("main.txt").exists(), "nothing is applied before approval");

    let shown = w.driftless(&["plan", "show", "app"]).ok().stdout;
    assert!(shown.contains("+ drifttest_file.main (create)") && shown.contains("2 to add"), "{shown}");
    assert!(!shown.contains("very-secret-token-value"), "{shown}");

    w.driftless(&["approve", "app", &plan]).ok();
    w.reconcile("app").ok();
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["plan"]["id"], plan.as_str());
    assert_eq!(tf["status"]["plan"]["pending"], false);
    assert_eq!(tf["status"]["plan"]["approvedBy"], "annotation");
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_eq!(tf["status"]["availableOutputs"], serde_json::json!(["path", "token"]));

    let secret = w.get("secret", "app-outputs");
    let token = secret["data"]["token"].as_str().unwrap();
    assert_eq!(token, "dmVyeS1zZWNyZXQtdG9rZW4tdmFsdWU=", "the sensitive output is in the outputs secret");
    // ...and nowhere else: not in status, events, plans' renderings, or any command output.
    let everywhere = w.store_text_outside_secrets_and_state();
    assert!(!everywhere.contains("very-secret-token-value"));
    let get_all = w.driftless(&["get", "terraform", "app", "-o", "yaml"]).ok().all();
    assert!(!get_all.contains("very-secret-token-value"));
    assert_eq!(w.events_with_reason("app", "PlanApplied").len(), 1);
    assert_eq!(w.state_written_by("app"), engine_version(w.engine_binary()), "{engine:?} applied the plan");
}

#[test]
fn a_new_commit_supersedes_the_pending_plan_and_the_old_approval_is_stale() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "", "")).ok();
    w.driftless(&["run", "--once"]).ok();
    let first = w.pending_plan("app").unwrap();

    // Approve the first plan in Git (spec), then the module changes before it is applied.
    w.apply(&objects("app", "./", &first, "")).ok();
    w.commit(&[("main.tf", &MODULE.replace("content = var.content\n}", "content = \"${var.content}!\"\n}"))], "change");
    let run = w.reconcile("app").fails();
    assert!(run.stderr.contains("ApprovalStale"), "{}", run.stderr);

    let second = w.pending_plan("app").unwrap();
    assert_ne!(first, second, "a changed source makes a new plan id");
    let ready = w.condition("app", "Ready");
    assert_eq!(ready["reason"], "ApprovalStale");
    assert!(ready["message"].as_str().unwrap().contains(&first) && ready["message"].as_str().unwrap().contains(&second), "{ready}");
    assert!(!w.managed("main.txt").exists(), "a stale approval is never applied");
    assert_eq!(w.events_with_reason("app", "ApprovalStale").len(), 1);

    // Approving the exact new id applies it.
    w.driftless(&["approve", "app", &first]).fails();
    w.driftless(&["approve", "app", &second]).ok();
    w.reconcile("app").ok();
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello!");
}

fn an_out_of_band_change_is_detected_once_and_corrected_after_approval(engine: Engine) {
    let Some(w) = World::with_engine(engine) else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "auto", "  drift:\n    mode: detect\n    interval: 1h\n")).ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "auto approval applies the first plan");

    std::fs::write(w.managed("main.txt"), "edited by hand").unwrap();
    // Two checks of the same drift: reported once.
    w.reconcile("app").ok();
    w.reconcile("app").ok();
    let tf = w.get("terraform", "app");
    let drift = &tf["status"]["drift"];
    assert_eq!(drift["detected"], true);
    assert_eq!(drift["objects"][0]["name"], "drifttest_file.main");
    assert_eq!(drift["objects"][0]["action"], "update");
    assert_eq!(drift["objects"][0]["fields"], serde_json::json!(["content"]));
    assert_eq!(w.condition("app", "Drifted")["status"], "True");
    assert_eq!(w.events_with_reason("app", "DriftDetected").len(), 1, "one alert per distinct drift");
    let correction = drift["planId"].as_str().unwrap().to_string();
    assert_eq!(w.pending_plan("app").as_deref(), Some(correction.as_str()));
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "edited by hand", "detect mode never corrects by itself");
    let shown = w.driftless(&["drift", "show", "app"]).ok().stdout;
    assert!(shown.contains("drifttest_file.main") && shown.contains(&correction), "{shown}");

    w.driftless(&["approve", "app", &correction]).ok();
    w.reconcile("app").ok();
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_eq!(w.get("terraform", "app")["status"]["drift"]["detected"], false);
    assert_eq!(w.condition("app", "Drifted")["status"], "False");
    assert_eq!(w.events_with_reason("app", "DriftResolved").len(), 1);
    assert_eq!(w.state_written_by("app"), engine_version(w.engine_binary()), "{engine:?} applied the correction");
}

/// A Secret's value that is a multi-line key with quotes in it, fed to a variable that the
/// module does not mark sensitive: it reaches the plan rendering only masked, in none of the
/// forms it takes there (as written, JSON-escaped, line by line, base64).
#[test]
fn a_multi_line_secret_with_quotes_never_reaches_the_plan_rendering_in_any_encoding() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    let terraform = objects("app", "./", "", "  varsFrom:\n    - kind: Secret\n      name: app-key\n");
    let terraform = terraform.replace("    - name: content\n      value: hello\n", "");
    assert!(!terraform.contains("value: hello"), "{terraform}");
    w.apply(&terraform).ok();
    let key_line = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-key\nstringData:\n  content: |\n    -----BEGIN PRIVATE KEY-----\n    MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n    say \"hello\" to C:\\keys\n    -----END PRIVATE KEY-----\n";
    w.apply(secret).ok();
    w.driftless(&["run", "--once"]).ok();
    assert!(w.pending_plan("app").is_some(), "{}", w.get("terraform", "app")["status"]);

    let value = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nsay \"hello\" to C:\\keys\n-----END PRIVATE KEY-----\n";
    let escaped = serde_json::to_string(value).unwrap();
    let escaped = &escaped[1..escaped.len() - 1];
    let shown = w.driftless(&["plan", "show", "app"]).ok().all();
    assert!(shown.contains("drifttest_file.main"), "{shown}");
    let everywhere = format!("{shown}{}", w.store_text_outside_secrets_and_state());
    for form in [value, escaped, key_line, r#"say \"hello\" to C:\\keys"#, "say \"hello\" to C:\\keys"] {
        assert!(!everywhere.contains(form), "{form:?} leaked:\n{shown}");
    }
}

/// Every file under `dir`, with its bytes: what a command must leave as it found it.
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.insert(p.display().to_string(), bytes);
        }
    }
    out
}

#[test]
fn diff_terraform_prints_a_speculative_plan_of_local_changes_and_never_applies_or_stores_it() {
    let Some(w) = World::new() else { return };
    w.commit(&[("infra/main.tf", MODULE), ("modules/extra/main.tf", "variable \"path\" {\n  type = string\n}\n")], "module");
    w.apply(&objects("app", "./infra", "auto", "  varsFrom:\n    - kind: Secret\n      name: app-token\n")).ok();
    w.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-token\nstringData:\n  token: very-secret-token-value\n").ok();
    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    let status = w.get("terraform", "app")["status"].clone();

    // A checkout with a change: one more file, holding the token, from a module beside it
    // (reached as `../modules`, as the source's artifact has it).
    let checkout = w.path().join("checkout");
    let cloned = std::process::Command::new("git").args(["clone", "--quiet"]).arg(w.path().join("repo")).arg(&checkout).status().unwrap();
    assert!(cloned.success());
    let module = std::fs::read_to_string(checkout.join("infra/main.tf")).unwrap();
    let extra = "\nmodule \"extra\" {\n  source = \"../modules/extra\"\n  path   = var.target_dir\n}\n\nresource \"drifttest_file\" \"extra\" {\n  path    = \"${module.extra.path}/extra.txt\"\n  content = var.token\n}\n";
    std::fs::write(checkout.join("infra/main.tf"), format!("{module}{extra}")).unwrap();
    std::fs::write(
        checkout.join("modules/extra/main.tf"),
        "variable \"path\" {\n  type = string\n}\n\noutput \"path\" {\n  value = var.path\n}\n",
    )
    .unwrap();
    let before = snapshot(&w.store());

    let run = w.driftless(&["diff", "terraform", "app", "--path", checkout.join("infra").to_str().unwrap()]);
    assert_eq!(run.status, 1, "changes exit with 1\n{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("drifttest_file.extra will be created") && run.stdout.contains("1 to add, 0 to change, 0 to destroy"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("Terraform default/app would change: 1 to add"), "{}", run.stderr);
    assert!(!run.all().contains("very-secret-token-value"), "{}", run.all());
    // Nothing applied, nothing stored, nothing locked: the store is byte for byte as it was.
    assert!(!w.managed("extra.txt").exists());
    assert_eq!(snapshot(&w.store()), before, "diff changed the store");
    assert_eq!(w.get("terraform", "app")["status"], status);

    // The directory as the source has it: nothing to change.
    let run = w.driftless(&["diff", "terraform", "app", "--path", w.path().join("repo/infra").to_str().unwrap()]).ok();
    assert!(run.stdout.contains("Terraform default/app: no changes"), "{}", run.stdout);

    // A module that does not parse: the error names the file, exit 1, nothing changes.
    std::fs::write(checkout.join("infra/broken.tf"), "resource \"drifttest_file\" \"x\" {\n  path = \n").unwrap();
    let run = w.driftless(&["diff", "terraform", "app", "--path", checkout.join("infra").to_str().unwrap()]).fails();
    assert!(run.stderr.contains("broken.tf"), "{}", run.stderr);
    assert_eq!(snapshot(&w.store()), before);
    let run = w.driftless(&["diff", "terraform", "nope", "--path", checkout.join("infra").to_str().unwrap()]).fails();
    assert!(run.stderr.contains("Terraform default/nope not found"), "{}", run.stderr);
}

/// `spec.decryption` on a Terraform: a `tfVarsFiles` JSON file and an auto-loaded HCL file
/// in the module directory, both encrypted by the real sops CLI with an age key, reach
/// terraform as their plaintext; their values show nowhere but the outputs Secret and the
/// state; without `decryption` (or without the key) the run is refused by name.
#[test]
fn sops_encrypted_var_files_are_decrypted_for_the_run_and_their_values_never_shown() {
    let Some(w) = World::new() else { return };
    let Some(env) = common::sops::Env::new() else { return };
    let (content, token) = ("content-from-an-encrypted-file", "token-from-an-encrypted-hcl-file");
    let json = env.encrypt("secret.tfvars.json", format!("{{\"content\": \"{content}\"}}").as_bytes(), &env.age(), &[]);
    let hcl = env.encrypt("secret.auto.tfvars", format!("token = \"{token}\"\n").as_bytes(), &env.age(), &[]);
    assert!(!String::from_utf8_lossy(&hcl).contains(token), "sops encrypted it");
    w.commit(
        &[
            ("infra/main.tf", MODULE),
            ("infra/secret.auto.tfvars", std::str::from_utf8(&hcl).unwrap()),
            ("vars/secret.tfvars.json", std::str::from_utf8(&json).unwrap()),
        ],
        "encrypted var files",
    );
    let decryption = "  decryption:\n    provider: sops\n    secretRef:\n      name: sops-keys\n";
    let spec = "  tfVarsFiles:\n    - vars/secret.tfvars.json\n  writeOutputsToSecret:\n    name: app-outputs\n";
    w.apply(&objects("app", "./infra", "", &format!("{spec}{decryption}"))).ok();
    w.apply(&common::terraform_object("plain", "app", "./infra", "", "plain", "  tfVarsFiles:\n    - vars/secret.tfvars.json\n")).ok();

    // No key yet, and no decryption at all: refused, naming what is missing; nothing runs.
    w.driftless(&["run", "--once"]).fails();
    assert_eq!(w.ready_reason("app"), "DecryptionFailed");
    assert!(ready_message(&w, "app").contains("Secret default/sops-keys not found"), "{}", ready_message(&w, "app"));
    assert_eq!(w.ready_reason("plain"), "InvalidModule");
    let plain = ready_message(&w, "plain");
    assert!(plain.contains("vars/secret.tfvars.json is encrypted by SOPS and spec.decryption is not set"), "{plain}");

    let key = env.age_secret.clone();
    w.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: sops-keys\nstringData:\n  identity.agekey: {key}\n")).ok();
    w.reconcile("app").ok();
    let plan = w.pending_plan("app").expect("a plan of the decrypted values");
    let shown = w.driftless(&["plan", "show", "app"]).ok().stdout;
    assert!(shown.contains("drifttest_file.main") && !shown.contains(content) && !shown.contains(token), "{shown}");
    w.driftless(&["approve", "app", &plan]).ok();
    w.reconcile("app").ok();
    assert_eq!(w.ready_reason("app"), "Succeeded");
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), content, "the JSON file's value was applied");
    let outputs = w.get("secret", "app-outputs");
    let applied = outputs["data"]["token"].as_str().unwrap();
    use base64::Engine as _;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(applied).unwrap(), token.as_bytes(), "the auto-loaded file's value");
    let everywhere = w.store_text_outside_secrets_and_state();
    assert!(!everywhere.contains(content) && !everywhere.contains(token), "a decrypted value shows in the store");
    assert!(!everywhere.contains(&key[10..40]), "the key shows in the store");
}

fn ready_message(w: &World, name: &str) -> String {
    w.condition(name, "Ready")["message"].as_str().unwrap_or_default().to_string()
}

/// `logs terraform NAME`: what terraform printed in the object's last run, as it prints it
/// without `-json`, the provider's error of a failed apply included, a sensitive variable's
/// value never; the next run's log replaces it.
#[test]
fn logs_terraform_prints_the_last_run_as_terraform_printed_it_and_never_a_secret() {
    let Some(mut w) = World::new() else { return };
    w.commit(&[("infra/main.tf", MODULE)], "module");
    w.apply(&objects("app", "./infra", "auto", "  varsFrom:\n    - kind: Secret\n      name: app-token\n")).ok();
    w.apply("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-token\nstringData:\n  token: very-secret-token-value\n").ok();
    let before = w.driftless(&["logs", "terraform", "app"]).fails();
    assert!(before.stderr.contains("Terraform default/app has no run log yet"), "{}", before.stderr);

    w.extra_env.push(("DRIFTTEST_FAIL_ON_CONTENT".into(), "hello".into()));
    w.driftless(&["run", "--once"]).fails();
    let failed = w.driftless(&["logs", "terraform", "app"]).ok().stdout;
    for line in ["$ terraform init", "Terraform has been successfully initialized!", "$ terraform plan", "$ terraform apply"] {
        assert!(failed.contains(line), "{line:?} in\n{failed}");
    }
    assert!(failed.contains("drifttest: simulated apply failure"), "the provider's error: {failed}");

    w.extra_env.clear();
    w.reconcile("app").ok();
    let log = w.driftless(&["logs", "terraform", "app"]).ok().stdout;
    assert!(log.contains("drifttest_file.main: Creation complete") && log.contains("Apply complete!"), "{log}");
    assert!(!log.contains("simulated apply failure"), "the last run's log only: {log}");
    assert!(!log.contains("very-secret-token-value") && !failed.contains("very-secret-token-value"));
    assert!(w.driftless(&["logs", "terraform", "nope"]).fails().stderr.contains("Terraform default/nope not found"));
}
