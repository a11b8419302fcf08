//! YAML in and out: multi-document files parsed into JSON values with the file and line of
//! any error, and a small emitter for the build output.
//!
//! Why our own emitter: serde_yaml writes strings such as `Y`, `yes` or `on` as plain scalars
//! (they are strings in YAML 1.2), but `kubectl` and most Kubernetes tooling read YAML 1.1,
//! where they are booleans. The emitter here quotes every string that any YAML version could
//! read as something else, and keeps `${VAR}` plain so that postBuild substitution turns
//! `replicas: ${REPLICAS}` into a number, as Flux does.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::BuildError;

/// Every non-empty document of a YAML stream, in order, as JSON values. Merge keys (`<<`) are
/// applied; a document that is empty or `null` is skipped.
///
/// # Errors
/// [`BuildError::Yaml`] with the file and the line of the first syntax error.
pub(crate) fn parse_documents(text: &str, file: &Path) -> Result<Vec<Value>, BuildError> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let mut value = serde_yaml::Value::deserialize(doc).map_err(|e| yaml_error(file, &e))?;
        value.apply_merge().map_err(|e| yaml_error(file, &e))?;
        let json = to_json(value, file)?;
        if !json.is_null() {
            out.push(json);
        }
    }
    Ok(out)
}

/// One YAML document (a kustomization file, a patch) as a JSON value (`null` when empty).
pub(crate) fn parse_one(text: &str, file: &Path) -> Result<Value, BuildError> {
    let mut docs = parse_documents(text, file)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        n => Err(BuildError::File { file: file.to_path_buf(), message: format!("expected one YAML document, found {n}") }),
    }
}

fn yaml_error(file: &Path, e: &serde_yaml::Error) -> BuildError {
    let location = e.location().map(|l| (l.line(), l.column()));
    BuildError::Yaml { file: file.to_path_buf(), line: location.map(|l| l.0), column: location.map(|l| l.1), message: e.to_string() }
}

/// serde_yaml values to JSON: tags are dropped (their value kept), non-string keys become
/// their YAML text, as kustomize's YAML-to-JSON conversion does.
fn to_json(value: serde_yaml::Value, file: &Path) -> Result<Value, BuildError> {
    Ok(match value {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| BuildError::File {
                    file: file.to_path_buf(),
                    message: format!("the number {n} cannot be represented in JSON"),
                })?
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(items) => Value::Array(items.into_iter().map(|v| to_json(v, file)).collect::<Result<_, _>>()?),
        serde_yaml::Value::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    serde_yaml::Value::String(s) => s,
                    serde_yaml::Value::Bool(b) => b.to_string(),
                    serde_yaml::Value::Number(n) => n.to_string(),
                    serde_yaml::Value::Null => "null".to_string(),
                    other => {
                        return Err(BuildError::File {
                            file: file.to_path_buf(),
                            message: format!("a mapping key must be a scalar, found {other:?}"),
                        });
                    }
                };
                out.insert(key, to_json(v, file)?);
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(tagged) => to_json(tagged.value, file)?,
    })
}

/// The text of a scalar as YAML holds it (a node's value, without quotes): a string as it is,
/// a number or a boolean as written, null as empty. A map or a list has no text: empty, as
/// kustomize's YAML library gives it.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Object(_) | Value::Array(_) => String::new(),
    }
}

/// What `text` reads as when YAML holds it unquoted and untagged: null, a boolean, an
/// integer or a float (YAML 1.2's core schema); anything else is a string. kustomize writes a
/// field it creates that way, so a created `replicas` from the string `"3"` is the number 3.
pub(crate) fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1i128, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let based = |prefix: &str, radix: u32| {
        digits
            .strip_prefix(prefix)
            .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_digit(radix)))
            .and_then(|d| i128::from_str_radix(d, radix).ok())
    };
    let int = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i128>().ok()
    } else {
        based("0x", 16).or_else(|| based("0o", 8))
    };
    if let Some(n) = int.map(|n| sign * n) {
        if let Ok(i) = i64::try_from(n) {
            return Value::from(i);
        }
        if let Ok(u) = u64::try_from(n) {
            return Value::from(u);
        }
    }
    if is_yaml_float(digits)
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, YAML 1.2's float (sign already taken).
fn is_yaml_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// The objects as one multi-document YAML stream (`---` between documents), keys sorted.
pub fn to_yaml_stream(objects: &[Value]) -> String {
    let mut out = String::new();
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(object));
    }
    out
}

/// One value as a YAML document.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar, 0));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, map: &Map<String, Value>, level: usize) {
    for (key, value) in map {
        indent(out, level);
        out.push_str(&string_text(key, level, false));
        out.push(':');
        write_child(out, value, level, true);
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    for item in items {
        indent(out, level);
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first key goes on the dash's line; the rest align with it.
                let mut first = true;
                for (key, value) in map {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        indent(out, level + 2);
                    }
                    out.push_str(&string_text(key, level + 2, false));
                    out.push(':');
                    write_child(out, value, level + 2, true);
                }
            }
            other => write_child(out, other, level, false),
        }
    }
}

/// Writes a value after `key:` or `-`: nested collections on the next lines, scalars inline.
fn write_child(out: &mut String, value: &Value, level: usize, in_map: bool) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, level + 2);
        }
        // Sequences in a map sit at the key's indentation, as kubectl prints them.
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, if in_map { level } else { level + 2 });
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar, level + 2));
            out.push('\n');
        }
    }
}

fn scalar_text(value: &Value, level: usize) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_text(s, level, true),
        Value::Object(_) => "{}".to_string(),
        Value::Array(_) => "[]".to_string(),
    }
}

/// A string as a plain scalar when no YAML 1.1 or 1.2 reader could take it for anything
/// else, as a literal block when it spans lines, and double-quoted otherwise.
fn string_text(s: &str, level: usize, block_allowed: bool) -> String {
    if is_plain_safe(s) {
        return s.to_string();
    }
    if block_allowed && is_block_safe(s) {
        let body = s.strip_suffix('\n').unwrap_or(s);
        let mut out = String::from(if s.ends_with('\n') { "|" } else { "|-" });
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                indent(&mut out, level);
                out.push_str(line);
            }
        }
        return out;
    }
    double_quoted(s)
}

/// JSON string syntax is valid YAML double-quoted syntax.
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{85}' || c == '\u{2028}' || c == '\u{2029}' || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_block_safe(s: &str) -> bool {
    s.contains('\n')
        && !s.ends_with("\n\n")
        && s.chars().all(|c| c == '\n' || c == '\t' || !(c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')))
        // A literal block takes its indentation from its first non-empty line.
        && s.split('\n').find(|l| !l.is_empty()).is_some_and(|l| !l.starts_with([' ', '\t']))
        // Trailing spaces on lines survive a literal block, but only a quoted string keeps a
        // string that is all blank lines.
        && s.chars().any(|c| !c.is_whitespace())
}

fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if !(first.is_ascii_alphabetic() || matches!(first, '_' | '/' | '$' | '(') || (!first.is_ascii() && first.is_alphabetic())) {
        return false;
    }
    if s.ends_with([' ', ':']) || s.contains(": ") || s.contains(" #") {
        return false;
    }
    if s.chars().any(|c| c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')) {
        return false;
    }
    !is_ambiguous_word(s)
}

/// Words YAML 1.1 reads as booleans or null, and the special floats.
fn is_ambiguous_word(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
            | "null"
            | "Null"
            | "NULL"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_reads_back_as_the_same_values() {
        let value = json!({
            "a": "Y", "b": "yes", "c": "on", "d": "${R}", "e": "8080", "f": "line1\n  line2\n", "g": "null", "h": "~",
            "i": "1e3", "j": "0x10", "k": "012", "l": "true", "m": "- x", "n": "a: b", "o": "", "p": "${R:=3}",
            "q": "$${X}", "r": "no newline\nat end", "s": " lead", "t": "tab\tin", "u": "#c", "v": "x #y", "w": "2001-12-14",
            "x": [ {"name": "a", "list": [1, 2, {"k": null}], "m": {}}, [], "s", [ "nested" ] ],
            "y": 1.5, "z": -3, "on": true, "\"q\"": "\\", "nl": "\n\n", "uni": "héllo", "empty": {}, "blank": "\n",
        });
        let text = to_yaml(&value);
        let back: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, value, "{text}");
        assert!(text.contains("\nb: \"yes\"\n") || text.contains("\nb: 'yes'\n"), "{text}");
        assert!(text.contains("\nd: ${R}\n"), "substitution needs ${{VAR}} plain: {text}");
    }

    #[test]
    fn multi_document_errors_name_the_file_and_line() {
        let err = parse_documents("a: 1\n---\nb: [1,\nc: 2\n", Path::new("dir/x.yaml")).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("dir/x.yaml:5:"), "{message}");
    }

    #[test]
    fn plain_scalars_read_as_yaml_reads_them() {
        assert_eq!(plain_scalar("3"), json!(3));
        assert_eq!(plain_scalar("-3"), json!(-3));
        assert_eq!(plain_scalar("0x1f"), json!(31));
        assert_eq!(plain_scalar("1.5"), json!(1.5));
        assert_eq!(plain_scalar("1e3"), json!(1000.0));
        assert_eq!(plain_scalar("true"), json!(true));
        assert_eq!(plain_scalar(""), Value::Null);
        assert_eq!(plain_scalar("~"), Value::Null);
        for text in ["abc", "1.2.3", "yes", "3a", "-", ".", "1e", "0x", "nginx:1.27", "2001-12-14"] {
            assert_eq!(plain_scalar(text), json!(text), "{text}");
        }
    }

    #[test]
    fn value_text_is_the_scalar_without_quotes() {
        assert_eq!(value_text(&json!("a")), "a");
        assert_eq!(value_text(&json!(3)), "3");
        assert_eq!(value_text(&json!(false)), "false");
        assert_eq!(value_text(&Value::Null), "");
        assert_eq!(value_text(&json!({"a": 1})), "");
    }

    #[test]
    fn empty_documents_are_skipped() {
        let docs = parse_documents("---\n# only a comment\n---\na: 1\n---\n", Path::new("x.yaml")).unwrap();
        assert_eq!(docs, vec![json!({"a": 1})]);
    }
}
