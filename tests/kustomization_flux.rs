//! A Kustomization moved from Flux keeps Flux's meaning on a real kube-apiserver: what
//! `deletionPolicy` deletes, as a user sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::git_repository;
use common::kube::{KubeWorld, condition_in};
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

/// A ConfigMap with `annotations` (a YAML flow map) and `data`.
fn config_map(name: &str, annotations: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  annotations: {annotations}\n{data}")
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
