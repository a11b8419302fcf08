//! configMapGenerator and secretGenerator: ConfigMaps and Secrets made from literals, files
//! and env files, and kustomize's content hash suffix on their names.
//!
//! The hash is kustomize's: the first 10 hex digits of the sha256 of a JSON document
//! (`kind`, `name`, `data`, plus `binaryData` / `type` / `stringData`), written as Go's
//! encoder writes it (sorted keys, `<`, `>` and `&` escaped), with some digits replaced by
//! letters so the suffix never looks like a number. Same content, same name, so a changed
//! ConfigMap rolls the Deployments that use it.
//!
//! Learned from `kubectl kustomize` v5.5: the `name` in that document is always empty
//! (kustomize looks the name up under a key `metadata/name` that never exists), so the
//! hash depends on the content only, not on prefixes or suffixes.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::BuildError;
use super::kustomization::{GeneratorArgs, GeneratorOptions};
use super::loader::Dir;
use super::resource::{Behavior, Resource};

/// Which generator an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configMapGenerator",
            Kind::Secret => "secretGenerator",
        }
    }
}

/// The object one generator entry of the kustomization `file` in `dir` makes.
///
/// # Errors
/// A source cannot be read or parsed, a key is invalid or repeated, or the entry is
/// incomplete; the message names the generator field and the entry.
pub(crate) fn generate(
    kind: Kind,
    args: &GeneratorArgs,
    global: Option<&GeneratorOptions>,
    dir: &Dir,
    file: &Path,
) -> Result<Resource, BuildError> {
    let field = kind.field();
    let err = |message: String| BuildError::field(file, field, message);
    if args.name.is_empty() {
        return Err(err("every entry needs a name".into()));
    }
    if kind == Kind::ConfigMap && !args.type_.is_empty() {
        return Err(err(format!("{}: `type` is only for secretGenerator", args.name)));
    }
    let behavior = match args.behavior.as_str() {
        "" | "create" => Behavior::Create,
        "merge" => Behavior::Merge,
        "replace" => Behavior::Replace,
        other => return Err(err(format!("{}: behavior {other:?} must be create, merge or replace", args.name))),
    };
    let options = merge_options(args.options.as_ref(), global);
    let pairs = load_pairs(args, dir).map_err(|m| err(format!("{}: {m}", args.name)))?;

    let mut object =
        json!({"apiVersion": "v1", "kind": if kind == Kind::ConfigMap { "ConfigMap" } else { "Secret" }, "metadata": {"name": args.name}});
    if !args.namespace.is_empty() {
        object["metadata"]["namespace"] = Value::String(args.namespace.clone());
    }
    match kind {
        Kind::ConfigMap => {
            let mut data = Map::new();
            let mut binary = Map::new();
            for (k, v) in pairs {
                match String::from_utf8(v) {
                    Ok(text) => data.insert(k, Value::String(text)),
                    Err(bytes) => binary.insert(k, Value::String(encode_base64(bytes.as_bytes()))),
                };
            }
            if !data.is_empty() {
                object["data"] = Value::Object(data);
            }
            if !binary.is_empty() {
                object["binaryData"] = Value::Object(binary);
            }
        }
        Kind::Secret => {
            object["type"] = Value::String(if args.type_.is_empty() { "Opaque".to_string() } else { args.type_.clone() });
            let data: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, Value::String(encode_base64(&v)))).collect();
            object["data"] = Value::Object(data);
        }
    }
    if !options.labels.is_empty() {
        object["metadata"]["labels"] = json!(options.labels);
    }
    if !options.annotations.is_empty() {
        object["metadata"]["annotations"] = json!(options.annotations);
    }
    if options.immutable {
        object["immutable"] = Value::Bool(true);
    }
    let mut resource = Resource::new(object, file.to_path_buf());
    resource.needs_hash = !options.disable_name_suffix_hash;
    resource.behavior = behavior;
    Ok(resource)
}

/// Local options win; global labels and annotations fill in; either side can switch the
/// hash off or make the object immutable.
fn merge_options(local: Option<&GeneratorOptions>, global: Option<&GeneratorOptions>) -> GeneratorOptions {
    let mut out = local.cloned().unwrap_or_default();
    if let Some(g) = global {
        for (k, v) in &g.labels {
            out.labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &g.annotations {
            out.annotations.entry(k.clone()).or_insert_with(|| v.clone());
        }
        out.disable_name_suffix_hash |= g.disable_name_suffix_hash;
        out.immutable |= g.immutable;
    }
    out
}

/// Key/value pairs in kustomize's order: env files, then literals, then files. Keys must be
/// valid ConfigMap keys and appear once.
fn load_pairs(args: &GeneratorArgs, dir: &Dir) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    for env in &args.envs {
        let text = dir.read(env).map_err(|e| format!("env file {e}"))?;
        for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
            let line = std::str::from_utf8(raw).map_err(|_| format!("env file {env}: line {} is not UTF-8", i + 1))?;
            let line = if i == 0 { line.trim_start_matches('\u{feff}') } else { line };
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            if !is_env_var_name(key) {
                return Err(format!("env file {env}: line {}: {key:?} is not a valid environment variable name", i + 1));
            }
            pairs.push((key.to_string(), value.as_bytes().to_vec()));
        }
    }
    for literal in &args.literals {
        let Some((key, value)) = literal.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(format!("literal {literal:?} must be key=value"));
        };
        pairs.push((key.to_string(), unquote(value).as_bytes().to_vec()));
    }
    for source in &args.files {
        let (key, path) = match source.matches('=').count() {
            0 => (Path::new(source).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), source.as_str()),
            1 => match source.split_once('=') {
                Some((k, p)) if !k.is_empty() && !p.is_empty() => (k.to_string(), p),
                _ => return Err(format!("file source {source:?} must be [key=]path")),
            },
            _ => return Err(format!("file source {source:?}: the key or the path contains '='")),
        };
        let content = dir.read(path).map_err(|e| format!("file {e}"))?;
        pairs.push((key, content));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (key, _) in &pairs {
        if !is_config_key(key) {
            return Err(format!("{key:?} is not a valid key: use letters, digits, '-', '_' or '.'"));
        }
        if seen.contains(&key.as_str()) {
            return Err(format!("the key {key:?} appears more than once"));
        }
        seen.push(key);
    }
    Ok(pairs)
}

/// Surrounding quotes of a literal value go, as in kustomize.
fn unquote(value: &str) -> &str {
    let b = value.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') { &value[1..value.len() - 1] } else { value }
}

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && key != ".."
}

fn is_env_var_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Base64 as kustomize writes generated data: one line up to 70 characters, else 70-character
/// lines each ending in a newline.
fn encode_base64(bytes: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    if encoded.len() < 70 {
        return encoded;
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 70 + 1);
    for chunk in encoded.as_bytes().chunks(70) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out
}

/// kustomize's name hash of a ConfigMap or Secret (any other kind hashes the whole object).
pub(crate) fn content_hash(object: &Value) -> String {
    let field = |name: &str| -> Value {
        match object.get(name) {
            None | Some(Value::Null) => Value::String(String::new()),
            Some(v) => v.clone(),
        }
    };
    let name = Value::String(String::new());
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let encoded = match kind {
        "ConfigMap" => {
            let mut m = json!({"kind": "ConfigMap", "name": name, "data": field("data")});
            if object.get("binaryData").is_some_and(Value::is_object) {
                m["binaryData"] = field("binaryData");
            }
            go_json(&m)
        }
        "Secret" => {
            let mut m = json!({"kind": "Secret", "type": field("type"), "name": name, "data": field("data")});
            if object.get("stringData").is_some_and(Value::is_object) {
                m["stringData"] = field("stringData");
            }
            go_json(&m)
        }
        _ => go_json(object),
    };
    let hex = hex::encode(Sha256::digest(encoded.as_bytes()));
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// JSON as Go's encoding/json writes it: serde_json's (sorted keys, compact) with the HTML
/// characters and the two JavaScript line separators escaped.
fn go_json(value: &Value) -> String {
    let plain = value.to_string();
    let mut out = String::with_capacity(plain.len());
    for c in plain.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_kustomize_for_a_config_map() {
        // kubectl kustomize v5.5 names this ConfigMap o-b-gen-cchh4fmt2g, and one with only
        // a=1 gen-h29d89cmmt.
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "o-b-gen"}, "data": {"a": "1", "b": "<x&y>"}});
        assert_eq!(content_hash(&cm), "cchh4fmt2g");
        let small = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gen"}, "data": {"a": "1"}});
        assert_eq!(content_hash(&small), "h29d89cmmt");
    }

    #[test]
    fn long_secret_values_are_split_like_kustomize() {
        let value = "0123456789".repeat(7);
        let encoded = encode_base64(value.as_bytes());
        assert_eq!(encoded, "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMT\nIzNDU2Nzg5MDEyMzQ1Njc4OQ==\n");
        assert_eq!(encode_base64(b"short"), "c2hvcnQ=");
    }

    #[test]
    fn literal_quotes_are_removed_only_in_pairs() {
        assert_eq!(unquote("\"a b\""), "a b");
        assert_eq!(unquote("'x"), "'x");
    }
}
