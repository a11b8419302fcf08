//! Faults of the API server around a real run, through the testkit's fault proxy between the
//! controller and the real kube-apiserver: status writes refused (500) or conflicting (409)
//! just as a run's result is recorded, watches dropped mid-run, the Secret writes of a run
//! refused. For each: no state lost, the apply not run twice, nothing left `Reconciling`,
//! and the object recovers on its own. (Controller SIGKILL mid-apply, runner SIGTERM, OOM and
//! eviction are in `controller.rs` and `runner_signals.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::kube::{KubeWorld, condition_in};
use common::{MODULE, git_repository, terraform_object};
use serde_json::Value;
use testkit::{ApiFault, FaultProxy, FaultRule, Verb};

const LONG: Duration = Duration::from_secs(120);
/// Each apply takes this long, so a fault can be set while the run is in flight.
const SLOW: &str = "  runnerPodTemplate:\n    spec:\n      env:\n        - name: DRIFTTEST_APPLY_DELAY_MS\n          value: \"3000\"\n";

fn ready(o: &Value) -> bool {
    condition_in(o, "Ready")["status"] == "True" && o["status"]["observedGeneration"] == o["metadata"]["generation"]
}

/// A world whose controller talks to the API server through a fault proxy.
async fn proxied(prefix: &str) -> Option<(KubeWorld, FaultProxy)> {
    let mut k = KubeWorld::new(prefix).await?;
    let cluster = testkit::shared_cluster().await.unwrap();
    let proxy = FaultProxy::start_for(cluster.access(), cluster.ca()).await.expect("proxy");
    let kubeconfig = k.world.path().join("proxied.kubeconfig");
    proxy.access().write_kubeconfig(&kubeconfig, testkit::ADMIN).unwrap();
    k.kubeconfig = kubeconfig;
    Some((k, proxy))
}

/// Applies the module with `SLOW` applies, starts the controller and waits for the run.
async fn start_slow_run(k: &mut KubeWorld) {
    k.world.commit(&[("main.tf", MODULE)], "module");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&terraform_object("app", "app", "./", "auto", "", SLOW)).await;
    k.start_controller(&[]);
    k.wait_for("Terraform", "app", "a runner pod running", LONG, |o| condition_in(o, "Reconciling")["status"] == "True").await;
}

/// What a user checks after the fault: Ready with the apply recorded once, no condition left
/// `Reconciling`, the resources made once (the state in its Secret), no lock held.
async fn assert_recovered(k: &KubeWorld, what: &str) {
    let tf = k.wait_for("Terraform", "app", &format!("Ready after {what}"), LONG, ready).await;
    assert!(tf["status"]["lastAppliedPlan"].is_string(), "{what}: the apply is recorded: {}", tf["status"]);
    assert_ne!(condition_in(&tf, "Reconciling")["status"], "True", "{what}: left Reconciling: {}", tf["status"]);
    assert!(tf["status"]["lock"].is_null(), "{what}: {}", tf["status"]);
    assert_eq!(std::fs::read_to_string(k.world.managed("main.txt")).unwrap(), "hello", "{what}");
    assert!(!k.get("Secret", "tfstate-default-app").await.is_null(), "{what}: the state is in its Secret");
    // Applied once: one PlanApplied event that created resources, and a fresh drift check
    // finds the state matching what exists (nothing to create again).
    let applied: Vec<String> = k
        .events()
        .await
        .iter()
        .filter(|e| e["reason"] == "PlanApplied" && e["regarding"]["name"] == "app")
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect();
    let creating: Vec<&String> = applied.iter().filter(|m| m.contains("to add") && !m.contains("0 to add")).collect();
    assert_eq!(creating.len(), 1, "{what}: resources were created once: {applied:?}");
    k.annotate("Terraform", "app", "driftless.dev/reconcile-requested-at", what).await;
    let tf = k.wait_for("Terraform", "app", "checked again", LONG, |o| ready(o) && o["status"]["lastHandledReconcileAt"] == what).await;
    assert_eq!(condition_in(&tf, "Drifted")["status"], "False", "{what}: {}", tf["status"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_writes_refused_or_conflicting_while_a_result_is_recorded_lose_nothing() {
    let Some((mut k, proxy)) = proxied("fault-status").await else { return };
    start_slow_run(&mut k).await;
    // The run is in flight: its result is recorded against 500s, then 409s.
    proxy.add_rule(FaultRule::new(ApiFault::Status(500)).verb(Verb::Update).resource("terraforms").times(3));
    proxy.add_rule(FaultRule::new(ApiFault::Status(409)).verb(Verb::Update).resource("terraforms").times(2));
    assert_recovered(&k, "refused status writes").await;
    assert!(proxy.faults_injected() >= 5, "the faults were met: {} {:?}", proxy.faults_injected(), proxy.request_counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_dropped_mid_run_are_resumed() {
    let Some((mut k, proxy)) = proxied("fault-watch").await else { return };
    start_slow_run(&mut k).await;
    proxy.drop_watches();
    assert_recovered(&k, "dropped watches").await;
    // The watches came back: a change made now is seen without waiting for an interval (1h).
    proxy.drop_watches();
    tokio::time::sleep(Duration::from_secs(1)).await;
    k.annotate("Terraform", "app", "driftless.dev/reconcile-requested-at", "after-drop").await;
    k.wait_for("Terraform", "app", "a request seen through a new watch", LONG, |o| o["status"]["lastHandledReconcileAt"] == "after-drop")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_secrets_cannot_be_written_fails_clearly_and_the_retry_applies_once() {
    let Some((mut k, proxy)) = proxied("fault-secrets").await else { return };
    // The RunSpec Secret of the first runs cannot be created: the run cannot start.
    proxy.add_rule(FaultRule::new(ApiFault::Status(500)).verb(Verb::Create).resource("secrets").times(2));
    k.world.commit(&[("main.tf", MODULE)], "module");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&terraform_object("app", "app", "./", "auto", "", "  retryInterval: 2s\n")).await;
    k.start_controller(&[]);
    // Between the failure and the retry (2 s later) the object says why and is not Reconciling.
    k.wait_for("Terraform", "app", "a failed start said so, not left Reconciling", LONG, |o| {
        condition_in(o, "Ready")["status"] == "False"
            && condition_in(o, "Ready")["message"].as_str().is_some_and(|m| m.contains("runner pod") && m.contains("500"))
            && condition_in(o, "Reconciling")["status"] != "True"
    })
    .await;
    assert_recovered(&k, "refused Secret writes").await;
}
