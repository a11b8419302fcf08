//! Reads terraform's machine-readable plan formats into what driftless reports: the
//! `plan -json` UI stream (cheap, on every run) and `show -json` of a saved plan
//! (attribute detail, for review and drift). Unknown fields are ignored so every format
//! version from 0.1 on parses. Sensitive values are redacted here, at the edge, before
//! anything leaves the runner.

use std::collections::BTreeSet;

use driftless_core::contract::{Output, PlannedResource};
use driftless_core::drift::DriftObject;
use driftless_core::plan::PlanSummary;
use serde::Deserialize;
use serde_json::Value;

pub const REDACTED: &str = "(sensitive value)";

#[derive(Debug, Default, PartialEq)]
pub struct StreamSummary {
    pub summary: PlanSummary,
    pub resources: Vec<PlannedResource>,
    /// Addresses terraform reported as changed outside of terraform.
    pub drifted: Vec<PlannedResource>,
    /// `error` diagnostics as "summary: detail".
    pub errors: Vec<String>,
    pub outputs: Vec<Output>,
    /// A state lock error was reported.
    pub lock_error: bool,
}

#[derive(Deserialize)]
struct UiMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    change: Option<UiChange>,
    #[serde(default)]
    changes: Option<UiCounts>,
    #[serde(default)]
    diagnostic: Option<UiDiagnostic>,
    #[serde(default)]
    outputs: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct UiChange {
    resource: UiResource,
    action: String,
}

#[derive(Deserialize)]
struct UiResource {
    addr: String,
}

#[derive(Deserialize)]
struct UiCounts {
    #[serde(default)]
    add: u32,
    #[serde(default)]
    change: u32,
    #[serde(default)]
    remove: u32,
}

#[derive(Deserialize)]
struct UiDiagnostic {
    severity: String,
    summary: String,
    #[serde(default)]
    detail: String,
}

/// Parses a `plan -json` / `apply -json` stream; lines that are not JSON (terraform can
/// print plain text on crashes) are kept as errors only if they look like one.
pub fn parse_stream(stream: &str) -> StreamSummary {
    let mut out = StreamSummary::default();
    for line in stream.lines() {
        let Ok(msg) = serde_json::from_str::<UiMessage>(line) else { continue };
        match msg.kind.as_str() {
            "planned_change" | "resource_drift" => {
                if let Some(c) = msg.change {
                    let r = PlannedResource { address: c.resource.addr, action: normalise_action(&c.action) };
                    if msg.kind == "planned_change" {
                        out.resources.push(r);
                    } else {
                        out.drifted.push(r);
                    }
                }
            }
            "change_summary" => {
                if let Some(c) = msg.changes {
                    out.summary = PlanSummary { add: c.add, change: c.change, destroy: c.remove };
                }
            }
            "diagnostic" => {
                if let Some(d) = msg.diagnostic.filter(|d| d.severity == "error") {
                    if d.summary.contains("state lock") {
                        out.lock_error = true;
                    }
                    out.errors.push(if d.detail.is_empty() { d.summary } else { format!("{}: {}", d.summary, d.detail) });
                }
            }
            "outputs" => {
                for (name, o) in msg.outputs.unwrap_or_default() {
                    let sensitive = o.get("sensitive").and_then(Value::as_bool).unwrap_or(false);
                    let value = o.get("value").cloned().unwrap_or(Value::Null);
                    out.outputs.push(Output { name, value, sensitive });
                }
            }
            _ => {}
        }
    }
    out
}

fn normalise_action(action: &str) -> String {
    match action {
        "noop" | "no-op" => "no-op",
        "remove" | "delete" => "delete",
        other => other,
    }
    .to_string()
}

/// The parts of `show -json` driftless uses.
#[derive(Deserialize, Default)]
pub struct ShowPlan {
    #[serde(default)]
    pub format_version: String,
    #[serde(default)]
    pub resource_changes: Vec<ResourceChange>,
    #[serde(default)]
    pub resource_drift: Vec<ResourceChange>,
    #[serde(default)]
    pub output_changes: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
pub struct ResourceChange {
    pub address: String,
    #[serde(rename = "type", default)]
    pub resource_type: String,
    pub change: Change,
}

#[derive(Deserialize)]
pub struct Change {
    pub actions: Vec<String>,
    #[serde(default)]
    pub before: Value,
    #[serde(default)]
    pub after: Value,
    #[serde(default)]
    pub before_sensitive: Value,
    #[serde(default)]
    pub after_sensitive: Value,
}

impl Change {
    /// One verb for an action list (`["delete","create"]` is a replace).
    pub fn action(&self) -> &'static str {
        let has = |a: &str| self.actions.iter().any(|x| x == a);
        match (has("create"), has("delete"), has("update"), has("read")) {
            (true, true, _, _) => "replace",
            (true, false, _, _) => "create",
            (false, true, _, _) => "delete",
            (_, _, true, _) => "update",
            (_, _, _, true) => "read",
            _ => "no-op",
        }
    }
}

pub fn parse_show(json: &[u8]) -> Result<ShowPlan, serde_json::Error> {
    serde_json::from_slice(json)
}

impl ShowPlan {
    pub fn summary(&self) -> PlanSummary {
        let mut s = PlanSummary::default();
        for rc in &self.resource_changes {
            match rc.change.action() {
                "create" => s.add += 1,
                "update" => s.change += 1,
                "delete" => s.destroy += 1,
                "replace" => {
                    s.add += 1;
                    s.destroy += 1;
                }
                _ => {}
            }
        }
        s
    }

    /// Drift entries: the changed attribute paths, never their values.
    pub fn drift(&self) -> Vec<DriftObject> {
        self.resource_drift
            .iter()
            .map(|rc| DriftObject {
                kind: rc.resource_type.clone(),
                name: rc.address.clone(),
                action: rc.change.action().to_string(),
                fields: changed_paths(&rc.change.before, &rc.change.after),
            })
            .collect()
    }

    /// The reviewer's view: every change with attribute before/after, sensitive ones masked.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.resource_drift.is_empty() {
            out.push_str("Changed outside of driftless (drift):\n");
            for rc in &self.resource_drift {
                // terraform 1.0 leaves schema-sensitive attributes unmarked in drift entries;
                // the planned change of the same resource marks them, so take both masks.
                let planned = self.resource_changes.iter().find(|c| c.address == rc.address);
                let mut masks = vec![&rc.change.before_sensitive, &rc.change.after_sensitive];
                if let Some(p) = planned {
                    masks.extend([&p.change.before_sensitive, &p.change.after_sensitive]);
                }
                let mask = masks.into_iter().fold(Value::Null, |acc, m| merge_masks(&acc, m));
                render_change_masked(&mut out, rc, &mask, &mask);
            }
            out.push('\n');
        }
        let changes: Vec<&ResourceChange> =
            self.resource_changes.iter().filter(|rc| !matches!(rc.change.action(), "no-op" | "read")).collect();
        if changes.is_empty() {
            out.push_str("No resource changes.\n");
        } else {
            out.push_str("Planned changes:\n");
            for rc in changes {
                render_change(&mut out, rc);
            }
        }
        let outputs: Vec<String> = self
            .output_changes
            .iter()
            .filter(|(_, c)| c.get("actions").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x != "no-op")))
            .map(|(name, c)| {
                let sensitive = c.get("after_sensitive").and_then(Value::as_bool).unwrap_or(false)
                    || c.get("before_sensitive").and_then(Value::as_bool).unwrap_or(false);
                if sensitive {
                    format!("  {name} = {REDACTED}")
                } else {
                    format!("  {name} = {}", short(c.get("after").unwrap_or(&Value::Null)))
                }
            })
            .collect();
        if !outputs.is_empty() {
            out.push_str("\nOutputs:\n");
            out.push_str(&outputs.join("\n"));
            out.push('\n');
        }
        out.push_str(&format!("\nPlan: {}.\n", self.summary()));
        out
    }
}

fn render_change(out: &mut String, rc: &ResourceChange) {
    render_change_masked(out, rc, &rc.change.before_sensitive, &rc.change.after_sensitive);
}

/// The union of two sensitivity masks: sensitive where either says so.
fn merge_masks(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Bool(true), _) | (_, Value::Bool(true)) => Value::Bool(true),
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), merge_masks(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null))))
                    .collect(),
            )
        }
        (Value::Array(x), Value::Array(y)) => {
            let n = x.len().max(y.len());
            Value::Array((0..n).map(|i| merge_masks(x.get(i).unwrap_or(&Value::Null), y.get(i).unwrap_or(&Value::Null))).collect())
        }
        (Value::Null, other) | (other, Value::Null) => other.clone(),
        (other, _) => other.clone(),
    }
}

fn render_change_masked(out: &mut String, rc: &ResourceChange, before_mask: &Value, after_mask: &Value) {
    let c = &rc.change;
    let sign = match c.action() {
        "create" => "+",
        "delete" => "-",
        "replace" => "-/+",
        _ => "~",
    };
    out.push_str(&format!("  {sign} {} ({})\n", rc.address, c.action()));
    let before = redact(&c.before, before_mask);
    let after = redact(&c.after, after_mask);
    // A created or deleted object compares with an empty one: every attribute is listed.
    let empty = Value::Object(Default::default());
    let paths: BTreeSet<String> = match c.action() {
        "create" => changed_paths(&empty, &c.after),
        "delete" => changed_paths(&c.before, &empty),
        _ => changed_paths(&c.before, &c.after),
    }
    .into_iter()
    .collect();
    for path in paths {
        let b = lookup(&before, &path).map(short).unwrap_or_else(|| "(none)".into());
        let a = lookup(&after, &path)
            .map(short)
            .unwrap_or_else(|| if c.action() == "delete" { "(none)".into() } else { "(known after apply)".into() });
        out.push_str(&format!("      {path}: {b} -> {a}\n"));
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s }
}

/// Replaces every value the sensitivity mask marks with a fixed placeholder.
pub fn redact(value: &Value, mask: &Value) -> Value {
    match (value, mask) {
        (_, Value::Bool(true)) => Value::String(REDACTED.into()),
        (Value::Object(map), Value::Object(m)) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), redact(v, m.get(k).unwrap_or(&Value::Null)))).collect())
        }
        (Value::Array(items), Value::Array(m)) => {
            Value::Array(items.iter().enumerate().map(|(i, v)| redact(v, m.get(i).unwrap_or(&Value::Null))).collect())
        }
        (v, _) => v.clone(),
    }
}

/// Attribute paths (`a.b[0]`) where two JSON values differ.
pub fn changed_paths(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(before, after, String::new(), &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

fn diff(a: &Value, b: &Value, path: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                diff(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), join(&path, k), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, format!("{path}[{i}]"), out);
            }
        }
        (x, y) if x != y => out.push(if path.is_empty() { "(resource)".into() } else { path }),
        _ => {}
    }
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        let (key, index) = match part.find('[') {
            Some(i) => (&part[..i], part[i + 1..].trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = cur.get(key)?;
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> String {
        let path = format!("{}/../testprovider/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn recorded_drift_plans_of_both_terraform_versions_parse() {
        for name in ["show-drift-1.0.3.json", "show-drift-1.11.json"] {
            let show = parse_show(fixture(name).as_bytes()).unwrap();
            let drift = show.drift();
            let greeting = drift.iter().find(|d| d.name == "drifttest_file.greeting").unwrap_or_else(|| panic!("{name}: {drift:?}"));
            assert_eq!((greeting.action.as_str(), greeting.kind.as_str()), ("update", "drifttest_file"), "{name}");
            assert!(greeting.fields.contains(&"content".to_string()), "{name}: {greeting:?}");
            let removed = drift.iter().find(|d| d.name == "drifttest_file.removed").unwrap();
            assert_eq!(removed.action, "delete", "{name}");
            assert_eq!(show.summary(), PlanSummary { add: 1, change: 1, destroy: 0 }, "{name}");
        }
    }

    #[test]
    fn the_recorded_plan_stream_reports_drift_and_summary() {
        let s = parse_stream(&fixture("plan-stream-drift-1.0.3.jsonl"));
        assert!(s.drifted.iter().any(|r| r.address == "drifttest_file.greeting"), "{s:?}");
        assert_eq!(s.summary, PlanSummary { add: 1, change: 1, destroy: 0 });
    }

    #[test]
    fn sensitive_values_never_reach_the_rendering() {
        for name in ["show-sensitive-1.0.3.json", "show-sensitive-1.11.json"] {
            let text = fixture(name);
            let show = parse_show(text.as_bytes()).unwrap();
            let rendering = show.render();
            let raw: Value = serde_json::from_str(&text).unwrap();
            // Every value terraform itself marks sensitive anywhere in the plan.
            let mut secrets = Vec::new();
            collect_sensitive(&raw["resource_changes"], &mut secrets);
            for (_, c) in raw["output_changes"].as_object().unwrap() {
                if c["after_sensitive"] == Value::Bool(true) {
                    secrets.push(c["after"].as_str().unwrap_or_default().to_string());
                }
            }
            assert!(!secrets.is_empty(), "{name} holds no sensitive value to check");
            for secret in secrets.iter().filter(|s| s.len() > 3) {
                assert!(!rendering.contains(secret.as_str()), "{name}: {secret:?} leaked into:\n{rendering}");
            }
            assert!(rendering.contains(REDACTED), "{name}");
        }
    }

    fn collect_sensitive(changes: &Value, out: &mut Vec<String>) {
        for rc in changes.as_array().into_iter().flatten() {
            let c = &rc["change"];
            for (value, mask) in [(&c["before"], &c["before_sensitive"]), (&c["after"], &c["after_sensitive"])] {
                if let (Value::Object(v), Value::Object(m)) = (value, mask) {
                    for (k, flag) in m {
                        if flag == &Value::Bool(true)
                            && let Some(s) = v.get(k).and_then(Value::as_str)
                        {
                            out.push(s.to_string());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn changed_paths_walk_nested_values() {
        let before = json!({"content": "a", "tags": {"env": "dev", "team": "x"}, "list": [1, 2]});
        let after = json!({"content": "b", "tags": {"env": "prod", "team": "x"}, "list": [1, 3]});
        assert_eq!(changed_paths(&before, &after), vec!["content", "list[1]", "tags.env"]);
    }

    #[test]
    fn redaction_follows_the_sensitivity_mask() {
        let v = json!({"password": "hunter2", "user": "bob", "nested": [{"k": "s3cr3t"}]});
        let mask = json!({"password": true, "nested": [{"k": true}]});
        let r = redact(&v, &mask).to_string();
        assert!(!r.contains("hunter2") && !r.contains("s3cr3t") && r.contains("bob"), "{r}");
    }

    #[test]
    fn replace_counts_as_add_and_destroy() {
        let show: ShowPlan = serde_json::from_value(json!({
            "format_version": "0.2",
            "resource_changes": [
                {"address": "a.b", "type": "a", "change": {"actions": ["delete", "create"], "before": {}, "after": {}}},
                {"address": "a.c", "type": "a", "change": {"actions": ["update"], "before": {}, "after": {}}},
                {"address": "a.d", "type": "a", "change": {"actions": ["no-op"], "before": {}, "after": {}}}
            ],
            "future_field": 1
        }))
        .unwrap();
        assert_eq!(show.summary(), PlanSummary { add: 1, change: 1, destroy: 1 });
    }

    #[test]
    fn the_ui_stream_gives_changes_summary_and_errors() {
        let stream = [
            r#"{"@level":"info","type":"planned_change","change":{"resource":{"addr":"null_resource.a"},"action":"create"}}"#,
            r#"{"@level":"info","type":"change_summary","changes":{"add":1,"change":0,"remove":0,"operation":"plan"}}"#,
            r#"{"@level":"error","type":"diagnostic","diagnostic":{"severity":"error","summary":"Error acquiring the state lock","detail":"held"}}"#,
            "not json",
        ]
        .join("\n");
        let s = parse_stream(&stream);
        assert_eq!(s.summary.add, 1);
        assert_eq!(s.resources[0].address, "null_resource.a");
        assert!(s.lock_error);
    }
}
