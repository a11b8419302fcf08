//! Every parser that reads user input, fed arbitrary and near-valid input (proptest, a bounded
//! number of cases): durations, objects through decoding and validation (with the tenancy and
//! scheduling code that reads them), kustomization.yaml, webhook bodies, and the runner
//! contract. The property is always the same: a clear error or a valid result, never a panic,
//! never work that grows without bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use driftless::api::{Bucket, Duration, GitRepository, Kustomization, Reconciled, Tenancy, Terraform, Validate};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Field names of the kinds, so generated objects reach deep into decoding.
const FIELDS: &[&str] = &[
    "sourceRef",
    "kind",
    "name",
    "namespace",
    "interval",
    "retryInterval",
    "timeout",
    "path",
    "approvePlan",
    "vars",
    "varsFrom",
    "value",
    "dependsOn",
    "drift",
    "mode",
    "ignore",
    "address",
    "attributes",
    "paths",
    "healthChecks",
    "url",
    "ref",
    "branch",
    "tag",
    "semver",
    "commit",
    "secretRef",
    "bucketName",
    "endpoint",
    "prefix",
    "insecure",
    "provider",
    "prune",
    "wait",
    "targetNamespace",
    "patches",
    "patch",
    "target",
    "images",
    "newTag",
    "postBuild",
    "substitute",
    "substituteFrom",
    "backendConfig",
    "s3",
    "bucket",
    "writeOutputsToSecret",
    "outputs",
    "suspend",
    "workspace",
    "runnerPodTemplate",
    "spec",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9:/._@ -]{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "1h",
            "30s",
            "5 minutes",
            "3000000000000000h",
            "0s",
            "auto",
            "",
            "plan-abc-1",
            "GitRepository",
            "Bucket",
            "Terraform",
            "Kustomization",
            "file:///x",
            "https://e.x/r.git",
            "..",
            "../etc",
            "correct",
            "detect",
            "disabled"
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

/// JSON trees of bounded size whose keys are mostly real field names.
fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()).prop_map(str::to_string), inner, 0..6)
                .prop_map(|m: BTreeMap<String, Value>| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object(kind: &str, spec: Value) -> Value {
    json!({ "apiVersion": "driftless.dev/v1alpha1", "kind": kind, "metadata": { "name": "fuzz", "namespace": "team" }, "spec": spec })
}

/// Decodes `value` as `K`; when it decodes, validation, the tenancy checks and the
/// scheduler's reading of it must all answer.
fn exercise<K: Reconciled + Validate>(value: &Value) {
    if let Ok(o) = serde_json::from_value::<K>(value.clone()) {
        let _ = o.validate();
        let locked = Tenancy {
            cross_namespace_refs: false,
            file_urls: false,
            ambient_credentials: false,
            runner_service_accounts: Some(vec!["tf-runner".to_string()].into()),
        };
        let _ = o.refused_by(&locked);
        let _ = driftless::reconcile::Refs::of(&o);
        let _ = driftless::reconcile::approval::of(&o);
        let requeue = driftless::reconcile::Requeue { after: Some(o.interval()), wake_dependents: false, failing: true };
        let delay = driftless::reconcile::schedule::delay(&requeue, u32::MAX, o.interval());
        assert!(delay.is_some_and(|d| d <= driftless::reconcile::schedule::MAX_DELAY));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_duration_text_parses_to_a_pattern_match_or_a_clear_error(text in "\\PC{0,40}") {
        match Duration::parse(&text) {
            Ok(d) => {
                let pattern = regex::Regex::new(driftless::api::DURATION_PATTERN).unwrap();
                prop_assert!(pattern.is_match(text.trim()), "{text:?} parsed but the CRD pattern refuses it");
                let _ = d.within_bounds();
            }
            Err(e) => prop_assert!(e.contains("duration"), "{e}"),
        }
    }

    #[test]
    fn near_valid_durations_parse_or_fail_cleanly(parts in prop::collection::vec(("[0-9]{1,25}", prop::option::of("[0-9]{1,12}"), prop::sample::select(vec!["ms", "s", "m", "h", "x", ""])), 0..5)) {
        let text: String = parts.iter().map(|(n, f, u)| format!("{n}{}{u}", f.as_ref().map(|f| format!(".{f}")).unwrap_or_default())).collect();
        if let Ok(d) = Duration::parse(&text) {
            prop_assert_eq!(d.within_bounds().is_ok(), d.as_std() <= driftless::api::DURATION_MAX, "{}", text);
        }
    }

    #[test]
    fn arbitrary_objects_decode_and_validate_without_panicking(spec in tree()) {
        exercise::<Terraform>(&object("Terraform", spec.clone()));
        exercise::<Kustomization>(&object("Kustomization", spec.clone()));
        exercise::<GitRepository>(&object("GitRepository", spec.clone()));
        exercise::<Bucket>(&object("Bucket", spec));
    }

    #[test]
    fn runner_contract_json_is_refused_or_read(value in tree()) {
        let _ = serde_json::from_value::<driftless::dispatch::RunSpec>(value.clone());
        let _ = serde_json::from_value::<driftless::dispatch::RunResult>(value);
    }

    #[test]
    fn webhook_calls_are_verified_or_refused(
        kind in prop::sample::select(vec!["generic", "generic-hmac", "github", "gitlab", "other"]),
        body in prop::collection::vec(any::<u8>(), 0..512),
        signature in "\\PC{0,80}",
        event in "[a-z_]{0,12}",
    ) {
        let mut headers = axum::http::HeaderMap::new();
        for name in ["x-hub-signature-256", "x-signature", "x-gitlab-token", "x-github-event", "x-gitlab-event"] {
            if let Ok(v) = axum::http::HeaderValue::from_str(&signature) {
                headers.insert(name, v);
            }
        }
        if let Ok(v) = axum::http::HeaderValue::from_str(&event) {
            headers.insert("x-github-event", v);
        }
        let _ = driftless::notify::receiver::verify(kind, "token", &["push".to_string()], &headers, &body);
    }
}

/// kustomization.yaml from generated YAML: a build ends in objects or a clear error.
fn kustomization_yaml() -> impl Strategy<Value = String> {
    let fields = vec![
        "resources",
        "bases",
        "components",
        "patches",
        "patchesStrategicMerge",
        "namePrefix",
        "nameSuffix",
        "namespace",
        "commonLabels",
        "labels",
        "images",
        "configMapGenerator",
        "secretGenerator",
        "replicas",
        "sortOptions",
        "replacements",
        "generatorOptions",
        "commonAnnotations",
        "kind",
        "apiVersion",
    ];
    prop::collection::btree_map(prop::sample::select(fields).prop_map(str::to_string), tree(), 0..6)
        .prop_map(|m| serde_yaml::to_string(&Value::Object(m.into_iter().collect())).unwrap_or_default())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_kustomization_builds_or_fails_with_an_error(text in kustomization_yaml(), resource in tree()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kustomization.yaml"), text).unwrap();
        std::fs::write(dir.path().join("resource.yaml"), serde_yaml::to_string(&resource).unwrap_or_default()).unwrap();
        let _ = driftless::kustomize::build(dir.path());
    }
}

/// A chain of kustomizations nested deeper than any real repository: refused with an error
/// naming the limit, never a stack overflow that aborts the process.
#[test]
fn nesting_beyond_the_limit_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let mut path = dir.path().to_path_buf();
    for _ in 0..(driftless::kustomize::MAX_DEPTH + 40) {
        std::fs::create_dir_all(path.join("n")).unwrap();
        std::fs::write(path.join("kustomization.yaml"), "resources:\n  - n\n").unwrap();
        path = path.join("n");
    }
    std::fs::write(path.join("kustomization.yaml"), "resources: []\n").unwrap();
    let err = driftless::kustomize::build(dir.path()).expect_err("too deep");
    assert!(err.to_string().contains("deeper than 64 levels"), "{err}");
}
