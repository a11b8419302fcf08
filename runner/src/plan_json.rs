//! Reads terraform's machine-readable plan formats into what driftless reports: the
//! `plan -json` UI stream (cheap, on every run) and `show -json` of a saved plan
//! (attribute detail, for review and drift). Unknown fields are ignored so every format
//! version from 0.1 on parses. Sensitive values are redacted here, at the edge, before
//! anything leaves the runner.

use std::collections::{BTreeMap, BTreeSet};

use driftless_core::contract::{Output, PlannedResource};
use driftless_core::drift::DriftObject;
use driftless_core::plan::PlanSummary;
use serde::Deserialize;
use serde_json::Value;

pub const REDACTED: &str = "(sensitive value)";

/// At most this many error diagnostics are kept from a stream (plus one line saying how many
/// more there were): they end up in a status condition, which must stay small whatever
/// terraform or a provider prints.
pub const MAX_DIAGNOSTICS: usize = 20;
/// A kept diagnostic is cut after this many characters.
pub const MAX_DIAGNOSTIC_CHARS: usize = 2000;
/// The longest attribute path reported (see [`changed_paths`]).
pub const MAX_PATH_CHARS: usize = 256;
/// Changed attributes listed per resource in a rendering (the rest are counted): a reviewer
/// reads every one up to here.
pub const MAX_RENDERED_PATHS: usize = 1000;
/// Changed attributes kept per drifted resource in a status ([`bound_fields`]).
pub const MAX_DRIFT_FIELDS: usize = 100;

#[derive(Debug, Default, PartialEq)]
pub struct StreamSummary {
    pub summary: PlanSummary,
    pub resources: Vec<PlannedResource>,
    /// Addresses terraform reported as changed outside of terraform.
    pub drifted: Vec<PlannedResource>,
    /// `error` diagnostics as "summary: detail".
    pub errors: Vec<String>,
    pub outputs: Vec<Output>,
    /// An output came without its value: OpenTofu withholds sensitive values from its `-json`
    /// streams, so the outputs are read with `output -json` instead.
    pub outputs_withheld: bool,
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
/// The human lines of a `-json` stream (each message's `@message`), as terraform prints
/// them without `-json`; lines that are no JSON message are kept as they are.
pub fn human_lines(stream: &str) -> Vec<String> {
    stream
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(v) => v.get("@message").and_then(Value::as_str).map_or_else(|| line.to_string(), str::to_string),
            Err(_) => line.to_string(),
        })
        .collect()
}

pub fn parse_stream(stream: &str) -> StreamSummary {
    let mut out = StreamSummary::default();
    let mut more_errors = 0usize;
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
                    if out.errors.len() < MAX_DIAGNOSTICS {
                        out.errors.push(cut(if d.detail.is_empty() { d.summary } else { format!("{}: {}", d.summary, d.detail) }));
                    } else {
                        more_errors += 1;
                    }
                }
            }
            "outputs" => {
                // Each message lists every output, and the last one is what the apply left:
                // OpenTofu streams one while planning (actions, no values) and one after.
                out.outputs.clear();
                out.outputs_withheld = false;
                for (name, o) in msg.outputs.unwrap_or_default() {
                    let sensitive = o.get("sensitive").and_then(Value::as_bool).unwrap_or(false);
                    out.outputs_withheld |= o.get("value").is_none();
                    let value = o.get("value").cloned().unwrap_or(Value::Null);
                    let value_type = o.get("type").cloned();
                    out.outputs.push(Output { name, value, sensitive, value_type });
                }
            }
            _ => {}
        }
    }
    match more_errors {
        0 => {}
        1 => out.errors.push("and 1 more error".into()),
        n => out.errors.push(format!("and {n} more errors")),
    }
    out
}

/// A diagnostic shortened to [`MAX_DIAGNOSTIC_CHARS`].
fn cut(text: String) -> String {
    match text.char_indices().nth(MAX_DIAGNOSTIC_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// The `output -json` document (older terraform versions stream no `outputs` message after
/// an apply); anything else is no outputs.
pub fn parse_outputs(text: &str) -> Vec<Output> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    map.into_iter()
        .map(|(name, o)| Output {
            name,
            sensitive: o.get("sensitive").and_then(Value::as_bool).unwrap_or(false),
            value: o.get("value").cloned().unwrap_or(Value::Null),
            value_type: o.get("type").cloned(),
        })
        .collect()
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
            // First entry per address, looked up once per drift entry (not a scan each time).
            let mut by_address: BTreeMap<&str, &ResourceChange> = BTreeMap::new();
            for rc in &self.resource_changes {
                by_address.entry(rc.address.as_str()).or_insert(rc);
            }
            for rc in &self.resource_drift {
                // terraform 1.0 leaves schema-sensitive attributes unmarked in drift entries;
                // the planned change of the same resource marks them, so take both masks.
                let planned = by_address.get(rc.address.as_str());
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
    let (old, new) = match c.action() {
        "create" => (&empty, &c.after),
        "delete" => (&c.before, &empty),
        _ => (&c.before, &c.after),
    };
    let mut changes = Vec::new();
    diff(old, new, &mut Vec::new(), 0, &mut changes);
    let shown = changes.len().min(MAX_RENDERED_PATHS);
    for path in &changes[..shown] {
        let b = lookup(&before, path).map(short).unwrap_or_else(|| "(none)".into());
        let a = lookup(&after, path)
            .map(short)
            .unwrap_or_else(|| if c.action() == "delete" { "(none)".into() } else { "(known after apply)".into() });
        out.push_str(&format!("      {}: {b} -> {a}\n", display(path)));
    }
    if changes.len() > shown {
        out.push_str(&format!("      (and {} more changed attributes)\n", changes.len() - shown));
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

/// A path into a JSON value: object keys and array indices.
type Path<'a> = Vec<Step<'a>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Attribute paths (`a.b[0]`) where two JSON values differ. A path is never longer than
/// [`MAX_PATH_CHARS`]: where it would be, the whole value below is one change (its path ends
/// with `…`), so a value nested deep under long keys gives one path per change, not one
/// ever-longer copy of every key above it per leaf.
pub fn changed_paths(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(before, after, &mut Vec::new(), 0, &mut out);
    out.iter().map(|p| display(p)).collect()
}

/// The length a step adds to a displayed path.
fn step_len(step: &Step<'_>, first: bool) -> usize {
    match step {
        Step::Key(k) => k.len() + usize::from(!first),
        Step::Index(i) => i.checked_ilog10().unwrap_or(0) as usize + 3,
    }
}

fn diff<'a>(a: &'a Value, b: &'a Value, path: &mut Path<'a>, len: usize, out: &mut Vec<Path<'a>>) {
    if len > MAX_PATH_CHARS {
        if a != b {
            out.push(path.clone());
        }
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let step = Step::Key(k);
                let grown = len + step_len(&step, path.is_empty());
                path.push(step);
                diff(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), path, grown, out);
                path.pop();
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let step = Step::Index(i);
                let grown = len + step_len(&step, path.is_empty());
                path.push(step);
                diff(p, q, path, grown, out);
                path.pop();
            }
        }
        (x, y) if x != y => out.push(path.clone()),
        _ => {}
    }
}

/// `a.b[0]`; `(resource)` for the value itself; cut with `…` past [`MAX_PATH_CHARS`].
fn display(path: &[Step<'_>]) -> String {
    if path.is_empty() {
        return "(resource)".into();
    }
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) if s.is_empty() => s.push_str(k),
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    match s.char_indices().nth(MAX_PATH_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None if path_is_cut(path) => format!("{s}…"),
        None => s,
    }
}

/// Whether `diff` stopped descending at this path (the change lies somewhere below it).
fn path_is_cut(path: &[Step<'_>]) -> bool {
    path.iter().enumerate().map(|(i, s)| step_len(s, i == 0)).sum::<usize>() > MAX_PATH_CHARS
}

fn lookup<'a>(v: &'a Value, path: &[Step<'_>]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, step| match step {
        Step::Key(k) => cur.get(*k),
        Step::Index(i) => cur.get(*i),
    })
}

/// Drift entries with at most `max` fields each (the rest counted in a last field), for a
/// status that stays small however many attributes drifted. Applied after the ignore rules,
/// which must see every field.
pub fn bound_fields(objects: Vec<DriftObject>, max: usize) -> Vec<DriftObject> {
    objects
        .into_iter()
        .map(|mut o| {
            if o.fields.len() > max {
                let more = o.fields.len() - max;
                o.fields.truncate(max);
                o.fields.push(format!("(and {more} more)"));
            }
            o
        })
        .collect()
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

    /// Found by tests/fuzz_inputs.rs: every path repeated every key above it, so a value
    /// nested under long keys gave output growing with depth times leaves.
    #[test]
    fn paths_under_long_keys_are_cut_and_the_value_below_is_one_change() {
        let long = "k".repeat(300);
        let before = json!({ long.clone(): {"a": 1, "b": 1} });
        let after = json!({ long.clone(): {"a": 2, "b": 2} });
        let paths = changed_paths(&before, &after);
        assert_eq!(paths, vec![format!("{}…", "k".repeat(MAX_PATH_CHARS))]);
        let show: ShowPlan = serde_json::from_value(json!({
            "resource_changes": [{"address": "a.b", "type": "a", "change": {"actions": ["update"], "before": before, "after": after}}]
        }))
        .unwrap();
        // The value below the cut is shown whole.
        assert!(show.render().contains(r#": {"a":1,"b":1} -> {"a":2,"b":2}"#), "{}", show.render());
    }

    #[test]
    fn values_in_nested_lists_and_under_dotted_keys_are_rendered() {
        let show: ShowPlan = serde_json::from_value(json!({
            "resource_changes": [{"address": "a.b", "type": "a", "change": {"actions": ["update"],
                "before": {"m": [[1, 2]], "tags": {"k8s.io/name": "x"}},
                "after": {"m": [[1, 3]], "tags": {"k8s.io/name": "y"}}}}]
        }))
        .unwrap();
        let r = show.render();
        assert!(r.contains("      m[0][1]: 2 -> 3\n"), "{r}");
        assert!(r.contains("      tags.k8s.io/name: \"x\" -> \"y\"\n"), "{r}");
    }

    #[test]
    fn drift_fields_are_bounded_after_the_ignore_rules() {
        let fields: Vec<String> = (0..150).map(|i| format!("tags.t{i}")).collect();
        let o = DriftObject { kind: "a".into(), name: "a.b".into(), action: "update".into(), fields };
        let bounded = bound_fields(vec![o], MAX_DRIFT_FIELDS);
        assert_eq!(bounded[0].fields.len(), MAX_DRIFT_FIELDS + 1);
        assert_eq!(bounded[0].fields.last().map(String::as_str), Some("(and 50 more)"));
    }

    #[test]
    fn errors_past_the_limit_are_counted_not_kept() {
        let line = r#"{"type":"diagnostic","diagnostic":{"severity":"error","summary":"boom","detail":"d"}}"#;
        let s = parse_stream(&vec![line; MAX_DIAGNOSTICS + 5].join("\n"));
        assert_eq!(s.errors.len(), MAX_DIAGNOSTICS + 1);
        assert_eq!(s.errors.last().map(String::as_str), Some("and 5 more errors"));
        let long = format!(r#"{{"type":"diagnostic","diagnostic":{{"severity":"error","summary":"{}"}}}}"#, "é".repeat(3000));
        assert_eq!(parse_stream(&long).errors[0].chars().count(), MAX_DIAGNOSTIC_CHARS + 1);
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
    fn outputs_come_from_the_last_message_and_a_withheld_value_is_noticed() {
        // OpenTofu 1.10's `apply -json`: a planning message, then the applied outputs with the
        // sensitive value left out.
        let stream = [
            r#"{"type":"outputs","outputs":{"plain":{"sensitive":false,"action":"create"},"token":{"sensitive":true,"action":"create"}}}"#,
            r#"{"type":"outputs","outputs":{"plain":{"sensitive":false,"type":"string","value":"x"},"token":{"sensitive":true,"type":"string"}}}"#,
        ]
        .join("\n");
        let s = parse_stream(&stream);
        assert_eq!(s.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["plain", "token"]);
        assert_eq!(s.outputs[0].value, serde_json::json!("x"));
        assert!(s.outputs_withheld, "the token's value must be read with `output -json`");
        let all_there = r#"{"type":"outputs","outputs":{"token":{"sensitive":true,"value":"v"}}}"#;
        assert!(!parse_stream(all_there).outputs_withheld);
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
