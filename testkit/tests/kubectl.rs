//! `kubectl` (from the machine image) against the standalone `kube-testcluster` binary:
//! what a user pointing real tools at the test cluster sees.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use testkit::process::{Watchdog, signal_group};

/// One standalone cluster for this test binary.
struct Standalone {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    _dir: tempfile::TempDir,
    _child: std::process::Child,
    _watchdog: Arc<Watchdog>,
}

static STANDALONE: OnceLock<Option<Standalone>> = OnceLock::new();

fn standalone() -> Option<&'static Standalone> {
    STANDALONE.get_or_init(start_standalone).as_ref()
}

fn start_standalone() -> Option<Standalone> {
    let kubectl = match testkit::tools::kubectl() {
        Ok(path) => path,
        Err(err) => {
            testkit::skip_or_fail(&err);
            return None;
        }
    };
    if let Err(err) = testkit::ControlPlaneBinaries::find() {
        testkit::skip_or_fail(&err);
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let log = std::fs::File::create(dir.path().join("kube-testcluster.log")).expect("log");
    let started = Instant::now();
    let mut child = {
        use std::os::unix::process::CommandExt as _;
        Command::new(env!("CARGO_BIN_EXE_kube-testcluster"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn kube-testcluster")
    };
    // The binary is killed when this test process ends, however it ends; it then stops
    // its own control plane through its own watchdogs.
    let watchdog = Watchdog::spawn().expect("watchdog");
    watchdog.guard_group(child.id());
    watchdog.guard_dir(dir.path());
    while !kubeconfig.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("kube-testcluster.log")).unwrap_or_default();
            panic!("kube-testcluster exited with {status}:\n{log}");
        }
        assert!(started.elapsed() < Duration::from_secs(120), "kube-testcluster not ready in 120s");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("testkit: kube-testcluster wrote its kubeconfig after {:.1?}", started.elapsed());
    Some(Standalone { kubeconfig, kubectl, _dir: dir, _child: child, _watchdog: watchdog })
}

impl Standalone {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            use std::io::Write as _;
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl")
    }

    /// Runs kubectl and asserts success; returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl and asserts failure; returns stderr.
    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(!out.status.success(), "kubectl {args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn namespace(&self, name: &str) -> String {
        self.ok(&["create", "namespace", name], None);
        name.to_owned()
    }
}

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: \"{value}\"\n")
}

/// A namespaced CRD `<plural>.<group>` whose `spec.size` must be an integer >= 1.
fn crd(group: &str, kind: &str, plural: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{ kind: {kind}, plural: {plural}, singular: {singular}, listKind: {kind}List }}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {{ type: integer, minimum: 1 }}
              color: {{ type: string, enum: [red, blue] }}
"#,
        singular = kind.to_lowercase()
    )
}

fn apply_crd(s: &Standalone, group: &str, kind: &str, plural: &str) {
    s.ok(&["apply", "-f", "-"], Some(&crd(group, kind, plural)));
    s.ok(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{plural}.{group}")], None);
}

#[test]
fn server_side_apply_reports_a_field_manager_conflict_and_force_conflicts_takes_over() {
    let Some(s) = standalone() else { return };
    let ns = s.namespace("ssa-conflict");
    s.ok(&["apply", "--server-side", "--field-manager=alpha", "-n", &ns, "-f", "-"], Some(&config_map("shared", "one")));
    let err = s.fails(&["apply", "--server-side", "--field-manager=beta", "-n", &ns, "-f", "-"], Some(&config_map("shared", "two")));
    assert!(err.contains("conflict"), "stderr: {err}");
    assert!(err.contains("alpha"), "conflict names the other manager: {err}");
    s.ok(
        &["apply", "--server-side", "--field-manager=beta", "--force-conflicts", "-n", &ns, "-f", "-"],
        Some(&config_map("shared", "two")),
    );
    let value = s.ok(&["get", "configmap", "shared", "-n", &ns, "-o", "jsonpath={.data.key}"], None);
    assert_eq!(value, "two");
    let managers = s.ok(
        &["get", "configmap", "shared", "-n", &ns, "--show-managed-fields", "-o", "jsonpath={.metadata.managedFields[*].manager}"],
        None,
    );
    assert!(managers.contains("beta"), "managers: {managers}");
}

#[test]
fn a_crd_can_be_applied_and_then_a_custom_resource_of_it() {
    let Some(s) = standalone() else { return };
    let ns = s.namespace("crd-then-cr");
    apply_crd(s, "one.testkit.driftless.dev", "Widget", "widgets");
    let cr = "apiVersion: one.testkit.driftless.dev/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n  color: red\n";
    s.ok(&["apply", "-n", &ns, "-f", "-"], Some(cr));
    let size = s.ok(&["get", "widgets.one.testkit.driftless.dev", "w1", "-n", &ns, "-o", "jsonpath={.spec.size}"], None);
    assert_eq!(size, "3");
}

#[test]
fn a_custom_resource_that_violates_its_schema_is_rejected() {
    let Some(s) = standalone() else { return };
    let ns = s.namespace("crd-invalid");
    apply_crd(s, "two.testkit.driftless.dev", "Gadget", "gadgets");
    let wrong_type = "apiVersion: two.testkit.driftless.dev/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  size: big\n";
    let err = s.fails(&["apply", "-n", &ns, "-f", "-"], Some(wrong_type));
    assert!(err.contains("spec.size") && err.contains("Invalid value"), "stderr: {err}");
    let too_small = "apiVersion: two.testkit.driftless.dev/v1\nkind: Gadget\nmetadata:\n  name: g2\nspec:\n  size: 0\n  color: green\n";
    let err = s.fails(&["apply", "-n", &ns, "-f", "-"], Some(too_small));
    assert!(err.contains("spec.color") && err.contains("spec.size"), "both causes reported: {err}");
    let listed = s.ok(&["get", "gadgets.two.testkit.driftless.dev", "-n", &ns, "-o", "name"], None);
    assert_eq!(listed.trim(), "", "nothing was stored");
}

#[test]
fn server_dry_run_answers_with_the_object_but_stores_nothing() {
    let Some(s) = standalone() else { return };
    let ns = s.namespace("dry-run");
    let out = s.ok(&["apply", "--dry-run=server", "-n", &ns, "-o", "yaml", "-f", "-"], Some(&config_map("ghost", "boo")));
    assert!(out.contains("name: ghost") && out.contains("creationTimestamp"), "server filled in the object: {out}");
    let err = s.fails(&["get", "configmap", "ghost", "-n", &ns], None);
    assert!(err.contains("NotFound") || err.contains("not found"), "stderr: {err}");
}

#[test]
fn delete_is_held_by_a_finalizer_until_it_is_removed() {
    let Some(s) = standalone() else { return };
    let ns = s.namespace("finalizer");
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [testkit.driftless.dev/hold]\n";
    s.ok(&["apply", "-n", &ns, "-f", "-"], Some(held));
    s.ok(&["delete", "configmap", "held", "-n", &ns, "--wait=false"], None);
    let stamp = s.ok(&["get", "configmap", "held", "-n", &ns, "-o", "jsonpath={.metadata.deletionTimestamp}"], None);
    assert!(!stamp.is_empty(), "still there, marked for deletion");
    s.ok(&["patch", "configmap", "held", "-n", &ns, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#], None);
    s.ok(&["wait", "--for=delete", "configmap/held", "-n", &ns, "--timeout=30s"], None);
}

#[test]
fn get_watch_prints_changes_as_they_happen() {
    let Some(s) = standalone() else { return };
    let ns = s.namespace("get-watch");
    let mut watch = {
        use std::os::unix::process::CommandExt as _;
        Command::new(&s.kubectl)
            .arg("--kubeconfig")
            .arg(&s.kubeconfig)
            .args(["get", "configmaps", "-n", &ns, "-w", "--no-headers", "-o", "custom-columns=NAME:.metadata.name,KEY:.data.key"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("kubectl get -w")
    };
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let expect_line = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.split_whitespace().collect::<Vec<_>>().join(" ") == want => return,
                Ok(_) => {}
                Err(err) => panic!("no line {want:?} from kubectl get -w: {err}"),
            }
        }
    };
    // Let the watch start before the changes (kube-root-ca.crt is listed first).
    expect_line("kube-root-ca.crt <none>");
    s.ok(&["apply", "-n", &ns, "-f", "-"], Some(&config_map("watched", "v1")));
    expect_line("watched v1");
    s.ok(&["apply", "-n", &ns, "-f", "-"], Some(&config_map("watched", "v2")));
    expect_line("watched v2");
    signal_group(watch.id(), nix::sys::signal::Signal::SIGKILL);
    let _ = watch.wait();
}
