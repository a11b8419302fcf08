//! The CLI's verbs on a cluster: the real `driftless` binary with `--kubeconfig`, against the
//! testkit's real apiserver and (where the verb needs one) the real controller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::kube::{KubeWorld, condition_in, pending_plan_of};
use common::{MODULE, Run, git_repository, terraform_object};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);

/// `driftless --kubeconfig K` where K's context defaults to the test's namespace, so the
/// commands below name no namespace, as a user's would.
struct Cli {
    bin: PathBuf,
    kubeconfig: PathBuf,
    world: PathBuf,
}

impl Cli {
    fn new(k: &KubeWorld) -> Cli {
        let text = std::fs::read_to_string(&k.kubeconfig).unwrap();
        assert!(text.contains("namespace: default"), "the testkit's context names its namespace: {text}");
        let kubeconfig = k.world.path().join("kubeconfig-cli");
        std::fs::write(&kubeconfig, text.replace("namespace: default", &format!("namespace: {}", k.ns.name))).unwrap();
        Cli { bin: k.world.tools.driftless.clone(), kubeconfig, world: k.world.path().to_path_buf() }
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", self.world.join("home"))
            .env_remove("KUBECONFIG")
            .env_remove("DRIFTLESS_STORE")
            .output()
            .unwrap();
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `apply -f` of YAML (with `__REPO__` and `__MANAGED__` filled in).
    fn apply(&self, k: &KubeWorld, yaml: &str) -> Run {
        let text =
            yaml.replace("__REPO__", &k.world.repo_url()).replace("__MANAGED__", &k.world.path().join("managed").display().to_string());
        let file = self.world.join("objects.yaml");
        std::fs::write(&file, text).unwrap();
        self.run(&["apply", "-f", file.to_str().unwrap()])
    }
}

fn error_lines(run: &Run) -> Vec<&str> {
    run.stderr.lines().filter(|l| l.starts_with("error:")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_plan_show_and_approve_drive_the_controller_from_the_cli() {
    let Some(mut k) = KubeWorld::new("cli-loop").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    let cli = Cli::new(&k);
    let applied =
        cli.apply(&k, &format!("{}---\n{}", git_repository("app", "main"), terraform_object("app", "app", "./", "", "", ""))).ok();
    assert!(applied.stdout.contains("gitrepository/app created") && applied.stdout.contains("terraform/app created"), "{}", applied.stdout);
    let listed: Value = serde_json::from_str(&cli.run(&["get", "terraform", "app", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!((listed["metadata"]["name"].as_str(), listed["metadata"]["namespace"].as_str()), (Some("app"), Some(k.ns.name.as_str())));
    assert!(listed["metadata"]["managedFields"].is_null(), "server-side apply's bookkeeping is not shown");
    k.start_controller(&[]);

    // Returns once the controller handled this very request; a pending plan is a success.
    let reconciled = cli.run(&["reconcile", "terraform", "app", "--with-source"]).ok();
    let tf = k.get("Terraform", "app").await;
    let plan = pending_plan_of(&tf).expect("a pending plan when reconcile returns");
    let requested = tf["metadata"]["annotations"]["driftless.dev/reconcile-requested-at"].as_str().unwrap();
    assert_eq!(tf["status"]["lastHandledReconcileAt"], requested);
    let source = k.get("GitRepository", "app").await;
    assert_eq!(source["status"]["lastHandledReconcileAt"], source["metadata"]["annotations"]["driftless.dev/reconcile-requested-at"]);
    assert!(reconciled.stdout.contains("✔ gitrepository/app"), "{}", reconciled.all());
    assert!(
        reconciled.stdout.contains("✔ terraform/app") && reconciled.stdout.contains(&format!("plan {plan} waits for approval")),
        "{}",
        reconciled.all()
    );

    let shown = cli.run(&["plan", "show", "app"]).ok().stdout;
    assert!(shown.contains(&plan) && shown.contains("pending approval"), "{shown}");
    assert!(shown.contains("+ drifttest_file.main (create)") && shown.contains("2 to add"), "the rendering from the backend: {shown}");

    let wrong = cli.run(&["approve", "app", "plan-0000000-0000000000"]).fails();
    assert!(error_lines(&wrong).iter().any(|l| l.contains(&plan)), "names the pending plan: {}", wrong.stderr);
    let approved = cli.run(&["approve", "app"]).ok();
    assert!(approved.stdout.contains(&format!("approved plan {plan}")), "{}", approved.stdout);
    let tf = k
        .wait_for("Terraform", "app", "applied, its spent approval removed", LONG, |o| {
            condition_in(o, "Ready")["status"] == "True"
                && o["status"]["observedGeneration"] == o["metadata"]["generation"]
                // Removed by a write of its own right after the status is saved.
                && o["metadata"]["annotations"]["driftless.dev/approve-plan"].is_null()
        })
        .await;
    // The approval bound the stored plan shown (its digest) and was spent by the apply: the
    // annotation is gone, the status keeps what was spent.
    let spent = tf["status"]["spentApproval"].as_str().unwrap_or_default();
    assert!(spent.starts_with(&format!("{plan}@sha256:")), "{spent}");
    assert_eq!(tf["metadata"]["generation"], 1, "requests and approvals are annotations, not spec changes");
    assert_eq!(
        (tf["status"]["plan"]["id"].as_str(), tf["status"]["plan"]["approvedBy"].as_str()),
        (Some(plan.as_str()), Some("annotation"))
    );
    assert_eq!(std::fs::read_to_string(k.world.managed("main.txt")).unwrap(), "hello");

    let table = cli.run(&["get", "terraform"]).ok().stdout;
    assert!(table.lines().any(|l| l.contains("app") && l.contains("Succeeded")), "{table}");
    let drift = cli.run(&["drift", "list"]).ok().stdout;
    assert!(drift.lines().any(|l| l.contains("Terraform") && l.contains("app")), "{drift}");
    let events = cli.run(&["events", "terraform", "app"]).ok().stdout;
    assert!(events.contains("terraform/app") && events.contains("PlanPending"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_verbs_work_on_the_cluster_and_fail_clearly_without_a_controller_or_an_object() {
    let Some(k) = KubeWorld::new("cli-objects").await else { return };
    let cli = Cli::new(&k);
    let object = terraform_object("app", "app", "./", "", "", "");
    assert!(cli.apply(&k, &object).ok().stdout.contains("terraform/app created"));
    assert!(
        cli.apply(&k, &object).ok().stdout.contains("terraform/app unchanged"),
        "a server-side apply of the same object changes nothing"
    );
    let everywhere = cli.run(&["get", "terraform", "-A"]).ok().stdout;
    assert!(everywhere.lines().any(|l| l.contains(&k.ns.name) && l.contains("app")), "{everywhere}");

    cli.run(&["suspend", "terraform", "app"]).ok();
    assert_eq!(k.get("Terraform", "app").await["spec"]["suspend"], true);
    let refused = cli.run(&["reconcile", "terraform", "app"]).fails();
    assert!(error_lines(&refused)[0].contains("resume"), "{}", refused.stderr);
    cli.run(&["resume", "terraform", "app"]).ok();
    assert_eq!(k.get("Terraform", "app").await["spec"]["suspend"], false);

    let unlocked = cli.run(&["unlock", "app", "--yes"]).ok();
    assert!(unlocked.stdout.contains("not locked"), "{}", unlocked.all());
    let approve = cli.run(&["approve", "app"]).fails();
    assert!(error_lines(&approve)[0].contains("no plan waiting for approval"), "{}", approve.stderr);

    // No controller runs here: the request is made, then the wait gives up saying why.
    let waited = cli.run(&["reconcile", "terraform", "app", "--timeout", "2s"]).fails();
    let errors = error_lines(&waited);
    assert!(errors.len() == 1 && errors[0].contains("not handled within 2s") && errors[0].contains("controller"), "{}", waited.stderr);
    assert!(k.get("Terraform", "app").await["metadata"]["annotations"]["driftless.dev/reconcile-requested-at"].is_string());
    let run = cli.run(&["run", "--once"]).fails();
    assert!(error_lines(&run)[0].contains("driftless controller"), "{}", run.stderr);

    for args in
        [&["get", "terraform", "nope"][..], &["suspend", "terraform", "nope"], &["plan", "show", "nope"], &["delete", "terraform", "nope"]]
    {
        let missing = cli.run(args).fails();
        let errors = error_lines(&missing);
        assert!(errors.len() == 1 && errors[0].contains(&format!("{}/nope", k.ns.name)), "{args:?}: {}", missing.stderr);
    }
    assert!(cli.run(&["delete", "terraform", "app"]).ok().stdout.contains("terraform/app deleted"));
    assert!(k.get("Terraform", "app").await.is_null());
}

#[test]
fn without_a_kube_context_or_a_store_the_cli_says_how_to_choose_one() {
    let home = tempfile::tempdir().unwrap();
    let driftless = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_driftless"))
            .args(args)
            .env("HOME", home.path())
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("DRIFTLESS_STORE")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = driftless(&["get", "terraform"]);
    assert_eq!(stderr.trim(), "error: no kube context: pass --kubeconfig, set KUBECONFIG, or use --store DIR for a local store");
    let missing = home.path().join("no-such-kubeconfig");
    let stderr = driftless(&["--kubeconfig", missing.to_str().unwrap(), "approve", "app"]);
    assert!(stderr.starts_with("error: kubeconfig ") && stderr.contains("no-such-kubeconfig") && stderr.lines().count() == 1, "{stderr}");
}
