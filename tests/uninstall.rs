//! `driftless uninstall` against the testkit's real apiserver (its own test binary: it
//! deletes the CRDs of its cluster). A Kustomization applied by the real controller, then
//! install and uninstall as a user runs them: without --yes the CRDs and objects stay,
//! suspended and released; with --yes they go; what the Kustomization applied stays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::kube::{KubeWorld, condition_in};
use common::{Run, git_repository};
use serde_json::Value;

fn cli(k: &KubeWorld, args: &[&str]) -> Run {
    let out = std::process::Command::new(&k.world.tools.driftless)
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args(args)
        .env("HOME", k.world.path().join("home"))
        .env_remove("KUBECONFIG")
        .env_remove("DRIFTLESS_STORE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_suspends_and_releases_objects_and_leaves_what_they_applied() {
    let Some(mut k) = KubeWorld::new("uninstall").await else { return };
    let ns = k.ns.name.clone();
    let system = format!("{ns}-system");
    k.world.commit(&[("deploy/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: workload\ndata:\n  key: value\n")], "deploy");
    let ks = format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: web\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: app\n  path: ./deploy\n  interval: 1h\n  prune: true\n  targetNamespace: {ns}\n"
    );
    k.apply(&git_repository("app", "main").replace("__REPO__", &k.world.repo_url())).await;
    k.apply(&ks).await;
    let controller = k.start_controller(&[]);
    let ready = |o: &Value| condition_in(o, "Ready")["status"] == "True";
    let applied = k.wait_for("Kustomization", "web", "Ready", Duration::from_secs(120), ready).await;
    assert!(applied["metadata"]["finalizers"].to_string().contains("driftless.dev/finalizer"), "{applied}");
    k.stop_controller(controller);

    let placement = ["-n", system.as_str(), "--runner-namespaces", ns.as_str()];
    let mut install = vec!["install", "--replicas", "0"];
    install.extend_from_slice(&placement);
    cli(&k, &install).ok();

    // Without --yes (and no terminal to ask on): the installation goes, the CRDs and the
    // objects stay, suspended and without driftless's finalizer.
    let mut keep = vec!["uninstall", "--keep-namespace"];
    keep.extend_from_slice(&placement);
    let kept = cli(&k, &keep).ok();
    assert!(
        kept.stdout.contains("deleted Deployment") && kept.stdout.contains("deleted ClusterRole driftless-controller"),
        "{}",
        kept.stdout
    );
    assert!(kept.stdout.contains("kept the CRDs") && kept.stdout.contains(&format!("kept Namespace {system}")), "{}", kept.stdout);
    let web = k.get("Kustomization", "web").await;
    assert_eq!(web["spec"]["suspend"], true, "{web}");
    assert!(!web["metadata"]["finalizers"].to_string().contains("driftless.dev/finalizer"), "{web}");
    assert_eq!(k.get("GitRepository", "app").await["spec"]["suspend"], true);
    let roles: kube::Api<k8s_openapi::api::rbac::v1::ClusterRole> = kube::Api::all(k.client());
    assert!(roles.get_opt("driftless-controller").await.unwrap().is_none());

    // With --yes: the CRDs go and the objects with them, at once (nothing holds them); the
    // ConfigMap the Kustomization applied stays.
    cli(&k, &install).ok();
    let mut all = vec!["uninstall", "--yes"];
    all.extend_from_slice(&placement);
    let gone = cli(&k, &all).ok();
    assert!(gone.stdout.contains("deleted CustomResourceDefinition kustomizations.driftless.dev"), "{}", gone.stdout);
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        kube::Api::all(k.client());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while crds.get_opt("kustomizations.driftless.dev").await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "the Kustomization CRD is still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(k.client(), &ns);
    assert_eq!(configmaps.get("workload").await.unwrap().data.unwrap()["key"], "value", "what driftless applied stays");
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(k.client());
    let system_ns = namespaces.get_opt(&system).await.unwrap();
    assert!(system_ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()), "the controller's namespace goes");
}
