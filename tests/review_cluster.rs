//! The review page served by the real controller (`--review-addr`) on the testkit's real
//! API server: tokens are checked with a TokenReview and every action with a
//! SubjectAccessReview for the calling user, so the page grants nothing RBAC does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::http::{Reply, form, request};
use common::kube::{KubeWorld, condition_in, pending_plan_of};
use common::{MODULE, git_repository, terraform_object};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::PostParams;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(180);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One request on a blocking thread (the client is blocking; the test's runtime is not).
async fn send(addr: &str, method: &str, path: &str, headers: Vec<(String, String)>, body: Option<String>) -> Reply {
    let (addr, method, path) = (addr.to_string(), method.to_string(), path.to_string());
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        request(&addr, &method, &path, &headers, body.as_deref())
    })
    .await
    .unwrap()
}

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {token}"))]
}

/// A rule of `verbs` on `resources` of API group `group`.
fn rule(group: &str, resources: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resources.into()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

/// Creates Role `role` with `rules` in the namespace and binds it to `subject`.
async fn bind(k: &KubeWorld, role: &str, rules: Vec<PolicyRule>, subject: Subject) {
    let roles: kube::Api<Role> = k.ns.api();
    let object = Role { metadata: kube::api::ObjectMeta { name: Some(role.into()), ..Default::default() }, rules: Some(rules) };
    roles.create(&PostParams::default(), &object).await.unwrap();
    let bindings: kube::Api<RoleBinding> = k.ns.api();
    let binding = RoleBinding {
        metadata: kube::api::ObjectMeta { name: Some(format!("{role}-{}", subject.name)), ..Default::default() },
        role_ref: RoleRef { api_group: Some("rbac.authorization.k8s.io".into()), kind: "Role".into(), name: role.into() },
        subjects: Some(vec![subject]),
    };
    bindings.create(&PostParams::default(), &binding).await.unwrap();
}

/// Grants `user` get, list and patch on Terraforms of the namespace.
async fn grant(k: &KubeWorld, user: &str) {
    let subject =
        Subject { kind: "User".into(), name: user.into(), api_group: Some("rbac.authorization.k8s.io".into()), ..Default::default() };
    bind(k, "terraform-reviewer", vec![rule("driftless.dev", "terraforms", &["get", "list", "patch"])], subject).await;
}

/// A ServiceAccount `name` of the namespace with `rules`, and a token for it (a user the
/// review page knows through the TokenReview, as `kubectl create token` makes one).
async fn account_with(k: &KubeWorld, name: &str, rules: Vec<PolicyRule>) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: kube::Api<ServiceAccount> = k.ns.api();
    let account =
        ServiceAccount { metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    accounts.create(&PostParams::default(), &account).await.unwrap();
    let subject = Subject { kind: "ServiceAccount".into(), name: name.into(), namespace: Some(k.ns.name.clone()), ..Default::default() };
    bind(k, name, rules, subject).await;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { audiences: None, expiration_seconds: Some(3600), ..Default::default() }),
        ..Default::default()
    };
    let answer = accounts.create_token_request(name, &Default::default(), &request).await.unwrap();
    answer.status.and_then(|s| s.token).expect("a TokenRequest answer holds a token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_actions_act_only_with_the_callers_own_rights() {
    let Some(mut k) = KubeWorld::new("review").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    k.apply(&format!("{}---\n{}", git_repository("app", "main"), terraform_object("app", "app", "./", "", "", ""))).await;
    let addr = format!("127.0.0.1:{}", free_port());
    k.start_controller(&[&format!("--review-addr={addr}")]);
    let tf = k.wait_for("Terraform", "app", "a pending plan", LONG, |o| pending_plan_of(o).is_some()).await;
    let plan = pending_plan_of(&tf).unwrap();
    let ns = k.ns.name.clone();
    let object = format!("/objects/terraform/{ns}/app");
    let alice = testkit::shared_cluster().await.unwrap().access().token(testkit::ALICE).unwrap().to_string();

    // Tokens: none, or one the API server does not know, is 401.
    assert_eq!(send(&addr, "GET", "/api/objects", vec![], None).await.status, 401);
    let invalid = send(&addr, "GET", "/api/objects", bearer("not-a-real-token"), None).await;
    assert_eq!(invalid.status, 401, "{}", invalid.body);
    assert!(invalid.json()["error"].as_str().unwrap().contains("not valid"), "{}", invalid.body);
    assert_eq!(
        send(&addr, "POST", &format!("{object}/approve"), bearer("not-a-real-token"), Some(form(&[("plan_id", &plan)]))).await.status,
        401
    );

    // Alice is authenticated but has no rights: she sees nothing and changes nothing.
    let listed = send(&addr, "GET", "/api/objects", bearer(&alice), None).await;
    assert_eq!((listed.status, listed.json()), (200, serde_json::json!([])), "{}", listed.body);
    let page = send(&addr, "GET", &object, bearer(&alice), None).await;
    assert_eq!(page.status, 403, "{}", page.body);
    let denied = send(&addr, "POST", &format!("{object}/approve"), bearer(&alice), Some(form(&[("plan_id", &plan)]))).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("alice may not patch terraforms.driftless.dev app"), "names the missing right: {}", denied.body);
    let annotations = k.get("Terraform", "app").await["metadata"]["annotations"].clone();
    assert!(annotations["driftless.dev/approve-plan"].is_null() && annotations["driftless.dev/acted-by"].is_null(), "{annotations}");

    // Given a Role with get, list and patch on Terraforms, the same request approves as her.
    grant(&k, testkit::ALICE).await;
    let approved = send(&addr, "POST", &format!("{object}/approve"), bearer(&alice), Some(form(&[("plan_id", &plan)]))).await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    assert_eq!(approved.header("location"), Some(object.as_str()));
    let tf = k.get("Terraform", "app").await;
    let a = &tf["metadata"]["annotations"];
    assert_eq!(a["driftless.dev/acted-by"].as_str(), Some("alice"));
    // Bound to the stored plan shown; the controller may already have spent (and removed) it.
    let approval = a["driftless.dev/approve-plan"].as_str().or(tf["status"]["spentApproval"].as_str()).unwrap_or_default();
    assert!(approval.starts_with(&format!("{plan}@sha256:")), "{approval}");
    let stale =
        send(&addr, "POST", &format!("{object}/approve"), bearer(&alice), Some(form(&[("plan_id", "plan-0000000-0000000000")]))).await;
    assert_eq!(stale.status, 409, "{}", stale.body);

    // The controller noticed the annotation and applied the plan.
    k.wait_for("Terraform", "app", "applied", LONG, |o| condition_in(o, "Ready")["status"] == "True").await;
    assert_eq!(std::fs::read_to_string(k.world.managed("main.txt")).unwrap(), "hello");

    // Her `list` right shows the object once the short cache of the earlier denial expires.
    let start = Instant::now();
    loop {
        let listed = send(&addr, "GET", "/api/objects", bearer(&alice), None).await;
        let rows: Vec<Value> = listed.json().as_array().cloned().unwrap_or_default();
        if let Some(row) = rows.iter().find(|r| r["name"] == "app" && r["namespace"] == ns.as_str()) {
            assert!(matches!(row["state"].as_str(), Some("Ready" | "Checked" | "Progressing")), "{row}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "alice never saw the object: {}", listed.body);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // A pasted token makes a browser session (same-origin form); a wrong one does not.
    let origin = vec![("Origin".to_string(), format!("http://{addr}"))];
    let wrong = send(&addr, "POST", "/login", origin.clone(), Some(form(&[("token", "nope")]))).await;
    assert_eq!(wrong.status, 401);
    let login = send(&addr, "POST", "/login", origin, Some(form(&[("token", &alice)]))).await;
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let page = send(&addr, "GET", &object, vec![("Cookie".into(), cookie)], None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<span class=\"user\">alice</span>") && page.body.contains("id=\"history\""), "{}", page.body);

    // Wrong pasted tokens, again and again: each costs a TokenReview until the address has
    // spent its failed logins; then the form answers 429 and asks the API server nothing.
    let origin = vec![("Origin".to_string(), format!("http://{addr}"))];
    let mut failures = 0;
    let refused = loop {
        let reply = send(&addr, "POST", "/login", origin.clone(), Some(form(&[("token", &format!("wrong-{failures}"))]))).await;
        if reply.status == 429 {
            break reply;
        }
        assert_eq!(reply.status, 401, "{}", reply.body);
        failures += 1;
        assert!(failures <= 10, "still no 429 after {failures} failed logins");
    };
    assert!(refused.body.contains("Too many failed logins from your address"), "{}", refused.body);
    assert!(
        refused.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| (1..=6).contains(&s)),
        "{:?}",
        refused.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_rendering_is_shown_only_to_users_who_may_read_secrets_in_the_namespace() {
    let Some(mut k) = KubeWorld::new("review-rendering").await else { return };
    k.world.commit(&[("main.tf", MODULE)], "module");
    k.apply(&format!("{}---\n{}", git_repository("app", "main"), terraform_object("app", "app", "./", "", "", ""))).await;
    let viewing = vec![rule("driftless.dev", "terraforms", &["get", "list"])];
    let viewer = account_with(&k, "viewer", viewing.clone()).await;
    let reader = account_with(&k, "reader", [viewing, vec![rule("", "secrets", &["get"])]].concat()).await;
    let addr = format!("127.0.0.1:{}", free_port());
    k.start_controller(&[&format!("--review-addr={addr}")]);
    let tf = k.wait_for("Terraform", "app", "a pending plan", LONG, |o| pending_plan_of(o).is_some()).await;
    let plan = pending_plan_of(&tf).unwrap();
    let ns = k.ns.name.clone();
    let object = format!("/objects/terraform/{ns}/app");

    // May list Terraforms, may not read Secrets: the plan as status has it, no rendering.
    let page = send(&addr, "GET", &object, bearer(&viewer), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&format!("<section id=\"plan\" data-plan-id=\"{plan}\">")), "{}", page.body);
    assert!(page.body.contains("2 to add"), "the summary status shows: {}", page.body);
    assert!(!page.body.contains("class=\"rendering\"") && !page.body.contains("drifttest_file.main (create)"), "{}", page.body);
    assert!(page.body.contains(&format!("The plan's rendering needs read access to Secrets in namespace {ns}")), "{}", page.body);

    // May also get Secrets there: the rendering the backend keeps.
    let page = send(&addr, "GET", &object, bearer(&reader), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<pre class=\"rendering\">") && page.body.contains("drifttest_file.main (create)"), "{}", page.body);
    assert!(!page.body.contains("rendering-withheld"), "{}", page.body);
}
