//! Pods run by the fake kubelet, garbage collection and RBAC, through `kube::Api` against
//! the shared real control plane (one namespace per test).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use testkit::{TestNamespace, shared_cluster_or_skip};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn namespace(prefix: &str) -> Option<TestNamespace> {
    testkit::init_tracing();
    let cluster = shared_cluster_or_skip().await?;
    Some(cluster.namespace(prefix).await.expect("namespace"))
}

fn pod(name: &str, annotations: serde_json::Value, spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "annotations": annotations },
        "spec": spec,
    }))
    .expect("pod")
}

fn shell_pod(name: &str, script: &str) -> Pod {
    pod(
        name,
        json!({}),
        json!({
            "restartPolicy": "Never",
            "containers": [{ "name": "main", "image": "busybox", "command": ["sh", "-c", script] }],
        }),
    )
}

async fn wait_pod(api: &Api<Pod>, name: &str, what: &str, cond: impl Fn(&Pod) -> bool) -> Pod {
    let waited = tokio::time::timeout(TIMEOUT, await_condition(api.clone(), name, move |p: Option<&Pod>| p.is_some_and(&cond))).await;
    match waited {
        Ok(Ok(Some(pod))) => pod,
        other => {
            let now = api.get_opt(name).await.ok().flatten();
            panic!("pod {name} never {what}: {other:?}; now: {:#?}", now.and_then(|p| p.status));
        }
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn terminated(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStateTerminated {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
        .expect("a terminated container state")
}

#[tokio::test]
async fn a_pod_whose_process_exits_zero_succeeds_with_its_termination_message() {
    let Some(ns) = namespace("pod-succeeds").await else { return };
    let api: Api<Pod> = ns.api();
    api.create(&PostParams::default(), &shell_pod("ok", "echo all good > /dev/termination-log; exit 0")).await.expect("create");
    let pod = wait_pod(&api, "ok", "succeeded", |p| phase(p) == "Succeeded").await;
    let t = terminated(&pod);
    assert_eq!(t.exit_code, 0);
    assert_eq!(t.reason.as_deref(), Some("Completed"));
    assert_eq!(t.message.as_deref(), Some("all good\n"));
    assert_eq!(pod.spec.and_then(|s| s.node_name).as_deref(), Some("testkit-node"));
}

#[tokio::test]
async fn a_pod_whose_process_fails_reports_its_exit_code_and_termination_message() {
    let Some(ns) = namespace("pod-fails").await else { return };
    let api: Api<Pod> = ns.api();
    let failing = pod(
        "boom",
        json!({}),
        json!({
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": "busybox",
                "command": ["sh", "-c", "mkdir -p /run/result && printf 'plan failed: 3 errors' > /run/result/message; exit 3"],
                "terminationMessagePath": "/run/result/message",
            }],
        }),
    );
    api.create(&PostParams::default(), &failing).await.expect("create");
    let pod = wait_pod(&api, "boom", "failed", |p| phase(p) == "Failed").await;
    let t = terminated(&pod);
    assert_eq!(t.exit_code, 3);
    assert_eq!(t.reason.as_deref(), Some("Error"));
    assert_eq!(t.message.as_deref(), Some("plan failed: 3 errors"));
}

#[tokio::test]
async fn fallback_to_logs_on_error_uses_the_end_of_the_log_as_message() {
    let Some(ns) = namespace("pod-fallback").await else { return };
    let api: Api<Pod> = ns.api();
    let failing = pod(
        "logs",
        json!({}),
        json!({
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": "busybox",
                "command": ["sh", "-c", "echo first; echo 'last words' >&2; exit 1"],
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }],
        }),
    );
    api.create(&PostParams::default(), &failing).await.expect("create");
    let pod = wait_pod(&api, "logs", "failed", |p| phase(p) == "Failed").await;
    let message = terminated(&pod).message.unwrap_or_default();
    assert!(message.contains("last words"), "message: {message:?}");
}

#[tokio::test]
async fn env_and_volumes_come_from_secrets_and_config_maps() {
    let Some(ns) = namespace("pod-env").await else { return };
    let secrets: Api<Secret> = ns.api();
    let config_maps: Api<ConfigMap> = ns.api();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "creds" }, "stringData": { "password": "s3cret" },
            }))
            .expect("secret"),
        )
        .await
        .expect("create secret");
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "settings" }, "data": { "greeting": "hello" },
            }))
            .expect("cm"),
        )
        .await
        .expect("create cm");
    let script = r#"test "$PASSWORD" = s3cret || exit 7
test "$NS" = "$(cat /etc/podinfo/namespace)" || exit 8
echo "$(cat /etc/config/greeting) $WHO from $(pwd)" > /dev/termination-log"#;
    let api: Api<Pod> = ns.api();
    let p = pod(
        "env",
        json!({}),
        json!({
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": "busybox",
                "command": ["sh", "-c", script],
                "workingDir": "/workspace",
                "env": [
                    { "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "creds", "key": "password" } } },
                    { "name": "NS", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                    { "name": "NAME", "value": "world" },
                    { "name": "WHO", "value": "$(NAME)" },
                ],
                "volumeMounts": [
                    { "name": "config", "mountPath": "/etc/config" },
                    { "name": "podinfo", "mountPath": "/etc/podinfo" },
                    { "name": "scratch", "mountPath": "/workspace" },
                ],
            }],
            "volumes": [
                { "name": "config", "configMap": { "name": "settings" } },
                { "name": "podinfo", "downwardAPI": { "items": [{ "path": "namespace", "fieldRef": { "fieldPath": "metadata.namespace" } }] } },
                { "name": "scratch", "emptyDir": {} },
            ],
        }),
    );
    api.create(&PostParams::default(), &p).await.expect("create");
    let pod = wait_pod(&api, "env", "finished", |p| matches!(phase(p), "Succeeded" | "Failed")).await;
    let t = terminated(&pod);
    assert_eq!(t.exit_code, 0, "{t:?}");
    let message = t.message.unwrap_or_default();
    assert!(message.starts_with("hello world from /"), "message: {message:?}");
    assert!(!message.contains("from /workspace\n"), "workingDir must be a temp dir, got {message:?}");
}

#[tokio::test]
async fn an_oom_killed_container_is_reported_as_on_a_real_node() {
    let Some(ns) = namespace("pod-oom").await else { return };
    let api: Api<Pod> = ns.api();
    let p = pod(
        "hog",
        json!({ "testkit.driftless.dev/fault": "oom", "testkit.driftless.dev/fault-after": "300ms" }),
        json!({
            "restartPolicy": "Never",
            "containers": [{ "name": "main", "image": "busybox", "command": ["sleep", "60"] }],
        }),
    );
    api.create(&PostParams::default(), &p).await.expect("create");
    let pod = wait_pod(&api, "hog", "failed", |p| phase(p) == "Failed").await;
    let t = terminated(&pod);
    assert_eq!(t.exit_code, 137);
    assert_eq!(t.reason.as_deref(), Some("OOMKilled"));
}

#[tokio::test]
async fn an_evicted_pod_fails_with_reason_evicted_and_stays() {
    let Some(ns) = namespace("pod-evict").await else { return };
    let api: Api<Pod> = ns.api();
    let p = pod(
        "victim",
        json!({ "testkit.driftless.dev/fault": "evict", "testkit.driftless.dev/fault-after": "300ms" }),
        json!({ "containers": [{ "name": "main", "image": "busybox", "command": ["sleep", "60"] }] }),
    );
    api.create(&PostParams::default(), &p).await.expect("create");
    let pod = wait_pod(&api, "victim", "evicted", |p| phase(p) == "Failed").await;
    let status = pod.status.expect("status");
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    let disruption = status.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "DisruptionTarget");
    assert_eq!(disruption.map(|c| c.status).as_deref(), Some("True"));
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_leaves_the_pod_pending_in_back_off() {
    let Some(ns) = namespace("pod-pull").await else { return };
    let api: Api<Pod> = ns.api();
    let p = pod(
        "nopull",
        json!({ "testkit.driftless.dev/fault": "image-pull" }),
        json!({ "containers": [{ "name": "main", "image": "registry.invalid/nothing:1" }] }),
    );
    api.create(&PostParams::default(), &p).await.expect("create");
    let pod = wait_pod(&api, "nopull", "in ImagePullBackOff", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| w.reason.as_deref() == Some("ImagePullBackOff"))
    })
    .await;
    assert_eq!(phase(&pod), "Pending");
}

#[tokio::test]
async fn a_deployment_of_an_image_without_a_command_becomes_available() {
    let Some(ns) = namespace("deploy").await else { return };
    let api: Api<Deployment> = ns.api();
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "nginx", "image": "nginx:1.27" }] },
            },
        },
    }))
    .expect("deployment");
    api.create(&PostParams::default(), &deployment).await.expect("create");
    let available = tokio::time::timeout(
        TIMEOUT,
        await_condition(api.clone(), "web", |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref()).is_some_and(|s| s.available_replicas == Some(2))
        }),
    )
    .await;
    assert!(matches!(available, Ok(Ok(Some(_)))), "deployment never available: {:#?}", api.get("web").await.ok().and_then(|d| d.status));
}

#[tokio::test]
async fn deleting_a_running_pod_stops_it_and_the_kubelet_confirms_the_deletion() {
    let Some(ns) = namespace("pod-delete").await else { return };
    let api: Api<Pod> = ns.api();
    api.create(&PostParams::default(), &shell_pod("sleeper", "trap 'exit 0' TERM; while true; do sleep 0.1; done")).await.expect("create");
    wait_pod(&api, "sleeper", "running", |p| phase(p) == "Running").await;
    api.delete("sleeper", &DeleteParams::default()).await.expect("delete");
    let gone = tokio::time::timeout(TIMEOUT, await_condition(api.clone(), "sleeper", |p: Option<&Pod>| p.is_none())).await;
    assert!(matches!(gone, Ok(Ok(_))), "pod still there: {gone:?}");
}

#[tokio::test]
async fn an_owned_secret_is_garbage_collected_after_its_owner_is_deleted() {
    let Some(ns) = namespace("gc").await else { return };
    let owners: Api<ConfigMap> = ns.api();
    let owner = owners
        .create(&PostParams::default(), &serde_json::from_value(json!({ "metadata": { "name": "owner" } })).expect("cm"))
        .await
        .expect("create owner");
    let secrets: Api<Secret> = ns.api();
    let owned: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": "owned",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                "uid": owner.metadata.uid.clone().expect("uid"),
            }],
        },
        "stringData": { "k": "v" },
    }))
    .expect("secret");
    secrets.create(&PostParams::default(), &owned).await.expect("create owned");
    owners.delete("owner", &DeleteParams::background()).await.expect("delete owner");
    let collected = tokio::time::timeout(TIMEOUT, await_condition(secrets.clone(), "owned", |s: Option<&Secret>| s.is_none())).await;
    assert!(matches!(collected, Ok(Ok(_))), "owned secret not collected: {collected:?}");
}

#[tokio::test]
async fn an_unprivileged_user_is_refused_with_403_until_rbac_allows_it() {
    let Some(ns) = namespace("rbac").await else { return };
    let cluster = shared_cluster_or_skip().await.expect("cluster");
    let alice = cluster.client_for(testkit::ALICE).expect("alice");
    let as_alice: Api<ConfigMap> = Api::namespaced(alice, &ns.name);
    match as_alice.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("alice should be refused, got {other:?}"),
    }
    let roles: Api<Role> = ns.api();
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "cm-reader" },
                "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"] }],
            }))
            .expect("role"),
        )
        .await
        .expect("create role");
    let bindings: Api<RoleBinding> = ns.api();
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "alice-reads" },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader" },
                "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice" }],
            }))
            .expect("binding"),
        )
        .await
        .expect("create binding");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match as_alice.list(&Default::default()).await {
            Ok(_) => break,
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%err, "RBAC not yet effective");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("alice still refused after the binding: {err}"),
        }
    }
    // Still no write access.
    let write = as_alice.create(&PostParams::default(), &serde_json::from_value(json!({ "metadata": { "name": "x" } })).expect("cm")).await;
    assert!(matches!(write, Err(kube::Error::Api(ref s)) if s.code == 403), "{write:?}");
}

#[tokio::test]
async fn a_pod_reaches_the_api_with_its_own_service_account_token() {
    let Some(ns) = namespace("pod-token").await else { return };
    if let Err(err) = testkit::tools::kubectl() {
        testkit::skip_or_fail(&err);
        return;
    }
    let api: Api<Pod> = ns.api();
    let script = "kubectl auth whoami -o jsonpath='{.status.userInfo.username}' > /dev/termination-log";
    api.create(&PostParams::default(), &shell_pod("whoami", script)).await.expect("create");
    let pod = wait_pod(&api, "whoami", "finished", |p| matches!(phase(p), "Succeeded" | "Failed")).await;
    let t = terminated(&pod);
    assert_eq!(t.exit_code, 0, "{t:?}");
    assert_eq!(t.message.as_deref(), Some(format!("system:serviceaccount:{}:default", ns.name).as_str()));
}
