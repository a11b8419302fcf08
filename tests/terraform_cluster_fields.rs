//! tofu-controller's Terraform fields that shape what a cluster holds, on a real
//! kube-apiserver: the runner pod carries the template's fields (read back from the API
//! server), an `envFrom` ConfigMap's variable reaches terraform (run by the testkit's fake
//! kubelet), a template that leaves the restricted Pod Security profile is refused by field,
//! `alwaysCleanupRunnerPod: false` keeps the last run's pod, and `storeReadablePlan` writes
//! the plan where tofu-controller keeps it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::kube::{KubeWorld, condition_in, reason_of};
use common::{git_repository, terraform_object};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);

/// A module whose only input beyond the target directory comes from `TF_VAR_greeting`.
const GREETING_MODULE: &str = r#"
terraform {
  required_providers {
    drifttest = {
      source  = "driftless/drifttest"
      version = "0.1.0"
    }
  }
}

variable "content" {
  type = string
}

variable "target_dir" {
  type = string
}

variable "greeting" {
  type = string
}

resource "drifttest_file" "greeting" {
  path    = "${var.target_dir}/greeting.txt"
  content = var.greeting
}
"#;

fn ready(o: &Value) -> bool {
    condition_in(o, "Ready")["status"] == "True" && o["status"]["observedGeneration"] == o["metadata"]["generation"]
}

/// The first runner pod of Terraform `name`, read while it exists.
async fn runner_pod_of(k: &KubeWorld, name: &str) -> Value {
    let deadline = Instant::now() + LONG;
    loop {
        let pods = k.list("Pod").await;
        if let Some(pod) = pods.into_iter().find(|p| p["metadata"]["labels"]["driftless.dev/name"] == name) {
            return pod;
        }
        assert!(Instant::now() < deadline, "no runner pod of {name} appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_pod_carries_the_template_and_env_from_reaches_terraform() {
    let Some(mut k) = KubeWorld::new("podtpl").await else { return };
    k.world.commit(&[("main.tf", GREETING_MODULE)], "module");
    let priority = format!("{}-runners", k.ns.name);
    let classes: kube::Api<k8s_openapi::api::scheduling::v1::PriorityClass> = kube::Api::all(k.client());
    let class = serde_json::from_value(serde_json::json!({ "metadata": { "name": priority }, "value": 1000 })).unwrap();
    classes.create(&Default::default(), &class).await.unwrap();
    k.apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: runner-env\ndata:\n  TF_VAR_greeting: from-env-from\n").await;
    k.apply(&git_repository("app", "main")).await;
    let template = format!(
        "  runnerPodTemplate:\n    spec:\n{}",
        [
            "      envFrom:\n        - configMapRef:\n            name: runner-env\n",
            "      volumes:\n        - name: scratch\n          emptyDir: {}\n",
            "      volumeMounts:\n        - name: scratch\n          mountPath: /var/scratch\n",
            "      initContainers:\n        - name: prepare\n          image: busybox\n          command: [\"true\"]\n",
            "      hostAliases:\n        - ip: 127.0.0.1\n          hostnames: [state.internal]\n",
            &format!("      priorityClassName: {priority}\n"),
            "      affinity:\n        nodeAffinity:\n          preferredDuringSchedulingIgnoredDuringExecution:\n",
            "            - weight: 1\n              preference:\n                matchExpressions:\n",
            "                  - key: pool\n                    operator: In\n                    values: [runners]\n",
            "      securityContext:\n        runAsUser: 1000\n",
        ]
        .concat()
    );
    k.apply(&terraform_object("app", "app", "./", "auto", "app", &template)).await;
    let privileged = "  runnerPodTemplate:\n    spec:\n      securityContext:\n        privileged: true\n";
    k.apply(&terraform_object("privileged", "app", "./", "auto", "privileged", privileged)).await;
    k.start_controller(&[]);

    let pod = runner_pod_of(&k, "app").await;
    let spec = &pod["spec"];
    let runner = spec["containers"].as_array().unwrap().iter().find(|c| c["name"] == "runner").unwrap();
    assert_eq!(runner["envFrom"][0]["configMapRef"]["name"], "runner-env", "{runner}");
    assert!(runner["volumeMounts"].as_array().unwrap().iter().any(|m| m["name"] == "scratch" && m["mountPath"] == "/var/scratch"));
    assert!(runner["volumeMounts"].as_array().unwrap().iter().any(|m| m["name"] == "runspec"), "driftless's own mounts stay");
    assert!(spec["volumes"].as_array().unwrap().iter().any(|v| v["name"] == "scratch" && v["emptyDir"].is_object()), "{spec}");
    assert_eq!(spec["hostAliases"][0]["hostnames"][0], "state.internal");
    assert_eq!(spec["priorityClassName"], priority.as_str());
    assert_eq!(spec["priority"], 1000, "the API server resolved the class");
    assert_eq!(spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"], 1);
    // The template's securityContext is laid over driftless's restricted defaults.
    let sc = &runner["securityContext"];
    assert_eq!(sc["runAsUser"], 1000, "{sc}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc}");
    assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{sc}");
    let init = &spec["initContainers"][0];
    assert_eq!(init["name"], "prepare");
    assert_eq!(init["securityContext"]["allowPrivilegeEscalation"], false, "init containers get the defaults: {init}");

    k.wait_for("Terraform", "app", "applied", LONG, ready).await;
    let greeting = std::fs::read_to_string(k.world.managed("app/greeting.txt")).unwrap();
    assert_eq!(greeting, "from-env-from", "TF_VAR_greeting from the envFrom ConfigMap reached terraform");

    let refused = k.wait_for("Terraform", "privileged", "refused", LONG, |o| condition_in(o, "Stalled")["status"] == "True").await;
    assert_eq!(reason_of(&condition_in(&refused, "Ready")), "InvalidSpec");
    let message = condition_in(&refused, "Ready")["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("spec.runnerPodTemplate.spec.securityContext.privileged") && message.contains("restricted Pod Security profile"),
        "{message}"
    );
    let pods = k.list("Pod").await;
    assert!(!pods.iter().any(|p| p["metadata"]["labels"]["driftless.dev/name"] == "privileged"), "no pod for a refused template");
    let _ = classes.delete(&priority, &Default::default()).await;
}

fn runner_pods_of<'a>(pods: &'a [Value], name: &str) -> Vec<&'a Value> {
    pods.iter().filter(|p| p["metadata"]["labels"]["driftless.dev/name"] == name).collect()
}

/// Waits until `check` holds for the namespace's pods.
async fn wait_for_pods(k: &KubeWorld, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + LONG;
    loop {
        let pods = k.list("Pod").await;
        if check(&pods) {
            return pods;
        }
        let names: Vec<&str> = pods.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
        assert!(Instant::now() < deadline, "timed out waiting for pods: {what}; pods: {names:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_cleanup_runner_pod_false_keeps_the_last_run_pod_until_the_next_run() {
    let Some(mut k) = KubeWorld::new("podkeep").await else { return };
    k.world.commit(&[("main.tf", common::MODULE)], "module");
    k.apply(&git_repository("app", "main")).await;
    k.apply(&terraform_object("kept", "app", "./", "auto", "kept", "  alwaysCleanupRunnerPod: false\n  storeReadablePlan: json\n")).await;
    k.apply(&terraform_object("cleaned", "app", "./", "auto", "cleaned", "  storeReadablePlan: human\n")).await;
    k.start_controller(&[]);
    k.wait_for("Terraform", "kept", "applied", LONG, ready).await;
    k.wait_for("Terraform", "cleaned", "applied", LONG, ready).await;

    // The default deletes the pod; false keeps the ended pod (its Secrets are gone).
    let pods = wait_for_pods(&k, "only kept's pod left", |pods| runner_pods_of(pods, "cleaned").is_empty()).await;
    let kept = runner_pods_of(&pods, "kept");
    assert_eq!(kept.len(), 1, "one kept pod: {kept:?}");
    let first = kept[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(kept[0]["status"]["phase"], "Succeeded", "{}", kept[0]["status"]);
    assert!(kept[0]["metadata"]["deletionTimestamp"].is_null(), "not being deleted");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!k.get("Pod", &first).await.is_null(), "still there a while after the run");
    let secrets: Vec<String> = k
        .list("Secret")
        .await
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_string))
        .filter(|n| n.starts_with(&first))
        .collect();
    assert!(secrets.is_empty(), "the kept pod's RunSpec and result Secrets are deleted: {secrets:?}");

    // storeReadablePlan on a cluster: where tofu-controller keeps the plan, owned by the object.
    let json = k.get("Secret", "tfplan-default-kept.json").await;
    assert_eq!(json["metadata"]["annotations"]["encoding"], "gzip", "{json}");
    assert_eq!(json["metadata"]["ownerReferences"][0]["name"], "kept");
    assert!(json["data"]["tfplan"].is_string());
    let human = k.get("ConfigMap", "tfplan-default-cleaned").await;
    assert!(human["data"]["tfplan"].as_str().unwrap_or_default().contains("drifttest_file.main"), "{human}");

    // The next run replaces it: the old pod is deleted, the new one kept.
    k.annotate("Terraform", "kept", "driftless.dev/reconcile-requested-at", "again-1").await;
    let pods = wait_for_pods(&k, "a second kept pod alone", |pods| {
        let kept = runner_pods_of(pods, "kept");
        kept.len() == 1 && kept[0]["metadata"]["name"] != first.as_str() && kept[0]["status"]["phase"] == "Succeeded"
    })
    .await;
    let second = runner_pods_of(&pods, "kept")[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert!(k.get("Pod", &first).await.is_null(), "the first kept pod is gone");

    // Deleting the object takes its kept pod with it.
    k.delete("Terraform", "kept").await;
    wait_for_pods(&k, "the kept pod collected with its object", |pods| runner_pods_of(pods, "kept").is_empty()).await;
    assert!(k.get("Pod", &second).await.is_null());
}
