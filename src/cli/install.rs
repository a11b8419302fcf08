//! `driftless install [--export]`: the controller's manifests as typed objects (plus the
//! CRDs), printed as YAML for GitOps/kubectl or server-side applied to a cluster.
//!
//! The objects are built here, not kept as YAML templates, so the compiler checks their
//! shape and `check` can derive what to look for from the same code (see [`super::rbac`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, Namespace, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Service, ServiceAccount,
    ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Resource};
use serde::Serialize;

use super::cluster::{self, ClusterError};
use super::rbac;

/// The controller's and its objects' name (Deployment, ServiceAccount, ClusterRole...).
pub const CONTROLLER: &str = "driftless-controller";
/// The runner pods' ServiceAccount and ClusterRole.
pub const RUNNER: &str = "driftless-runner";
/// The namespaced Role (and binding) for the leader-election Lease.
pub const LEADER_ELECTION: &str = "driftless-leader-election";
/// The ClusterRole of the controller's rights in runner namespaces (bound there only).
pub const RUNS: &str = "driftless-controller-runs";
/// The Service runner pods fetch artifacts from.
pub const ARTIFACTS_SERVICE: &str = "driftless-artifacts";
/// The Service of the webhook receiver (`Receiver` objects), for an Ingress to expose.
pub const RECEIVER_SERVICE: &str = "driftless-webhook-receiver";
/// The Service of the review page, for an Ingress (or `kubectl port-forward`) to expose.
pub const REVIEW_SERVICE: &str = "driftless-review";
/// Field manager of every server-side apply by `install`.
pub const FIELD_MANAGER: &str = "driftless";
/// The label that selects the controller's pods (Deployment selector and Service).
pub const NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "driftless");

const DEFAULT_IMAGE: &str = concat!("driftless:", env!("CARGO_PKG_VERSION"));
const METRICS_PORT: i32 = 8080;
const ARTIFACTS_PORT: i32 = 9090;
const RECEIVER_PORT: i32 = 9292;
const REVIEW_PORT: i32 = 9393;
/// Non-root user of the images (see the Dockerfile's `USER`).
const RUN_AS: i64 = 65532;
/// How long `install` waits for the API server to serve the CRDs.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);

/// Where driftless lives: shared by `install` and `check`, which must agree.
#[derive(clap::Args, Debug, Clone)]
pub struct Placement {
    /// Namespace of the controller (created by install).
    #[arg(short = 'n', long, default_value = "driftless-system")]
    pub namespace: String,
    /// Namespaces where runner pods run, comma separated; each gets the driftless-runner
    /// ServiceAccount and RoleBinding. They must exist already.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    pub runner_namespaces: Vec<String>,
}

impl Placement {
    /// The namespaces, checked (DNS labels) and with duplicates and empty items removed.
    ///
    /// # Errors
    /// A name the API server would refuse, said before anything is applied.
    pub fn validated(&self) -> Result<Placement, super::CliError> {
        let check = |name: &str| {
            let ok = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-');
            if ok {
                Ok(())
            } else {
                Err(super::CliError::Usage(format!("{name:?} is not a valid namespace name (lowercase letters, digits, '-')")))
            }
        };
        check(&self.namespace)?;
        let mut runner_namespaces: Vec<String> = Vec::new();
        for name in self.runner_namespaces.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            check(name)?;
            if !runner_namespaces.iter().any(|n| n == name) {
                runner_namespaces.push(name.to_owned());
            }
        }
        Ok(Placement { namespace: self.namespace.clone(), runner_namespaces })
    }
}

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    pub placement: Placement,
    /// Print the manifests as multi-document YAML (for GitOps or `kubectl apply -f -`)
    /// instead of applying them.
    #[arg(long)]
    pub export: bool,
    /// Image of the controller (the Dockerfile's `controller` target).
    #[arg(long, default_value = DEFAULT_IMAGE)]
    pub image: String,
    /// Image of runner pods, with driftless-runner and terraform (the Dockerfile's `runner`
    /// target); default: the controller image's repository with `-runner` appended.
    #[arg(long)]
    pub runner_image: Option<String>,
    /// Controller replicas (one leads, the others wait on the Lease).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(0..))]
    pub replicas: i32,
    /// The review page's external URL (where its Service is exposed), linked from every
    /// alert; without it alerts carry no link.
    #[arg(long, value_parser = super::parse_review_url)]
    pub review_url: Option<String>,
    /// Let objects refer to objects of other namespaces (sourceRef, dependsOn, ...). Off by
    /// default: the controller runs with `--no-cross-namespace-refs`, so one tenant's objects
    /// never read another's.
    #[arg(long)]
    pub allow_cross_namespace_refs: bool,
    /// Kustomizations that name no serviceAccountName apply as this ServiceAccount of their
    /// own namespace (`--default-service-account`), never with the controller's rights.
    #[arg(long)]
    pub default_service_account: Option<String>,
}

/// What runs: the controller's images, replicas and settings.
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    pub image: &'a str,
    pub runner_image: &'a str,
    pub replicas: i32,
    pub review_url: Option<&'a str>,
    pub allow_cross_namespace_refs: bool,
    pub default_service_account: Option<&'a str>,
}

/// One object to install, type-erased so that one loop can print or apply every kind.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub resource: ApiResource,
    pub object: DynamicObject,
}

impl Manifest {
    fn of<K: Resource<DynamicType = ()> + Serialize>(object: &K) -> Result<Self, ClusterError> {
        let resource = ApiResource::erase::<K>(&());
        let what = format!("{} {}", resource.kind, object.meta().name.as_deref().unwrap_or_default());
        let render = |e: serde_json::Error| ClusterError::Render { what: what.clone(), reason: e.to_string() };
        let object = serde_json::to_value(object).and_then(serde_json::from_value).map_err(render)?;
        Ok(Self { resource, object })
    }

    /// `Kind namespace/name` or `Kind name`, for progress and errors.
    pub fn describe(&self) -> String {
        let name = self.object.metadata.name.as_deref().unwrap_or_default();
        match &self.object.metadata.namespace {
            Some(ns) => format!("{} {ns}/{name}", self.resource.kind),
            None => format!("{} {name}", self.resource.kind),
        }
    }
}

/// Every object of an installation, in apply order: CRDs, the namespace, then what lives
/// in it and the cluster-wide RBAC, the runner namespaces' objects, the workload last.
///
/// # Errors
/// Only if an object cannot be rendered (a bug).
/// `repo:tag` -> `repo-runner:tag`: the runner image built beside the controller image.
pub fn runner_image_for(image: &str) -> String {
    let (repo, tag) = match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((repo, tag)) => (repo, Some(tag)),
        None => (image, None),
    };
    match tag {
        Some(tag) => format!("{repo}-runner:{tag}"),
        None => format!("{repo}-runner"),
    }
}

pub fn manifests(placement: &Placement, workload: &Workload<'_>) -> Result<Vec<Manifest>, ClusterError> {
    let ns = placement.namespace.as_str();
    let mut out = Vec::new();
    for crd in crate::api::crds() {
        out.push(Manifest::of::<CustomResourceDefinition>(&crd)?);
    }
    out.push(Manifest::of(&namespace(ns))?);
    out.push(Manifest::of(&ServiceAccount { metadata: meta(CONTROLLER, Some(ns)), ..ServiceAccount::default() })?);
    out.push(Manifest::of(&ClusterRole {
        metadata: meta(CONTROLLER, None),
        rules: Some(rbac::policy_rules(rbac::CONTROLLER)),
        ..ClusterRole::default()
    })?);
    out.push(Manifest::of(&ClusterRoleBinding {
        metadata: meta(CONTROLLER, None),
        role_ref: role_ref("ClusterRole", CONTROLLER),
        subjects: Some(vec![service_account_subject(CONTROLLER, ns)]),
    })?);
    out.push(Manifest::of(&Role { metadata: meta(LEADER_ELECTION, Some(ns)), rules: Some(rbac::policy_rules(rbac::LEADER_ELECTION)) })?);
    out.push(Manifest::of(&RoleBinding {
        metadata: meta(LEADER_ELECTION, Some(ns)),
        role_ref: role_ref("Role", LEADER_ELECTION),
        subjects: Some(vec![service_account_subject(CONTROLLER, ns)]),
    })?);
    out.push(Manifest::of(&ClusterRole {
        metadata: meta(RUNNER, None),
        rules: Some(rbac::policy_rules(rbac::RUNNER)),
        ..ClusterRole::default()
    })?);
    out.push(Manifest::of(&ClusterRole {
        metadata: meta(RUNS, None),
        rules: Some(rbac::policy_rules(rbac::RUNS)),
        ..ClusterRole::default()
    })?);
    for runner_ns in &placement.runner_namespaces {
        out.push(Manifest::of(&RoleBinding {
            metadata: meta(RUNS, Some(runner_ns)),
            role_ref: role_ref("ClusterRole", RUNS),
            subjects: Some(vec![service_account_subject(CONTROLLER, ns)]),
        })?);
        out.push(Manifest::of(&ServiceAccount { metadata: meta(RUNNER, Some(runner_ns)), ..ServiceAccount::default() })?);
        out.push(Manifest::of(&RoleBinding {
            metadata: meta(RUNNER, Some(runner_ns)),
            role_ref: role_ref("ClusterRole", RUNNER),
            subjects: Some(vec![service_account_subject(RUNNER, runner_ns)]),
        })?);
    }
    out.push(Manifest::of(&service(ARTIFACTS_SERVICE, ns, "http-artifacts", ARTIFACTS_PORT))?);
    out.push(Manifest::of(&service(RECEIVER_SERVICE, ns, "http-webhook", 80))?);
    out.push(Manifest::of(&service(REVIEW_SERVICE, ns, "http-review", 80))?);
    out.push(Manifest::of(&network_policy(ns, &placement.runner_namespaces))?);
    out.push(Manifest::of(&deployment(ns, workload))?);
    Ok(out)
}

/// The manifests as one multi-document YAML stream.
///
/// # Errors
/// Only if an object cannot be rendered (a bug).
pub fn to_yaml(manifests: &[Manifest]) -> Result<String, ClusterError> {
    let mut out = String::new();
    for m in manifests {
        let yaml = serde_yaml::to_string(&m.object).map_err(|e| ClusterError::Render { what: m.describe(), reason: e.to_string() })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

/// `driftless install`: export, or apply and wait for the CRDs.
pub async fn run(args: &InstallArgs, kubeconfig: Option<&Path>, context: Option<&str>) -> super::Result<()> {
    let placement = args.placement.validated()?;
    let runner_image = args.runner_image.clone().unwrap_or_else(|| runner_image_for(&args.image));
    let workload = Workload {
        image: &args.image,
        runner_image: &runner_image,
        replicas: args.replicas,
        review_url: args.review_url.as_deref(),
        allow_cross_namespace_refs: args.allow_cross_namespace_refs,
        default_service_account: args.default_service_account.as_deref(),
    };
    let manifests = manifests(&placement, &workload)?;
    if args.export {
        print!("{}", to_yaml(&manifests)?);
        return Ok(());
    }
    let client = cluster::client(kubeconfig, context).await?;
    require_runner_namespaces(&client, &placement).await?;
    for m in &manifests {
        apply(&client, m).await?;
        println!("applied {}", m.describe());
    }
    wait_established(&client, ESTABLISHED_TIMEOUT).await?;
    println!("driftless installed in namespace {}; run `driftless check` to verify", placement.namespace);
    Ok(())
}

/// Runner namespaces belong to their users: install adds objects to them but never creates
/// (and so never owns) them, or `kubectl delete -f` of an export would delete them.
async fn require_runner_namespaces(client: &Client, placement: &Placement) -> Result<(), ClusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    for name in placement.runner_namespaces.iter().filter(|n| **n != placement.namespace) {
        let found = api.get_opt(name).await.map_err(|e| ClusterError::api(format!("reading namespace {name}"), e))?;
        if found.is_none() {
            return Err(ClusterError::MissingRunnerNamespace(name.clone()));
        }
    }
    Ok(())
}

/// Server-side apply with `force`: install owns these fields; a hand edit is overwritten,
/// which is what re-running install is for.
async fn apply(client: &Client, manifest: &Manifest) -> Result<(), ClusterError> {
    let api: Api<DynamicObject> = match &manifest.object.metadata.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &manifest.resource),
        None => Api::all_with(client.clone(), &manifest.resource),
    };
    let name = manifest.object.metadata.name.as_deref().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(&manifest.object))
        .await
        .map_err(|e| ClusterError::api(format!("applying {}", manifest.describe()), e))?;
    Ok(())
}

/// Waits until the API server serves every driftless CRD, so objects can be applied right
/// after install returns.
async fn wait_established(client: &Client, timeout: Duration) -> Result<(), ClusterError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::api::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        match tokio::time::timeout(timeout, await_condition(api.clone(), &name, conditions::is_crd_established())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ClusterError::Timeout(format!("waiting for CRD {name} to be Established: {e}"))),
            Err(_) => return Err(ClusterError::Timeout(format!("CRD {name} is not Established after {}s", timeout.as_secs()))),
        }
    }
    Ok(())
}

fn labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> =
        [(driftless_core::names::label::PART_OF, "driftless"), (driftless_core::names::label::MANAGED_BY, FIELD_MANAGER)]
            .into_iter()
            .chain(extra.iter().copied())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    labels.insert("app.kubernetes.io/version".into(), env!("CARGO_PKG_VERSION").into());
    labels
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_owned()), namespace: namespace.map(str::to_owned), labels: Some(labels(&[])), ..ObjectMeta::default() }
}

/// The controller's namespace enforces the `restricted` Pod Security Standard: the
/// controller meets it, and nothing else should run there.
fn namespace(name: &str) -> Namespace {
    let mut metadata = meta(name, None);
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    for (key, value) in [("pod-security.kubernetes.io/enforce", "restricted"), ("pod-security.kubernetes.io/enforce-version", "latest")] {
        labels.insert(key.into(), value.into());
    }
    Namespace { metadata, ..Namespace::default() }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: kind.into(), name: name.into() }
}

fn service_account_subject(name: &str, namespace: &str) -> Subject {
    Subject { kind: "ServiceAccount".into(), name: name.into(), namespace: Some(namespace.into()), ..Subject::default() }
}

fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.0.to_owned(), NAME_LABEL.1.to_owned())])
}

/// A Service in front of the controller's named container port: runner pods fetch
/// artifacts through one, webhooks and review page users come in through the others.
fn service(name: &str, ns: &str, port_name: &str, port: i32) -> Service {
    Service {
        metadata: meta(name, Some(ns)),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels()),
            ports: Some(vec![ServicePort {
                name: Some(port_name.into()),
                port,
                target_port: Some(IntOrString::String(port_name.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Who may connect to the controller's pods, where the cluster's network plugin enforces
/// NetworkPolicies: the artifact port only from runner pods of the runner namespaces (a
/// download also needs a URL signed for its run), metrics from any namespace (scraping),
/// webhooks and the review page from anywhere (an Ingress or load balancer brings them).
fn network_policy(ns: &str, runner_namespaces: &[String]) -> NetworkPolicy {
    let port = |name: &str| {
        Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::String(name.into())),
            protocol: Some("TCP".into()),
            ..NetworkPolicyPort::default()
        }])
    };
    let runners = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "In".into(),
                values: Some(runner_namespaces.to_vec()),
            }]),
            ..LabelSelector::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                driftless_core::names::label::MANAGED_BY.to_owned(),
                driftless_core::names::label::MANAGED_BY_VALUE.to_owned(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    let any_namespace = NetworkPolicyPeer { namespace_selector: Some(LabelSelector::default()), ..NetworkPolicyPeer::default() };
    NetworkPolicy {
        metadata: meta(CONTROLLER, Some(ns)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(selector_labels()), ..LabelSelector::default() }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule { from: Some(vec![runners]), ports: port("http-artifacts") },
                NetworkPolicyIngressRule { from: Some(vec![any_namespace]), ports: port("http-metrics") },
                NetworkPolicyIngressRule { from: None, ports: port("http-webhook") },
                NetworkPolicyIngressRule { from: None, ports: port("http-review") },
            ]),
            egress: None,
        }),
    }
}

fn deployment(ns: &str, workload: &Workload<'_>) -> Deployment {
    let pod_labels = labels(&[NAME_LABEL]);
    Deployment {
        metadata: ObjectMeta { labels: Some(pod_labels.clone()), ..meta(CONTROLLER, Some(ns)) },
        spec: DeploymentSpec {
            replicas: Some(workload.replicas),
            selector: LabelSelector { match_labels: Some(selector_labels()), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(CONTROLLER.into()),
                    // Graceful shutdown releases the state locks and the leader Lease.
                    termination_grace_period_seconds: Some(60),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUN_AS),
                        run_as_group: Some(RUN_AS),
                        fs_group: Some(RUN_AS),
                        seccomp_profile: Some(runtime_default_seccomp()),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![manager_container(ns, workload)],
                    volumes: Some(vec![empty_dir("data"), empty_dir("tmp")]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

fn manager_container(ns: &str, workload: &Workload<'_>) -> Container {
    let mut args = vec![
        "controller".to_owned(),
        "--concurrent=4".to_owned(),
        format!("--metrics-addr=0.0.0.0:{METRICS_PORT}"),
        format!("--artifact-addr=0.0.0.0:{ARTIFACTS_PORT}"),
        format!("--artifact-url=http://{ARTIFACTS_SERVICE}.{ns}.svc.cluster.local:{ARTIFACTS_PORT}"),
        "--storage-path=/data".to_owned(),
        format!("--runner-image={}", workload.runner_image),
        format!("--leader-election-namespace={ns}"),
        format!("--receiver-addr=0.0.0.0:{RECEIVER_PORT}"),
        format!("--review-addr=0.0.0.0:{REVIEW_PORT}"),
    ];
    if !workload.allow_cross_namespace_refs {
        args.push("--no-cross-namespace-refs".to_owned());
    }
    if let Some(account) = workload.default_service_account {
        args.push(format!("--default-service-account={account}"));
    }
    let mut env = vec![field_env("POD_NAME", "metadata.name"), field_env("POD_NAMESPACE", "metadata.namespace")];
    if let Some(url) = workload.review_url {
        env.push(EnvVar { name: "DRIFTLESS_REVIEW_URL".into(), value: Some(url.into()), ..EnvVar::default() });
    }
    let quantities = |cpu: &str, memory: &str| {
        BTreeMap::from([("cpu".to_owned(), Quantity(cpu.into())), ("memory".to_owned(), Quantity(memory.into()))])
    };
    Container {
        name: "manager".into(),
        image: Some(workload.image.into()),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![
            port("http-metrics", METRICS_PORT),
            port("http-artifacts", ARTIFACTS_PORT),
            port("http-webhook", RECEIVER_PORT),
            port("http-review", REVIEW_PORT),
        ]),
        liveness_probe: Some(http_probe("/healthz")),
        readiness_probe: Some(http_probe("/readyz")),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("100m", "128Mi")),
            limits: Some(quantities("1", "512Mi")),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount { name: "data".into(), mount_path: "/data".into(), ..VolumeMount::default() },
            VolumeMount { name: "tmp".into(), mount_path: "/tmp".into(), ..VolumeMount::default() },
        ]),
        ..Container::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: field_path.into(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn port(name: &str, port: i32) -> ContainerPort {
    ContainerPort { name: Some(name.into()), container_port: port, protocol: Some("TCP".into()), ..ContainerPort::default() }
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http-metrics".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume { name: name.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Volume::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(runner_namespaces: &[&str]) -> Placement {
        Placement { namespace: "driftless-system".into(), runner_namespaces: runner_namespaces.iter().map(|s| (*s).to_owned()).collect() }
    }

    fn workload(review_url: Option<&str>) -> Workload<'_> {
        Workload {
            image: "img:1",
            runner_image: "img-runner:1",
            replicas: 2,
            review_url,
            allow_cross_namespace_refs: false,
            default_service_account: None,
        }
    }

    #[test]
    fn the_deployment_selects_its_own_pods_and_the_service_selects_them_too() {
        let d = deployment("ns", &workload(None));
        let spec = d.spec;
        let selector = spec.selector.match_labels.unwrap();
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
        let service = service(ARTIFACTS_SERVICE, "ns", "http-artifacts", ARTIFACTS_PORT).spec.unwrap().selector.unwrap();
        assert_eq!(service, selector);
        let args = spec.template.spec.unwrap().containers[0].args.clone().unwrap();
        assert!(args.contains(&"--artifact-url=http://driftless-artifacts.ns.svc.cluster.local:9090".to_owned()));
        assert!(args.contains(&"--runner-image=img-runner:1".to_owned()));
        assert!(args.contains(&"--no-cross-namespace-refs".to_owned()), "cross-namespace references are refused by default");
        assert!(!args.iter().any(|a| a.starts_with("--allow-")), "nothing is allowed beyond the defaults: {args:?}");
        let open = Workload { allow_cross_namespace_refs: true, default_service_account: Some("default"), ..workload(None) };
        let args = deployment("ns", &open).spec.template.spec.unwrap().containers[0].args.clone().unwrap();
        assert!(!args.contains(&"--no-cross-namespace-refs".to_owned()));
        assert!(args.contains(&"--default-service-account=default".to_owned()));
        assert_eq!(runner_image_for("driftless:0.1.0"), "driftless-runner:0.1.0");
        assert_eq!(runner_image_for("registry.local:5000/driftless"), "registry.local:5000/driftless-runner");
    }

    #[test]
    fn every_runner_namespace_gets_a_service_account_and_a_role_binding() {
        let all = manifests(&placement(&["a", "b"]), &workload(None)).unwrap();
        for ns in ["a", "b"] {
            for kind in ["ServiceAccount", "RoleBinding"] {
                assert!(all.iter().any(|m| m.describe() == format!("{kind} {ns}/{RUNNER}")), "{kind} in {ns}");
            }
        }
        let yaml = to_yaml(&all).unwrap();
        assert_eq!(yaml.matches("---\n").count(), all.len());
    }

    /// Every Service must reach a port the container declares and the controller serves,
    /// or an Ingress in front of it answers 503 with nothing in the controller's log.
    #[test]
    fn the_network_policy_admits_every_port_and_artifacts_only_from_runner_pods() {
        let container = deployment("ns", &workload(None)).spec.template.spec.unwrap().containers.remove(0);
        let policy = network_policy("ns", &["team-a".into(), "team-b".into()]);
        let spec = policy.spec.unwrap();
        assert_eq!(spec.pod_selector.unwrap().match_labels, Some(selector_labels()), "it selects the controller's pods");
        let rules = spec.ingress.unwrap();
        let port_of = |r: &NetworkPolicyIngressRule| match &r.ports.as_ref().unwrap()[0].port {
            Some(IntOrString::String(name)) => name.clone(),
            other => panic!("{other:?}"),
        };
        let declared: Vec<String> = container.ports.unwrap().into_iter().filter_map(|p| p.name).collect();
        let mut admitted: Vec<String> = rules.iter().map(port_of).collect();
        admitted.sort();
        let mut expected = declared.clone();
        expected.sort();
        assert_eq!(admitted, expected, "every port the controller serves has one rule");
        let artifacts = rules.iter().find(|r| port_of(r) == "http-artifacts").unwrap();
        let from = &artifacts.from.as_ref().unwrap()[0];
        let namespaces = &from.namespace_selector.as_ref().unwrap().match_expressions.as_ref().unwrap()[0];
        assert_eq!(namespaces.values.as_deref(), Some(&["team-a".to_string(), "team-b".to_string()][..]));
        let pods = from.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(pods.get(driftless_core::names::label::MANAGED_BY).map(String::as_str), Some("driftless"), "runner pods' label");
    }

    #[test]
    fn every_service_targets_a_port_the_controller_listens_on() {
        let all = manifests(&placement(&["a"]), &workload(Some("https://review.example"))).unwrap();
        let container = deployment("ns", &workload(Some("https://review.example"))).spec.template.spec.unwrap().containers.remove(0);
        let args = container.args.unwrap();
        let ports = container.ports.unwrap();
        let services: Vec<_> = all.iter().filter(|m| m.object.types.as_ref().is_some_and(|t| t.kind == "Service")).collect();
        assert_eq!(services.len(), 3);
        for s in services {
            let target = s.object.data["spec"]["ports"][0]["targetPort"].as_str().unwrap().to_owned();
            let declared =
                ports.iter().find(|p| p.name.as_deref() == Some(target.as_str())).unwrap_or_else(|| panic!("{target} not declared"));
            let listened = args.iter().any(|a| a.ends_with(&format!("-addr=0.0.0.0:{}", declared.container_port)));
            assert!(listened, "no --*-addr flag serves {target} ({})", declared.container_port);
        }
        let env = container.env.unwrap();
        assert!(env.iter().any(|e| e.name == "DRIFTLESS_REVIEW_URL" && e.value.as_deref() == Some("https://review.example")));
    }

    #[test]
    fn namespaces_are_validated_and_deduplicated() {
        let ok = placement(&["a", " a", "", "b"]).validated().unwrap();
        assert_eq!(ok.runner_namespaces, ["a", "b"]);
        assert!(placement(&["Bad_Name"]).validated().is_err());
        assert!(Placement { namespace: "-x".into(), runner_namespaces: vec![] }.validated().is_err());
    }
}
