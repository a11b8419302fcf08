//! The part of Go's text/template that tofu-controller's fields use: field references such as
//! `{{ .url }}` or `${{ .network.cidr }}` (in `spec.values`, with `${{ }}` delimiters, over
//! `readInputsFromSecrets`; in `spec.healthChecks`, with `{{ }}`, over the outputs).
//!
//! Only references: an action with anything else (a pipeline, a function, `if`, `range`) is
//! refused by name instead of being passed through as text. Where Go prints `<no value>` for
//! a missing key, this is an error naming the reference: a health check of
//! `http://<no value>/` or a variable of that text is never what the author meant.

use serde_json::Value;

/// Delimiters of one field.
#[derive(Clone, Copy, Debug)]
pub struct Delimiters {
    pub open: &'static str,
    pub close: &'static str,
}

/// `{{ }}`: Go's default (tofu-controller's health checks).
pub const GO: Delimiters = Delimiters { open: "{{", close: "}}" };
/// `${{ }}`: tofu-controller's `spec.values`.
pub const VALUES: Delimiters = Delimiters { open: "${{", close: "}}" };

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("{open} at byte {at} is never closed with {close}")]
    Unclosed { open: &'static str, close: &'static str, at: usize },
    #[error("{action:?} is not a field reference such as {open} .name {close}; only references are supported")]
    Unsupported { action: String, open: &'static str, close: &'static str },
    #[error("{reference} names nothing: there is no {missing:?} in {within}")]
    Missing { reference: String, missing: String, within: String },
    #[error("{reference} is a list or an object; only text, numbers and booleans can be written into a string")]
    NotScalar { reference: String },
}

/// Whether `text` holds any action with these delimiters.
pub fn has_actions(text: &str, delimiters: Delimiters) -> bool {
    text.contains(delimiters.open)
}

/// `text` with every `{{ .a.b }}` replaced by that value of `data`.
pub fn render(text: &str, delimiters: Delimiters, data: &Value) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find(delimiters.open) {
        out.push_str(&rest[..start]);
        let inner_start = start + delimiters.open.len();
        let Some(len) = rest[inner_start..].find(delimiters.close) else {
            return Err(TemplateError::Unclosed { open: delimiters.open, close: delimiters.close, at: offset + start });
        };
        let action = &rest[inner_start..inner_start + len];
        out.push_str(&lookup(action, delimiters, data)?);
        let consumed = inner_start + len + delimiters.close.len();
        rest = &rest[consumed..];
        offset += consumed;
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(action: &str, delimiters: Delimiters, data: &Value) -> Result<String, TemplateError> {
    let reference = action.trim();
    let shown = format!("{} {reference} {}", delimiters.open, delimiters.close);
    let unsupported = || TemplateError::Unsupported { action: shown.clone(), open: delimiters.open, close: delimiters.close };
    let path = reference.strip_prefix('.').ok_or_else(unsupported)?;
    let segments: Vec<&str> = if path.is_empty() { vec![] } else { path.split('.').collect() };
    if segments.iter().any(|s| s.is_empty() || !s.chars().all(|c| c.is_alphanumeric() || c == '_')) {
        return Err(unsupported());
    }
    let mut value = data;
    let mut within = "the inputs".to_string();
    for (i, segment) in segments.iter().enumerate() {
        value = value.get(segment).ok_or_else(|| TemplateError::Missing {
            reference: shown.clone(),
            missing: segment.to_string(),
            within: within.clone(),
        })?;
        within = format!(".{}", segments[..=i].join("."));
    }
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        Value::Array(_) | Value::Object(_) => Err(TemplateError::NotScalar { reference: shown }),
    }
}

/// Every string of a JSON value rendered (keys are left as they are).
pub fn render_json(value: &Value, delimiters: Delimiters, data: &Value) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => Value::String(render(s, delimiters, data)?),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_json(v, delimiters, data)).collect::<Result<_, _>>()?),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| Ok((k.clone(), render_json(v, delimiters, data)?))).collect::<Result<_, _>>()?)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_replaced_with_their_values() {
        let data = json!({ "url": "http://127.0.0.1:8080", "db": { "port": 5432, "tls": true } });
        assert_eq!(render("{{.url}}/healthz", GO, &data).unwrap(), "http://127.0.0.1:8080/healthz");
        assert_eq!(render("host:{{ .db.port }} tls={{ .db.tls }}", GO, &data).unwrap(), "host:5432 tls=true");
        assert_eq!(render("${{ .db.port }}", VALUES, &data).unwrap(), "5432");
        assert_eq!(render("no actions", GO, &data).unwrap(), "no actions");
    }

    #[test]
    fn the_values_delimiters_leave_plain_braces_alone() {
        let data = json!({ "a": "x" });
        assert_eq!(render("{{ .a }} ${{ .a }}", VALUES, &data).unwrap(), "{{ .a }} x");
    }

    #[test]
    fn a_missing_key_is_an_error_naming_it_not_go_s_no_value() {
        let data = json!({ "db": {} });
        let e = render("{{ .db.port }}", GO, &data).unwrap_err();
        assert_eq!(e.to_string(), "{{ .db.port }} names nothing: there is no \"port\" in .db");
        let e = render("{{ .nope }}", GO, &data).unwrap_err();
        assert_eq!(e.to_string(), "{{ .nope }} names nothing: there is no \"nope\" in the inputs");
    }

    #[test]
    fn anything_but_a_reference_is_refused_by_name() {
        for action in ["{{ printf \"%s\" .a }}", "{{ if .a }}", "{{ .a | upper }}", "{{ a }}", "{{ .a..b }}", "{{- .a }}"] {
            let e = render(action, GO, &json!({ "a": "x" })).unwrap_err();
            assert!(matches!(e, TemplateError::Unsupported { .. }), "{action}: {e}");
        }
        assert!(matches!(render("x {{ .a", GO, &json!({})).unwrap_err(), TemplateError::Unclosed { at: 2, .. }));
        assert!(matches!(render("{{ .l }}", GO, &json!({ "l": [1] })).unwrap_err(), TemplateError::NotScalar { .. }));
    }

    #[test]
    fn json_values_are_rendered_string_by_string() {
        let data = json!({ "env": { "name": "prod" } });
        let values = json!({ "labels": { "env": "${{ .env.name }}" }, "count": 2, "list": ["${{ .env.name }}-a"] });
        assert_eq!(render_json(&values, VALUES, &data).unwrap(), json!({ "labels": { "env": "prod" }, "count": 2, "list": ["prod-a"] }));
    }
}
