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
    k.start_controller(&["--review-url", "https://review.example/"]);

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
    let link = format!("; review: https://review.example/objects/terraform/{}/app", k.ns.name);
    for event in events.iter().filter(|e| e["regarding"]["kind"] == "Terraform") {
        let note = event["note"].as_str().unwrap_or_default();
        assert!(note.ends_with(&link), "the event links the object's review page: {note}");
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

fn with_fault(fault: &str) -> String {
    format!("  runnerPodTemplate:\n    metadata:\n      annotations:\n        testkit.driftless.dev/fault: {fault}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_killed_evicted_or_unpullable_runner_pod_becomes_a_clear_condition_and_is_retried() {
    let Some(mut k) = KubeWorld::new("faults").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&terraform_object("oom", "app", "./", "auto", "oom", &with_fault("oom"))).await;
    k.apply(&terraform_object("evicted", "app", "./", "auto", "evicted", &with_fault("evict"))).await;
    k.apply(&terraform_object("nopull", "app", "./", "auto", "nopull", &with_fault("image-pull"))).await;
    k.start_controller(&[]);

    // A failed run leaves Reconciling: the failure is shown as settled between retries (a
    // retry may already be under way when the object is read, so both are waited for).
    let failed =
        |why: &'static str| move |o: &Value| reason_of(&condition_in(o, "Ready")) == why && condition_in(o, "Reconciling").is_null();
    let oom = k.wait_for("Terraform", "oom", "RunnerOOMKilled, Reconciling left", LONG, failed("RunnerOOMKilled")).await;
    let message = condition_in(&oom, "Ready")["message"].as_str().unwrap().to_string();
    assert!(message.contains("OOM-killed") && message.contains("resources.limits.memory"), "{message}");
    k.wait_for("Terraform", "evicted", "RunnerEvicted, Reconciling left", LONG, failed("RunnerEvicted")).await;
    let nopull = k
        .wait_for("Terraform", "nopull", "RunnerImagePullFailed", LONG, |o| reason_of(&condition_in(o, "Ready")) == "RunnerImagePullFailed")
        .await;
    let message = condition_in(&nopull, "Ready")["message"].as_str().unwrap().to_string();
    assert!(message.contains("runnerPodTemplate.spec.image"), "{message}");

    // The fault goes away (the user raised the limit): the retry succeeds.
    k.apply(&terraform_object("oom", "app", "./", "auto", "oom", "")).await;
    k.wait_for("Terraform", "oom", "Ready after the fix", LONG, ready).await;
    assert_eq!(std::fs::read_to_string(k.world.managed("oom/main.txt")).unwrap(), "hello");
    let metrics = k.scrape(0, "/metrics");
    assert!(metrics.lines().any(|l| l.starts_with("driftless_runs_total") && l.contains("oom-killed")), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_apply_loses_no_state_and_leaves_no_lock() {
    let Some(mut k) = KubeWorld::new("restart").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    let slow = "  runnerPodTemplate:\n    spec:\n      env:\n        - name: DRIFTTEST_APPLY_DELAY_MS\n          value: \"4000\"\n";
    k.apply(&git_repository("app", "main")).await;
    k.apply(&terraform_object("app", "app", "./", "auto", "", slow)).await;
    k.start_controller(&[]);
    k.wait_for("Terraform", "app", "a runner pod running", LONG, |o| condition_in(o, "Reconciling")["status"] == "True").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    k.crash_controller(0);
    let pods = k.list("Pod").await;
    assert_eq!(pods.len(), 1, "the runner pod outlives its controller");
    // The pod as the controller built it: restricted, its own ServiceAccount, the template's env.
    let pod = &pods[0]["spec"];
    assert_eq!(pod["serviceAccountName"], "driftless-runner");
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(c["env"].as_array().unwrap().iter().any(|e| e["name"] == "DRIFTTEST_APPLY_DELAY_MS"), "{}", c["env"]);
    assert_eq!(pods[0]["metadata"]["ownerReferences"][0]["kind"], "Terraform");

    k.start_controller(&[]);
    let tf = k.wait_for("Terraform", "app", "Ready after the restart", LONG, ready).await;
    assert!(k.controller_log(1).contains("left by an earlier controller"), "the new controller adopted the running pod");
    assert_eq!(std::fs::read_to_string(k.world.managed("main.txt")).unwrap(), "hello");
    assert!(tf["status"]["lock"].is_null(), "{}", tf["status"]);
    let leases: Vec<Value> =
        k.list_leases().await.into_iter().filter(|l| l["metadata"]["name"].as_str().unwrap_or_default().starts_with("tflock-")).collect();
    assert!(leases.is_empty(), "the state lock was released: {leases:?}");
    // The state holds what was applied: a fresh drift check finds nothing to do. (Asked for
    // with Flux's annotation, as `flux reconcile` and a migrated script set it.)
    k.annotate("Terraform", "app", "reconcile.fluxcd.io/requestedAt", "after-restart").await;
    let tf = k
        .wait_for("Terraform", "app", "checked again", LONG, |o| ready(o) && o["status"]["lastHandledReconcileAt"] == "after-restart")
        .await;
    assert_eq!(condition_in(&tf, "Drifted")["status"], "False", "{}", tf["status"]);
    let state = k.get("Secret", "tfstate-default-app").await;
    assert!(!state.is_null(), "state kept in its Secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_one_leads_and_the_other_takes_over_when_it_stops() {
    let Some(mut k) = KubeWorld::new("leader").await else { return };
    k.start_controller(&[]);
    k.start_controller(&[]);
    let start = std::time::Instant::now();
    let leader = loop {
        let leading: Vec<usize> = (0..2).filter(|i| k.controller_log(*i).contains("leading")).collect();
        if leading.len() == 1 {
            break leading[0];
        }
        assert!(leading.len() < 2, "two leaders");
        assert!(start.elapsed() < Duration::from_secs(30), "no leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let standby = 1 - leader;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!k.controller_log(standby).contains("leading"), "the standby waits");
    assert_eq!(k.probe(leader, "/readyz"), 200);
    assert_eq!(k.probe(standby, "/readyz"), 503, "a standby is not ready (the artifact Service routes to the leader)");
    assert_eq!(k.probe(standby, "/healthz"), 200);

    // A graceful stop hands the Lease over at once, not after its 15 s expiry.
    let stopped_at = std::time::Instant::now();
    assert!(k.stop_controller(leader).success());
    while !k.controller_log(standby).contains("leading") {
        assert!(stopped_at.elapsed() < Duration::from_secs(10), "the standby did not take over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_depends_on_chain_of_three_reconciles_in_order_without_waiting_for_intervals() {
    let Some(mut k) = KubeWorld::new("chain").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&terraform_object("c", "app", "./", "auto", "c", "  dependsOn:\n    - name: b\n")).await;
    k.apply(&terraform_object("b", "app", "./", "auto", "b", "  dependsOn:\n    - name: a\n")).await;
    k.apply(&terraform_object("a", "app", "./", "auto", "a", "")).await;
    k.start_controller(&[]);
    // Intervals are 1h: only a wake-up from the dependency makes this finish in time.
    let c = k.wait_for("Terraform", "c", "Ready", LONG, ready).await;
    let a = k.get("Terraform", "a").await;
    let b = k.get("Terraform", "b").await;
    let applied = |o: &Value| condition_in(o, "Applied")["lastTransitionTime"].as_str().unwrap().to_string();
    assert!(applied(&a) <= applied(&b) && applied(&b) <= applied(&c), "{} {} {}", applied(&a), applied(&b), applied(&c));
    for n in ["a", "b", "c"] {
        assert_eq!(std::fs::read_to_string(k.world.managed(&format!("{n}/main.txt"))).unwrap(), "hello");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_get_clear_errors_and_conditions() {
    let Some(mut k) = KubeWorld::new("bad").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    // Schema-invalid: the API server refuses it with the field named (structural CRDs).
    let invalid = serde_json::json!({
        "apiVersion": "driftless.dev/v1alpha1", "kind": "Terraform",
        "metadata": { "name": "invalid", "namespace": k.ns.name },
        "spec": { "path": "./", "interval": "1h" }
    });
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        k.client(),
        &k.ns.name,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("driftless.dev", "v1alpha1", "Terraform"),
            "terraforms",
        ),
    );
    let err = api
        .patch("invalid", &kube::api::PatchParams::apply("driftless-tests"), &kube::api::Patch::Apply(&invalid))
        .await
        .expect_err("a Terraform without sourceRef is refused");
    assert!(err.to_string().contains("sourceRef"), "{err}");

    k.apply(&git_repository("app", "main")).await;
    // An interval the CRD's pattern accepts but no clock can hold (Flux CVE-2022-39272):
    // the object is Stalled, the controller keeps serving every other object.
    let huge = git_repository("huge", "main").replace("interval: 1h", "interval: 3000000000000000h");
    assert!(huge.contains("3000000000000000h"), "{huge}");
    k.apply(&huge).await;
    k.apply(&terraform_object("nosource", "nope", "./", "auto", "x", "")).await;
    // Another tenant's source, with cross-namespace references refused (as install runs it).
    let other =
        terraform_object("crossns", "app", "./", "auto", "z", "").replace("    name: app\n", "    name: app\n    namespace: tenant-a\n");
    assert!(other.contains("namespace: tenant-a"), "{other}");
    k.apply(&other).await;
    k.apply(&terraform_object("novars", "app", "./", "auto", "y", "  varsFrom:\n    - kind: Secret\n      name: missing-vars\n")).await;
    // A runner ServiceAccount outside the cluster owner's list: its rights are not the tenant's to use.
    k.apply(&terraform_object("admin-sa", "app", "./", "auto", "w", "  serviceAccountName: cluster-admin-sa\n")).await;
    k.start_controller(&["--no-cross-namespace-refs", "--allowed-runner-service-accounts=tf-runner"]);
    let o = k.wait_for("Terraform", "nosource", "SourceNotReady", LONG, |o| reason_of(&condition_in(o, "Ready")) == "SourceNotReady").await;
    let m = condition_in(&o, "Ready")["message"].as_str().unwrap().to_string();
    assert!(m.contains("GitRepository") && m.contains("nope") && m.contains("not found"), "{m}");
    let o =
        k.wait_for("Terraform", "novars", "VariablesNotFound", LONG, |o| reason_of(&condition_in(o, "Ready")) == "VariablesNotFound").await;
    let m = condition_in(&o, "Ready")["message"].as_str().unwrap().to_string();
    assert!(m.contains("missing-vars"), "{m}");
    let o = k.wait_for("Terraform", "crossns", "AccessDenied", LONG, |o| condition_in(o, "Stalled")["status"] == "True").await;
    assert_eq!(reason_of(&condition_in(&o, "Stalled")), "AccessDenied");
    let m = condition_in(&o, "Ready")["message"].as_str().unwrap().to_string();
    assert!(m.contains("spec.sourceRef") && m.contains("tenant-a") && m.contains("--no-cross-namespace-refs"), "{m}");
    let o = k.wait_for("Terraform", "admin-sa", "AccessDenied", LONG, |o| condition_in(o, "Stalled")["status"] == "True").await;
    assert_eq!(reason_of(&condition_in(&o, "Stalled")), "AccessDenied");
    let m = condition_in(&o, "Ready")["message"].as_str().unwrap().to_string();
    assert!(m.contains("cluster-admin-sa") && m.contains("--allowed-runner-service-accounts") && m.contains("tf-runner"), "{m}");
    let o = k.wait_for("GitRepository", "huge", "Stalled", LONG, |o| condition_in(o, "Stalled")["status"] == "True").await;
    let m = condition_in(&o, "Stalled")["message"].as_str().unwrap().to_string();
    assert!(m.contains("spec.interval") && m.contains("longer than a year"), "{m}");
    assert_eq!(reason_of(&condition_in(&o, "Ready")), "InvalidSpec");
    let app = k.wait_for("GitRepository", "app", "Ready", LONG, ready).await;
    assert!(app["status"]["artifact"]["revision"].is_string(), "the other source is served: {}", app["status"]);
    assert!(k.list("Pod").await.is_empty(), "no runner is started for an object that cannot run");
}

/// GET on the artifact server: status code and headers (lowercased names).
fn http_get(url: &str) -> (u16, Vec<(String, String)>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (code, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_commit_replans_and_deletion_destroys_resources_and_artifacts() {
    let Some(mut k) = KubeWorld::new("lifecycle").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    k.apply(&git_repository("app", "main")).await;
    let spec = "  destroyResourcesOnDeletion: true\n  writeOutputsToSecret:\n    name: app-outputs\n";
    k.apply(&terraform_object("app", "app", "./", "auto", "", spec)).await;
    // A key the test shares with the controller, to sign download URLs as it does for runs.
    let key_file = k.world.path().join("artifact.key");
    std::fs::write(&key_file, "k".repeat(40)).unwrap();
    let access = driftless::source::ArtifactAccess::from_key_file(&key_file).unwrap();
    k.start_controller(&[&format!("--artifact-key-file={}", key_file.display())]);
    k.wait_for("Terraform", "app", "Ready", LONG, ready).await;

    // The runner downloaded with the URL signed for its run (the Terraform is Ready); the
    // URL in the source's status opens nothing, nor does a signature for another path or
    // one that expired.
    let repo = k.get("GitRepository", "app").await;
    let artifact = &repo["status"]["artifact"];
    let url = artifact["url"].as_str().unwrap().to_string();
    let stored: driftless::api::Artifact = serde_json::from_value(artifact.clone()).unwrap();
    let signed = |a: &driftless::api::Artifact| access.grant(a, Duration::from_secs(300), std::time::SystemTime::now());
    assert_eq!(http_get(&url).0, 403, "the status URL is no download link: {url}");
    let expired = access.grant(&stored, Duration::ZERO, std::time::SystemTime::now() - Duration::from_secs(5));
    assert_eq!(http_get(&expired).0, 403, "an expired URL");
    let (code, headers) = http_get(&signed(&stored));
    assert_eq!(code, 200, "{url}");
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(header("x-artifact-digest").as_deref(), artifact["digest"].as_str());
    assert_eq!(header("x-artifact-revision").as_deref(), artifact["revision"].as_str());
    assert_eq!(header("content-length"), Some(stored.size.to_string()), "streamed with its length");
    let (base, _) = url.rsplit_once('/').unwrap();
    let unknown = driftless::api::Artifact {
        path: stored.path.replace(stored.path.rsplit('/').next().unwrap(), &format!("{}.tar.gz", "0".repeat(64))),
        url: format!("{base}/{}.tar.gz", "0".repeat(64)),
        ..stored.clone()
    };
    assert_eq!(http_get(&signed(&unknown)).0, 404, "an unknown digest");
    let other =
        driftless::api::Artifact { path: stored.path.replace("/app/", "/other/"), url: url.replace("/app/", "/other/"), ..stored.clone() };
    assert_eq!(http_get(&signed(&other)).0, 404, "another source's path");
    let forged = signed(&stored).replace(&url, &other.url);
    assert_eq!(http_get(&forged).0, 403, "a signature is for one path only");

    // A new commit: the source is asked to reconcile, its new artifact wakes the Terraform
    // at once (intervals are 1h).
    let module = MODULE.replace("value     = var.token", "value     = \"${var.token}-v2\"");
    let commit = k.world.commit(&[("main.tf", &module)], "change an output");
    k.annotate("GitRepository", "app", "driftless.dev/reconcile-requested-at", "new-commit").await;
    let tf = k
        .wait_for("Terraform", "app", "applied the new revision", LONG, |o| {
            ready(o) && o["status"]["lastAppliedRevision"].as_str().unwrap_or_default().contains(&commit)
        })
        .await;
    assert_eq!(tf["status"]["plan"]["approvedBy"], "auto");
    let (code, _) = http_get(&signed(&stored));
    assert_eq!(code, 200, "the previous artifact is kept while the new one is fresh");

    // Deletion: the finalizer destroys the resources first, then lets the object go.
    k.delete("Terraform", "app").await;
    k.wait_for("Terraform", "app", "deleted", LONG, |o| o.is_null()).await;
    assert!(!k.world.managed("main.txt").exists(), "resources destroyed on deletion");
    assert!(k.get("Secret", "app-outputs").await.is_null(), "the outputs Secret goes with the object");
    k.delete("GitRepository", "app").await;
    k.wait_for("GitRepository", "app", "deleted", LONG, |o| o.is_null()).await;
    assert_eq!(http_get(&signed(&stored)).0, 404, "a deleted source's artifacts are no longer served");
    let events: Vec<String> = k.events().await.iter().filter_map(|e| e["reason"].as_str().map(str::to_string)).collect();
    assert!(events.iter().any(|r| r == "Destroyed"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_mid_apply_finishes_the_run_and_records_it() {
    let Some(mut k) = KubeWorld::new("sigterm").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    let slow = "  runnerPodTemplate:\n    spec:\n      env:\n        - name: DRIFTTEST_APPLY_DELAY_MS\n          value: \"3000\"\n";
    k.apply(&git_repository("app", "main")).await;
    k.apply(&terraform_object("app", "app", "./", "auto", "", slow)).await;
    k.start_controller(&[]);
    k.wait_for("Terraform", "app", "a runner pod running", LONG, |o| condition_in(o, "Reconciling")["status"] == "True").await;
    let status = k.stop_controller(0);
    assert!(status.success(), "{status:?}\n{}", k.controller_log(0));
    // Stopped only after the run in flight ended and its outcome was written.
    let tf = k.get("Terraform", "app").await;
    assert!(ready(&tf), "{}", tf["status"]);
    assert!(condition_in(&tf, "Reconciling").is_null());
    let locks: Vec<Value> =
        k.list_leases().await.into_iter().filter(|l| l["metadata"]["name"].as_str().unwrap_or_default().starts_with("tflock-")).collect();
    assert!(locks.is_empty(), "{locks:?}");
}
