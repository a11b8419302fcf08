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
    /// terraform's provider mirror, for the runs a verb makes on this machine (`diff terraform`).
    cli_config: PathBuf,
}

impl Cli {
    fn new(k: &KubeWorld) -> Cli {
        let text = std::fs::read_to_string(&k.kubeconfig).unwrap();
        assert!(text.contains("namespace: default"), "the testkit's context names its namespace: {text}");
        let kubeconfig = k.world.path().join("kubeconfig-cli");
        std::fs::write(&kubeconfig, text.replace("namespace: default", &format!("namespace: {}", k.ns.name))).unwrap();
        Cli {
            bin: k.world.tools.driftless.clone(),
            kubeconfig,
            world: k.world.path().to_path_buf(),
            cli_config: k.world.tools.cli_config.clone(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(&self.bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", self.world.join("home"))
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
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

fn kustomization(name: &str, path: &str, namespace: &str) -> String {
    format!(
        "apiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: {name}\nspec:\n  sourceRef:\n    kind: GitRepository\n    name: app\n  path: {path}\n  interval: 1h\n  prune: true\n  targetNamespace: {namespace}\n"
    )
}

/// A Kustomization `infra` that applies a ConfigMap and a Kustomization `apps`, which applies
/// another ConfigMap: `tree` draws that nesting, `trace` walks from a ConfigMap back to its
/// Kustomization and source, `export` writes both Kustomizations for Git, and `version`
/// finds (or misses) the controller's Deployment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_trace_export_and_version_tell_what_a_kustomization_applied() {
    let Some(mut k) = KubeWorld::new("cli-day2").await else { return };
    let ns = k.ns.name.clone();
    let config_map = |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: value\n");
    let commit = k.world.commit(
        &[
            ("infra/settings.yaml", &config_map("settings")),
            ("infra/apps.yaml", &kustomization("apps", "./apps", &ns)),
            ("apps/web.yaml", &config_map("web")),
        ],
        "infra and apps",
    );
    let cli = Cli::new(&k);
    cli.apply(&k, &format!("{}---\n{}", git_repository("app", "main"), kustomization("infra", "./infra", &ns))).ok();
    k.start_controller(&[]);
    let ready =
        |o: &Value| condition_in(o, "Ready")["status"] == "True" && o["status"]["observedGeneration"] == o["metadata"]["generation"];
    k.wait_for("Kustomization", "infra", "Ready", LONG, ready).await;
    k.wait_for("Kustomization", "apps", "Ready", LONG, ready).await;

    let tree = cli.run(&["tree", "kustomization", "infra"]).ok().stdout;
    assert_eq!(
        tree,
        format!(
            "Kustomization/{ns}/infra (Ready)\n├── ConfigMap/{ns}/settings\n└── Kustomization/{ns}/apps (Ready)\n    └── ConfigMap/{ns}/web\n"
        )
    );

    let traced = cli.run(&["trace", "configmap", "web"]).ok().stdout;
    let field = |name: &str| {
        traced.lines().find(|l| l.starts_with(&format!("{name}:"))).map(|l| l[name.len() + 1..].trim().to_string()).unwrap_or_default()
    };
    assert_eq!(
        (field("Object"), field("Kustomization"), field("GitRepository")),
        ("ConfigMap/web".into(), "apps".into(), "app".into()),
        "{traced}"
    );
    assert_eq!(field("Applied by"), format!("Kustomization {ns}/infra"), "{traced}");
    assert_eq!((field("Path"), field("Branch"), field("URL")), ("./apps".into(), "main".into(), k.world.repo_url()), "{traced}");
    assert_eq!(traced.matches("Revision:").count(), 2, "{traced}");
    assert!(traced.contains(&format!("main@sha1:{commit}")), "the revision applied and served: {traced}");
    assert!(traced.lines().any(|l| l.starts_with("Ready:") && l.contains("True")), "{traced}");
    let nested = cli.run(&["trace", "ks", "apps", "--api-version", "driftless.dev/v1alpha1"]).ok().stdout;
    assert!(nested.contains("Object:") && nested.contains("Kustomization/apps") && nested.contains("Kustomization:  infra"), "{nested}");

    k.apply(&config_map("bystander")).await;
    let unmanaged = cli.run(&["trace", "cm", "bystander"]).fails();
    assert!(error_lines(&unmanaged)[0].contains(&format!("ConfigMap {ns}/bystander is not managed by driftless")), "{}", unmanaged.stderr);
    let missing = cli.run(&["trace", "deployment", "nope"]).fails();
    assert!(error_lines(&missing)[0].contains(&format!("Deployment {ns}/nope not found")), "{}", missing.stderr);
    let unknown = cli.run(&["trace", "widget", "w"]).fails();
    assert!(error_lines(&unknown)[0].contains("serves no kind \"widget\""), "{}", unknown.stderr);
    let not_a_tree = cli.run(&["tree", "gitrepository", "app"]).fails();
    assert!(error_lines(&not_a_tree)[0].contains("driftless tree kustomization NAME"), "{}", not_a_tree.stderr);
    let no_tree = cli.run(&["tree", "ks", "nope"]).fails();
    assert!(error_lines(&no_tree)[0].contains(&format!("Kustomization {ns}/nope not found")), "{}", no_tree.stderr);

    // The cluster's own bookkeeping and the CLI's requests stay out of what goes to Git; the
    // labels of the Kustomization that applied it stay (they are the object's).
    cli.run(&["reconcile", "kustomization", "apps"]).ok();
    let exported = cli.run(&["export", "kustomization", "apps"]).ok().stdout;
    assert!(exported.starts_with("---\napiVersion: driftless.dev/v1alpha1\nkind: Kustomization\nmetadata:\n"), "{exported}");
    for server_field in
        ["status", "uid", "resourceVersion", "managedFields", "creationTimestamp", "generation", "finalizers", "reconcile-requested-at"]
    {
        assert!(!exported.contains(server_field), "{server_field} exported: {exported}");
    }
    assert!(exported.contains("kustomize.driftless.dev/name: infra") && exported.contains("path: ./apps"), "{exported}");
    let all = cli.run(&["export", "--all"]).ok().stdout;
    assert_eq!((all.matches("\nkind: Kustomization\n").count(), all.matches("\nkind: GitRepository\n").count()), (2, 1), "{all}");

    let version = env!("CARGO_PKG_VERSION");
    let absent = cli.run(&["version"]).ok().stdout;
    assert_eq!(
        absent,
        format!(
            "client: {version}\ncontroller: not installed in namespace driftless-system (`driftless install`, or -n NAMESPACE where it is)\n"
        )
    );
    // A Deployment as install makes it (no replicas: nothing runs), here in the test's namespace.
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: driftless-controller\n  labels:\n    app.kubernetes.io/name: driftless\n    app.kubernetes.io/version: 9.8.7\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {app.kubernetes.io/name: driftless}\n  template:\n    metadata:\n      labels: {app.kubernetes.io/name: driftless}\n    spec:\n      containers: [{name: manager, image: 'driftless:9.8.7'}]\n";
    k.apply(deployment).await;
    let installed = cli.run(&["version", "-n", &ns]).ok().stdout;
    assert_eq!(installed, format!("client: {version}\ncontroller: 9.8.7 (image driftless:9.8.7)\n"));
}

/// `diff kustomization --path DIR` against the testkit's apiserver: everything to create
/// before the first apply, nothing once the controller applied the same files, and a change
/// and a prune (field names only) when the local directory differs; exit status 1 exactly
/// when there are changes, and the cluster untouched by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_shows_what_a_local_change_would_do_and_exits_1_on_changes() {
    let Some(mut k) = KubeWorld::new("cli-diff").await else { return };
    let ns = k.ns.name.clone();
    let config_map =
        |name: &str, value: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value}\n");
    let (a, b) = (config_map("a", "one"), config_map("b", "two"));
    k.world.commit(&[("deploy/a.yaml", &a), ("deploy/b.yaml", &b)], "deploy");
    let cli = Cli::new(&k);
    cli.apply(&k, &format!("{}---\n{}", git_repository("app", "main"), kustomization("web", "./deploy", &ns))).ok();
    let local = k.world.path().join("local-deploy");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("a.yaml"), &a).unwrap();
    std::fs::write(local.join("b.yaml"), &b).unwrap();
    let path = local.to_str().unwrap().to_string();

    let first = cli.run(&["diff", "kustomization", "web", "--path", &path]);
    assert_eq!(first.status, 1, "{}{}", first.stdout, first.stderr);
    assert!(
        first.stdout.contains(&format!("+ ConfigMap {ns}/a (create)"))
            && first.stdout.contains("Plan: 2 to add, 0 to change, 0 to destroy."),
        "{}",
        first.stdout
    );
    assert!(error_lines(&first)[0].contains(&format!("Kustomization {ns}/web would change")), "{}", first.stderr);
    let none = k.client();
    let configmaps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(none, &ns);
    assert!(configmaps.get_opt("a").await.unwrap().is_none(), "a diff applies nothing");

    k.start_controller(&[]);
    let ready =
        |o: &Value| condition_in(o, "Ready")["status"] == "True" && o["status"]["observedGeneration"] == o["metadata"]["generation"];
    k.wait_for("Kustomization", "web", "Ready", LONG, ready).await;
    let same = cli.run(&["diff", "kustomization", "web", "--path", &path]).ok();
    assert!(same.stdout.contains("no changes"), "{}", same.stdout);

    std::fs::write(local.join("a.yaml"), config_map("a", "changed-locally")).unwrap();
    std::fs::remove_file(local.join("b.yaml")).unwrap();
    let changed = cli.run(&["diff", "kustomization", "web", "--path", &path]);
    assert_eq!(changed.status, 1, "{}{}", changed.stdout, changed.stderr);
    assert!(changed.stdout.contains(&format!("~ ConfigMap {ns}/a (change)")) && changed.stdout.contains("/data/key"), "{}", changed.stdout);
    assert!(changed.stdout.contains(&format!("- ConfigMap {ns}/b (prune)")), "{}", changed.stdout);
    assert!(!changed.stdout.contains("changed-locally"), "values are not shown: {}", changed.stdout);
    assert_eq!(configmaps.get("a").await.unwrap().data.unwrap()["key"], "one", "the cluster is untouched");

    let missing = cli.run(&["diff", "kustomization", "nope", "--path", &path]).fails();
    assert!(error_lines(&missing)[0].contains(&format!("Kustomization {ns}/nope not found")), "{}", missing.stderr);
}

/// `diff terraform --path DIR` on a cluster: the runner runs on this machine with the kube
/// context's user and reads the state the controller's runner pod wrote (a Secret), so a
/// local change shows as exactly what it adds; the directory as the source has it shows
/// nothing; the cluster and the object are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_terraform_plans_a_local_change_against_the_state_on_the_cluster() {
    let Some(mut k) = KubeWorld::new("cli-diff-tf").await else { return };
    k.world.commit(&[("infra/main.tf", MODULE)], "module");
    let cli = Cli::new(&k);
    cli.apply(&k, &format!("{}---\n{}", git_repository("app", "main"), terraform_object("app", "app", "./infra", "auto", "", ""))).ok();
    k.start_controller(&[]);
    let applied = |o: &Value| {
        condition_in(o, "Ready")["status"] == "True" && o["status"]["lastAppliedRevision"].as_str().is_some_and(|r| !r.is_empty())
    };
    let before = k.wait_for("Terraform", "app", "applied", LONG, applied).await;

    let checkout = k.world.path().join("checkout");
    std::fs::create_dir_all(checkout.join("infra")).unwrap();
    let extra = "\nresource \"drifttest_file\" \"extra\" {\n  path    = \"${var.target_dir}/extra.txt\"\n  content = \"more\"\n}\n";
    std::fs::write(checkout.join("infra/main.tf"), format!("{MODULE}{extra}")).unwrap();
    let terraform = k.world.terraform.display().to_string();
    let path = checkout.join("infra").display().to_string();
    let changed = cli.run(&["--terraform", &terraform, "diff", "terraform", "app", "--path", &path]);
    assert_eq!(changed.status, 1, "{}{}", changed.stdout, changed.stderr);
    assert!(
        changed.stdout.contains("drifttest_file.extra will be created") && changed.stdout.contains("1 to add, 0 to change, 0 to destroy"),
        "only the new file: the state on the cluster was read\n{}",
        changed.stdout
    );
    assert!(!k.world.managed("extra.txt").exists(), "nothing is applied");

    // The module as the source has it, and --context naming the kube context explicitly.
    std::fs::write(checkout.join("infra/main.tf"), MODULE).unwrap();
    let same = cli.run(&["--terraform", &terraform, "--context", "testkit", "diff", "terraform", "app", "--path", &path]).ok();
    assert!(same.stdout.contains("no changes"), "{}", same.stdout);
    let after = k.get("Terraform", "app").await;
    assert_eq!(after["status"]["lastAppliedRevision"], before["status"]["lastAppliedRevision"]);
    assert_ne!(after["status"]["plan"]["pending"], true, "no plan waits: a diff stores none");
}
