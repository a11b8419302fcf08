//! postBuild variable substitution, as Flux's kustomize-controller does it after a build:
//! `${VAR}` is replaced by the variable's value, `${VAR:=default}` (also `:-`, `=`, `-`) by
//! the value or the default, and `$${VAR}` is a literal `${VAR}`. Substitution runs on each
//! object's YAML text, so `replicas: ${REPLICAS}` becomes a number, and the result is parsed
//! again. An object labelled or annotated `kustomize.toolkit.fluxcd.io/substitute: disabled`
//! is left alone.
//!
//! Strict, as Flux is by default since kustomize-controller v1.9 (its
//! `StrictPostBuildSubstitutions` gate): a variable that is not set and has no default is an
//! error naming the variable and the object, never an empty string. Whether a build is
//! substituted at all is Flux's rule too ([`crate::api::PostBuild::substitutes`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::resource::{ResId, str_at};
use super::yaml;

/// The annotation (or label) that turns substitution off for one object.
pub const DISABLE_KEY: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// Why a substitution failed.
#[derive(Debug, thiserror::Error)]
pub enum SubstituteError {
    #[error("variable name {0:?} is invalid: it must start with a letter or '_' and hold only letters, digits and '_'")]
    InvalidName(String),
    #[error(
        "{object}: variable {name:?} is not set and has no default; set it (postBuild.substitute, substituteFrom or --substitute {name}=...) or write ${{{name}:=default}}"
    )]
    Missing { object: String, name: String },
    #[error(
        "{object}: {expression:?} is not a supported substitution; use ${{VAR}} or ${{VAR:=default}}, and $${{...}} for a literal ${{...}}"
    )]
    Unsupported { object: String, expression: String },
    #[error("{object}: the substituted object is not valid YAML ({message}); quote the field or the value")]
    Yaml { object: String, message: String },
}

/// Substitutes `vars` into every object (see the module documentation).
///
/// # Errors
/// A variable name is invalid, a variable is missing, an expression is not supported, or a
/// value breaks an object's YAML.
pub fn substitute(objects: Vec<Value>, vars: &BTreeMap<String, String>) -> Result<Vec<Value>, SubstituteError> {
    if let Some(bad) = vars.keys().find(|k| !is_var_name(k)) {
        return Err(SubstituteError::InvalidName(bad.clone()));
    }
    // Flux drops newlines from values: a value cannot add lines to a manifest.
    let vars: BTreeMap<&str, String> = vars.iter().map(|(k, v)| (k.as_str(), v.replace('\n', ""))).collect();
    objects
        .into_iter()
        .map(|object| {
            if is_disabled(&object) {
                return Ok(object);
            }
            let id = ResId::of(&object).describe();
            let text = yaml::to_yaml(&object);
            let expanded = expand(&text, &vars, &id)?;
            if expanded == text {
                return Ok(object);
            }
            yaml::parse_one(&expanded, Path::new(&id)).map_err(|e| SubstituteError::Yaml { object: id.clone(), message: e.to_string() })
        })
        .collect()
}

fn is_disabled(object: &Value) -> bool {
    ["labels", "annotations"].iter().any(|m| str_at(object, &["metadata", m, DISABLE_KEY]) == "disabled")
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn expand(text: &str, vars: &BTreeMap<&str, String>, object: &str) -> Result<String, SubstituteError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            // `$$` is a literal `$` (so `$${VAR}` stays `${VAR}`).
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(SubstituteError::Unsupported {
                    object: object.to_string(),
                    expression: format!("${{{}", body.lines().next().unwrap_or("")),
                });
            };
            out.push_str(&evaluate(&body[..end], vars, object)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${...}` expression.
fn evaluate(expr: &str, vars: &BTreeMap<&str, String>, object: &str) -> Result<String, SubstituteError> {
    let name_len = expr.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(expr.len());
    let (name, op) = expr.split_at(name_len);
    let unsupported = || SubstituteError::Unsupported { object: object.to_string(), expression: format!("${{{expr}}}") };
    if !is_var_name(name) {
        return Err(unsupported());
    }
    let value = vars.get(name);
    let with_default = |default: &str, empty_counts: bool| match value {
        Some(v) if !(empty_counts && v.is_empty()) => v.clone(),
        _ => default.to_string(),
    };
    if op.is_empty() {
        return value.cloned().ok_or_else(|| SubstituteError::Missing { object: object.to_string(), name: name.to_string() });
    }
    if let Some(d) = op.strip_prefix(":=").or_else(|| op.strip_prefix(":-")) {
        return Ok(with_default(d, true));
    }
    if let Some(d) = op.strip_prefix('=').or_else(|| op.strip_prefix('-')) {
        return Ok(with_default(d, false));
    }
    Err(unsupported())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn values_defaults_and_escapes() {
        let obj = json!({"kind": "Deployment", "metadata": {"name": "web-${ENV}"}, "spec": {"replicas": "${REPLICAS:=2}", "x": "$${KEEP}", "y": "$HOME", "z": "${EMPTY:-dflt}"}});
        let out = substitute(vec![obj], &vars(&[("ENV", "prod"), ("EMPTY", "")])).unwrap();
        assert_eq!(
            out[0],
            json!({"kind": "Deployment", "metadata": {"name": "web-prod"}, "spec": {"replicas": 2, "x": "${KEEP}", "y": "$HOME", "z": "dflt"}})
        );
    }

    #[test]
    fn a_missing_variable_names_itself_and_the_object() {
        let obj = json!({"kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}, "data": {"a": "${NOPE}"}});
        let err = substitute(vec![obj], &vars(&[])).unwrap_err().to_string();
        assert!(err.starts_with("ConfigMap/ns/cm: variable \"NOPE\" is not set"), "{err}");
    }

    #[test]
    fn disabled_objects_are_left_alone() {
        let obj =
            json!({"kind": "ConfigMap", "metadata": {"name": "cm", "annotations": {DISABLE_KEY: "disabled"}}, "data": {"a": "${NOPE}"}});
        let out = substitute(vec![obj.clone()], &vars(&[])).unwrap();
        assert_eq!(out[0], obj);
    }

    #[test]
    fn invalid_names_and_expressions_are_refused() {
        assert!(matches!(substitute(vec![], &vars(&[("1X", "a")])), Err(SubstituteError::InvalidName(_))));
        let obj = json!({"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "${X^^}"}});
        assert!(matches!(substitute(vec![obj], &vars(&[("X", "a")])), Err(SubstituteError::Unsupported { .. })));
    }
}
