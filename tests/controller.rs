//! The controller on a real kube-apiserver: runner pods (run by the testkit's fake kubelet
//! as local processes) with the real runner and real terraform, approval by annotation,
//! drift, outputs, failures of pods, restarts and dependencies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::kube::{KubeWorld, condition_in, pending_plan_of, reason_of};
use common::{MODULE, git_repository, terraform_object};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);
const TOKEN: &str = "s3cr3t-token-value-7f1e";

fn secret(name: &str, key: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  {key}: {value}\n")
}

fn ready(o: &Value) -> bool {
    condition_in(o, "Ready")["status"] == "True" && o["status"]["observedGeneration"] == o["metadata"]["generation"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_waits_for_approval_by_annotation_then_applies_and_corrects_drift_on_approval() {
    let Some(mut k) = KubeWorld::new("loop").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    let spec = "  writeOutputsToSecret:\n    name: app-outputs\n  varsFrom:\n    - kind: Secret\n      name: app-token\n";
    k.apply(&secret("app-token", "token", TOKEN)).await;
    k.apply(&git_repository("app", "main")).await;
    k.apply(&terraform_object("app", "app", "./", "", "", spec)).await;
    k.start_controller(&[]);

    let tf = k.wait_for("Terraform", "app", "a pending plan", LONG, |o| pending_plan_of(o).is_some()).await;
    let plan = pending_plan_of(&tf).unwrap();
    assert_eq!(reason_of(&condition_in(&tf, "Ready")), "PlanPending", "{}", tf["status"]);
    assert!(!k.world.managed("main.txt").exists(), "nothing is applied before approval");
    assert!(tf["metadata"]["finalizers"].as_array().unwrap().iter().any(|f| f == "driftless.dev/finalizer"));

    k.annotate("Terraform", "app", "driftless.dev/approve-plan", &plan).await;
    let tf = k.wait_for("Terraform", "app", "applied", LONG, ready).await;
    assert_eq!(tf["status"]["plan"]["id"], plan.as_str());
    assert_eq!(tf["status"]["plan"]["approvedBy"], "annotation");
    assert_eq!(std::fs::read_to_string(k.world.managed("main.txt")).unwrap(), "hello");
    let outputs = k.get("Secret", "app-outputs").await;
    let token = outputs["data"]["token"].as_str().map(|b| String::from_utf8(base64_decode(b)).unwrap());
    assert_eq!(token.as_deref(), Some(TOKEN), "the sensitive output lands in the outputs Secret only");

    // Out-of-band change, then a requested reconcile: drift is detected and a correction
    // plan waits for approval.
    std::fs::write(k.world.managed("main.txt"), "edited by hand").unwrap();
    k.annotate("Terraform", "app", "driftless.dev/reconcile-requested-at", "drift-check-1").await;
    let tf = k.wait_for("Terraform", "app", "drift detected", LONG, |o| condition_in(o, "Drifted")["status"] == "True").await;
    let correction = tf["status"]["drift"]["planId"].as_str().unwrap().to_string();
    assert!(tf["status"]["drift"]["objects"].to_string().contains("drifttest_file.main"), "{}", tf["status"]["drift"]);
    assert_eq!(std::fs::read_to_string(k.world.managed("main.txt")).unwrap(), "edited by hand", "detect mode never corrects alone");

    k.annotate("Terraform", "app", "driftless.dev/approve-plan", &correction).await;
    k.wait_for("Terraform", "app", "drift corrected", LONG, |o| ready(o) && condition_in(o, "Drifted")["status"] == "False").await;
    assert_eq!(std::fs::read_to_string(k.world.managed("main.txt")).unwrap(), "hello");

    // Events were published about the object, none with the secret.
    let events = k.events().await;
    let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    for wanted in ["PlanPending", "PlanApplied", "DriftDetected"] {
        assert!(reasons.contains(&wanted), "no {wanted} event in {reasons:?}");
    }
    let all_events = serde_json::to_string(&events).unwrap();
    assert!(!all_events.contains(TOKEN), "a secret reached an event");
    let log = k.controller_log(0);
    assert!(!log.contains(TOKEN), "a secret reached the controller log");
    let status = serde_json::to_string(&k.get("Terraform", "app").await).unwrap();
    assert!(!status.contains(TOKEN), "a secret reached the object");

    // Finished runner pods are deleted, and their Secrets are collected with them.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pods = k.list("Pod").await;
        let run_secrets: Vec<Value> = k
            .list("Secret")
            .await
            .into_iter()
            .filter(|s| s["metadata"]["name"].as_str().unwrap_or_default().contains("-runspec"))
            .collect();
        if pods.is_empty() && run_secrets.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "runner pods or their Secrets were not cleaned up: {pods:?} {run_secrets:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
