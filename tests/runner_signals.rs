//! The runner told to stop mid-apply (SIGTERM: a pod's eviction or a node's drain): it asks
//! terraform for its graceful stop instead of dying with it, so what the apply created is in
//! the backend's state and the lock is released; the result says it was stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{MODULE, World, objects};
use driftless::dispatch::{BackendSpec, ObjectKey, Operation, RunErrorKind, RunResult, RunSpec, RunVariable};

#[test]
fn sigterm_mid_apply_stops_terraform_gracefully_and_keeps_what_it_created_in_the_state() {
    let Some(w) = World::new() else { return };
    w.commit(&[("main.tf", MODULE)], "module");
    w.apply(&objects("app", "./", "", "")).ok();
    w.driftless(&["reconcile", "gitrepository", "app"]).ok();
    let artifact = w.get("gitrepository", "app")["status"]["artifact"].clone();
    let backend = w.store().join("backend");
    let spec = RunSpec {
        operation: Operation::Plan,
        object: ObjectKey { kind: "Terraform".into(), namespace: "default".into(), name: "app".into() },
        artifact_url: artifact["url"].as_str().unwrap().into(),
        artifact_digest: artifact["digest"].as_str().unwrap().into(),
        source_revision: artifact["revision"].as_str().unwrap().into(),
        path: "./".into(),
        workspace: "default".into(),
        state_name: "default".into(),
        state_suffix: None,
        options: Default::default(),
        variables: vec![
            RunVariable { name: "content".into(), value: "hello".into(), sensitive: false },
            RunVariable { name: "target_dir".into(), value: w.path().join("managed").display().to_string().into(), sensitive: false },
        ],
        inputs_digest: "sha256:inputs".into(),
        backend: BackendSpec::Local { root: backend.clone() },
        custom_backend: None,
        plan_id: None,
        plan_digest: None,
        apply_after_plan: true,
        drift_ignore: Vec::new(),
        render_plan: false,
        terraform_path: Some(w.terraform.clone()),
        engine: None,
        tofu_path: None,
        lock_holder: "signal-test".into(),
        timeout_seconds: 300,
        apply_timeout_seconds: None,
        unsaved_state: None,
    };
    let mut cmd = Command::new(&w.tools.runner);
    w.env(&mut cmd);
    // The file resource takes 6 s to create: the stop comes while it is being created.
    cmd.env("DRIFTTEST_APPLY_DELAY_MS", "6000").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(&serde_json::to_vec(&spec).unwrap()).unwrap();

    // Wait until `terraform apply` runs (a child of the runner), then a second more: the null
    // resource (no delay) is created, the file resource is still sleeping.
    let started = Instant::now();
    let state_file = backend.join("state/Terraform/default/app/default.tfstate");
    let lock_file = backend.join("state/Terraform/default/app/default.lock");
    while !applying(child.id()) {
        assert!(started.elapsed() < Duration::from_secs(60), "the apply never started");
        assert!(child.try_wait().unwrap().is_none(), "the runner ended before the apply");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the runner delivers a result after SIGTERM:\n{stdout}\n{stderr}");
    let result: RunResult = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    let error = result.error.expect("a stopped apply is a failure");
    assert_eq!(error.kind, RunErrorKind::Timeout, "{error:?}");
    assert!(error.message.contains("SIGTERM") && error.message.contains("gracefully"), "{}", error.message);

    // Terraform finished the operations in flight and wrote state: nothing is orphaned.
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).expect("a state was written")).unwrap();
    let addresses: Vec<String> = state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| format!("{}.{}", r["type"].as_str().unwrap_or_default(), r["name"].as_str().unwrap_or_default()))
        .collect();
    assert!(addresses.contains(&"null_resource.marker".to_string()), "{addresses:?}");
    assert!(
        w.managed("main.txt").exists() == addresses.contains(&"drifttest_file.main".to_string()),
        "state and world agree: {addresses:?}"
    );
    assert!(!lock_file.exists(), "the lock was released");
}

/// Whether a child process of `parent` runs `terraform apply`.
fn applying(parent: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the fields after the command name's closing parenthesis.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        ppid == Some(parent) && args.iter().any(|a| *a == b"apply")
    })
}
