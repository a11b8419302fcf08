//! The runner's parsers of untrusted input, fed arbitrary and near-valid input (proptest, a
//! bounded number of cases in the normal test command): terraform's `plan -json`/`apply -json`
//! stream, `show -json` of a saved plan, `output -json`, the HCL of the user's module, and the
//! variable values the runner renders for terraform. The property is always the same: a clear
//! error or a valid result, never a panic, never output (or work) that grows faster than the
//! input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use driftless_core::contract::{RunSpec, RunVariable};
use driftless_runner::{module, plan_json, tfvars};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Few cases per property (they run in the normal test command; `PROPTEST_CASES` asks for
/// more), no regression files written into the tree: a failure found here is kept as a
/// regular test instead.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Text that trips parsers: quotes, escapes, template openers, control and bidi characters,
/// combining marks, astral characters, very long runs.
fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,16}",
        "[a-z_]{1,12}",
        prop::sample::select(vec![
            String::new(),
            "\u{0}".into(),
            "\u{202e}evil\u{202c}".into(),
            "🦀🦀".into(),
            "e\u{301}\u{301}\u{301}".into(),
            "\u{fffd}\u{feff}".into(),
            "\"".into(),
            "\\".into(),
            "\\u0000".into(),
            "${var.x}".into(),
            "%{ if true }x%{ endif }".into(),
            "$${".into(),
            "\n".into(),
            "\r\n".into(),
            "<<EOF\nx\nEOF".into(),
            "state lock".into(),
            "x".repeat(3000),
        ]),
    ]
}

/// Numbers at and past the edges of every integer and float type.
fn odd_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1.7976931348623157e308)),
        Just(json!(-0.0)),
        Just(json!(4294967296u64)),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), odd_number(), odd_text().prop_map(Value::String),]
}

/// Field names terraform's formats use, so generated objects reach into the typed parts.
const FIELDS: &[&str] = &[
    "type",
    "change",
    "changes",
    "resource",
    "addr",
    "action",
    "add",
    "remove",
    "diagnostic",
    "severity",
    "summary",
    "detail",
    "outputs",
    "value",
    "sensitive",
    "address",
    "actions",
    "before",
    "after",
    "before_sensitive",
    "after_sensitive",
    "resource_changes",
    "resource_drift",
    "output_changes",
    "format_version",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(FIELDS).prop_map(str::to_string), 1 => odd_text()]
}

/// Any JSON value, a few levels deep, with terraform's field names as keys.
fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A value where a field is expected: usually the right shape, sometimes anything.
fn or_any<S: Strategy<Value = Value> + 'static>(right: S) -> BoxedStrategy<Value> {
    prop_oneof![4 => right, 1 => tree()].boxed()
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["create", "update", "delete", "remove", "read", "noop", "no-op", "replace", "move", "import"])
            .prop_map(str::to_string),
        1 => odd_text(),
    ]
}

/// One message of terraform's machine-readable UI stream, near-valid.
fn ui_message() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        4 => prop::sample::select(vec![
            "planned_change", "resource_drift", "change_summary", "diagnostic", "outputs", "apply_start", "apply_errored", "version"
        ]).prop_map(str::to_string),
        1 => odd_text(),
    ];
    let change = or_any((odd_text(), action()).prop_map(|(addr, action)| json!({"resource": {"addr": addr}, "action": action})));
    let counts = or_any((odd_number(), odd_number(), odd_number()).prop_map(|(a, c, r)| json!({"add": a, "change": c, "remove": r})));
    let severity = prop_oneof![prop::sample::select(vec!["error", "warning"]).prop_map(str::to_string), odd_text()];
    let diagnostic = or_any(
        (severity, odd_text(), odd_text()).prop_map(|(s, summary, detail)| json!({"severity": s, "summary": summary, "detail": detail})),
    );
    let outputs = or_any(
        prop::collection::btree_map(odd_text(), (tree(), any::<bool>()), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, (v, s))| (k, json!({"value": v, "sensitive": s}))).collect())),
    );
    (kind, change, counts, diagnostic, outputs, any::<u8>()).prop_map(|(kind, change, counts, diagnostic, outputs, mask)| {
        let mut m = serde_json::Map::new();
        m.insert("@level".into(), json!("info"));
        m.insert("type".into(), json!(kind));
        for (bit, (name, value)) in
            [("change", change), ("changes", counts), ("diagnostic", diagnostic), ("outputs", outputs)].into_iter().enumerate()
        {
            if mask & (1 << bit) != 0 {
                m.insert(name.into(), value);
            }
        }
        Value::Object(m)
    })
}

/// A stream: messages, junk lines, and perhaps cut off anywhere (terraform killed mid-line).
fn ui_stream() -> impl Strategy<Value = String> {
    let line = prop_oneof![6 => ui_message().prop_map(|m| m.to_string()), 1 => odd_text(), 1 => tree().prop_map(|v| v.to_string())];
    (prop::collection::vec(line, 0..24), any::<prop::sample::Index>(), any::<bool>()).prop_map(|(lines, cut, truncate)| {
        let text = lines.join("\n");
        if !truncate || text.is_empty() {
            return text;
        }
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text[..at].to_string()
    })
}

/// Bytes near a valid document: a few random bytes overwritten, inserted or removed.
fn mutate(doc: Vec<u8>, edits: Vec<(prop::sample::Index, u8, u8)>) -> Vec<u8> {
    let mut doc = doc;
    for (at, byte, op) in edits {
        let i = at.index(doc.len() + 1);
        match op % 3 {
            0 if i < doc.len() => doc[i] = byte,
            1 => doc.insert(i, byte),
            _ if i < doc.len() => {
                doc.remove(i);
            }
            _ => {}
        }
    }
    doc
}

fn actions() -> impl Strategy<Value = Value> {
    or_any(prop::collection::vec(action(), 0..3).prop_map(|a| json!(a)))
}

/// A resource change of `show -json`, near-valid: attribute values and sensitivity masks of
/// any shape, sometimes of the wrong type altogether.
fn resource_change() -> impl Strategy<Value = Value> {
    (odd_text(), odd_text(), actions(), tree(), tree(), tree(), tree()).prop_map(|(address, kind, actions, before, after, bs, as_)| {
        json!({
            "address": address, "type": kind, "mode": "managed",
            "change": {"actions": actions, "before": before, "after": after, "before_sensitive": bs, "after_sensitive": as_}
        })
    })
}

fn show_plan() -> impl Strategy<Value = Value> {
    let version = prop_oneof![prop::sample::select(vec!["0.1", "0.2", "1.0", "1.2", "9.9"]).prop_map(str::to_string), odd_text()];
    let changes = or_any(prop::collection::vec(resource_change(), 0..5).prop_map(Value::Array));
    let drift = or_any(prop::collection::vec(resource_change(), 0..5).prop_map(Value::Array));
    let outputs = or_any(prop::collection::btree_map(odd_text(), (actions(), tree(), tree()), 0..4).prop_map(|m| {
        Value::Object(m.into_iter().map(|(k, (a, v, s))| (k, json!({"actions": a, "after": v, "after_sensitive": s}))).collect())
    }));
    (version, changes, drift, outputs, tree()).prop_map(|(v, changes, drift, outputs, extra)| {
        json!({
            "format_version": v, "terraform_version": "1.0.3", "planned_values": extra,
            "resource_changes": changes, "resource_drift": drift, "output_changes": outputs, "future_field": {"x": 1}
        })
    })
}

/// Everything a parsed plan offers, exercised; the rendering is returned.
fn exercise(show: &plan_json::ShowPlan) -> String {
    let _ = show.summary();
    for d in show.drift() {
        assert!(!d.name.is_empty() || d.fields.iter().all(|f| !f.is_empty()));
    }
    show.render()
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn any_ui_stream_is_summarised_without_panicking(stream in ui_stream()) {
        let s = plan_json::parse_stream(&stream);
        // Everything reported came from the input, and not more of it than there was.
        let reported: usize = s.errors.iter().map(String::len).sum::<usize>()
            + s.resources.iter().chain(&s.drifted).map(|r| r.address.len()).sum::<usize>();
        prop_assert!(reported <= 2 * stream.len(), "{reported} bytes reported from {} bytes", stream.len());
        prop_assert!(s.errors.len() <= plan_json::MAX_DIAGNOSTICS + 1);
    }

    #[test]
    fn well_formed_changes_are_reported_in_order(changes in prop::collection::vec(("[a-z_]{1,8}\\.[a-z0-9_]{1,8}", action()), 0..12)) {
        let stream: Vec<String> = changes
            .iter()
            .map(|(addr, action)| json!({"type": "planned_change", "change": {"resource": {"addr": addr}, "action": action}}).to_string())
            .collect();
        let s = plan_json::parse_stream(&stream.join("\n"));
        prop_assert_eq!(s.resources.len(), changes.len());
        for (got, (addr, _)) in s.resources.iter().zip(&changes) {
            prop_assert_eq!(&got.address, addr);
        }
    }

    #[test]
    fn any_show_json_is_read_or_refused(plan in show_plan(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 0..4)) {
        let bytes = mutate(serde_json::to_vec(&plan).unwrap(), edits);
        if let Ok(show) = plan_json::parse_show(&bytes) {
            let rendering = exercise(&show);
            prop_assert!(rendering.len() <= 64 * bytes.len() + 4096, "{} bytes rendered from {}", rendering.len(), bytes.len());
        }
    }

    #[test]
    fn random_bytes_are_refused_as_show_json(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(show) = plan_json::parse_show(&bytes) {
            exercise(&show);
        }
    }

    /// Whatever the plan's shape, a value terraform marks sensitive never reaches the rendering.
    #[test]
    fn values_marked_sensitive_never_reach_the_rendering(
        secret in "SECRET_[a-z]{16}",
        public in tree(),
        actions in prop::collection::vec(action(), 1..3),
        nested in any::<bool>(),
        as_output in any::<bool>(),
    ) {
        let (after, mask) = if nested {
            (json!({"conf": [{"password": secret, "user": public}]}), json!({"conf": [{"password": true}]}))
        } else {
            (json!({"password": secret, "user": public}), json!({"password": true}))
        };
        let change = json!({"address": "a.b", "type": "a", "change": {"actions": actions, "before": {}, "after": after, "after_sensitive": mask}});
        let mut plan = json!({"format_version": "1.2", "resource_changes": [change.clone()], "resource_drift": [change]});
        if as_output {
            plan["output_changes"] = json!({"pw": {"actions": ["create"], "after": secret, "after_sensitive": true}});
        }
        let show = plan_json::parse_show(&serde_json::to_vec(&plan).unwrap()).unwrap();
        let rendering = show.render();
        prop_assert!(!rendering.contains(&secret), "{secret} leaked into:\n{rendering}");
    }

    #[test]
    fn any_output_json_is_read_or_ignored(value in tree(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 0..3)) {
        let text = String::from_utf8_lossy(&mutate(serde_json::to_vec(&value).unwrap(), edits)).into_owned();
        let outputs = plan_json::parse_outputs(&text);
        prop_assert!(outputs.len() <= text.len());
    }
}

proptest! {
    // Each case builds and walks up to a few MiB of JSON.
    #![proptest_config(config(24))]

    /// A long chain of long keys over many leaves: every path repeats the chain, so paths
    /// built whole would grow with depth times leaves.
    #[test]
    fn deep_long_keyed_values_render_in_bounded_space(depth in 1usize..120, key_len in 1usize..3000, leaves in 1usize..400) {
        let mut before = Value::Object((0..leaves).map(|i| (format!("l{i}"), json!(i))).collect());
        let mut after = Value::Object((0..leaves).map(|i| (format!("l{i}"), json!(i + 1))).collect());
        for level in 0..depth {
            let k = format!("{level}{}", "k".repeat(key_len));
            before = json!({ k.clone(): before });
            after = json!({ k: after });
        }
        let change = json!({"address": "a.b", "type": "a", "change": {"actions": ["update"], "before": before, "after": after}});
        let plan = json!({"format_version": "1.2", "resource_changes": [change.clone()], "resource_drift": [change]});
        let bytes = serde_json::to_vec(&plan).unwrap();
        let show = plan_json::parse_show(&bytes).unwrap();
        let rendering = show.render();
        let drift = show.drift();
        let fields: usize = drift.iter().flat_map(|d| &d.fields).map(String::len).sum();
        prop_assert!(rendering.len() <= 64 * bytes.len() + 4096, "{} bytes rendered from {}", rendering.len(), bytes.len());
        prop_assert!(fields <= 32 * bytes.len() + 4096, "{fields} bytes of drift fields from {}", bytes.len());
    }
}

// ---- the module's HCL -------------------------------------------------------------------

/// An identifier as terraform allows them.
fn ident() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_-]{0,10}"
}

/// An HCL string literal of odd text, escaped as HCL wants it.
fn hcl_string() -> impl Strategy<Value = String> {
    odd_text().prop_map(|t| {
        let escaped: String = t
            .chars()
            .map(|c| match c {
                '"' => "\\\"".to_string(),
                '\\' => "\\\\".to_string(),
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                c if c.is_control() => format!("\\u{:04x}", c as u32),
                c => c.to_string(),
            })
            .collect::<String>()
            // Template openers stay literal.
            .replace("${", "$${")
            .replace("%{", "%%{");
        format!("\"{escaped}\"")
    })
}

/// HCL expressions, valid by construction, nested a few levels.
fn hcl_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        hcl_string(),
        prop::sample::select(vec![
            "true",
            "false",
            "null",
            "0",
            "-0",
            "1.5e3",
            "1e300",
            "99999999999999999999999999",
            "0.000000000000000000001",
            "var.x",
            "local.y[0]",
            "\"${var.x}-${local.y}\"",
            "\"%{ for i in [1] }${i}%{ endfor }\"",
            "\"$${literal}\"",
        ])
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            // Keys of an object are unique (a repeated one is an error, terraform's too).
            prop::collection::btree_map(ident(), inner.clone(), 0..4)
                .prop_map(|v| format!("{{ {} }}", v.into_iter().map(|(k, e)| format!("{k} = {e}")).collect::<Vec<_>>().join(", "))),
            (ident(), prop::collection::vec(inner.clone(), 0..3)).prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, a, b)| format!("{c} ? {a} : {b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("[for v in {a} : {b}]")),
        ]
    })
}

#[derive(Debug, Clone)]
struct Decl {
    name: String,
    default: Option<String>,
    sensitive: Option<bool>,
}

fn variable_decl() -> impl Strategy<Value = Decl> {
    (ident(), prop::option::of(hcl_expr()), prop::option::of(any::<bool>())).prop_map(|(name, default, sensitive)| Decl {
        name,
        default,
        sensitive,
    })
}

fn render_decl(d: &Decl) -> String {
    let mut body = String::from("  type = any\n  description = \"x\"\n");
    if let Some(e) = &d.default {
        body.push_str(&format!("  default = {e}\n"));
    }
    if let Some(s) = d.sensitive {
        body.push_str(&format!("  sensitive = {s}\n"));
    }
    format!("variable \"{}\" {{\n{body}}}\n", d.name)
}

/// Other blocks a module holds: a backend, resources with nested blocks, locals, heredocs.
fn other_block() -> impl Strategy<Value = String> {
    prop_oneof![
        ident().prop_map(|b| format!("terraform {{\n  required_version = \">= 1.0\"\n  backend \"{b}\" {{\n    key = \"x\"\n  }}\n}}\n")),
        (ident(), ident(), hcl_expr())
            .prop_map(|(t, n, e)| format!("resource \"{t}\" \"{n}\" {{\n  x = {e}\n  lifecycle {{\n    ignore_changes = [x]\n  }}\n}}\n")),
        hcl_expr().prop_map(|e| format!("locals {{\n  y = {e}\n}}\n")),
        Just("output \"o\" {\n  value = <<-EOT\n    ${var.x}\n    EOT\n}\n".to_string()),
        Just("# a comment\n// another\n/* and\n a block one */\n".to_string()),
    ]
}

/// A whole module file, valid by construction, and the variables it declares.
fn module_file() -> impl Strategy<Value = (String, Vec<Decl>)> {
    (prop::collection::vec(variable_decl(), 0..6), prop::collection::vec(other_block(), 0..4)).prop_map(|(decls, others)| {
        let mut text = String::new();
        for (i, d) in decls.iter().enumerate() {
            text.push_str(&render_decl(d));
            if let Some(o) = others.get(i) {
                text.push_str(o);
            }
        }
        for o in others.iter().skip(decls.len()) {
            text.push_str(o);
        }
        (text, decls)
    })
}

fn inspect_text(text: &[u8]) -> Result<module::ModuleInfo, module::ModuleError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.tf"), text).unwrap();
    module::inspect(dir.path(), "infra")
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn valid_modules_yield_every_declared_variable((text, decls) in module_file()) {
        let info = inspect_text(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        // A later declaration of the same name wins (terraform would refuse the duplicate).
        for d in &decls {
            let last = decls.iter().rev().find(|x| x.name == d.name).unwrap();
            let got = &info.variables[&d.name];
            prop_assert_eq!(got.required, last.default.is_none(), "{}", text);
            prop_assert_eq!(got.sensitive, last.sensitive == Some(true), "{}", text);
        }
        prop_assert_eq!(info.variables.len(), decls.iter().map(|d| &d.name).collect::<std::collections::BTreeSet<_>>().len());
    }

    #[test]
    fn near_valid_modules_are_read_or_refused_with_the_file_named(
        (text, _) in module_file(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(b"{}[]()\"$%\\=<>\n#*/~ \x00\xff".to_vec()), any::<u8>()), 1..6),
    ) {
        if let Err(e) = inspect_text(&mutate(text.into_bytes(), edits)) {
            let message = e.to_string();
            prop_assert!(message.contains("infra/main.tf"), "{message}");
        }
    }

    #[test]
    fn random_bytes_are_refused_as_a_module(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = inspect_text(&bytes);
    }

    /// Nesting far past what any module needs: refused with a parse error, never a stack overflow.
    #[test]
    fn deeply_nested_expressions_are_refused_not_overflowing(depth in 1usize..3000, opener in prop::sample::select(vec!["[", "{ a = ", "(", "f(", "\"${", "!", "-"])) {
        let close = match opener { "[" => "]", "{ a = " => " }", "(" | "f(" => ")", "\"${" => "}\"", _ => "" };
        let text = format!("variable \"v\" {{\n  default = {}1{}\n}}\n", opener.repeat(depth), close.repeat(depth));
        match inspect_text(text.as_bytes()) {
            Ok(info) => prop_assert!(info.variables.contains_key("v")),
            Err(e) => prop_assert!(matches!(e, module::ModuleError::Parse { .. }), "{e}"),
        }
    }

    #[test]
    fn deeply_nested_blocks_are_refused_not_overflowing(depth in 1usize..3000) {
        let text = format!("{}{}", "resource \"a\" \"b\" {\n".repeat(depth), "}\n".repeat(depth));
        if let Err(e) = inspect_text(text.as_bytes()) {
            prop_assert!(matches!(e, module::ModuleError::Parse { .. }), "{e}");
        }
    }
}

// ---- variable values ---------------------------------------------------------------------

proptest! {
    #![proptest_config(config(96))]

    /// The tfvars file terraform reads holds exactly the values of the RunSpec, whatever they
    /// are: odd unicode in names and strings, numbers at every edge, nesting.
    #[test]
    fn variable_values_render_to_the_same_json(vars in prop::collection::vec((odd_text(), tree(), any::<bool>()), 0..8)) {
        let vars: Vec<RunVariable> = vars.into_iter().map(|(name, value, sensitive)| RunVariable { name, value, sensitive }).collect();
        let bytes = tfvars::render(&vars);
        let back: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).unwrap();
        for v in &vars {
            // A later value of the same name wins, as the controller's precedence does.
            let last = vars.iter().rev().find(|x| x.name == v.name).unwrap();
            prop_assert_eq!(&back[&v.name], &last.value);
        }
    }

    /// The RunSpec is the runner's first untrusted input: a value nested deeper than serde's
    /// limit, or a number no float holds, is a parse error, not a stack overflow.
    #[test]
    fn run_specs_with_deep_or_huge_values_are_refused_cleanly(depth in 1usize..20_000, number in prop::sample::select(vec!["1", "1e400", "-1e400", "123456789012345678901234567890", "1e-400"])) {
        let value = format!("{}{number}{}", "[".repeat(depth), "]".repeat(depth));
        let text = format!(
            r#"{{"operation":"plan","object":{{"kind":"Terraform","namespace":"n","name":"x"}},"artifactUrl":"file:///x","artifactDigest":"sha256:00",
            "sourceRevision":"r","path":"./","workspace":"default","stateName":"default","inputsDigest":"d",
            "backend":{{"type":"local","root":"/x"}},"lockHolder":"t","timeoutSeconds":1,
            "variables":[{{"name":"v","value":{value}}}]}}"#
        );
        match serde_json::from_str::<RunSpec>(&text) {
            Ok(spec) => {
                prop_assert!(depth <= 128, "a value {depth} deep was accepted");
                tfvars::render(&spec.variables);
            }
            Err(e) => prop_assert!(depth > 126 || number.contains("e400"), "{e} (depth {depth}, {number})"),
        }
    }
}
