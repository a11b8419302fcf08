//! Kustomization on a real kube-apiserver: staged apply (a CRD and its custom resource in one
//! source), prune, approval of a manifest change, drift from an out-of-band edit, a
//! Kustomization depending on a Terraform, and bad inputs as clear conditions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::kube::{KubeWorld, condition_in, pending_plan_of, reason_of};
use common::{MODULE, git_repository, terraform_object};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);

fn kustomization(name: &str, path: &str, extra: &str) -> String {
    format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: app\n  path: {path}\n  interval: 1h\n  prune: true\n{extra}"
    )
}

fn ready(o: &Value) -> bool {
    condition_in(o, "Ready")["status"] == "True" && o["status"]["observedGeneration"] == o["metadata"]["generation"]
}

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value}\n")
}

fn crd(group: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-preserve-unknown-fields: true
"#
    )
}

async fn request_reconcile(k: &KubeWorld, kind: &str, name: &str, value: &str) {
    k.annotate(kind, name, "driftless.dev/reconcile-requested-at", value).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_and_its_resource_apply_in_one_pass_and_removed_objects_are_pruned() {
    let Some(mut k) = KubeWorld::new("ks-stage").await else { return };
    let group = format!("{}.example.com", k.ns.name);
    let widget = format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n");
    k.world.commit(
        &[
            ("deploy/crd.yaml", &crd(&group)),
            ("deploy/widget.yaml", &widget),
            ("deploy/a.yaml", &config_map("a", "one")),
            ("deploy/b.yaml", &config_map("b", "two")),
            ("deploy/c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  annotations:\n    driftless.dev/prune: disabled\ndata:\n  key: three\n"),
            // Flux's annotation of the same meaning, as a repository moved from Flux has it.
            ("deploy/d.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n  annotations:\n    kustomize.toolkit.fluxcd.io/prune: disabled\ndata:\n  key: four\n"),
        ],
        "manifests",
    );
    k.apply(&git_repository("app", "main")).await;
    k.apply(&kustomization("web", "./deploy", &format!("  targetNamespace: {}\n", k.ns.name))).await;
    k.start_controller(&[]);
    let ks = k.wait_for("Kustomization", "web", "Ready", LONG, ready).await;
    let entries = ks["status"]["inventory"]["entries"].as_array().unwrap().len();
    assert_eq!(entries, 6, "{}", ks["status"]["inventory"]);
    assert_eq!(k.get("ConfigMap", "a").await["data"]["key"], "one");
    assert_eq!(k.get("ConfigMap", "a").await["metadata"]["labels"]["kustomize.driftless.dev/name"], "web");

    // b leaves the source: pruned; a ConfigMap the Kustomization never applied stays.
    k.apply(&config_map("bystander", "x")).await;
    let commit = k.world.commit_removal(&["deploy/b.yaml", "deploy/c.yaml", "deploy/d.yaml"], "remove b, c and d");
    request_reconcile(&k, "GitRepository", "app", "remove-b").await;
    k.wait_for("Kustomization", "web", "applied the removal", LONG, |o| {
        ready(o) && o["status"]["lastAppliedRevision"].as_str().unwrap_or_default().contains(&commit)
    })
    .await;
    assert!(k.get("ConfigMap", "b").await.is_null(), "b is pruned");
    assert!(!k.get("ConfigMap", "c").await.is_null(), "driftless.dev/prune: disabled is honoured");
    assert!(!k.get("ConfigMap", "d").await.is_null(), "Flux's kustomize.toolkit.fluxcd.io/prune: disabled is honoured");
    assert!(!k.get("ConfigMap", "a").await.is_null());
    assert!(!k.get("ConfigMap", "bystander").await.is_null(), "objects it does not own are never pruned");

    // Deleting the Kustomization prunes what it applied.
    k.delete("Kustomization", "web").await;
    k.wait_for("Kustomization", "web", "deleted", LONG, |o| o.is_null()).await;
    assert!(k.get("ConfigMap", "a").await.is_null(), "pruned on deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_change_waits_for_approval_and_drift_is_detected_then_corrected() {
    let Some(mut k) = KubeWorld::new("ks-approve").await else { return };
    k.world.commit(&[("deploy/a.yaml", &config_map("a", "one"))], "manifests");
    k.apply(&git_repository("app", "main")).await;
    let spec = format!(
        "  targetNamespace: {}\n  approvePlan: \"\"\n  drift:\n    mode: detect\n    ignore:\n      - kind: ConfigMap\n        paths: [\"/metadata/annotations\"]\n",
        k.ns.name
    );
    k.apply(&kustomization("web", "./deploy", &spec)).await;
    k.start_controller(&[]);
    let ks = k.wait_for("Kustomization", "web", "PlanPending", LONG, |o| pending_plan_of(o).is_some()).await;
    let plan = pending_plan_of(&ks).unwrap();
    assert_eq!(reason_of(&condition_in(&ks, "Ready")), "PlanPending");
    assert_eq!(ks["status"]["plan"]["summary"]["add"], 1, "{}", ks["status"]["plan"]);
    assert!(k.get("ConfigMap", "a").await.is_null(), "nothing applied before approval");

    // The CLI shows the plan (the dry-run diff) and approves it, as for a Terraform.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(&k.world.tools.driftless)
            .arg("--kubeconfig")
            .arg(&k.kubeconfig)
            .args(args)
            .args(["-n", &k.ns.name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let shown = cli(&["plan", "show", "web"]);
    assert!(shown.contains(&plan) && shown.contains(&format!("+ ConfigMap {}/a (create)", k.ns.name)), "{shown}");
    let table = cli(&["get", "kustomization"]);
    assert!(table.contains("web") && table.contains("(pending)"), "{table}");
    cli(&["approve", "web", &plan]);
    let ks = k.wait_for("Kustomization", "web", "applied", LONG, ready).await;
    assert_eq!(ks["status"]["plan"]["approvedBy"], "annotation");
    assert_eq!(k.get("ConfigMap", "a").await["data"]["key"], "one");

    // An out-of-band edit (another field manager, as kubectl edit) is drift; an ignored
    // field is not.
    let patch = serde_json::json!({"data": {"key": "edited"}, "metadata": {"annotations": {"note": "by hand"}}});
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(k.client(), &k.ns.name);
    api.patch("a", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    request_reconcile(&k, "Kustomization", "web", "drift-1").await;
    let ks = k.wait_for("Kustomization", "web", "Drifted", LONG, |o| condition_in(o, "Drifted")["status"] == "True").await;
    let drift = &ks["status"]["drift"];
    assert_eq!(drift["objects"][0]["kind"], "ConfigMap", "{drift}");
    assert_eq!(drift["objects"][0]["fields"], serde_json::json!(["/data/key"]), "the ignored annotation is not drift: {drift}");
    assert_eq!(k.get("ConfigMap", "a").await["data"]["key"], "edited", "detect mode reports only");
    let correction = drift["planId"].as_str().unwrap().to_string();
    let shown = cli(&["drift", "show", "web"]);
    assert!(shown.contains("kustomization/web: drift") && shown.contains(&correction), "{shown}");
    let listed = cli(&["drift", "list"]);
    assert!(listed.contains("Kustomization") && listed.contains("Drifted"), "{listed}");

    // The correction is approved as a pending plan is: `driftless approve` (no id: the one
    // waiting) sets the very annotation the review page sets.
    let approved = cli(&["approve", "web"]);
    assert!(approved.contains(&correction), "{approved}");
    k.wait_for("Kustomization", "web", "corrected", LONG, |o| ready(o) && condition_in(o, "Drifted")["status"] == "False").await;
    assert_eq!(k.get("ConfigMap", "a").await["data"]["key"], "one");
    // The corrected build is still the applied one: the next reconcile is Ready, with no new
    // plan and no stale approval (the approval named the correction, now spent).
    request_reconcile(&k, "Kustomization", "web", "after-correction").await;
    let ks =
        k.wait_for("Kustomization", "web", "reconciled again", LONG, |o| o["status"]["lastHandledReconcileAt"] == "after-correction").await;
    assert_eq!(reason_of(&condition_in(&ks, "Ready")), "Succeeded", "{}", ks["status"]);
    assert!(pending_plan_of(&ks).is_none(), "{}", ks["status"]["plan"]);
    let reasons: Vec<String> = k.events().await.iter().filter_map(|e| e["reason"].as_str().map(str::to_string)).collect();
    for wanted in ["PlanPending", "PlanApplied", "DriftDetected", "DriftResolved"] {
        assert!(reasons.iter().any(|r| r == wanted), "no {wanted} event in {reasons:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kustomization_waits_for_the_terraform_it_depends_on() {
    let Some(mut k) = KubeWorld::new("ks-dep").await else { return };
    k.world.commit(&[("main.tf", MODULE), ("deploy/a.yaml", &config_map("a", "one"))], "module and manifests");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&kustomization(
        "web",
        "./deploy",
        &format!("  targetNamespace: {}\n  dependsOn:\n    - kind: Terraform\n      name: infra\n", k.ns.name),
    ))
    .await;
    // The Terraform waits for approval: the Kustomization must wait too.
    k.apply(&terraform_object("infra", "app", "./", "", "", "")).await;
    k.start_controller(&[]);
    let tf = k.wait_for("Terraform", "infra", "PlanPending", LONG, |o| pending_plan_of(o).is_some()).await;
    let ks = k
        .wait_for("Kustomization", "web", "DependencyNotReady", LONG, |o| reason_of(&condition_in(o, "Ready")) == "DependencyNotReady")
        .await;
    assert!(condition_in(&ks, "Ready")["message"].as_str().unwrap().contains("Terraform"), "{}", ks["status"]);
    assert!(k.get("ConfigMap", "a").await.is_null());
    // Approving the Terraform lets the Kustomization go at once (its interval is 1h).
    k.annotate("Terraform", "infra", "driftless.dev/approve-plan", &pending_plan_of(&tf).unwrap()).await;
    k.wait_for("Kustomization", "web", "Ready", LONG, ready).await;
    assert_eq!(k.get("ConfigMap", "a").await["data"]["key"], "one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_unknown_fields_and_missing_variables_are_clear_conditions() {
    let Some(mut k) = KubeWorld::new("ks-bad").await else { return };
    k.world.commit(
        &[
            ("yaml/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata: [unclosed\n"),
            ("field/kustomization.yaml", "resources: [a.yaml]\nhelmCharts:\n  - name: x\n"),
            ("field/a.yaml", &config_map("a", "one")),
            ("vars/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  key: ${region}\n"),
            ("good/a.yaml", &config_map("a", "one")),
        ],
        "bad inputs",
    );
    k.apply(&git_repository("app", "main")).await;
    let ns = format!("  targetNamespace: {}\n", k.ns.name);
    k.apply(&kustomization("yaml", "./yaml", &ns)).await;
    k.apply(&kustomization("field", "./field", &ns)).await;
    k.apply(&kustomization("vars", "./vars", &format!("{ns}  postBuild:\n    substitute:\n      cluster: one\n"))).await;
    // Applies as a ServiceAccount without rights: refused by the API, never done with the
    // controller's own rights.
    k.apply(&kustomization("sa", "./good", &format!("{ns}  serviceAccountName: nobody\n"))).await;
    // The same manifests with the variable from a ConfigMap (postBuild.substituteFrom).
    k.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: region-vars\ndata:\n  region: eu-west-1\n").await;
    k.apply(&kustomization(
        "varsok",
        "./vars",
        &format!("{ns}  namePrefix: ok-\n  postBuild:\n    substituteFrom:\n      - kind: ConfigMap\n        name: region-vars\n"),
    ))
    .await;
    k.start_controller(&[]);
    let o = k.wait_for("Kustomization", "sa", "ApplyFailed", LONG, |o| reason_of(&condition_in(o, "Ready")) == "ApplyFailed").await;
    let message = condition_in(&o, "Ready")["message"].as_str().unwrap().to_string();
    assert!(message.contains(&format!("system:serviceaccount:{}:nobody", k.ns.name)), "{message}");
    for (name, needle) in [("yaml", "a.yaml"), ("field", "helmCharts"), ("vars", "region")] {
        let o = k.wait_for("Kustomization", name, "BuildFailed", LONG, |o| reason_of(&condition_in(o, "Ready")) == "BuildFailed").await;
        let message = condition_in(&o, "Ready")["message"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{name}: {message}");
    }
    assert!(k.get("ConfigMap", "a").await.is_null(), "nothing applied from a failed build");
    k.wait_for("Kustomization", "varsok", "Ready", LONG, ready).await;
    assert_eq!(k.get("ConfigMap", "ok-a").await["data"]["key"], "eu-west-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_store_applies_kustomizations_to_the_current_kube_context_or_says_there_is_none() {
    let Some(mut k) = KubeWorld::new("ks-local").await else { return };
    k.world.commit(&[("deploy/a.yaml", &config_map("a", "one"))], "manifests");
    let objects = format!(
        "{}---\n{}",
        git_repository("app", "main"),
        kustomization("web", "./deploy", &format!("  targetNamespace: {}\n", k.ns.name))
    );

    // No kube context: the object says so, the loop goes on.
    k.world.extra_env.push(("KUBECONFIG".into(), k.world.path().join("missing-kubeconfig").display().to_string()));
    k.world.apply(&objects).ok();
    k.world.driftless(&["run", "--once"]);
    let ks = k.world.get("kustomization", "web");
    let ready = condition_in(&ks, "Ready");
    assert_eq!(reason_of(&ready), "ClusterUnavailable", "{ks}");
    assert!(ready["message"].as_str().unwrap().contains("missing-kubeconfig"), "{ready}");

    // The global --kubeconfig chooses the cluster too (KUBECONFIG still points nowhere).
    k.world.commit(&[("deploy/a.yaml", &config_map("a", "from-flag"))], "by flag");
    let kubeconfig = k.kubeconfig.display().to_string();
    k.world.driftless(&["--kubeconfig", &kubeconfig, "reconcile", "kustomization", "web", "--with-source"]).ok();
    assert_eq!(k.get("ConfigMap", "a").await["data"]["key"], "from-flag");
    k.world.commit(&[("deploy/a.yaml", &config_map("a", "one"))], "back");
    k.world.driftless(&["reconcile", "gitrepository", "app"]).ok();

    // With the kube context of the cluster: applied there, status in the local store.
    k.world.extra_env.clear();
    k.world.extra_env.push(("KUBECONFIG".into(), k.kubeconfig.display().to_string()));
    k.world.driftless(&["reconcile", "kustomization", "web"]).ok();
    let ks = k.world.get("kustomization", "web");
    assert_eq!(condition_in(&ks, "Ready")["status"], "True", "{ks}");
    assert_eq!(k.get("ConfigMap", "a").await["data"]["key"], "one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_reports_ready_when_a_deployment_rolls_out_and_names_a_failed_job() {
    let Some(mut k) = KubeWorld::new("ks-health").await else { return };
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: web:1\n";
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: migrate:1\n          command: [\"false\"]\n";
    k.world.commit(&[("app/deployment.yaml", deployment), ("job/job.yaml", job)], "workloads");
    k.apply(&git_repository("app", "main")).await;
    let ns = format!("  targetNamespace: {}\n  wait: true\n  timeout: 90s\n", k.ns.name);
    k.apply(&kustomization("app", "./app", &ns)).await;
    k.apply(&kustomization("job", "./job", &ns)).await;
    k.start_controller(&[]);
    // The fake kubelet runs the Deployment's pod (simulated: no command) until it is Available.
    k.wait_for("Kustomization", "app", "Ready once rolled out", LONG, ready).await;
    let o = k
        .wait_for("Kustomization", "job", "HealthCheckFailed", LONG, |o| reason_of(&condition_in(o, "Ready")) == "HealthCheckFailed")
        .await;
    let message = condition_in(&o, "Ready")["message"].as_str().unwrap().to_string();
    assert!(message.contains(&format!("Job {}/migrate", k.ns.name)), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correct_mode_restores_an_edit_and_force_recreates_an_immutable_object() {
    let Some(mut k) = KubeWorld::new("ks-correct").await else { return };
    let immutable = |v: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\nimmutable: true\ndata:\n  key: {v}\n");
    k.world.commit(&[("deploy/a.yaml", &config_map("a", "one")), ("deploy/frozen.yaml", &immutable("one"))], "manifests");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&kustomization("web", "./deploy", &format!("  targetNamespace: {}\n  force: true\n  drift:\n    mode: correct\n", k.ns.name)))
        .await;
    k.start_controller(&[]);
    k.wait_for("Kustomization", "web", "Ready", LONG, ready).await;

    let patch = serde_json::json!({"data": {"key": "edited"}});
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(k.client(), &k.ns.name);
    api.patch("a", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    request_reconcile(&k, "Kustomization", "web", "check-1").await;
    k.wait_for("Kustomization", "web", "checked", LONG, |o| ready(o) && o["status"]["lastHandledReconcileAt"] == "check-1").await;
    assert_eq!(k.get("ConfigMap", "a").await["data"]["key"], "one", "correct mode re-applies the source");
    let events: Vec<String> = k.events().await.iter().filter_map(|e| e["reason"].as_str().map(str::to_string)).collect();
    assert!(events.iter().any(|r| r == "DriftDetected"), "the drift is still reported: {events:?}");

    // An immutable field changed in Git: with spec.force the object is recreated.
    let commit = k.world.commit(&[("deploy/frozen.yaml", &immutable("two"))], "change an immutable ConfigMap");
    request_reconcile(&k, "GitRepository", "app", "immutable").await;
    k.wait_for("Kustomization", "web", "applied the change", LONG, |o| {
        ready(o) && o["status"]["lastAppliedRevision"].as_str().unwrap_or_default().contains(&commit)
    })
    .await;
    assert_eq!(k.get("ConfigMap", "frozen").await["data"]["key"], "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terraform_waits_for_the_kustomization_it_depends_on() {
    let Some(mut k) = KubeWorld::new("tf-dep").await else { return };
    k.world.commit(&[("main.tf", MODULE), ("deploy/a.yaml", &config_map("a", "one"))], "module and manifests");
    k.apply(&git_repository("app", "main")).await;
    // The Kustomization waits for approval; the Terraform that depends on it must wait too.
    k.apply(&kustomization("web", "./deploy", &format!("  targetNamespace: {}\n  approvePlan: \"\"\n", k.ns.name))).await;
    k.apply(&terraform_object("infra", "app", "./", "auto", "", "  dependsOn:\n    - kind: Kustomization\n      name: web\n")).await;
    k.start_controller(&[]);
    let ks = k.wait_for("Kustomization", "web", "PlanPending", LONG, |o| pending_plan_of(o).is_some()).await;
    let tf = k
        .wait_for("Terraform", "infra", "DependencyNotReady", LONG, |o| reason_of(&condition_in(o, "Ready")) == "DependencyNotReady")
        .await;
    assert!(condition_in(&tf, "Ready")["message"].as_str().unwrap().contains("Kustomization"), "{}", tf["status"]);
    assert!(!k.world.managed("main.txt").exists());
    k.annotate("Kustomization", "web", "driftless.dev/approve-plan", &pending_plan_of(&ks).unwrap()).await;
    k.wait_for("Terraform", "infra", "Ready", LONG, ready).await;
    assert_eq!(std::fs::read_to_string(k.world.managed("main.txt")).unwrap(), "hello");
}

/// A Kustomization moved from Flux takes over what Flux's kustomize-controller applied: the
/// same objects (same uid, nothing recreated), with driftless the only manager of their fields
/// from then on, so a field later removed from the source goes away instead of staying owned
/// by a controller that no longer runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_flux_applied_are_taken_over_in_place_and_then_follow_the_source_alone() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, Patch, PatchParams};
    let Some(mut k) = KubeWorld::new("ks-adopt").await else { return };
    let with_extra = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  key: one\n  extra: flux-era\n";
    // What Flux left on the cluster: the object its kustomize-controller server-side applied.
    let api: Api<ConfigMap> = Api::namespaced(k.client(), &k.ns.name);
    let mut flux_applied: Value = serde_yaml::from_str(with_extra).unwrap();
    flux_applied["metadata"]["labels"] =
        serde_json::json!({ "kustomize.toolkit.fluxcd.io/name": "web", "kustomize.toolkit.fluxcd.io/namespace": "flux-system" });
    api.patch("settings", &PatchParams::apply("kustomize-controller").force(), &Patch::Apply(&flux_applied)).await.unwrap();
    let uid = api.get("settings").await.unwrap().metadata.uid.unwrap();

    k.world.commit(&[("deploy/settings.yaml", with_extra)], "the same manifests");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&kustomization("web", "./deploy", &format!("  targetNamespace: {}\n", k.ns.name))).await;
    k.start_controller(&[]);
    k.wait_for("Kustomization", "web", "Ready", LONG, ready).await;
    let taken = api.get("settings").await.unwrap();
    assert_eq!(taken.metadata.uid.as_deref(), Some(uid.as_str()), "taken over in place, not recreated");
    let managers: Vec<String> = taken.metadata.managed_fields.unwrap_or_default().into_iter().filter_map(|m| m.manager).collect();
    assert!(!managers.iter().any(|m| m == "kustomize-controller"), "Flux's manager is gone: {managers:?}");
    assert_eq!(taken.metadata.labels.unwrap_or_default().get("kustomize.driftless.dev/name").map(String::as_str), Some("web"));

    let commit = k.world.commit(&[("deploy/settings.yaml", &config_map("settings", "one"))], "drop extra");
    request_reconcile(&k, "GitRepository", "app", "drop-extra").await;
    k.wait_for("Kustomization", "web", "applied the change", LONG, |o| {
        ready(o) && o["status"]["lastAppliedRevision"].as_str().unwrap_or_default().contains(&commit)
    })
    .await;
    let data = api.get("settings").await.unwrap().data.unwrap_or_default();
    assert_eq!(data.get("key").map(String::as_str), Some("one"));
    assert_eq!(data.get("extra"), None, "the field left the source, so it left the object: {data:?}");
}
