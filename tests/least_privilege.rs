//! The controller as its own ServiceAccount, with only the rights `driftless install` gives
//! it (the one RBAC table of `src/cli/rbac.rs`): a Terraform goes plan -> approval ->
//! applied -> destroyed on deletion, and a Kustomization applies as the ServiceAccount it
//! names, with no request refused; what the controller must not do is refused by the API.
//! A missing right fails this test with the API's own 403 message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::kube::{CONTROLLER_ACCOUNT, CONTROLLER_NAMESPACE, KubeWorld, condition_in, pending_plan_of, reason_of};
use common::{MODULE, git_repository, terraform_object};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);
const TOKEN: &str = "lp-token-value-3c9a";

fn ready(o: &Value) -> bool {
    condition_in(o, "Ready")["status"] == "True" && o["status"]["observedGeneration"] == o["metadata"]["generation"]
}

/// A ServiceAccount `deployer` that may manage ConfigMaps in namespace `ns` and nothing
/// else, as a user would set one up for a Kustomization's `spec.serviceAccountName`.
fn deployer(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: deployer
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: deployer
rules:
  - apiGroups: [""]
    resources: ["configmaps"]
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: deployer
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: deployer
subjects:
  - kind: ServiceAccount
    name: deployer
    namespace: {ns}
"#
    )
}

/// The error must be the API's own refusal (403 Forbidden) with `needle` in its message.
fn assert_forbidden(err: &kube::Error, needle: &str) {
    let kube::Error::Api(status) = err else { panic!("not an API refusal: {err}") };
    assert_eq!(status.code, 403, "{err}");
    let user = format!("User \"system:serviceaccount:{CONTROLLER_NAMESPACE}:{CONTROLLER_ACCOUNT}\"");
    assert!(status.message.contains(&user) && status.message.contains(needle), "{}", status.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_reconciles_with_only_the_rights_install_gives_its_service_account() {
    let Some(mut k) = KubeWorld::new("least-privilege").await else { return };
    let ns = k.ns.name.clone();
    k.world.commit(
        &[
            ("main.tf", MODULE),
            ("deploy/settings.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  key: one\n"),
        ],
        "module and manifests",
    );
    k.apply(&deployer(&ns)).await;
    k.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-token\nstringData:\n  token: {TOKEN}\n")).await;
    k.apply(&git_repository("app", "main")).await;
    let spec = "  destroyResourcesOnDeletion: true\n  storeReadablePlan: human\n  writeOutputsToSecret:\n    name: app-outputs\n  varsFrom:\n    - kind: Secret\n      name: app-token\n";
    k.apply(&terraform_object("app", "app", "./", "", "", spec)).await;
    k.apply(&format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: web\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: app\n  path: ./deploy\n  interval: 1h\n  prune: true\n  targetNamespace: {ns}\n  serviceAccountName: deployer\n"
    ))
    .await;
    let (controller, as_controller) = k.start_controller_as_service_account(&[]).await;

    // Terraform: plan, approval by annotation, apply, outputs.
    let tf = k.wait_for("Terraform", "app", "a pending plan", LONG, |o| pending_plan_of(o).is_some()).await;
    let plan = pending_plan_of(&tf).unwrap();
    assert_eq!(reason_of(&condition_in(&tf, "Ready")), "PlanPending", "{}", tf["status"]);
    assert!(!k.world.managed("main.txt").exists(), "nothing is applied before approval");
    // storeReadablePlan: human, a ConfigMap in the runner namespace (RUNS grants it).
    let readable = k.wait_for("ConfigMap", "tfplan-default-app", "the readable plan", LONG, |o| !o.is_null()).await;
    assert_eq!(readable["metadata"]["annotations"]["savedPlan"], plan.as_str(), "{readable}");
    assert!(!readable.to_string().contains(TOKEN), "a secret reached the readable plan");
    k.annotate("Terraform", "app", "driftless.dev/approve-plan", &plan).await;
    let tf = k.wait_for("Terraform", "app", "applied", LONG, ready).await;
    assert_eq!(tf["status"]["plan"]["id"], plan.as_str());
    assert_eq!(tf["status"]["plan"]["approvedBy"], "annotation");
    assert_eq!(std::fs::read_to_string(k.world.managed("main.txt")).unwrap(), "hello");
    let outputs = k.wait_for("Secret", "app-outputs", "the outputs Secret", LONG, |o| !o.is_null()).await;
    assert!(outputs["data"]["token"].is_string(), "{}", outputs["data"]);

    // Kustomization: applied as its ServiceAccount (the controller impersonates it).
    let ks = k.wait_for("Kustomization", "web", "Ready", LONG, ready).await;
    assert_eq!(ks["status"]["inventory"]["entries"].as_array().map(Vec::len), Some(1), "{}", ks["status"]);
    let settings = k.get("ConfigMap", "settings").await;
    assert_eq!(settings["data"]["key"], "one");
    assert_eq!(settings["metadata"]["labels"]["kustomize.driftless.dev/name"], "web");

    // What the controller's token may not do, refused by the API itself. A read succeeds
    // first, so the refusals are about rights, not about a bad token.
    let terraforms: Api<DynamicObject> = Api::namespaced_with(
        as_controller.clone(),
        &ns,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("driftless.dev", "v1alpha1", "Terraform"), "terraforms"),
    );
    terraforms.get("app").await.expect("the controller reads Terraforms");
    let err = terraforms.delete("app", &Default::default()).await.expect_err("users own their Terraforms");
    assert_forbidden(&err, "cannot delete resource \"terraforms\" in API group \"driftless.dev\"");
    let deployments: Api<Deployment> = Api::namespaced(as_controller, &ns);
    let err = deployments.list(&Default::default()).await.expect_err("no rights on workloads other than pods");
    assert_forbidden(&err, "cannot list resource \"deployments\" in API group \"apps\"");

    // Deletion: the finalizer destroys the resources, then lets the object go.
    k.delete("Terraform", "app").await;
    k.wait_for("Terraform", "app", "deleted", LONG, |o| o.is_null()).await;
    assert!(!k.world.managed("main.txt").exists(), "resources destroyed on deletion");
    k.wait_for("Secret", "app-outputs", "the outputs Secret removed", LONG, |o| o.is_null()).await;
    k.delete("Kustomization", "web").await;
    k.wait_for("Kustomization", "web", "deleted", LONG, |o| o.is_null()).await;
    assert!(k.get("ConfigMap", "settings").await.is_null(), "pruned on deletion");

    let log = k.controller_log(controller);
    let refused: Vec<&str> =
        log.lines().filter(|l| l.to_lowercase().contains("forbidden") || l.contains("code: 403") || l.contains(" 403 ")).collect();
    assert!(refused.is_empty(), "the API refused the controller's ServiceAccount:\n{}", refused.join("\n"));

    // Events are written with the controller's rights too.
    let reasons: Vec<String> = k.events().await.iter().filter_map(|e| e["reason"].as_str().map(str::to_string)).collect();
    for wanted in ["PlanPending", "PlanApplied", "Destroyed"] {
        assert!(reasons.iter().any(|r| r == wanted), "no {wanted} event in {reasons:?}");
    }
}

/// A tenant's commit asks for a privileged Pod in `kube-system`, and its Kustomization names
/// no ServiceAccount: it applies with the controller's own identity, which `install` lets
/// write Pods and Secrets in runner namespaces only, so the API refuses it and the condition
/// says whose rights fell short and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_service_account_a_kustomization_cannot_reach_outside_what_install_grants() {
    let Some(mut k) = KubeWorld::new("lp-tenant").await else { return };
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: escalate\n  namespace: kube-system\nspec:\n  containers:\n    - name: shell\n      image: busybox\n      securityContext:\n        privileged: true\n";
    k.world.commit(&[("deploy/pod.yaml", pod)], "a privileged pod in kube-system");
    k.apply(&git_repository("app", "main")).await;
    k.apply("apiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: tenant\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: app\n  path: ./deploy\n  interval: 1h\n  prune: true\n").await;
    // No election: another test of this binary may lead in the same namespace.
    let _ = k.start_controller_as_service_account(&["--no-leader-election"]).await;
    let ks = k.wait_for("Kustomization", "tenant", "refused", LONG, |o| reason_of(&condition_in(o, "Ready")) == "ApplyFailed").await;
    let message = condition_in(&ks, "Ready")["message"].as_str().unwrap().to_string();
    for needle in ["Pod kube-system/escalate", "forbidden", "the controller's own identity", "spec.serviceAccountName"] {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(k.client(), "kube-system");
    assert!(pods.get_opt("escalate").await.unwrap().is_none(), "nothing was created in kube-system");
}
