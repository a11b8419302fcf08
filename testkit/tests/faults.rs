//! The fault proxy in front of the apiserver, node loss, and a dedicated cluster's
//! lifecycle.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::json;
use testkit::{
    ApiFault, ClusterOptions, FakeKubelet, FaultProxy, FaultRule, KubeletOptions, Verb, shared_cluster_or_skip, start_cluster_or_skip,
};

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "k": "v" } })).expect("cm")
}

#[tokio::test]
async fn a_watch_is_resumed_after_the_proxy_drops_it() {
    testkit::init_tracing();
    let Some(cluster) = shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("watch-drop").await.expect("namespace");
    let proxy = FaultProxy::start_for(cluster.access(), cluster.ca()).await.expect("proxy");
    let through_proxy: Api<ConfigMap> = Api::namespaced(proxy.admin_client().expect("client"), &ns.name);
    let direct: Api<ConfigMap> = ns.api();

    let mut names = Box::pin(
        watcher(through_proxy, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .map(|r| r.map(|cm| cm.metadata.name.unwrap_or_default())),
    );
    direct.create(&PostParams::default(), &config_map("before")).await.expect("create");
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(item) = names.next().await {
            if item.as_deref().is_ok_and(|n| n == "before") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "first object never seen");
    // The watcher lists first, then watches: wait for the watch to be open.
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.open_watches() == 0 {
        assert!(Instant::now() < deadline, "the watcher never opened a watch");
        tokio::select! {
            _ = names.next() => {}
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }

    proxy.drop_watches();
    direct.create(&PostParams::default(), &config_map("after")).await.expect("create");
    let mut errors = 0;
    let resumed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(item) = names.next().await {
            match item {
                Ok(name) if name == "after" => return true,
                Ok(_) => {}
                Err(_) => errors += 1,
            }
        }
        false
    })
    .await;
    assert_eq!(resumed, Ok(true), "watch never resumed");
    assert!(proxy.faults_injected() >= 1);
    tracing::info!(errors, "watch errors seen while resuming");
}

#[tokio::test]
async fn injected_conflicts_and_server_errors_reach_the_client_then_stop() {
    testkit::init_tracing();
    let Some(cluster) = shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("inject-status").await.expect("namespace");
    let proxy = FaultProxy::start_for(cluster.access(), cluster.ca()).await.expect("proxy");
    let api: Api<ConfigMap> = Api::namespaced(proxy.admin_client().expect("client"), &ns.name);

    proxy.add_rule(FaultRule::new(ApiFault::Status(409)).verb(Verb::Create).resource("configmaps").times(1));
    let first = api.create(&PostParams::default(), &config_map("c")).await;
    assert!(matches!(first, Err(kube::Error::Api(ref s)) if s.code == 409 && s.reason == "Conflict"), "{first:?}");
    api.create(&PostParams::default(), &config_map("c")).await.expect("second create passes");

    proxy.add_rule(FaultRule::new(ApiFault::Status(500)).verb(Verb::Get).resource("configmaps").name("c").times(2));
    for _ in 0..2 {
        let got = api.get("c").await;
        assert!(matches!(got, Err(kube::Error::Api(ref s)) if s.code == 500), "{got:?}");
    }
    api.get("c").await.expect("third get passes");
    // Other resources were never affected.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(proxy.admin_client().expect("client"), &ns.name);
    secrets.list(&Default::default()).await.expect("list secrets");
    assert_eq!(proxy.faults_injected(), 3);
}

#[tokio::test]
async fn latency_is_added_only_to_matching_requests() {
    testkit::init_tracing();
    let Some(cluster) = shared_cluster_or_skip().await else { return };
    let ns = cluster.namespace("latency").await.expect("namespace");
    let proxy = FaultProxy::start_for(cluster.access(), cluster.ca()).await.expect("proxy");
    let api: Api<ConfigMap> = Api::namespaced(proxy.admin_client().expect("client"), &ns.name);
    api.list(&Default::default()).await.expect("warm up the connection");
    proxy.add_rule(FaultRule::new(ApiFault::Latency(Duration::from_millis(1500))).verb(Verb::List).resource("configmaps"));
    let start = Instant::now();
    api.list(&Default::default()).await.expect("list");
    assert!(start.elapsed() >= Duration::from_millis(1500), "{:?}", start.elapsed());
    let start = Instant::now();
    api.get_opt("nothing").await.expect("get");
    assert!(start.elapsed() < Duration::from_millis(1500), "{:?}", start.elapsed());
}

#[tokio::test]
async fn a_lost_node_goes_unknown_its_pods_are_evicted_and_it_recovers() {
    testkit::init_tracing();
    let options = ClusterOptions {
        node_monitor_grace_period: Duration::from_secs(10),
        pod_eviction_timeout: Duration::from_secs(2),
        ..ClusterOptions::default()
    };
    let Some(cluster) = start_cluster_or_skip(options).await else { return };
    let kubelet =
        FakeKubelet::start(cluster.access(), KubeletOptions { heartbeat_interval: Duration::from_secs(1), ..KubeletOptions::default() })
            .await
            .expect("kubelet");
    // With every node lost, the node-lifecycle controller assumes the control plane is
    // the one cut off ("master disruption mode") and evicts nothing, as on a real
    // cluster; a second, healthy node (which binds no pods) makes the loss a node's.
    let _healthy = FakeKubelet::start(
        cluster.access(),
        KubeletOptions { node_name: "testkit-healthy".into(), bind_pending_pods: false, ..KubeletOptions::default() },
    )
    .await
    .expect("second kubelet");
    let client = cluster.admin_client().expect("client");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "stranded" },
        "spec": { "containers": [{ "name": "main", "image": "busybox", "command": ["sleep", "600"] }] },
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("create");
    tokio::time::timeout(Duration::from_secs(60), await_condition(pods.clone(), "stranded", kube::runtime::conditions::is_pod_running()))
        .await
        .expect("running in time")
        .expect("watch");

    let loss = kubelet.lose_node();
    let nodes: Api<Node> = Api::all(client.clone());
    let ready_status = |n: Option<&Node>| -> Option<String> {
        n?.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone())
    };
    let lost_at = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(nodes.clone(), kubelet.node_name(), move |n: Option<&Node>| ready_status(n).as_deref() == Some("Unknown")),
    )
    .await
    .expect("node marked Unknown in time")
    .expect("watch");
    tracing::info!(after = ?lost_at.elapsed(), "node Unknown");
    // The taint-eviction controller deletes the pod; the lost kubelet cannot confirm, so
    // it stays terminating, as on a real cluster.
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(pods.clone(), "stranded", |p: Option<&Pod>| p.is_some_and(|p| p.metadata.deletion_timestamp.is_some())),
    )
    .await
    .expect("pod evicted in time")
    .expect("watch");
    assert!(pods.get_opt("stranded").await.expect("get").is_some(), "a lost node cannot confirm deletion");

    loss.restore();
    tokio::time::timeout(Duration::from_secs(60), await_condition(pods.clone(), "stranded", |p: Option<&Pod>| p.is_none()))
        .await
        .expect("deletion confirmed after recovery")
        .expect("watch");
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(nodes, kubelet.node_name(), move |n: Option<&Node>| ready_status(n).as_deref() == Some("True")),
    )
    .await
    .expect("node Ready again")
    .expect("watch");
}

#[tokio::test]
async fn a_dedicated_cluster_starts_within_seconds_and_leaves_nothing_behind() {
    testkit::init_tracing();
    let Some(cluster) = start_cluster_or_skip(ClusterOptions::default()).await else { return };
    eprintln!(
        "testkit: dedicated cluster: /readyz after {:.1?}, controllers ready after {:.1?}",
        cluster.apiserver_ready_time(),
        cluster.startup_time()
    );
    let dir = cluster.dir().to_path_buf();
    assert!(dir.join("kube-apiserver.log").is_file());
    let version = cluster.admin_client().expect("client").apiserver_version().await.expect("version");
    assert_eq!(format!("{}.{}", version.major, version.minor), "1.37");
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*dir.to_string_lossy())))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(pids.len(), 3, "etcd, kube-apiserver, kube-controller-manager: {pids:?}");
    drop(cluster);
    assert!(!dir.exists(), "temp dir removed");
    // SIGKILL is asynchronous; give the kernel a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| std::path::Path::new("/proc").join(p).join("cmdline").exists() && is_alive(p)) {
        assert!(Instant::now() < deadline, "processes still alive: {pids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A process is alive if it exists and is not a zombie.
fn is_alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}
