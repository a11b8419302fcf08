//! Bucket sources against a real S3-compatible server (moto on 127.0.0.1): revision
//! stability and change detection, ignore patterns, a Terraform reading its module from a
//! bucket, and clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::s3::{self, ACCESS_KEY, Moto, SECRET_KEY};
use common::{MODULE, World, terraform_object};

const BUCKET: &str = "sources";

fn bucket_objects(name: &str, endpoint: &str, bucket: &str, secret: (&str, &str)) -> String {
    let host = endpoint.trim_start_matches("http://");
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: bucket-creds
stringData:
  accesskey: {}
  secretkey: {}
---
apiVersion: driftless.dev/v1alpha1
kind: Bucket
metadata:
  name: {name}
spec:
  bucketName: {bucket}
  endpoint: {host}
  insecure: true
  region: us-east-1
  prefix: infra/
  interval: 1h
  ignore: "*.md"
  secretRef:
    name: bucket-creds
"#,
        secret.0, secret.1
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn artifact(w: &World, name: &str) -> serde_json::Value {
    w.get("bucket", name)["status"]["artifact"].clone()
}

/// The files of an artifact, unpacked.
fn unpacked(w: &World, artifact: &serde_json::Value) -> tempfile::TempDir {
    let dest = tempfile::tempdir().unwrap();
    let store = driftless::source::ArtifactStore::new(w.store().join("artifacts"));
    store.unpack(artifact["path"].as_str().unwrap(), artifact["digest"].as_str().unwrap(), dest.path()).unwrap();
    dest
}

#[test]
fn an_unchanged_bucket_keeps_its_revision_and_downloads_nothing() {
    let Some(w) = World::new() else { return };
    let Some(moto) = Moto::start() else { return };
    let rt = rt();
    let c = rt.block_on(s3::client(&moto.endpoint()));
    rt.block_on(async {
        s3::create_bucket(&c, BUCKET).await;
        s3::put(&c, BUCKET, "infra/main.tf", MODULE.as_bytes()).await;
        s3::put(&c, BUCKET, "infra/README.md", b"# docs\n").await;
        s3::put(&c, BUCKET, "other/elsewhere.tf", b"# not under the prefix\n").await;
    });
    w.apply(&bucket_objects("modules", &moto.endpoint(), BUCKET, (ACCESS_KEY, SECRET_KEY))).ok();

    let first = w.driftless(&["reconcile", "bucket", "modules"]).ok();
    assert!(first.stdout.contains("stored artifact for revision sha256:"), "{}", first.stdout);
    let a1 = artifact(&w, "modules");
    let revision = a1["revision"].as_str().unwrap().to_string();
    assert!(revision.starts_with("sha256:") && revision.len() == 71, "{revision}");
    let files = unpacked(&w, &a1);
    assert_eq!(std::fs::read_to_string(files.path().join("infra/main.tf")).unwrap(), MODULE);
    assert!(!files.path().join("infra/README.md").exists(), "ignored");
    assert!(!files.path().join("other").exists(), "outside the prefix");
    let downloads = |m: &Moto| m.log().matches("GET /sources/infra/main.tf").count();
    assert_eq!(downloads(&moto), 1);

    // Nothing changed: same revision, same artifact, no event, nothing downloaded.
    w.driftless(&["reconcile", "bucket", "modules"]).ok();
    assert_eq!(artifact(&w, "modules"), a1);
    assert_eq!(downloads(&moto), 1, "an unchanged bucket downloads nothing");
    // A change to an ignored object is no change.
    rt.block_on(s3::put(&c, BUCKET, "infra/README.md", b"# more docs\n"));
    w.driftless(&["run", "--once"]).ok();
    w.driftless(&["reconcile", "bucket", "modules"]).ok();
    assert_eq!(artifact(&w, "modules"), a1);
    assert_eq!(w.count_events("modules", &["NewArtifact"]), 1);

    // An upload changes the revision and makes a new artifact.
    rt.block_on(s3::put(&c, BUCKET, "infra/main.tf", MODULE.replace("var.content", "\"${var.content}!\"").as_bytes()));
    w.driftless(&["reconcile", "bucket", "modules"]).ok();
    let a2 = artifact(&w, "modules");
    assert_ne!(a2["revision"], a1["revision"]);
    assert_ne!(a2["digest"], a1["digest"]);
    assert!(std::fs::read_to_string(unpacked(&w, &a2).path().join("infra/main.tf")).unwrap().contains("!\""));
    assert_eq!(w.count_events("modules", &["NewArtifact"]), 2);
    let table = w.driftless(&["get", "bucket"]).ok().stdout;
    assert!(table.contains("modules") && table.contains(a2["revision"].as_str().unwrap()), "{table}");
}

#[test]
fn a_terraform_module_from_a_bucket_is_planned_and_applied() {
    let Some(w) = World::new() else { return };
    let Some(moto) = Moto::start() else { return };
    let rt = rt();
    let c = rt.block_on(s3::client(&moto.endpoint()));
    rt.block_on(async {
        s3::create_bucket(&c, BUCKET).await;
        s3::put(&c, BUCKET, "infra/main.tf", MODULE.as_bytes()).await;
    });
    w.apply(&bucket_objects("modules", &moto.endpoint(), BUCKET, (ACCESS_KEY, SECRET_KEY))).ok();
    w.apply(&terraform_object("app", "modules", "./infra", "auto", "", "").replace("kind: GitRepository", "kind: Bucket")).ok();

    w.driftless(&["run", "--once"]).ok();
    assert_eq!(w.ready_reason("app"), "Succeeded", "{}", w.condition("app", "Ready"));
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello");
    let tf = w.get("terraform", "app");
    assert_eq!(tf["status"]["lastAppliedRevision"], artifact(&w, "modules")["revision"]);

    // A new upload is fetched with the Terraform and applied.
    rt.block_on(s3::put(
        &c,
        BUCKET,
        "infra/main.tf",
        MODULE.replace("content = var.content\n}", "content = \"${var.content}!\"\n}").as_bytes(),
    ));
    let run = w.driftless(&["reconcile", "terraform", "app", "--with-source"]).ok();
    assert!(run.stderr.contains("fetching source bucket/modules"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(w.managed("main.txt")).unwrap(), "hello!");
}

#[test]
fn bucket_errors_name_the_problem() {
    let Some(w) = World::new() else { return };
    let Some(moto) = Moto::start() else { return };
    let Some(strict) = Moto::with_auth() else { return };

    w.apply(&bucket_objects("missing", &moto.endpoint(), "no-such-bucket", (ACCESS_KEY, SECRET_KEY))).ok();
    let run = w.driftless(&["reconcile", "bucket", "missing"]).fails();
    let ready = w.condition_of("bucket", "missing", "Ready");
    assert_eq!(ready["reason"], "BucketOperationFailed", "{}", run.all());
    assert!(ready["message"].as_str().unwrap().contains("bucket no-such-bucket does not exist"), "{ready}");

    w.apply(&bucket_objects("denied", &strict.endpoint(), BUCKET, ("AKIAWRONGKEY", "wrong-secret-value"))).ok();
    w.driftless(&["reconcile", "bucket", "denied"]).fails();
    let ready = w.condition_of("bucket", "denied", "Ready");
    assert_eq!(ready["reason"], "AuthenticationFailed");
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("refused the credentials") && !message.contains("wrong-secret-value"), "{message}");

    // Plain HTTP must be asked for.
    let bad = bucket_objects("plain", &moto.endpoint(), BUCKET, (ACCESS_KEY, SECRET_KEY))
        .replace("endpoint: 127.0.0.1", "endpoint: http://127.0.0.1")
        .replace("insecure: true", "insecure: false");
    let refused = w.apply(&bad).fails();
    assert!(refused.all().contains("spec.endpoint") && refused.all().contains("insecure"), "{}", refused.all());
}
