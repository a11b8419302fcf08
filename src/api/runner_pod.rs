//! The runner pod's security: driftless's restricted defaults, a template's settings laid
//! over them, and the check that what results stays within the Kubernetes "restricted" Pod
//! Security profile. A runner holds the state's credentials and the run's secrets: a
//! template must not turn it into a privileged pod, and a namespace that enforces the
//! profile would refuse such a pod anyway, only later and less clearly.
//!
//! The rules are the profile's (kubernetes.io, Pod Security Standards, baseline plus
//! restricted) for the fields a template can set; the pod-level fields it cannot set (host
//! namespaces, sysctls, the pod's own security context) are driftless's and always pass.

use k8s_openapi::api::core::v1::{Capabilities, Container, SeccompProfile, SecurityContext, Volume};
use serde_json::Value;

use super::FieldError;
use super::terraform::RunnerPodSpec;

/// The runner's container, whose name the dispatcher reads the run's end from.
pub const RUNNER_CONTAINER: &str = "runner";
/// The volume holding the RunSpec Secret, and where it is mounted.
pub const SPEC_VOLUME: &str = "runspec";
pub const SPEC_DIR: &str = "/run/driftless";
/// The writable workspace (an emptyDir) under a read-only root filesystem: HOME and TMPDIR
/// for the runner and terraform.
pub const WORK_VOLUME: &str = "work";
pub const WORK_DIR: &str = "/var/lib/driftless-runner";
/// The user runner pods run as when a template names none (the runner image's nonroot).
pub const RUNNER_USER: i64 = 65532;

const FIELD: &str = "spec.runnerPodTemplate.spec";
/// Volume sources the restricted profile allows.
const ALLOWED_VOLUMES: &[&str] =
    &["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
/// SELinux types the baseline profile allows (empty is the runtime's default).
const ALLOWED_SELINUX_TYPES: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

/// What every container of a runner pod gets unless its template says otherwise.
pub fn default_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        ..Default::default()
    }
}

/// The defaults with the fields `over` sets laid over them, field by field (capabilities'
/// `add` and `drop` each on its own), so a template that sets `runAsUser` keeps the rest.
pub fn effective_security_context(over: Option<&SecurityContext>) -> SecurityContext {
    let base = default_security_context();
    let Some(over) = over else { return base };
    let (Ok(mut merged), Ok(over)) = (serde_json::to_value(&base), serde_json::to_value(over)) else { return base };
    overlay(&mut merged, over);
    serde_json::from_value(merged).unwrap_or(base)
}

fn overlay(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => overlay(existing, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Every way `spec` (a Terraform's `runnerPodTemplate.spec`) would leave the restricted
/// profile or replace driftless's own container, volumes or mounts, each by field.
pub fn check(spec: &RunnerPodSpec) -> Vec<FieldError> {
    let mut found = Vec::new();
    let runner = effective_security_context(spec.security_context.as_ref());
    check_security(&mut found, &format!("{FIELD}.securityContext"), &runner);
    for (i, volume) in spec.volumes.iter().enumerate() {
        check_volume(&mut found, &format!("{FIELD}.volumes[{i}]"), volume);
    }
    for (i, mount) in spec.volume_mounts.iter().enumerate() {
        let field = format!("{FIELD}.volumeMounts[{i}]");
        if [SPEC_VOLUME, WORK_VOLUME].contains(&mount.name.as_str()) {
            found.push(error(&format!("{field}.name"), format!("{:?} is driftless's own volume; mount a volume of your own", mount.name)));
        }
        let path = mount.mount_path.trim_end_matches('/');
        if [SPEC_DIR, WORK_DIR].contains(&path) {
            found.push(error(
                &format!("{field}.mountPath"),
                format!("{path} is where driftless mounts its own volume; choose another path"),
            ));
        }
    }
    for (i, container) in spec.init_containers.iter().enumerate() {
        check_init_container(&mut found, &format!("{FIELD}.initContainers[{i}]"), container);
    }
    found
}

fn error(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), reason: reason.into() }
}

const PROFILE: &str = "runner pods stay within the restricted Pod Security profile";

fn check_init_container(found: &mut Vec<FieldError>, field: &str, container: &Container) {
    if container.name == RUNNER_CONTAINER {
        found.push(error(&format!("{field}.name"), format!("{RUNNER_CONTAINER:?} is driftless's own container; name it otherwise")));
    }
    for (j, port) in container.ports.iter().flatten().enumerate() {
        if port.host_port.is_some_and(|p| p != 0) {
            found.push(error(&format!("{field}.ports[{j}].hostPort"), format!("host ports are refused: {PROFILE}")));
        }
    }
    check_security(found, &format!("{field}.securityContext"), &effective_security_context(container.security_context.as_ref()));
}

fn check_volume(found: &mut Vec<FieldError>, field: &str, volume: &Volume) {
    if [SPEC_VOLUME, WORK_VOLUME].contains(&volume.name.as_str()) {
        found.push(error(&format!("{field}.name"), format!("{:?} is driftless's own volume; name it otherwise", volume.name)));
    }
    let Ok(Value::Object(source)) = serde_json::to_value(volume) else { return };
    for kind in source.keys().filter(|k| *k != "name") {
        if !ALLOWED_VOLUMES.contains(&kind.as_str()) {
            found.push(error(
                &format!("{field}.{kind}"),
                format!("{kind} volumes are refused: {PROFILE}, which allows {}", ALLOWED_VOLUMES.join(", ")),
            ));
        }
    }
}

/// The container-level controls of the profile, on a context already laid over the defaults.
fn check_security(found: &mut Vec<FieldError>, field: &str, sc: &SecurityContext) {
    let mut refuse = |name: &str, what: String| found.push(error(&format!("{field}.{name}"), format!("{what}: {PROFILE}")));
    if sc.privileged == Some(true) {
        refuse("privileged", "privileged containers are refused".into());
    }
    if sc.allow_privilege_escalation != Some(false) {
        refuse("allowPrivilegeEscalation", "must be false".into());
    }
    if sc.run_as_non_root == Some(false) {
        refuse("runAsNonRoot", "running as root is refused".into());
    }
    if sc.run_as_user == Some(0) {
        refuse("runAsUser", "user 0 (root) is refused".into());
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    for added in caps.add.iter().flatten().filter(|c| c.as_str() != "NET_BIND_SERVICE") {
        refuse("capabilities.add", format!("capability {added} is refused (only NET_BIND_SERVICE may be added)"));
    }
    if !caps.drop.iter().flatten().any(|c| c == "ALL") {
        refuse("capabilities.drop", "must include ALL".into());
    }
    if let Some(SeccompProfile { type_, .. }) = &sc.seccomp_profile
        && !matches!(type_.as_str(), "RuntimeDefault" | "Localhost")
    {
        refuse("seccompProfile.type", format!("{type_:?} is refused (RuntimeDefault or Localhost)"));
    }
    if let Some(p) = &sc.app_armor_profile
        && !matches!(p.type_.as_str(), "RuntimeDefault" | "Localhost")
    {
        refuse("appArmorProfile.type", format!("{:?} is refused (RuntimeDefault or Localhost)", p.type_));
    }
    if let Some(mount) = sc.proc_mount.as_deref().filter(|m| *m != "Default") {
        refuse("procMount", format!("{mount:?} is refused (Default only)"));
    }
    if let Some(se) = &sc.se_linux_options {
        if !ALLOWED_SELINUX_TYPES.contains(&se.type_.as_deref().unwrap_or_default()) {
            refuse("seLinuxOptions.type", format!("{:?} is refused", se.type_.as_deref().unwrap_or_default()));
        }
        if se.user.is_some() {
            refuse("seLinuxOptions.user", "setting an SELinux user is refused".into());
        }
        if se.role.is_some() {
            refuse("seLinuxOptions.role", "setting an SELinux role is refused".into());
        }
    }
    if sc.windows_options.as_ref().and_then(|w| w.host_process) == Some(true) {
        refuse("windowsOptions.hostProcess", "host processes are refused".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HostPathVolumeSource, SELinuxOptions, VolumeMount};

    fn spec(json: Value) -> RunnerPodSpec {
        serde_json::from_value(json).expect("a RunnerPodSpec")
    }

    fn fields(spec: &RunnerPodSpec) -> Vec<String> {
        check(spec).into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn the_defaults_and_a_template_within_the_profile_pass() {
        assert_eq!(fields(&RunnerPodSpec::default()), Vec::<String>::new());
        let ok = spec(serde_json::json!({
            "securityContext": { "runAsUser": 1000, "readOnlyRootFilesystem": false, "capabilities": { "add": ["NET_BIND_SERVICE"] },
                                 "seccompProfile": { "type": "Localhost", "localhostProfile": "p.json" },
                                 "seLinuxOptions": { "type": "container_t", "level": "s0:c1" } },
            "volumes": [{ "name": "cfg", "configMap": { "name": "c" } }, { "name": "scratch", "emptyDir": {} },
                        { "name": "data", "persistentVolumeClaim": { "claimName": "d" } }],
            "volumeMounts": [{ "name": "cfg", "mountPath": "/etc/cfg" }],
            "initContainers": [{ "name": "fetch", "image": "busybox", "securityContext": { "runAsUser": 1000 } }]
        }));
        assert_eq!(fields(&ok), Vec::<String>::new());
    }

    #[test]
    fn fields_set_keep_the_defaults_they_do_not_name() {
        let sc = effective_security_context(Some(&SecurityContext {
            run_as_user: Some(1000),
            capabilities: Some(Capabilities { add: Some(vec!["NET_BIND_SERVICE".into()]), ..Default::default() }),
            ..Default::default()
        }));
        assert_eq!(sc.run_as_user, Some(1000));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        let caps = sc.capabilities.expect("capabilities");
        assert_eq!(caps.drop, Some(vec!["ALL".to_string()]), "drop ALL kept beside an add");
        assert_eq!(caps.add, Some(vec!["NET_BIND_SERVICE".to_string()]));
        assert_eq!(effective_security_context(None), default_security_context());
    }

    #[test]
    fn a_security_context_asking_for_more_is_refused_by_field() {
        let bad = RunnerPodSpec {
            security_context: Some(SecurityContext {
                privileged: Some(true),
                allow_privilege_escalation: Some(true),
                run_as_non_root: Some(false),
                run_as_user: Some(0),
                capabilities: Some(Capabilities { add: Some(vec!["SYS_ADMIN".into()]), drop: Some(vec![]) }),
                seccomp_profile: Some(SeccompProfile { type_: "Unconfined".into(), ..Default::default() }),
                proc_mount: Some("Unmasked".into()),
                se_linux_options: Some(SELinuxOptions { type_: Some("spc_t".into()), user: Some("root".into()), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let found = check(&bad);
        let fields: Vec<&str> =
            found.iter().map(|e| e.field.strip_prefix("spec.runnerPodTemplate.spec.securityContext.").unwrap_or(&e.field)).collect();
        assert_eq!(
            fields,
            [
                "privileged",
                "allowPrivilegeEscalation",
                "runAsNonRoot",
                "runAsUser",
                "capabilities.add",
                "capabilities.drop",
                "seccompProfile.type",
                "procMount",
                "seLinuxOptions.type",
                "seLinuxOptions.user"
            ]
        );
        assert!(found.iter().all(|e| e.reason.contains("restricted Pod Security profile")), "{found:?}");
        assert!(found[4].reason.contains("SYS_ADMIN"), "{}", found[4].reason);
    }

    #[test]
    fn host_path_volumes_and_host_ports_are_refused() {
        let bad = RunnerPodSpec {
            volumes: vec![Volume {
                name: "host".into(),
                host_path: Some(HostPathVolumeSource { path: "/".into(), ..Default::default() }),
                ..Default::default()
            }],
            init_containers: vec![Container {
                name: "init".into(),
                ports: Some(vec![ContainerPort { container_port: 80, host_port: Some(80), ..Default::default() }]),
                security_context: Some(SecurityContext { privileged: Some(true), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let found = check(&bad);
        let fields: Vec<&str> = found.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.runnerPodTemplate.spec.volumes[0].hostPath",
                "spec.runnerPodTemplate.spec.initContainers[0].ports[0].hostPort",
                "spec.runnerPodTemplate.spec.initContainers[0].securityContext.privileged"
            ]
        );
        assert!(found[0].reason.contains("hostPath volumes are refused"), "{}", found[0].reason);
    }

    #[test]
    fn driftless_names_and_paths_cannot_be_taken() {
        let bad = RunnerPodSpec {
            volumes: vec![Volume { name: WORK_VOLUME.into(), empty_dir: Some(Default::default()), ..Default::default() }],
            volume_mounts: vec![
                VolumeMount { name: SPEC_VOLUME.into(), mount_path: "/elsewhere".into(), ..Default::default() },
                VolumeMount { name: "mine".into(), mount_path: format!("{WORK_DIR}/"), ..Default::default() },
            ],
            init_containers: vec![Container { name: RUNNER_CONTAINER.into(), ..Default::default() }],
            ..Default::default()
        };
        let found = check(&bad);
        let fields: Vec<&str> = found.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.runnerPodTemplate.spec.volumes[0].name",
                "spec.runnerPodTemplate.spec.volumeMounts[0].name",
                "spec.runnerPodTemplate.spec.volumeMounts[1].mountPath",
                "spec.runnerPodTemplate.spec.initContainers[0].name"
            ]
        );
        assert!(found.iter().all(|e| e.reason.contains("driftless")), "{found:?}");
    }
}
