//! `driftless install` and `driftless check`: the exported manifests, and the real binary
//! against a private test cluster (CRDs and ClusterRoles are cluster-wide, so no sharing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::wait::{Condition as _, await_condition, conditions};
use kube::{Api, Client};
use serde::Deserialize as _;
use serde_json::Value;
use testkit::{ClusterOptions, FakeKubelet, KubeletOptions, start_cluster_or_skip};

const NS: &str = "driftless-system";

/// Runs the real binary with no ambient cluster or store, so only the flags count.
async fn driftless(home: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_driftless"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("DRIFTLESS_STORE")
        .env("HOME", home)
        .output()
        .await
        .expect("run driftless")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml).map(|doc| Value::deserialize(doc).expect("a YAML document")).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, namespace: Option<&str>, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name && d["metadata"]["namespace"].as_str() == namespace)
        .unwrap_or_else(|| panic!("no {kind} {namespace:?}/{name} in the export"))
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

#[tokio::test]
async fn export_prints_every_object_with_a_restricted_security_context() {
    let home = tempfile::tempdir().unwrap();
    let out =
        driftless(home.path(), &["install", "--export", "--runner-namespaces", "team-a,team-b", "--image", "example/driftless:1"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = documents(&stdout(&out));

    for crd in ["buckets.driftless.dev", "gitrepositories.driftless.dev", "terraforms.driftless.dev"] {
        find(&docs, "CustomResourceDefinition", None, crd);
    }
    assert_eq!(find(&docs, "Namespace", None, NS)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
    find(&docs, "ServiceAccount", Some(NS), "driftless-controller");
    let controller_role = find(&docs, "ClusterRole", None, "driftless-controller");
    let binding = find(&docs, "ClusterRoleBinding", None, "driftless-controller");
    assert_eq!(binding["roleRef"]["name"], "driftless-controller");
    assert_eq!(binding["subjects"][0]["namespace"], NS);
    let lease_role = find(&docs, "Role", Some(NS), "driftless-leader-election");
    assert_eq!(strings(&lease_role["rules"][0]["resources"]), ["leases"]);
    assert_eq!(strings(&lease_role["rules"][0]["verbs"]), ["get", "create", "update"]);
    find(&docs, "RoleBinding", Some(NS), "driftless-leader-election");
    let rules = controller_role["rules"].as_array().unwrap();
    assert!(!rules.iter().any(|r| strings(&r["resources"]).contains(&"leases")), "leases only in the namespaced Role");
    assert!(rules.iter().any(|r| strings(&r["resources"]).contains(&"terraforms/finalizers") && strings(&r["verbs"]) == ["update"]));
    find(&docs, "ClusterRole", None, "driftless-runner");
    for ns in ["team-a", "team-b"] {
        find(&docs, "ServiceAccount", Some(ns), "driftless-runner");
        assert_eq!(find(&docs, "RoleBinding", Some(ns), "driftless-runner")["roleRef"]["kind"], "ClusterRole");
    }
    assert!(!docs.iter().any(|d| d["kind"] == "Namespace" && d["metadata"]["name"] == "team-a"), "runner namespaces belong to their users");
    let service = find(&docs, "Service", Some(NS), "driftless-artifacts");
    assert_eq!(service["spec"]["ports"][0]["port"], 9090);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http-artifacts");
    // Webhooks and the review page come in through their own Services (for an Ingress).
    for (name, target) in [("driftless-webhook-receiver", "http-webhook"), ("driftless-review", "http-review")] {
        let service = find(&docs, "Service", Some(NS), name);
        assert_eq!(service["spec"]["ports"][0]["port"], 80);
        assert_eq!(service["spec"]["ports"][0]["targetPort"], target);
    }

    let deployment = find(&docs, "Deployment", Some(NS), "driftless-controller");
    assert_eq!(deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], "driftless");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "driftless-controller");
    assert_eq!(pod["terminationGracePeriodSeconds"], 60);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    assert_eq!(container["name"], "manager");
    assert_eq!(container["image"], "example/driftless:1");
    let args = strings(&container["args"]);
    assert_eq!(args[0], "controller");
    for arg in [
        "--artifact-url=http://driftless-artifacts.driftless-system.svc.cluster.local:9090",
        "--runner-image=example/driftless-runner:1",
        "--leader-election-namespace=driftless-system",
        "--storage-path=/data",
        "--receiver-addr=0.0.0.0:9292",
        "--review-addr=0.0.0.0:9393",
    ] {
        assert!(args.contains(&arg), "{arg} in {args:?}");
    }
    let ports: Vec<(&str, i64)> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["containerPort"].as_i64().unwrap()))
        .collect();
    assert_eq!(ports, [("http-metrics", 8080), ("http-artifacts", 9090), ("http-webhook", 9292), ("http-review", 9393)]);
    let sc = &container["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    let mounts: Vec<&str> = container["volumeMounts"].as_array().unwrap().iter().filter_map(|m| m["mountPath"].as_str()).collect();
    assert_eq!(mounts, ["/data", "/tmp"]);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env: Vec<&str> = container["env"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(env, ["POD_NAME", "POD_NAMESPACE"]);

    // With its external URL, the review page is linked from every alert.
    let out = driftless(home.path(), &["install", "--export", "--review-url", "https://driftless.example.com"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = documents(&stdout(&out));
    let container = &find(&docs, "Deployment", Some(NS), "driftless-controller")["spec"]["template"]["spec"]["containers"][0];
    let review_url =
        container["env"].as_array().unwrap().iter().find(|e| e["name"] == "DRIFTLESS_REVIEW_URL").expect("DRIFTLESS_REVIEW_URL set");
    assert_eq!(review_url["value"], "https://driftless.example.com");
}

#[tokio::test]
async fn install_and_check_without_a_cluster_say_how_to_choose_one() {
    let home = tempfile::tempdir().unwrap();
    for command in [&["install"][..], &["check"], &["check", "--pre"]] {
        let out = driftless(home.path(), command).await;
        assert!(!out.status.success(), "{command:?}");
        assert!(
            stderr(&out).contains("no kube context: pass --kubeconfig, set KUBECONFIG, or use --store DIR"),
            "{command:?}: {}",
            stderr(&out)
        );
    }
}

/// Whether `system:serviceaccount:<ns>:<name>` may do `verb` on `group/resource`, in
/// `namespace` (None: every namespace, or a cluster-scoped resource).
async fn sa_may(client: &Client, sa: (&str, &str), verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{}:{}", sa.0, sa.1)),
            groups: Some(vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{}", sa.0), "system:authenticated".into()]),
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                namespace: namespace.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone()).create(&PostParams::default(), &review).await.expect("review");
    answer.status.is_some_and(|s| s.allowed)
}

/// `generation` where the object has one (status writes do not change it), else the
/// `resourceVersion`: what a no-op apply leaves alone.
async fn versions(client: &Client, docs: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for doc in docs {
        let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", doc["apiVersion"].as_str().unwrap()),
        };
        let gvk = GroupVersionKind::gvk(group, version, doc["kind"].as_str().unwrap());
        let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.expect("discovery");
        let name = doc["metadata"]["name"].as_str().unwrap();
        let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let live = api.get(name).await.unwrap_or_else(|e| panic!("{} {name}: {e}", gvk.kind));
        let version = live
            .metadata
            .generation
            .map_or_else(|| live.metadata.resource_version.clone().unwrap_or_default(), |g| format!("generation {g}"));
        out.push((format!("{} {name}", gvk.kind), version));
    }
    out
}

#[tokio::test]
async fn install_on_a_fresh_cluster_then_check_passes_and_the_rights_are_least_privilege() {
    testkit::init_tracing();
    let Some(cluster) = start_cluster_or_skip(ClusterOptions::default()).await else { return };
    let _kubelet = FakeKubelet::start(cluster.access(), KubeletOptions::default()).await.expect("fake kubelet");
    let home = tempfile::tempdir().unwrap();
    let admin_kc = home.path().join("admin.kubeconfig");
    let alice_kc = home.path().join("alice.kubeconfig");
    cluster.write_kubeconfig(&admin_kc, "admin").unwrap();
    cluster.write_kubeconfig(&alice_kc, "alice").unwrap();
    let (admin_kc, alice_kc) = (admin_kc.to_str().unwrap(), alice_kc.to_str().unwrap());
    let client = cluster.admin_client().unwrap();

    // Before install: an admin may install, alice may not, and says which right is missing.
    let pre = driftless(home.path(), &["--kubeconfig", admin_kc, "check", "--pre"]).await;
    assert!(pre.status.success(), "{}{}", stdout(&pre), stderr(&pre));
    assert!(stdout(&pre).contains("✔ Kubernetes v1.37"), "{}", stdout(&pre));
    assert!(stdout(&pre).contains("✔ you may create customresourcedefinitions.apiextensions.k8s.io (cluster-wide)"), "{}", stdout(&pre));
    let pre = driftless(home.path(), &["--kubeconfig", alice_kc, "check", "--pre"]).await;
    assert!(!pre.status.success());
    assert!(stdout(&pre).contains("✔ API server"), "{}", stdout(&pre));
    assert!(
        stdout(&pre).contains(
            "✗ you may not create customresourcedefinitions.apiextensions.k8s.io (cluster-wide) — run install as a cluster admin"
        ),
        "{}",
        stdout(&pre)
    );
    assert!(stdout(&pre).contains("✗ you may not create deployments.apps (in namespace driftless-system)"), "{}", stdout(&pre));
    assert!(stderr(&pre).contains("4 of 6 checks failed"), "{}", stderr(&pre));

    // check without install: one line per missing piece.
    let before = driftless(home.path(), &["--kubeconfig", admin_kc, "check"]).await;
    assert!(!before.status.success());
    assert!(stdout(&before).contains("✗ CRD terraforms.driftless.dev is not installed — run `driftless install`"), "{}", stdout(&before));
    assert!(stdout(&before).contains("✗ Deployment driftless-system/driftless-controller not found"), "{}", stdout(&before));

    // install: applied, CRDs Established when it returns.
    let install = driftless(home.path(), &["--kubeconfig", admin_kc, "install"]).await;
    assert!(install.status.success(), "{}{}", stdout(&install), stderr(&install));
    assert!(stdout(&install).contains("applied Deployment driftless-system/driftless-controller"), "{}", stdout(&install));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in ["buckets.driftless.dev", "gitrepositories.driftless.dev", "terraforms.driftless.dev"] {
        let crd = crds.get(name).await.expect("CRD installed");
        assert!(conditions::is_crd_established().matches_object(Some(&crd)), "{name} Established when install returns");
    }

    // Re-running install changes nothing.
    let export = driftless(home.path(), &["install", "--export"]).await;
    let docs = documents(&stdout(&export));
    let first = versions(&client, &docs).await;
    let again = driftless(home.path(), &["--kubeconfig", admin_kc, "install"]).await;
    assert!(again.status.success(), "{}{}", stdout(&again), stderr(&again));
    assert_eq!(versions(&client, &docs).await, first, "a second install is a no-op");

    // The controller's pods run (simulated: the image has no command here), so the
    // Deployment becomes Available and every check passes.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let available = tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(deployments.clone(), "driftless-controller", |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_.as_deref() == Some("Available") && c.status.as_deref() == Some("True")))
        }),
    )
    .await;
    if available.is_err() {
        let status = deployments.get("driftless-controller").await.ok().and_then(|d| d.status);
        panic!("Deployment not Available after 90s: {status:?}");
    }
    let check = driftless(home.path(), &["--kubeconfig", admin_kc, "check"]).await;
    let report = stdout(&check);
    assert!(check.status.success(), "{report}{}", stderr(&check));
    for line in [
        "✔ CRD terraforms.driftless.dev Established, serving v1alpha1",
        "✔ Deployment driftless-system/driftless-controller Available (1/1 replicas)",
        "✔ ServiceAccount driftless-system/driftless-controller has its",
        "✔ ServiceAccount default/driftless-runner has its",
    ] {
        assert!(report.contains(line), "{line} in:\n{report}");
    }
    assert!(!report.contains('✗'), "{report}");

    // Least privilege: what the service accounts hold, and representative rights they do not.
    let controller = (NS, "driftless-controller");
    let runner = ("default", "driftless-runner");
    assert!(sa_may(&client, controller, "create", "", "pods", Some("default")).await, "control: runner pods in a runner namespace");
    assert!(!sa_may(&client, controller, "create", "", "pods", Some("kube-system")).await, "no pods outside runner namespaces");
    assert!(!sa_may(&client, controller, "create", "", "pods", None).await, "no pods cluster-wide");
    assert!(
        sa_may(&client, controller, "update", "", "secrets", Some("default")).await,
        "control: outputs and plans in a runner namespace"
    );
    assert!(!sa_may(&client, controller, "create", "", "secrets", Some("kube-system")).await, "no Secret writes outside runner namespaces");
    assert!(sa_may(&client, controller, "get", "", "secrets", Some("kube-system")).await, "control: references are read anywhere");
    assert!(sa_may(&client, controller, "update", "coordination.k8s.io", "leases", Some(NS)).await, "control: its own Lease");
    assert!(
        !sa_may(&client, controller, "update", "coordination.k8s.io", "leases", Some("kube-system")).await,
        "no Leases outside its namespace"
    );
    assert!(!sa_may(&client, controller, "delete", "", "namespaces", None).await, "no deleting namespaces");
    assert!(
        !sa_may(&client, controller, "create", "rbac.authorization.k8s.io", "clusterrolebindings", None).await,
        "no RBAC: no escalation"
    );
    assert!(!sa_may(&client, controller, "delete", "driftless.dev", "terraforms", Some("default")).await, "users own their objects");
    assert!(sa_may(&client, runner, "get", "", "secrets", Some("default")).await, "control: a runner reads Secrets in its namespace");
    assert!(!sa_may(&client, runner, "get", "", "secrets", Some("kube-system")).await, "a runner reads no Secrets elsewhere");
    assert!(!sa_may(&client, runner, "create", "", "pods", Some("default")).await, "a runner starts no pods");

    // A missing right shows as its own line.
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), NS);
    roles.delete("driftless-leader-election", &Default::default()).await.expect("delete the lease Role");
    let broken = driftless(home.path(), &["--kubeconfig", admin_kc, "check"]).await;
    assert!(!broken.status.success());
    assert!(
        stdout(&broken).contains(
            "✗ ServiceAccount driftless-system/driftless-controller may not update leases.coordination.k8s.io (in namespace driftless-system)"
        ),
        "{}",
        stdout(&broken)
    );
}
