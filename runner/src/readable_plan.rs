//! tofu-controller's `storeReadablePlan`: the saved plan as `show -json` or as terraform's
//! own text (`show -no-color`), for the dispatcher to store where tofu-controller's users
//! read it. Nothing sensitive leaves: every value terraform marks sensitive is masked in
//! the JSON, the run's sensitive variables too, and both forms pass through the run's
//! scrubber (every secret the run knows, in every form it takes in text).

use driftless_core::contract::{Operation, ReadablePlanFormat, RunErrorKind, RunSpec};
use driftless_core::scrub::Scrubber;
use serde_json::Value;

use crate::plan_json::{REDACTED, redact};
use crate::terraform::Terraform;

type Failure = (RunErrorKind, String, Vec<String>);

/// The readable plan `spec` asks for, of the plan file `plan_file` this run made; `None`
/// when it asks for none, or the run is no plan of the object's (a drift check's plan is
/// not one a reviewer acts on: it does not replace the stored one).
pub async fn render(tf: &Terraform, plan_file: &str, spec: &RunSpec, secrets: &Scrubber) -> Result<Option<String>, Failure> {
    let Some(format) = spec.options.readable_plan else { return Ok(None) };
    if !matches!(spec.operation, Operation::Plan | Operation::DestroyPlan | Operation::SpeculativePlan) {
        return Ok(None);
    }
    let args = match format {
        ReadablePlanFormat::Json => ["show", "-json", plan_file],
        ReadablePlanFormat::Human => ["show", "-no-color", plan_file],
    };
    let shown = tf.exec(&args).await.map_err(|e| (RunErrorKind::Terraform, e.to_string(), vec![]))?;
    if shown.code != 0 {
        let lines = shown.stderr.lines().filter(|l| !l.trim().is_empty()).map(|l| secrets.scrub_with(l, REDACTED)).collect();
        return Err((RunErrorKind::Terraform, format!("{} {} failed (spec.storeReadablePlan)", tf.engine(), args[..2].join(" ")), lines));
    }
    match format {
        ReadablePlanFormat::Human => Ok(Some(secrets.scrub_with(&shown.stdout, REDACTED))),
        ReadablePlanFormat::Json => {
            let doc: Value = serde_json::from_str(&shown.stdout)
                .map_err(|e| (RunErrorKind::Terraform, format!("cannot read {}'s show -json output: {e}", tf.engine()), vec![]))?;
            let sensitive: Vec<&str> = spec.variables.iter().filter(|v| v.sensitive).map(|v| v.name.as_str()).collect();
            let masked = scrub_strings(redact_show(doc, &sensitive), secrets);
            Ok(Some(masked.to_string()))
        }
    }
}

/// `show -json` with every value terraform marks sensitive replaced by the mask: changes
/// (`before`/`after` by their `*_sensitive` masks), planned and prior values (`values` by
/// `sensitive_values`), outputs and variables marked `sensitive`, and the values of the
/// variables named in `sensitive_vars` (a variable's value is in plain text there).
pub fn redact_show(mut doc: Value, sensitive_vars: &[&str]) -> Value {
    if let Some(vars) = doc.get_mut("variables").and_then(Value::as_object_mut) {
        for (name, var) in vars.iter_mut() {
            if sensitive_vars.contains(&name.as_str())
                && let Some(v) = var.get_mut("value")
            {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    mask(&mut doc);
    doc
}

fn mask(node: &mut Value) {
    match node {
        Value::Object(map) => {
            for (value, mask) in [("before", "before_sensitive"), ("after", "after_sensitive"), ("values", "sensitive_values")] {
                if let (Some(m), Some(v)) = (map.get(mask).cloned(), map.get(value)) {
                    let masked = redact(v, &m);
                    map.insert(value.into(), masked);
                }
            }
            if map.get("sensitive") == Some(&Value::Bool(true)) {
                for key in ["value", "default"] {
                    if let Some(v) = map.get_mut(key) {
                        *v = Value::String(REDACTED.into());
                    }
                }
            }
            for child in map.values_mut() {
                mask(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

/// Every string (and object key) with the run's secrets masked; the document stays JSON.
fn scrub_strings(node: Value, secrets: &Scrubber) -> Value {
    match node {
        Value::String(s) => Value::String(secrets.scrub_with(&s, REDACTED)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| scrub_strings(v, secrets)).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (secrets.scrub_with(&k, REDACTED), scrub_strings(v, secrets))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_value_terraform_marks_sensitive_is_masked() {
        let doc = json!({
            "format_version": "1.0",
            "variables": { "token": { "value": "hunter2" }, "content": { "value": "hello" } },
            "planned_values": {
                "outputs": { "token": { "sensitive": true, "value": "hunter2" }, "path": { "sensitive": false, "value": "/x" } },
                "root_module": { "resources": [{ "address": "a.b", "values": { "password": "pw", "name": "n" }, "sensitive_values": { "password": true } }] }
            },
            "resource_changes": [{ "address": "a.b", "change": {
                "actions": ["create"], "before": null, "after": { "password": "pw", "name": "n" },
                "after_sensitive": { "password": true }, "before_sensitive": false } }],
            "output_changes": { "token": { "actions": ["create"], "before": null, "after": "hunter2", "after_sensitive": true, "before_sensitive": false } },
            "configuration": { "root_module": { "variables": { "token": { "default": "unset", "sensitive": true } } } }
        });
        let masked = redact_show(doc, &["token"]);
        let text = masked.to_string();
        assert!(!text.contains("hunter2") && !text.contains("\"pw\"") && !text.contains("unset"), "{text}");
        assert_eq!(masked["variables"]["content"]["value"], "hello", "what is not sensitive stays");
        assert_eq!(masked["resource_changes"][0]["change"]["after"]["name"], "n");
        assert_eq!(masked["resource_changes"][0]["change"]["after"]["password"], REDACTED);
        assert_eq!(masked["planned_values"]["outputs"]["path"]["value"], "/x");
        assert_eq!(masked["output_changes"]["token"]["after"], REDACTED);
    }

    #[test]
    fn known_secrets_are_scrubbed_from_every_string_and_key() {
        let secrets = Scrubber::new(["s3cr3t-value"]);
        let doc = json!({ "a": ["x s3cr3t-value y"], "s3cr3t-value": 1, "n": 2 });
        let scrubbed = scrub_strings(doc, &secrets);
        let text = scrubbed.to_string();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert_eq!(scrubbed["n"], 2);
    }
}
