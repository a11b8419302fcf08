//! Flux's `healthCheckExprs`: the health of an object told by CEL expressions over it, for
//! kinds the built-in rules do not know. Semantics as Flux's (its RFC 0009):
//! - an object whose integer `status.observedGeneration` differs from its
//!   `metadata.generation` is in progress, whatever the expressions say;
//! - `inProgress` is asked first, then `failed`, then `current`; the first true decides, and
//!   none true means in progress;
//! - the expressions see the object's top-level fields as variables (`apiVersion`, `kind`,
//!   `metadata`, `spec`, `status`, or whatever the kind has), so one that reads a field the
//!   object does not have yet (a `status` before its controller wrote one) cannot be
//!   evaluated: the object is in progress, and the reason is kept for the timeout's message.
//!
//! Expressions are parsed when the spec is validated (a bad one is `InvalidSpec` naming its
//! field), and once more for each health wait ([`Checks::compile`]).

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, ExecutionError, Program, Value as Cel};
use serde_json::Value;

use super::health::Health;
use crate::api::{CustomHealthCheck, cel_env, parse_cel as parse};

/// Longest reason kept from an evaluation error (it goes into status and alerts).
const MAX_REASON: usize = 300;

/// The group and kind of an object (`apps`, `Deployment`; the core group is empty).
fn group_kind(object: &Value) -> (&str, &str) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    (group, object["kind"].as_str().unwrap_or_default())
}

/// The parsed `healthCheckExprs` of a Kustomization.
#[derive(Debug, Default)]
pub struct Checks(Vec<Compiled>);

#[derive(Debug)]
struct Compiled {
    /// Its index in `spec.healthCheckExprs`, for messages.
    index: usize,
    group: String,
    /// `None`: every kind of the group.
    kind: Option<String>,
    /// (field, source, program), in the order they are asked.
    expressions: Vec<(&'static str, String, Program)>,
}

impl Checks {
    /// Parses every expression; the error names the first that does not parse.
    pub fn compile(specs: &[CustomHealthCheck]) -> Result<Self, String> {
        let mut checks = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let mut expressions = Vec::new();
            for (field, expr) in spec.expressions() {
                let program = parse(expr).map_err(|e| format!("spec.healthCheckExprs[{index}].{field} is not a CEL expression: {e}"))?;
                expressions.push((field, expr.to_string(), program));
            }
            let kind = spec.kind.clone().filter(|k| !k.is_empty());
            checks.push(Compiled { index, group: spec.group().to_string(), kind, expressions });
        }
        Ok(Checks(checks))
    }

    /// The check for `object`: the one naming its group and kind, else the one naming its
    /// group without a kind.
    fn for_object(&self, object: &Value) -> Option<&Compiled> {
        let (group, kind) = group_kind(object);
        let of_group = |c: &&Compiled| c.group == group;
        let of_kind = self.0.iter().filter(of_group).find(|c| c.kind.as_deref() == Some(kind));
        of_kind.or_else(|| self.0.iter().filter(of_group).find(|c| c.kind.is_none()))
    }

    /// The health of `object` by its check; `None` when no check is for its kind.
    pub fn evaluate(&self, object: &Value) -> Option<Health> {
        self.for_object(object).map(|check| check.evaluate(object))
    }
}

impl Compiled {
    fn evaluate(&self, object: &Value) -> Health {
        let generation = object["metadata"]["generation"].as_i64();
        let observed = object["status"]["observedGeneration"].as_i64();
        if let (Some(generation), Some(observed)) = (generation, observed)
            && generation != observed
        {
            return Health::Progressing(Some(format!("status.observedGeneration {observed} is not metadata.generation {generation}")));
        }
        let mut context = Context::with_env(Arc::clone(cel_env()));
        for (name, value) in object.as_object().into_iter().flatten() {
            context.add_variable_from_value(name.clone(), to_cel(value));
        }
        for (field, expr, program) in &self.expressions {
            let name = format!("healthCheckExprs[{}].{field}", self.index);
            // The interpreter is fed with what users write: a panic in it is this object's
            // failure to evaluate, never the reconcile's end.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&context)));
            match outcome {
                Ok(Ok(Cel::Bool(true))) => {
                    return match *field {
                        "inProgress" => Health::Progressing(Some(format!("{name} is true"))),
                        "failed" => Health::Failed(format!("{name} is true: {expr}")),
                        _ => Health::Healthy,
                    };
                }
                Ok(Ok(Cel::Bool(false))) => {}
                Ok(Ok(other)) => return Health::Progressing(Some(format!("{name} is a {}, not a bool", other.type_of()))),
                Ok(Err(e)) => return Health::Progressing(Some(format!("{name} cannot be evaluated: {}", describe(&e)))),
                Err(_) => return Health::Progressing(Some(format!("{name} cannot be evaluated"))),
            }
        }
        Health::Progressing(None)
    }
}

/// A JSON value as CEL sees it; integers are CEL `int`s, as Kubernetes' are int64.
fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cel::Int(i),
            (None, Some(u)) => Cel::UInt(u),
            _ => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => {
            let map: HashMap<Key, Cel> = map.iter().map(|(k, v)| (Key::from(k.clone()), to_cel(v))).collect();
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

/// An evaluation error without the values it carries (an object's fields may be secret; the
/// crate's own messages print them), cut to [`MAX_REASON`].
fn describe(e: &ExecutionError) -> String {
    let text = match e {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::UndeclaredReference(name) => format!("no such variable or function: {name}"),
        ExecutionError::FunctionError { function, message } => format!("{function}: {message}"),
        ExecutionError::InvalidArgumentCount { .. } | ExecutionError::MissingArgumentOrTarget | ExecutionError::NoSuchOverload(_) => {
            e.to_string()
        }
        ExecutionError::IndexOutOfBounds(_) => "index out of bounds".into(),
        ExecutionError::UnexpectedType { want, .. } => format!("a value of another type where {want} was wanted"),
        ExecutionError::UnsupportedTargetType { target } => format!("not supported on a {}", target.type_of()),
        ExecutionError::NotSupportedAsMethod { method, target } => format!("{method} is not a method of a {}", target.type_of()),
        ExecutionError::ValuesNotComparable(a, b) => format!("a {} cannot be compared to a {}", a.type_of(), b.type_of()),
        ExecutionError::UnsupportedBinaryOperator(op, a, b) => format!("{op} does not apply to a {} and a {}", a.type_of(), b.type_of()),
        ExecutionError::UnsupportedKeyType(v) => format!("a {} cannot be a key", v.type_of()),
        ExecutionError::UnsupportedIndex(index, target) => format!("a {} cannot index a {}", index.type_of(), target.type_of()),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".into(),
        ExecutionError::Overflow(op, _, _) => format!("{op} overflows"),
        _ => "the expression cannot be evaluated".into(),
    };
    let mut text = text;
    if text.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn evaluate(index: usize, check: &CustomHealthCheck, object: &Value) -> Health {
        let mut specs =
            vec![CustomHealthCheck { api_version: "other.example.com/v1".into(), current: "true".into(), ..Default::default() }; index];
        specs.push(check.clone());
        Checks::compile(&specs).expect("parses").evaluate(object).expect("a check for it")
    }

    fn check_for(checks: &[CustomHealthCheck], object: &Value) -> Option<usize> {
        Checks::compile(checks).expect("parses").for_object(object).map(|c| c.index)
    }

    fn check(api_version: &str, kind: Option<&str>, current: &str, in_progress: Option<&str>, failed: Option<&str>) -> CustomHealthCheck {
        CustomHealthCheck {
            api_version: api_version.into(),
            kind: kind.map(str::to_string),
            current: current.into(),
            in_progress: in_progress.map(str::to_string),
            failed: failed.map(str::to_string),
        }
    }

    fn widget(status: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "generation": 2}, "spec": {"size": 3}, "status": status})
    }

    const READY: &str = "status.conditions.filter(c, c.type == 'Ready').all(c, c.status == 'True')";

    #[test]
    fn current_failed_and_in_progress_are_asked_in_flux_order() {
        let c =
            check("example.com/v1", Some("Widget"), READY, Some("has(status.pending) && status.pending"), Some("status.phase == 'Failed'"));
        let ready = widget(json!({"observedGeneration": 2, "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}));
        assert_eq!(evaluate(0, &c, &ready), Health::Healthy);
        let failed = widget(json!({"observedGeneration": 2, "phase": "Failed", "conditions": [{"type": "Ready", "status": "True"}]}));
        assert_eq!(
            evaluate(1, &c, &failed),
            Health::Failed("healthCheckExprs[1].failed is true: status.phase == 'Failed'".into()),
            "failed before current"
        );
        let pending = widget(json!({"pending": true, "phase": "Failed", "conditions": []}));
        assert_eq!(
            evaluate(0, &c, &pending),
            Health::Progressing(Some("healthCheckExprs[0].inProgress is true".into())),
            "inProgress first"
        );
        let waiting = widget(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}));
        assert_eq!(evaluate(0, &c, &waiting), Health::Progressing(None), "none true");
    }

    #[test]
    fn a_stale_generation_is_in_progress_and_integers_compare_as_ints() {
        let c = check("example.com/v1", Some("Widget"), "spec.size == 3 && metadata.generation + 1 == 3", None, None);
        assert_eq!(evaluate(0, &c, &widget(json!({"observedGeneration": 2}))), Health::Healthy);
        assert!(
            matches!(evaluate(0, &c, &widget(json!({"observedGeneration": 1}))), Health::Progressing(Some(m)) if m.contains("observedGeneration"))
        );
        let string_generation = widget(json!({"observedGeneration": "1"}));
        assert_eq!(evaluate(0, &c, &string_generation), Health::Healthy, "a non-integer observedGeneration is the expressions' business");
    }

    #[test]
    fn a_field_not_there_yet_is_in_progress_with_the_reason_and_no_values() {
        let c = check("example.com/v1", None, "status.phase == 'Ready'", None, None);
        let fresh = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"secret": "hunter2"}});
        match evaluate(0, &c, &fresh) {
            Health::Progressing(Some(m)) => {
                assert!(m.contains("healthCheckExprs[0].current cannot be evaluated") && m.contains("status"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let typed = check("example.com/v1", None, "spec.secret + 1 == 2", None, None);
        match evaluate(0, &typed, &fresh) {
            Health::Progressing(Some(m)) => assert!(!m.contains("hunter2"), "values stay out of messages: {m}"),
            other => panic!("{other:?}"),
        }
        let not_bool = check("example.com/v1", None, "spec.secret", None, None);
        assert_eq!(evaluate(0, &not_bool, &fresh), Health::Progressing(Some("healthCheckExprs[0].current is a string, not a bool".into())));
    }

    #[test]
    fn the_check_of_a_kind_wins_over_the_check_of_its_group() {
        let checks = vec![
            check("example.com/v1", None, "true", None, None),
            check("example.com/v2", Some("Widget"), "false", None, None),
            check("v1", Some("ConfigMap"), "true", None, None),
        ];
        assert_eq!(check_for(&checks, &widget(json!({}))), Some(1), "the version does not matter, the group does");
        assert_eq!(check_for(&checks, &json!({"apiVersion": "example.com/v1", "kind": "Gadget"})), Some(0));
        assert_eq!(check_for(&checks, &json!({"apiVersion": "v1", "kind": "ConfigMap"})), Some(2));
        assert_eq!(check_for(&checks, &json!({"apiVersion": "apps/v1", "kind": "Deployment"})), None);
    }

    #[test]
    fn bad_expressions_are_parse_errors_on_one_line() {
        for bad in ["status.phase ==", "status.(", "has(status)", "'unclosed", ")))"] {
            let e = parse(bad).err().unwrap_or_else(|| panic!("{bad:?} parses"));
            assert!(!e.is_empty() && !e.contains('\n'), "{bad:?}: {e}");
        }
        assert!(parse("status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')").is_ok());
        assert!(parse("has(status.phase) && status.phase.startsWith('Run')").is_ok());
        let bad = CustomHealthCheck { api_version: "v1".into(), current: "true".into(), failed: Some("(".into()), ..Default::default() };
        let e = Checks::compile(&[bad]).expect_err("refused");
        assert!(e.starts_with("spec.healthCheckExprs[0].failed is not a CEL expression"), "{e}");
    }
}
