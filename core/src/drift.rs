//! Drift entries, the rules that leave some alone (`spec.drift.ignore`: whole resources by
//! address glob, or only some of their attributes), and their one-line summary. Shared by the
//! runner (which filters what terraform reports) and the reconcilers (which record it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One drifted object: a Terraform resource address or a Kubernetes object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftObject {
    /// Terraform resource type, or Kubernetes kind.
    pub kind: String,
    /// Terraform resource address, or `namespace/name`.
    pub name: String,
    /// What happened outside driftless: `update`, `delete` or `create`.
    pub action: String,
    /// Changed attribute paths (values are never recorded: they may be secret).
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Drift to leave alone: resources matching `address` (glob), and only `attributes` of them
/// when given.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftIgnoreRule {
    pub address: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
}

pub fn filter_drift(objects: Vec<DriftObject>, rules: &[DriftIgnoreRule]) -> Vec<DriftObject> {
    let compiled: Vec<(globset::GlobMatcher, &DriftIgnoreRule)> =
        rules.iter().filter_map(|r| globset::Glob::new(&r.address).ok().map(|g| (g.compile_matcher(), r))).collect();
    objects
        .into_iter()
        .filter_map(|mut o| {
            for (glob, rule) in &compiled {
                if !glob.is_match(&o.name) {
                    continue;
                }
                if rule.attributes.is_empty() {
                    return None;
                }
                o.fields.retain(|f| !rule.attributes.iter().any(|a| covers(a, f)));
                if o.fields.is_empty() {
                    return None;
                }
            }
            Some(o)
        })
        .collect()
}

/// `tags` covers `tags`, `tags.env` and `tags[0]`.
fn covers(attribute: &str, field: &str) -> bool {
    field == attribute || field.strip_prefix(attribute).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

pub fn summarize(objects: &[DriftObject]) -> String {
    match objects {
        [] => "no drift".into(),
        [one] => format!("{} {} outside of driftless ({})", one.name, past(&one.action), fields(one)),
        many => format!(
            "{} resources changed outside of driftless: {}",
            many.len(),
            many.iter().map(|o| o.name.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn past(action: &str) -> &str {
    match action {
        "delete" => "was deleted",
        "create" => "was created",
        _ => "was changed",
    }
}

fn fields(o: &DriftObject) -> String {
    if o.fields.is_empty() { "whole resource".into() } else { o.fields.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, fields: &[&str]) -> DriftObject {
        DriftObject { kind: "t".into(), name: name.into(), action: "update".into(), fields: fields.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn ignore_rules_drop_resources_or_attributes() {
        let rules = vec![
            DriftIgnoreRule { address: "aws_autoscaling_group.*".into(), attributes: vec![] },
            DriftIgnoreRule { address: "drifttest_file.a".into(), attributes: vec!["tags".into()] },
        ];
        let kept = filter_drift(
            vec![
                obj("aws_autoscaling_group.web", &["desired"]),
                obj("drifttest_file.a", &["tags.env", "content"]),
                obj("drifttest_file.b", &["tags"]),
            ],
            &rules,
        );
        assert_eq!(kept, vec![obj("drifttest_file.a", &["content"]), obj("drifttest_file.b", &["tags"])]);
        assert!(filter_drift(vec![obj("drifttest_file.a", &["tags[0]"])], &rules).is_empty());
    }
}
