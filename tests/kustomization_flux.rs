//! A Kustomization moved from Flux keeps Flux's meaning on a real kube-apiserver: the
//! per-object marks (`kustomize.toolkit.fluxcd.io/ssa`, `/force`, `/reconcile`), what
//! `deletionPolicy` deletes, and CEL `healthCheckExprs`, each as a user sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::git_repository;
use common::kube::{KubeWorld, condition_in, reason_of};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(120);

fn kustomization(name: &str, path: &str, prune: bool, extra: &str) -> String {
    format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: app\n  path: {path}\n  interval: 1h\n  prune: {prune}\n{extra}"
    )
}

fn ready(o: &Value) -> bool {
    condition_in(o, "Ready")["status"] == "True" && o["status"]["observedGeneration"] == o["metadata"]["generation"]
}

fn applied(commit: &str) -> impl Fn(&Value) -> bool + '_ {
    move |o: &Value| ready(o) && o["status"]["lastAppliedRevision"].as_str().unwrap_or_default().contains(commit)
}

/// A ConfigMap with `annotations` (a YAML flow map) and `data`.
fn config_map(name: &str, annotations: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  annotations: {annotations}\n{data}")
}

/// An edit on the cluster by `manager` (`kubectl-edit` is what `kubectl edit` records).
async fn edit(api: &Api<ConfigMap>, name: &str, manager: &str, patch: Value) {
    let params = PatchParams { field_manager: Some(manager.into()), ..Default::default() };
    api.patch(name, &params, &Patch::Merge(&patch)).await.unwrap();
}

fn data(cm: &ConfigMap) -> std::collections::BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fluxs_marks_on_objects_keep_fluxs_meaning() {
    let Some(mut k) = KubeWorld::new("ks-marks").await else { return };
    let files = |v: &str| {
        vec![
            ("deploy/once.yaml", config_map("once", "{kustomize.toolkit.fluxcd.io/ssa: IfNotPresent}", &format!("data:\n  key: {v}\n"))),
            ("deploy/ignored.yaml", config_map("ignored", "{kustomize.toolkit.fluxcd.io/ssa: Ignore}", "data:\n  key: one\n")),
            ("deploy/merged.yaml", config_map("merged", "{kustomize.toolkit.fluxcd.io/ssa: Merge}", &format!("data:\n  key: {v}\n"))),
            ("deploy/overridden.yaml", config_map("overridden", "{}", &format!("data:\n  key: {v}\n"))),
            // Flux's force on one object, without spec.force: an immutable ConfigMap whose
            // data the API refuses to change.
            (
                "deploy/frozen.yaml",
                config_map("frozen", "{kustomize.toolkit.fluxcd.io/force: enabled}", &format!("immutable: true\ndata:\n  key: {v}\n")),
            ),
            ("deploy/paused.yaml", config_map("paused", "{}", &format!("data:\n  key: {v}\n"))),
        ]
    };
    let commit_files = |k: &mut KubeWorld, v: &str, message: &str| {
        let files = files(v);
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
        k.world.commit(&refs, message)
    };
    commit_files(&mut k, "one", "manifests");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&kustomization("web", "./deploy", true, &format!("  targetNamespace: {}\n", k.ns.name))).await;
    k.start_controller(&[]);
    let ks = k.wait_for("Kustomization", "web", "Ready", LONG, ready).await;
    let api: Api<ConfigMap> = Api::namespaced(k.client(), &k.ns.name);
    assert!(api.get_opt("ignored").await.unwrap().is_none(), "ssa: Ignore is never applied");
    let inventory = ks["status"]["inventory"]["entries"].to_string();
    assert!(inventory.contains("_ignored__ConfigMap"), "an ignored object stays in the inventory, as Flux keeps it: {inventory}");
    assert_eq!(data(&api.get("once").await.unwrap())["key"], "one", "ssa: IfNotPresent creates what is absent");

    // People edit the cluster: kubectl edit, and a Flux user's way of pausing one object.
    edit(&api, "once", "kubectl-edit", json!({"data": {"key": "edited"}})).await;
    edit(&api, "merged", "kubectl-edit", json!({"data": {"extra": "by-hand"}})).await;
    edit(&api, "overridden", "kubectl-edit", json!({"data": {"extra": "by-hand"}})).await;
    let pause = json!({"metadata": {"annotations": {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}}, "data": {"key": "edited"}});
    edit(&api, "paused", "kubectl-annotate", pause).await;
    let frozen_uid = api.get("frozen").await.unwrap().metadata.uid.unwrap();

    // The next revision changes every object of the source.
    let commit = commit_files(&mut k, "two", "every value two");
    k.annotate("GitRepository", "app", "driftless.dev/reconcile-requested-at", "two").await;
    k.wait_for("Kustomization", "web", "applied revision two", LONG, applied(&commit)).await;

    assert_eq!(data(&api.get("once").await.unwrap())["key"], "edited", "ssa: IfNotPresent is never updated, nor reverted");
    let merged = data(&api.get("merged").await.unwrap());
    assert_eq!(
        (merged["key"].as_str(), merged.get("extra").map(String::as_str)),
        ("two", Some("by-hand")),
        "ssa: Merge leaves kubectl's field"
    );
    let overridden = data(&api.get("overridden").await.unwrap());
    assert_eq!(overridden["key"], "two");
    assert_eq!(overridden.get("extra"), None, "by default (ssa: Override) what kubectl added goes, as with Flux: {overridden:?}");
    let frozen = api.get("frozen").await.unwrap();
    assert_eq!(data(&frozen)["key"], "two");
    assert_ne!(frozen.metadata.uid.as_deref(), Some(frozen_uid.as_str()), "force: enabled recreated it");
    assert_eq!(data(&api.get("paused").await.unwrap())["key"], "edited", "reconcile: disabled on the cluster leaves it alone");
    assert!(api.get_opt("ignored").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_decides_what_deleting_a_kustomization_removes() {
    let Some(mut k) = KubeWorld::new("ks-deletion").await else { return };
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\ndata:\n  key: one\n";
    k.world.commit(
        &[
            ("orphan/a.yaml", &config_map("kept", "{}", "data:\n  key: one\n")),
            ("delete/a.yaml", &config_map("removed", "{}", "data:\n  key: one\n")),
            ("wait/a.yaml", held),
        ],
        "manifests",
    );
    k.apply(&git_repository("app", "main")).await;
    let ns = format!("  targetNamespace: {}\n", k.ns.name);
    k.apply(&kustomization("orphan", "./orphan", true, &format!("{ns}  deletionPolicy: Orphan\n"))).await;
    k.apply(&kustomization("delete", "./delete", false, &format!("{ns}  deletionPolicy: Delete\n"))).await;
    k.apply(&kustomization("wait", "./wait", false, &format!("{ns}  deletionPolicy: WaitForTermination\n  timeout: 90s\n"))).await;
    k.start_controller(&[]);
    for name in ["orphan", "delete", "wait"] {
        k.wait_for("Kustomization", name, "Ready", LONG, ready).await;
    }
    for name in ["orphan", "delete", "wait"] {
        k.delete("Kustomization", name).await;
    }
    let api: Api<ConfigMap> = Api::namespaced(k.client(), &k.ns.name);
    k.wait_for("Kustomization", "orphan", "deleted", LONG, |o| o.is_null()).await;
    assert!(api.get_opt("kept").await.unwrap().is_some(), "Orphan keeps what it applied, prune or not");
    k.wait_for("Kustomization", "delete", "deleted", LONG, |o| o.is_null()).await;
    assert!(api.get_opt("removed").await.unwrap().is_none(), "Delete removes what it applied without prune");

    // WaitForTermination: the Kustomization stays while what it deleted is terminating.
    let terminating = |cm: Option<ConfigMap>| cm.is_some_and(|c| c.metadata.deletion_timestamp.is_some());
    for _ in 0..40 {
        if terminating(api.get_opt("held").await.unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(terminating(api.get_opt("held").await.unwrap()), "deleted, waiting for its finalizer");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!k.get("Kustomization", "wait").await.is_null(), "kept until what it deleted is gone");
    api.patch("held", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}}))).await.unwrap();
    k.wait_for("Kustomization", "wait", "deleted once its objects are gone", LONG, |o| o.is_null()).await;
    assert!(api.get_opt("held").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cel_health_checks_decide_when_custom_resources_are_ready() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let Some(mut k) = KubeWorld::new("ks-cel").await else { return };
    let group = format!("{}.example.com", k.ns.name);
    let crd: Value = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced", "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    let crds: Api<CustomResourceDefinition> = Api::all(k.client());
    crds.patch(&format!("widgets.{group}"), &PatchParams::apply("driftless-tests").force(), &Patch::Apply(&crd)).await.unwrap();
    let established = kube::runtime::wait::conditions::is_crd_established();
    tokio::time::timeout(LONG, kube::runtime::wait::await_condition(crds, &format!("widgets.{group}"), established))
        .await
        .unwrap()
        .unwrap();

    // Widgets without a controller: their status (no status subresource) comes with them.
    let widget = |name: &str, phase: &str| {
        format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n  size: 1\nstatus:\n  phase: {phase}\n")
    };
    k.world.commit(&[("good/w.yaml", &widget("fine", "Ready")), ("bad/w.yaml", &widget("broken", "Failed"))], "widgets");
    k.apply(&git_repository("app", "main")).await;
    let exprs = |current: &str| {
        format!(
            "  targetNamespace: {}\n  wait: true\n  timeout: 60s\n  healthCheckExprs:\n    - apiVersion: {group}/v1\n      kind: Widget\n      current: \"{current}\"\n      failed: \"status.phase == 'Failed'\"\n",
            k.ns.name
        )
    };
    k.apply(&kustomization("good", "./good", true, &exprs("status.phase == 'Ready'"))).await;
    k.apply(&kustomization("bad", "./bad", true, &exprs("status.phase == 'Ready'"))).await;
    k.apply(&kustomization("invalid", "./good", true, &exprs("status.phase =="))).await;
    k.start_controller(&[]);

    k.wait_for("Kustomization", "good", "Ready by its expression", LONG, ready).await;
    let bad = k
        .wait_for("Kustomization", "bad", "HealthCheckFailed", LONG, |o| reason_of(&condition_in(o, "Ready")) == "HealthCheckFailed")
        .await;
    let message = condition_in(&bad, "Ready")["message"].as_str().unwrap().to_string();
    assert!(message.contains(&format!("Widget {}/broken", k.ns.name)) && message.contains("healthCheckExprs[0].failed"), "{message}");
    assert!(message.contains("status.phase == 'Failed'"), "the expression is named: {message}");
    let invalid =
        k.wait_for("Kustomization", "invalid", "InvalidSpec", LONG, |o| reason_of(&condition_in(o, "Ready")) == "InvalidSpec").await;
    let message = condition_in(&invalid, "Ready")["message"].as_str().unwrap().to_string();
    assert!(message.contains("spec.healthCheckExprs[0].current"), "{message}");
}

/// Flux substitutes a build only with `postBuild` set and a variable resolved (or
/// `substituteStrategy: Always`): a script's `${HOME}` in a Kustomization without postBuild,
/// or whose optional ConfigMap of variables is missing, is applied as written, and `Always`
/// substitutes defaults with no variable set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_build_substitutes_only_when_flux_would() {
    let Some(mut k) = KubeWorld::new("ks-subst").await else { return };
    let script = |name: &str| config_map(name, "{}", "data:\n  run.sh: 'echo ${HOME} ${GREETING:=hello}'\n");
    k.world
        .commit(&[("plain/a.yaml", &script("plain")), ("none/a.yaml", &script("none")), ("always/a.yaml", &script("always"))], "scripts");
    k.apply(&git_repository("app", "main")).await;
    let ns = format!("  targetNamespace: {}\n", k.ns.name);
    let missing_vars = "  postBuild:\n    substituteFrom:\n      - kind: ConfigMap\n        name: not-there\n        optional: true\n";
    k.apply(&kustomization("plain", "./plain", true, &ns)).await;
    k.apply(&kustomization("none", "./none", true, &format!("{ns}{missing_vars}"))).await;
    k.apply(&kustomization("always", "./always", true, &format!("{ns}{missing_vars}    substituteStrategy: Always\n"))).await;
    k.start_controller(&[]);
    k.wait_for("Kustomization", "plain", "Ready", LONG, ready).await;
    k.wait_for("Kustomization", "none", "Ready", LONG, ready).await;
    let api: Api<ConfigMap> = Api::namespaced(k.client(), &k.ns.name);
    for name in ["plain", "none"] {
        assert_eq!(data(&api.get(name).await.unwrap())["run.sh"], "echo ${HOME} ${GREETING:=hello}", "{name}: applied as written");
    }
    // Always substitutes, strictly as Flux does: HOME has no value and no default.
    let always = k
        .wait_for("Kustomization", "always", "a substitution error", LONG, |o| reason_of(&condition_in(o, "Ready")) == "BuildFailed")
        .await;
    let message = condition_in(&always, "Ready")["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("\"HOME\"") && message.contains("no default"), "{message}");
    k.apply(&kustomization(
        "always",
        "./always",
        true,
        &format!("{ns}  postBuild:\n    substituteStrategy: Always\n    substitute:\n      HOME: /home/app\n"),
    ))
    .await;
    k.wait_for("Kustomization", "always", "Ready", LONG, ready).await;
    assert_eq!(data(&api.get("always").await.unwrap())["run.sh"], "echo /home/app hello");
}

/// Flux's `kubeConfig`: a Kustomization applies to the cluster of the kubeconfig its Secret
/// holds (a second real API server here), not to its own; a kubeconfig that would make the
/// controller run a program is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_config_applies_to_the_other_cluster() {
    let Some(mut k) = KubeWorld::new("ks-remote").await else { return };
    let remote = testkit::TestCluster::start().await.expect("a second cluster");
    let remote_ns = format!("{}-far", k.ns.name);
    let far: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(remote.client_for(testkit::ADMIN).unwrap());
    far.create(&Default::default(), &serde_json::from_value(json!({"metadata": {"name": remote_ns}})).unwrap()).await.unwrap();
    let kubeconfig = remote.access().kubeconfig_yaml(testkit::ADMIN).unwrap();
    let indented: String = kubeconfig.lines().map(|l| format!("    {l}\n")).collect();
    k.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: far-cluster\nstringData:\n  value: |\n{indented}")).await;
    let exec = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n";
    let indented: String = exec.lines().map(|l| format!("    {l}\n")).collect();
    k.apply(&format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: runs-a-program\nstringData:\n  config: |\n{indented}")).await;
    k.world.commit(&[("far/a.yaml", &config_map("far-away", "{}", "data:\n  key: one\n"))], "manifests");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&kustomization(
        "far",
        "./far",
        true,
        &format!("  targetNamespace: {remote_ns}\n  kubeConfig:\n    secretRef:\n      name: far-cluster\n"),
    ))
    .await;
    k.apply(&kustomization(
        "exec",
        "./far",
        true,
        &format!("  targetNamespace: {remote_ns}\n  kubeConfig:\n    secretRef:\n      name: runs-a-program\n      key: config\n"),
    ))
    .await;
    k.start_controller(&[]);
    k.wait_for("Kustomization", "far", "Ready", LONG, ready).await;
    let there: Api<ConfigMap> = Api::namespaced(remote.client_for(testkit::ADMIN).unwrap(), &remote_ns);
    assert_eq!(data(&there.get("far-away").await.unwrap())["key"], "one", "applied on the other cluster");
    let here: Api<ConfigMap> = Api::namespaced(k.client(), &remote_ns);
    assert!(here.get_opt("far-away").await.ok().flatten().is_none(), "not on the controller's own");

    let refused = k.wait_for("Kustomization", "exec", "InvalidSpec", LONG, |o| reason_of(&condition_in(o, "Ready")) == "InvalidSpec").await;
    let message = condition_in(&refused, "Ready")["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains("spec.kubeConfig") && message.contains("sets exec"), "{message}");

    // Removed from Git, it is pruned there too.
    k.world.commit(&[("far/b.yaml", &config_map("other", "{}", "data:\n  key: two\n"))], "replace");
    k.world.commit_removal(&["far/a.yaml"], "remove");
    k.annotate("GitRepository", "app", "reconcile.fluxcd.io/requestedAt", "now").await;
    for _ in 0..120 {
        if there.get_opt("far-away").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(there.get_opt("far-away").await.unwrap().is_none(), "pruned on the other cluster");
    assert_eq!(data(&there.get("other").await.unwrap())["key"], "two");
}
